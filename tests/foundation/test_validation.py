"""The TFDV stage: slices really come out, the curated schema catches planted anomalies, drift."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.config import DriftThreshold, load_config
from pipelines.stages.load_data import SPEC as LOAD_DATA_STAGE
from pipelines.core.runner import run_audit
from pipelines.stages.validate_data import SPEC as VALIDATE_DATA_STAGE
from pipelines.stages.validate_data.run import (
    apply_drift_thresholds,
    generate_split_statistics,
    load_schema,
    slice_names,
    validate_splits,
)
from tests.conftest import REPO

SCHEMA = REPO / "schemas" / "redditbias.pbtxt"
GROUPS = ["black", "jewish", "lgbtq", "muslim", "women"]
AXES = {"black": "race", "jewish": "religion", "lgbtq": "orientation", "muslim": "religion", "women": "gender"}


def _frame(n=200, seed=0, groups=GROUPS, label_p=0.5):
    rng = np.random.default_rng(seed)
    group = rng.choice(groups, n)
    text = [" ".join(["word"] * int(k)) for k in rng.integers(1, 30, n)]
    frame = pd.DataFrame({"text": text, "label": (rng.random(n) < label_p).astype(int), "group": group,
                          "axis": [AXES.get(g, "other") for g in group]})
    return frame.assign(n_chars=frame["text"].str.len(), n_tokens=frame["text"].str.split().str.len())


@pytest.fixture(scope="module")
def stats(tmp_path_factory):
    work = tmp_path_factory.mktemp("stats")
    return {
        "train": generate_split_statistics(_frame(seed=1), name="train", sensitive=("group", "axis"), workdir=work),
        "eval": generate_split_statistics(_frame(seed=2), name="eval", sensitive=("group", "axis"), workdir=work),
    }


def test_every_slice_is_present_and_sorted(stats):
    names = slice_names(stats["train"])
    expected = ["All Examples"] + [f"axis_{a}" for a in sorted(set(AXES.values()))] + [f"group_{g}" for g in GROUPS]
    assert names == expected
    counts = {ds.name: ds.num_examples for ds in stats["train"].datasets}
    frame = _frame(seed=1)
    for g in GROUPS:
        assert counts[f"group_{g}"] == (frame["group"] == g).sum()
    assert counts["All Examples"] == len(frame)


def test_clean_data_has_no_anomalies(stats):
    result = validate_splits(stats, load_schema(SCHEMA))
    assert result["summary"]["anomaly_count"] == 0


def test_planted_anomalies_are_reported(tmp_path, stats):
    bad = _frame(seed=3, groups=GROUPS + ["martians"])
    bad_stats = generate_split_statistics(bad.drop(columns=["n_tokens"]), name="eval", sensitive=("group", "axis"),
                                          workdir=tmp_path)
    result = validate_splits({"train": stats["train"], "eval": bad_stats}, load_schema(SCHEMA))
    found = {a["feature"]: a for a in result["summary"]["anomalies"]["eval"]}
    assert "ENUM_TYPE_UNEXPECTED_STRING_VALUES" in found["group"]["types"]
    assert "martians" in found["group"]["description"]
    assert "SCHEMA_MISSING_COLUMN" in found["n_tokens"]["types"]
    assert result["summary"]["anomalies"]["train"] == []


def test_drift_threshold_is_applied(tmp_path, stats):
    shifted = generate_split_statistics(_frame(seed=4, groups=["women"] * 4 + GROUPS), name="eval",
                                        sensitive=("group", "axis"), workdir=tmp_path)
    schema = apply_drift_thresholds(load_schema(SCHEMA), drift={"group": DriftThreshold(l_infinity=0.05)}, skew={})
    summary = validate_splits({"train": stats["train"], "eval": shifted}, schema)["summary"]
    (drift,) = [d for d in summary["drift"] if d["feature"] == "group"]
    assert drift["measure"] == "L_INFTY" and drift["threshold"] == 0.05
    # women: ~20% of train, ~1/9 + 4/9 * ... of eval; L-inf is the largest share difference
    train, evl = _frame(seed=1), _frame(seed=4, groups=["women"] * 4 + GROUPS)
    expected = (evl["group"].value_counts(normalize=True) - train["group"].value_counts(normalize=True)).abs().max()
    assert drift["value"] == pytest.approx(expected, abs=1e-6)
    assert drift["exceeded"] is True
    assert summary["drift_exceeded"]


def test_stage_on_real_redditbias(write_config):
    cfg = load_config(write_config({
        "audit": {"name": "tfdv"}, "data": {"audit_sample_size": 50},
        "validation": {"schema": str(SCHEMA), "drift": {"group": {"l_infinity": 0.05}}},
    }))
    outputs = run_audit(cfg, [LOAD_DATA_STAGE, VALIDATE_DATA_STAGE], run_id="r", started_at="t").outputs
    out = outputs["validate_data"]
    train = outputs["load_data"]["train"]
    summary = out["validation_summary"]
    for split in ("train", "validation", "eval"):
        assert summary["slices"][split] == ["All Examples", "axis_gender", "axis_orientation", "axis_race",
                                            "axis_religion", "group_black", "group_jewish", "group_lgbtq",
                                            "group_muslim", "group_women"]
    assert summary["anomaly_count"] == 0 and summary["schema"]["origin"] == "curated"
    assert summary["examples_per_slice"]["train"]["All Examples"] == len(train)
    assert summary["examples_per_slice"]["train"]["group_women"] == (train["group"] == "women").sum()
    data = out["statistics_eval"]
    assert {ds.name for ds in data.datasets} >= {"group_women", "axis_religion"}


def test_statistics_agree_with_pandas_on_the_real_splits(write_config):
    """The Arrow-batch statistics, checked against pandas on RedditBias: counts, top values, means, text lengths."""
    cfg = load_config(write_config({"audit": {"name": "tfdv-pandas"}, "data": {"audit_sample_size": 50},
                                    "validation": {"schema": str(SCHEMA)}}))
    outputs = run_audit(cfg, [LOAD_DATA_STAGE, VALIDATE_DATA_STAGE], run_id="r", started_at="t").outputs
    train = outputs["load_data"]["train"]
    stats = outputs["validate_data"]["statistics_train"]
    datasets = {d.name: d for d in stats.datasets}
    for name, part in [("All Examples", train), ("group_women", train[train["group"] == "women"])]:
        features = {f.path.step[0]: f for f in datasets[name].features}
        assert datasets[name].num_examples == len(part)
        top = {v.value: v.frequency for v in features["axis"].string_stats.top_values}
        assert top == part["axis"].value_counts().to_dict()
        assert features["label"].num_stats.mean == pytest.approx(part["label"].mean(), rel=1e-9)
        assert features["n_tokens"].num_stats.max == part["n_tokens"].max()
        assert features["text"].string_stats.avg_length == pytest.approx(
            part["text"].map(lambda t: len(t.encode())).mean(), rel=1e-6)
        assert features["text"].string_stats.unique == part["text"].nunique()
