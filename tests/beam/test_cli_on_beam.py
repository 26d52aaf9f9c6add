"""The whole audit through the real CLI with every Beam path on, in a multi-process DirectRunner.

Sharded CSV input, `beam.data` (read, normalize and split on Beam; statistics from the split
shards) and `beam.inference` (RunInference for both variants) with 2 worker processes, tiny
models. The run must complete with a report, and the scores that came back from the Beam
workers must equal the fine-tuned model called directly on the same texts.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.conftest import REPO
from tests.explore.conftest import ADJ, NUMBERS  # phrases the tiny models' vocabulary knows

SUBJECTS = {"women": "women", "muslim": "muslim men"}
MULTI = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]


@pytest.fixture
def sharded_audit(tmp_path, tiny_models):
    rows = [{"id": f"{g}-{y}-{i:02d}", "comment": f"{s} are {ADJ[y][i % 5]} {NUMBERS[i % 10]} {NUMBERS[i // 10]}",
             "y": y, "group": g} for g, s in SUBJECTS.items() for y in (0, 1) for i in range(60)]
    frame = pd.DataFrame(rows).sample(frac=1.0, random_state=0)
    (tmp_path / "data").mkdir()
    for k, part in enumerate(np.array_split(frame, 3)):
        part.to_csv(tmp_path / "data" / f"part-{k}.csv", index=False)
    cfg = {
        "audit": {"name": "beam-e2e"},
        "seed": 3,
        "data": {"source": "file", "audit_sample_size": None,
                 "file": {"path": "data/part-*.csv", "text_column": "comment", "label_column": "y",
                          "id_column": "id", "sensitive_columns": ["group"]}},
        "validation": {"schema": None},
        "variants": [
            {"name": "finetuned", "kind": "classifier", "model": str(tiny_models["classifier"]), "batch_size": 16},
            {"name": "rag", "kind": "rag", "retriever": {"embedder": str(tiny_models["encoder"]), "k": 2},
             "generator": {"model": str(tiny_models["generator"]), "gguf_file": None, "batch_size": 8}},
        ],
        "scoring": {"max_validation_rows": 20, "num_threads": 1},
        "evaluation": {"bootstrap": {"resamples": 30}, "min_group_size": 3, "min_class_count": 1,
                       "counterfactual": {"use_redditbias_terms": False,
                                          "term_pairs": {"women": [["women", "men"]], "muslim": [["muslim", "christian"]]}}},
        "beam": {"runner": "DirectRunner", "options": MULTI, "data": True, "inference": True, "max_in_memory_rows": 100},
        "output": {"runs_dir": "runs", "cache_dir": "cache"},
    }
    path = tmp_path / "audit.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path, frame


def test_audit_runs_end_to_end_on_beam_workers(sharded_audit, tiny_models, tmp_path):
    config, frame = sharded_audit
    proc = subprocess.run([sys.executable, "-m", "pipelines", "run", str(config), "--run-id", "beam", "--no-progress",
                           "-q"], cwd=REPO, capture_output=True, text=True, timeout=900)
    run = tmp_path / "runs" / "beam-e2e" / "beam"
    assert proc.returncode in (0, 1, 3), proc.stderr[-3000:]  # a verdict, not an error
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    summary = json.loads((run / "report" / "summary.json").read_text())
    assert proc.returncode == {"pass": 0, "fail": 1, "insufficient_evidence": 3}[summary["verdict"]["overall"]]
    assert (run / "report" / "report.html").stat().st_size > 10_000

    # the data stage ran on Beam: every row read from the 3 shards, split by id hash
    data_summary = json.loads((run / "load_data" / "data_summary.json").read_text())
    assert data_summary["engine"] == "beam" and data_summary["rows"] == len(frame) == 240
    assert sum(data_summary["splits"][s]["rows"] for s in ("train", "validation", "eval")) == 240

    # both variants were scored by RunInference on 2 worker processes
    performance = json.loads((run / "predict" / "performance.json").read_text())
    for name in ("finetuned", "rag"):
        assert performance[name]["beam"]["pipeline_args"] == ["--runner=DirectRunner", *MULTI]
    audit = pd.read_parquet(run / "load_data" / "audit_sample.parquet")
    predictions = pd.read_parquet(run / "predict" / "predictions.parquet")
    for name, part in predictions.groupby("variant"):
        assert part["example_id"].tolist() == audit["example_id"].tolist(), name

    # the workers' raw scores are the model's: call the classifier directly on the same texts
    from pipelines.variants.finetuned import FinetunedPredictor

    direct = FinetunedPredictor(tiny_models["classifier"], batch_size=16, num_threads=1).predict(audit["text"].tolist())
    ours = predictions[predictions["variant"] == "finetuned"]["raw_score"].to_numpy()
    np.testing.assert_allclose(ours, direct.scores, rtol=0, atol=1e-6)
