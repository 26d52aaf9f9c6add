"""The verdict through the real CLI on data the defaults were not designed for: groups that have
no counterfactual term pairs, so a flip-rate gate has nothing to measure. Before #12 such a
gate produced no rows and the run said PASS (exit 0); now it is ``not_evaluable``, the run
exits 3 and the terminal and the report name the gate."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import yaml

from tests.conftest import REPO


def _audit(tmp_path, tiny_models, gates):
    rows = [{"id": f"{g}-{y}-{i}", "comment": f"my {g} is {['calm', 'loud'][y]} and eats {i} biscuits",
             "y": y, "pet": g} for g in ("cat", "dog") for y in (0, 1) for i in range(15)]
    pd.DataFrame(rows).to_csv(tmp_path / "pets.csv", index=False)
    cfg = {"audit": {"name": "pets"}, "seed": 3,
           "data": {"source": "file", "file": {"path": "pets.csv", "text_column": "comment", "label_column": "y",
                                               "id_column": "id", "sensitive_columns": ["pet"]}},
           "validation": {"schema": None},
           "variants": [{"name": "ckpt", "kind": "classifier", "model": str(tiny_models["classifier"]),
                         "max_length": 16}],
           "scoring": {"num_threads": 1},
           "evaluation": {"bootstrap": {"resamples": 20}, "min_group_size": 5, "min_class_count": 2,
                          # no RedditBias terms and no pairs of our own: no twins for "cat" or "dog"
                          "counterfactual": {"use_redditbias_terms": False},
                          "gates": gates},
           "output": {"runs_dir": "runs", "cache_dir": "cache"}}
    path = tmp_path / "audit.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path


def _run(path, run_id):
    return subprocess.run([sys.executable, "-m", "pipelines", "run", str(path), "--run-id", run_id, "--no-progress",
                           "-q"], cwd=REPO, capture_output=True, text=True, timeout=600)


def test_flip_rate_gate_without_twins_exits_3_and_names_the_gate(tmp_path, tiny_models):
    gate = {"metric": "flip_rate", "bound": 0.2, "direction": "max", "name": "flips at most 20%"}
    proc = _run(_audit(tmp_path, tiny_models, [gate]), "r")
    assert proc.returncode == 3, proc.stderr[-3000:]
    run = tmp_path / "runs" / "pets" / "r"
    fairness = json.loads((run / "evaluate" / "fairness.json").read_text())
    # the gate has a row per variant: never silently missing
    assert [(g["variant"], g["status"]) for g in fairness["gates"]] == [("ckpt", "not_evaluable")]
    assert "twin" in fairness["gates"][0]["reason"]
    assert fairness["verdict"] == "insufficient_evidence"
    # the terminal names the gate under the verdict line
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("run r: verdict INSUFFICIENT_EVIDENCE")
    assert any(line.strip().startswith("NOT EVALUABLE: ckpt flips at most 20%") for line in lines), proc.stdout
    # and so does the report, beside the verdict
    summary = json.loads((run / "report" / "summary.json").read_text())
    assert [g["label"] for g in summary["verdict"]["attention"]] == ["flips at most 20%"]
    html = (run / "report" / "report.html").read_text(encoding="utf-8")
    assert "flips at most 20%" in html and "not evaluable" in html


def test_an_optional_unmeasurable_gate_does_not_hold_back_a_pass(tmp_path, tiny_models):
    gates = [{"metric": "flip_rate", "bound": 0.2, "direction": "max", "name": "flips", "optional": True},
             {"metric": "selection_rate", "bound": 1.0, "direction": "max", "name": "anything goes"}]
    proc = _run(_audit(tmp_path, tiny_models, gates), "opt")
    fairness = json.loads((tmp_path / "runs" / "pets" / "opt" / "evaluate" / "fairness.json").read_text())
    statuses = {(g["gate"], g["group"]): g["status"] for g in fairness["gates"]}
    assert statuses[("flips", None)] == "not_evaluable"
    # selection rate <= 1 holds for sure in both groups: the exact upper limit is at most 1
    assert {k: v for k, v in statuses.items() if k[0] == "anything goes"} == {("anything goes", "cat"): "pass",
                                                                             ("anything goes", "dog"): "pass"}
    assert fairness["verdict"] == "pass" and proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    assert "(optional gate: does not count)" in proc.stdout
