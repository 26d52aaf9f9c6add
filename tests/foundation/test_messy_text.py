"""Real-world text through the whole audit: newlines, quotes, NUL, carriage returns, right-to-left scripts, emoji
and a 1 MB text, from CSV and Parquet; TFDV without a CSV round trip; nothing left in $TMPDIR."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import pandas as pd
import pytest
import yaml

from tests.conftest import REPO
from tests.explore.conftest import ADJ, NUMBERS  # phrases the tiny models' vocabulary knows

BIG = 1_000_000
MESSY = {
    "newline": "women are {adj}\nsecond line, with a comma",
    "quotes": 'women said "{adj}", then \'{adj}\'; a,b,"c"',
    "nul": "women are\x00{adj} after a NUL",
    "cr": "women are {adj}\r\nwindows line\rold mac line",
    "rtl": "women are {adj} שלום עולם مرحبا بالعالم",
    "emoji": "women are {adj} 😀👩🏽‍💻🏳️‍🌈",
    "big": "women are {adj} " + "x" * BIG,
}


def messy_frame(copies: int = 6) -> pd.DataFrame:
    rows = []
    for kind, template in MESSY.items():
        for i in range(copies):
            y = i % 2
            text = template.format(adj=ADJ[y][i % 5]) + f" {NUMBERS[i]}"
            rows.append({"id": f"{kind}-{i}", "comment": text[:BIG] if kind == "big" else text, "y": y,
                         "group": "women" if i % 3 else "muslim"})
    for g, subject in (("women", "women"), ("muslim", "muslim men")):
        for y in (0, 1):
            for i in range(20):
                rows.append({"id": f"plain-{g}-{y}-{i}", "y": y, "group": g,
                             "comment": f"{subject} are {ADJ[y][i % 5]} {NUMBERS[i % 10]} {NUMBERS[i // 10]}"})
    return pd.DataFrame(rows)


def _config(tmp_path, data_file, tiny_models, *, variants=True) -> dict:
    cfg = {
        "audit": {"name": "messy"}, "seed": 1,
        "data": {"source": "file", "audit_sample_size": None, "split": {"eval_fraction": 0.5},
                 "file": {"path": str(data_file), "text_column": "comment", "label_column": "y", "id_column": "id",
                          "sensitive_columns": ["group"]}},
        "validation": {"schema": None},
        "scoring": {"max_validation_rows": 20, "num_threads": 1},
        "evaluation": {"bootstrap": {"resamples": 20}, "min_group_size": 3, "min_class_count": 1,
                       "counterfactual": {"use_redditbias_terms": False,
                                          "term_pairs": {"women": [["women", "men"]],
                                                         "muslim": [["muslim", "christian"]]}}},
        "output": {"runs_dir": str(tmp_path / "runs"), "cache_dir": str(tmp_path / "cache")},
    }
    if variants:
        cfg["variants"] = [
            {"name": "clf", "kind": "classifier", "model": str(tiny_models["classifier"]), "batch_size": 16},
            {"name": "rag", "kind": "rag", "retriever": {"embedder": str(tiny_models["encoder"]), "k": 2},
             "generator": {"model": str(tiny_models["generator"]), "gguf_file": None, "batch_size": 8}},
        ]
    return cfg


def test_messy_csv_goes_through_the_whole_audit_and_leaves_no_temporary_file(tmp_path, tiny_models):
    from pipelines.core.runner import load_stage_outputs

    frame = messy_frame()
    data = tmp_path / "messy.csv"
    frame.to_csv(data, index=False)
    config = tmp_path / "audit.yaml"
    config.write_text(yaml.safe_dump(_config(tmp_path, data, tiny_models), sort_keys=False), encoding="utf-8")
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    env = {**os.environ, "TMPDIR": str(tmpdir)}
    proc = subprocess.run([sys.executable, "-m", "pipelines", "run", str(config), "--run-id", "m", "--no-progress",
                           "-q"], cwd=REPO, capture_output=True, text=True, timeout=1200, env=env)
    assert proc.returncode in (0, 1, 3), proc.stderr[-4000:]
    run = tmp_path / "runs" / "messy" / "m"
    assert json.loads((run / "manifest.json").read_text())["status"] == "complete"
    assert (run / "report" / "report.html").is_file()
    # every text came through byte for byte, and none was lost
    examples = load_stage_outputs(run / "load_data")["examples"].set_index("example_id")
    expected = frame.set_index("id")["comment"].str.strip()
    assert set(examples.index) == set(expected.index)
    assert (examples.loc[expected.index, "text"] == expected).all()
    assert examples.loc["big-0", "n_chars"] == len(expected["big-0"]) > 900_000
    # each kind of messy text was scored by both variants (the eval split holds at least one of each)
    preds = load_stage_outputs(run / "predict")["predictions"]
    scored = {i.split("-")[0] for i in preds["example_id"]}
    assert set(MESSY) <= scored, sorted(set(MESSY) - scored)
    assert set(preds["variant"]) == {"clf", "rag"}
    # TFDV described the texts: the byte length of the texts, as an independent count
    val = load_stage_outputs(run / "validate_data")
    train = load_stage_outputs(run / "load_data")["train"]
    (overall,) = [d for d in val["statistics_train"].datasets if d.name == "All Examples"]
    (text,) = [f for f in overall.features if f.path.step[0] == "text"]
    assert overall.num_examples == len(train)
    assert text.string_stats.avg_length == pytest.approx(train["text"].map(lambda t: len(t.encode())).mean(),
                                                         rel=1e-6)
    assert list(tmpdir.iterdir()) == [], [p.name for p in tmpdir.iterdir()]


def test_messy_parquet_through_data_and_tfdv_stages(tmp_path, write_config, monkeypatch):
    from pipelines.config import load_config
    from pipelines.core.runner import run_audit
    from pipelines.stages.load_data import SPEC as LOAD
    from pipelines.stages.validate_data import SPEC as VALIDATE

    frame = messy_frame(copies=3)
    frame.to_parquet(tmp_path / "messy.parquet")
    cfg = _config(tmp_path, tmp_path / "messy.parquet", None, variants=False)
    empty = tmp_path / "tmpdir"
    empty.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(empty))  # where Python's tempfile (and Beam, TFDV) would write
    out = run_audit(load_config(write_config(cfg)), [LOAD, VALIDATE], run_id="p", started_at="t").outputs
    summary = out["validate_data"]["validation_summary"]
    kept = out["load_data"]["examples"]
    assert len(kept) == len(frame)
    assert summary["examples_per_slice"]["train"]["All Examples"] == len(out["load_data"]["train"])
    assert summary["examples_per_slice"]["eval"]["group_women"] == (out["load_data"]["eval"]["group"] == "women").sum()
    assert list(empty.iterdir()) == []
    # the stage's scratch folder is gone too: only the artifacts are in its folder
    stage_dir = tmp_path / "runs" / "messy" / "p" / "validate_data"
    assert not (stage_dir / ".scratch").exists()
    assert (stage_dir / "schema_inferred.pbtxt").is_file()
    schema = summary["schema"]
    assert schema["inferred_from_same_data"] is True and schema["origin"] == "inferred from train"
    assert "validate_data/schema_inferred.pbtxt" in schema["hint"]
