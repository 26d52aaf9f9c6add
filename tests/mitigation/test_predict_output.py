"""The predict stage's new ``validation_predictions`` table (logged scores: no model needed), through the runner."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.config import config_from_dict
from pipelines.core.runner import Stage, run_audit
from pipelines.stages.build_variants import SPEC as BUILD_STAGE
from pipelines.stages.predict import SPEC as PREDICT_STAGE
from pipelines.stages.predict.run import VALIDATION_PREDICTION_COLUMNS


def _table(prefix: str, n: int, rng) -> pd.DataFrame:
    groups = np.array(["women", "black", "jewish", "muslim"])[np.arange(n) % 4]
    return pd.DataFrame({"example_id": [f"{g}-{prefix}{i}" for i, g in enumerate(groups)],
                         "text": [f"text {i}" for i in range(n)], "label": rng.integers(0, 2, n),
                         "group": groups, "axis": np.where(groups == "women", "gender", "other")})


@pytest.fixture()
def run(tmp_path):
    rng = np.random.default_rng(0)
    frames = {"train": _table("t", 20, rng), "validation": _table("v", 40, rng), "audit_sample": _table("a", 16, rng)}
    rows = pd.concat([frames["validation"], frames["audit_sample"]])
    score = np.clip(0.3 + 0.35 * rows["label"].to_numpy() + rng.normal(0, 0.15, len(rows)), 0.02, 0.98)
    pd.DataFrame({"example_id": rows["example_id"], "score": score}).to_csv(tmp_path / "s.csv", index=False)
    cfg = config_from_dict({
        "audit": {"name": "valpred"}, "seed": 2,
        "output": {"runs_dir": str(tmp_path / "runs"), "cache_dir": str(tmp_path / "cache")},
        "variants": [{"name": "logged", "kind": "predictions", "path": "s.csv"}],
        "scoring": {"max_validation_rows": 24, "calibration": {"method": "platt"}, "threshold": {"method": "youden"}},
    }, base_dir=tmp_path)
    stages = [Stage(name="load_data", fn=lambda ctx: dict(frames)), BUILD_STAGE, PREDICT_STAGE]
    result = run_audit(cfg, stages, run_id="r", started_at="2026-12-01T00:00:00+00:00", show_progress=False)
    return frames, result.outputs["predict"]


def test_validation_predictions_are_the_scored_validation_sample(run):
    frames, out = run
    vp = out["validation_predictions"]
    assert list(vp.columns) == [*VALIDATION_PREDICTION_COLUMNS, "group", "axis"]
    assert len(vp) == 24 and vp["example_id"].is_unique
    val = frames["validation"].set_index("example_id").loc[vp["example_id"]]
    assert vp["label"].tolist() == val["label"].tolist()
    assert vp["group"].tolist() == val["group"].tolist()
    # the stored raw scores are the logged ones; the calibrated score is the same monotone map as the audit's
    threshold = out["thresholds"]["logged"]["value"]
    assert vp["predicted_label"].tolist() == (vp["score"] >= threshold).astype(int).tolist()
    cal = out["thresholds"]["logged"]["calibration"]
    logit = np.log(vp["raw_score"] / (1 - vp["raw_score"]))
    assert cal["method"] == "platt"
    assert vp["score"].to_numpy() == pytest.approx(1 / (1 + np.exp(-(cal["a"] * logit + cal["b"]))), abs=1e-9)
    both = pd.concat([vp[["raw_score", "score"]], out["predictions"][["raw_score", "score"]]]).sort_values("raw_score")
    assert cal["a"] > 0 and both["score"].is_monotonic_increasing
