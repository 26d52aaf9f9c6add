"""Three variants of three kinds, side by side, through the real CLI: a ``finetuned`` tiny model, a
``classifier`` folder scored as it is, and ``predictions`` read from a column of the data."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from pipelines.core.runner import load_stage_outputs
from tests.conftest import REPO

WORDS = {0: ["good", "smart", "love"], 1: ["lazy", "bad", "hate"]}


@pytest.fixture
def three_variant_audit(tmp_path, tiny_models):
    rng = np.random.default_rng(0)
    rows = []
    for g, subject in (("women", "women"), ("muslim", "muslim")):
        for y in (0, 1):
            for i in range(40):
                text = f"{subject} are {WORDS[y][i % 3]} number {['one', 'two', 'three'][i % 3]} comment {i}"
                rows.append({"id": f"{g}-{y}-{i}", "comment": text, "stereotype": y, "group": g,
                             # a logged production score that knows the label a little
                             "prod_score": float(np.clip(0.35 + 0.3 * y + rng.normal(0, 0.15), 0, 1))})
    pd.DataFrame(rows).to_csv(tmp_path / "data.csv", index=False)
    cfg = {
        "audit": {"name": "three-kinds"},
        "seed": 1,
        "data": {"source": "file", "file": {"path": "data.csv", "text_column": "comment",
                                            "label_column": "stereotype", "id_column": "id",
                                            "sensitive_columns": ["group"]}},
        "validation": {"schema": None},
        "variants": [
            {"name": "tuned", "kind": "finetuned", "model": str(tiny_models["encoder"]), "max_length": 16,
             "training": {"epochs": 1, "batch_size": 16, "learning_rate": 1e-3}},
            {"name": "ckpt", "kind": "classifier", "model": str(tiny_models["classifier"]), "max_length": 16},
            {"name": "prod", "kind": "predictions", "column": "prod_score", "calibration": {"method": "none"}},
        ],
        "scoring": {"num_threads": 1},
        "evaluation": {"bootstrap": {"resamples": 40}, "min_group_size": 5, "min_class_count": 2,
                       "baseline": "prod",
                       "counterfactual": {"use_redditbias_terms": False,
                                          "term_pairs": {"women": [["women", "men"]],
                                                         "muslim": [["muslim", "christian"]]}},
                       "gates": [{"metric": "accuracy", "bound": 0.0, "direction": "min"},
                                 {"metric": "flip_rate", "bound": 0.99, "direction": "max"}]},
        "output": {"runs_dir": "runs", "cache_dir": "cache"},
    }
    path = tmp_path / "audit.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path


def test_three_kinds_audited_side_by_side_through_the_cli(three_variant_audit, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pipelines", "run", str(three_variant_audit), "--run-id", "three",
                           "--no-progress", "-q"], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode in (0, 1, 3), proc.stderr[-3000:]
    run = tmp_path / "runs" / "three-kinds" / "three"
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert proc.returncode == {"pass": 0, "fail": 1, "insufficient_evidence": 3}[manifest["verdict"]]
    # logged scores have no twins: prod's flip_rate gate cannot be measured, so the run cannot pass,
    # and the terminal names the gate that held it back
    prod_flip = [g for g in json.loads((run / "evaluate" / "fairness.json").read_text())["gates"]
                 if g["variant"] == "prod" and g["metric"] == "flip_rate"]
    assert [g["status"] for g in prod_flip] == ["not_evaluable"]
    assert manifest["verdict"] != "pass" and proc.returncode != 0
    assert any(line.strip().startswith("NOT EVALUABLE: prod flip_rate") for line in proc.stdout.splitlines()), \
        proc.stdout

    built = load_stage_outputs(run / "build_variants")["variants"]
    assert {n: b["kind"] for n, b in built.items()} == {"tuned": "finetuned", "ckpt": "classifier",
                                                         "prod": "predictions"}
    assert built["tuned"]["trained"] is True and built["ckpt"]["trained"] is False

    predict = load_stage_outputs(run / "predict")
    preds = predict["predictions"]
    sample = load_stage_outputs(run / "load_data")["audit_sample"]
    by_variant = {v: p.set_index("example_id") for v, p in preds.groupby("variant")}
    assert sorted(by_variant) == ["ckpt", "prod", "tuned"]
    for p in by_variant.values():  # every variant scores exactly the audit sample
        assert sorted(p.index) == sorted(sample["example_id"])
    # the logged scores are used as they are (calibration none), from the data column
    logged = sample.set_index("example_id")["prod_score"]
    np.testing.assert_allclose(by_variant["prod"].loc[logged.index, "score"], logged.astype(float), atol=1e-12)
    # models score twins; logged scores cannot, and the evaluation says which variants have none
    twins = predict["twin_predictions"]
    assert set(twins["variant"]) == {"tuned", "ckpt"}
    assert predict["performance"]["prod"]["twin_modes"] == []

    fairness = json.loads((run / "evaluate" / "fairness.json").read_text())
    assert fairness["variants_evaluated"] == ["tuned", "ckpt", "prod"]
    assert [(c["a"], c["b"]) for c in fairness["comparisons"]] == [("tuned", "prod"), ("ckpt", "prod")]
    comp = load_stage_outputs(run / "evaluate")["comparison"]
    acc = {v: json.loads((run / "evaluate" / "fairness.json").read_text())["variants"][v]["metrics"]["overall"]
           ["all"]["accuracy"]["value"] for v in ("tuned", "prod")}
    row = comp[(comp["a"] == "tuned") & (comp["kind"] == "metric") & (comp["feature"] == "overall")
               & (comp["metric"] == "accuracy")]
    assert row["value"].iloc[0] == pytest.approx(acc["tuned"] - acc["prod"])

    summary = json.loads((run / "report" / "summary.json").read_text())
    assert summary["verdict"]["overall"] == manifest["verdict"]
    assert summary["variant_order"] == ["tuned", "ckpt", "prod"] and set(summary["variants"]) == {"tuned", "ckpt", "prod"}
    assert len(summary["comparisons"]) == 2
    assert (run / "report" / "report.html").is_file()
