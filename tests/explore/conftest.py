"""A small but real run directory for the What-If Tool tests.

Tiny models are built from configs (a 2-layer BERT classifier and encoder, a 2-layer
Llama chat LM, word-level tokenizers), then the real runner runs the real
``build_variants``, ``predict``, ``counterfactuals``, ``evaluate`` and ``export_wit``
stages over a 40-example audit sample produced by a stub ``load_data`` stage.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest


os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[2]

GROUPS = {"women": ("gender", "women"), "black": ("race", "black people"), "jewish": ("religion", "jewish people"),
          "lgbtq": ("orientation", "gay people"), "muslim": ("religion", "muslim men")}
ADJ = {1: ["lazy", "bad", "always hate", "never work", "crime"], 0: ["smart", "good", "love work", "kind", "money"]}

NUMBERS = "one two three four five six seven eight nine ten".split()


def make_tables(*, per_cell: int = 4):
    """examples with splits: eval (the audit sample, 5 groups x 2 labels x per_cell), validation, train."""
    import pandas as pd

    rows = []
    for split, n in (("eval", per_cell), ("validation", 2), ("train", 3)):
        for group, (axis, subject) in GROUPS.items():
            for label in (0, 1):
                for i in range(n):
                    adj = ADJ[label][(i + len(rows)) % len(ADJ[label])]
                    text = f"{subject} are {adj} number {NUMBERS[i % len(NUMBERS)]}"
                    if split != "eval":
                        text = f"{split} comment : {text}"
                    rows.append({"example_id": f"{group}-{split}-{label}-{i}", "text": text, "label": label,
                                 "group": group, "axis": axis, "split": split})
    df = pd.DataFrame(rows)
    df["n_chars"] = df["text"].str.len()
    df["n_tokens"] = df["text"].str.split().str.len()
    df["source_file"] = "synthetic"
    return {s: df[df["split"] == s].reset_index(drop=True) for s in ("eval", "validation", "train")}


def audit_config(tmp: Path, models: dict[str, Path], *, variants_extra: dict | None = None):
    from pipelines.config import config_from_dict

    variants = [
        {"name": "finetuned", "kind": "classifier", "model": str(models["classifier"]), "batch_size": 16},
        {"name": "rag", "kind": "rag", "retriever": {"embedder": str(models["encoder"]), "k": 2},
         "generator": {"model": str(models["generator"]), "gguf_file": None, "batch_size": 8}},
    ]
    scoring = {"threshold": {"method": "youden"}, "max_validation_rows": 20, "calibration": {"method": "platt"},
               "num_threads": 1}
    for key, value in (variants_extra or {}).items():
        scoring[key] = value
    raw = {
        "audit": {"name": "wittest"},
        "seed": 7,
        "variants": variants,
        "scoring": scoring,
        "evaluation": {"bootstrap": {"resamples": 30}, "min_group_size": 3, "min_class_count": 1},
        "output": {"runs_dir": str(tmp / "runs"), "cache_dir": str(tmp / "cache")},
    }
    return config_from_dict(raw, base_dir=tmp)


def run_tiny_audit(tmp: Path, models: dict[str, Path], *, run_id: str = "tiny-run", variants_extra=None):
    """Run the real stages (stub load_data) into ``tmp/runs/wittest/<run_id>``; return the RunResult."""
    from pipelines.stages.counterfactuals import SPEC as COUNTERFACTUALS_STAGE
    from pipelines.stages.evaluate import SPEC as EVALUATE_STAGE
    from pipelines.core.runner import Stage, run_audit
    from pipelines.graph import run_verdict as verdict_of
    from pipelines.stages.build_variants import SPEC as BUILD_STAGE
    from pipelines.stages.predict import SPEC as PREDICT_STAGE
    from pipelines.stages.export_wit import SPEC as EXPORT_WIT_STAGE

    tables = make_tables()

    def load_data(ctx):
        examples = __import__("pandas").concat(list(tables.values()), ignore_index=True)
        return {"examples": examples, "train": tables["train"], "validation": tables["validation"],
                "eval": tables["eval"], "audit_sample": tables["eval"].drop(columns=["split"]),
                "removed_rows": {"total": 0, "by_file": {}, "by_reason": {}},
                "data_summary": {"rows": int(len(examples)), "splits": {
                    s: {"rows": int(len(t)), "base_rate": float(t["label"].mean()),
                        "features": {"group": {g: {"count": int(len(p)), "share": len(p) / len(t),
                                                   "positives": int(p["label"].sum()),
                                                   "base_rate": float(p["label"].mean())}
                                               for g, p in t.groupby("group")}}}
                    for s, t in tables.items()}}}

    stages = [Stage(name="load_data", fn=load_data, cache=False), COUNTERFACTUALS_STAGE, BUILD_STAGE, PREDICT_STAGE,
              EVALUATE_STAGE, EXPORT_WIT_STAGE]
    cfg = audit_config(tmp, models, variants_extra=variants_extra)
    return run_audit(cfg, stages, run_id=run_id, started_at="2026-11-27T00:00:00+00:00", show_progress=False,
                     finalize=verdict_of)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_models) -> Path:
    """A complete run directory with an export_wit stage and two variants."""
    tmp = tmp_path_factory.mktemp("wit_run")
    result = run_tiny_audit(tmp, tiny_models)
    assert result.manifest["status"] == "complete"
    return result.run_dir


@pytest.fixture
def run_without_export(tiny_run, tmp_path) -> Path:
    """A copy of the tiny run without its export_wit stage."""
    dst = tmp_path / "runs" / "wittest" / "no-export"
    shutil.copytree(tiny_run, dst, ignore=shutil.ignore_patterns("export_wit"))
    return dst


@pytest.fixture
def run_one_variant(tiny_run, tmp_path) -> Path:
    """A copy of the tiny run whose export holds only the fine-tuned variant (written by the real export code)."""
    import logging

    from pipelines.core.runner import StageContext, load_stage_outputs
    from pipelines.core.artifacts import dump_json
    from pipelines.stages.export_wit.run import export_wit as export_wit_stage

    dst = tmp_path / "runs" / "wittest" / "one-variant"
    shutil.copytree(tiny_run, dst)
    sample = load_stage_outputs(dst / "load_data")["audit_sample"]
    preds = load_stage_outputs(dst / "predict")["predictions"]
    preds = preds[preds["variant"] == "finetuned"]
    cfg = audit_config(tmp_path, {"classifier": tmp_path, "encoder": tmp_path, "generator": tmp_path})
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    ctx = StageContext(config=cfg, run_id="one-variant", scratch_dir=scratch, cache_dir=tmp_path,
                       log=logging.getLogger("test"), show_progress=False)
    out = export_wit_stage(ctx, audit_sample=sample, predictions=preds)
    shutil.move(str(out["wit_examples"]), dst / "export_wit" / "wit_examples.tfrecord")
    (dst / "export_wit" / "wit_export.json").write_text(dump_json(out["wit_export"]), encoding="utf-8")
    return dst


def kernel_env(run_dir: Path | None) -> dict[str, str]:
    """The environment a notebook kernel gets from `make notebook`, pointed at ``run_dir``."""
    from pipelines.explore.notebook_server import server_env

    env = server_env(run_dir=str(run_dir) if run_dir else None)
    if run_dir is None:
        env.pop("FAIRNESS_AUDIT_RUN_DIR", None)  # the notebooks fall back to the latest demo run
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env
