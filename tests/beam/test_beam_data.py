"""The data stage on Beam: sharded inputs, counts equal to an in-memory computation, slices present."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.stages.load_data.beam import split_of
from pipelines.config import load_config
from pipelines.stages.load_data import SPEC as LOAD_DATA_STAGE
from pipelines.errors import ConfigError, DataError
from pipelines.core.runner import run_audit
from pipelines.stages.validate_data import SPEC as VALIDATE_DATA_STAGE

N = 1500


@pytest.fixture
def shards(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({
        "id": [f"x{i:05d}" for i in range(N)],
        "comment": [f"comment {i % 1400} " + "w " * (i % 7) for i in range(N)],  # 100 duplicates
        "y": rng.choice(["0", "1", "", "maybe"], N, p=[0.46, 0.46, 0.05, 0.03]),
        "grp": rng.choice(["a", "b", "c"], N),
    })
    folder = tmp_path / "shards"
    folder.mkdir()
    for i, part in enumerate(np.array_split(frame, 3)):
        part.to_csv(folder / f"part-{i}.csv", index=False)
    return frame, folder


def _config(write_config, folder, pattern="part-*.csv", **data_extra):
    data = {"source": "file", "file": {"path": str(folder / pattern), "text_column": "comment",
                                       "label_column": "y", "id_column": "id", "sensitive_columns": ["grp"],
                                       "drop_unlabelled": True},
            "audit_sample_size": 60}
    data.update(data_extra)
    return load_config(write_config({
        "audit": {"name": "beamdata"}, "seed": 5, "data": data, "validation": {"schema": None},
        "beam": {"data": True, "max_in_memory_rows": 200},
    }))


def _expected(frame: pd.DataFrame, *, key: str = "id") -> pd.DataFrame:
    """The same normalization, independently, in pandas: one row per normalized text (here: the text with its
    whitespace collapsed, the texts hold nothing else to normalize), the smallest id kept, across groups."""
    from tests.foundation.test_data import _independent_normal_form

    kept = frame[frame["y"].isin(["0", "1"])].copy()
    kept["text"] = kept["comment"].str.strip()
    kept["norm"] = kept["text"].map(_independent_normal_form)
    first = kept.sort_values("id").drop_duplicates(subset=["norm"], keep="first")
    kept["same_group"] = kept["norm"].map(dict(zip(first["norm"], first["grp"]))) == kept["grp"]
    kept.attrs["removed_in_group"] = int((~kept["id"].isin(first["id"]) & kept["same_group"]).sum())
    kept.attrs["removed_across"] = int((~kept["id"].isin(first["id"]) & ~kept["same_group"]).sum())
    first = first.copy()
    first.attrs.update(kept.attrs)
    first["split"] = [split_of(str(i), seed=5, eval_fraction=0.3, validation_fraction=0.1) for i in first[key]]
    first["label"] = first["y"].astype(int)
    return first


def test_beam_data_stage_counts_and_statistics(shards, write_config):
    frame, folder = shards
    cfg = _config(write_config, folder)
    outputs = run_audit(cfg, [LOAD_DATA_STAGE, VALIDATE_DATA_STAGE], run_id="r", started_at="t").outputs
    data, val = outputs["load_data"], outputs["validate_data"]
    expected = _expected(frame)
    removed = data["removed_rows"]
    assert removed["by_reason"]["label_missing"] == (frame["y"] == "").sum()
    assert removed["by_reason"]["label_out_of_domain"] == (frame["y"] == "maybe").sum()
    assert removed["by_reason"]["duplicate_text_in_group"] == expected.attrs["removed_in_group"]
    assert removed["by_reason"]["duplicate_text_across_groups"] == expected.attrs["removed_across"]
    assert expected.attrs["removed_in_group"] + expected.attrs["removed_across"] == (
        frame["y"].isin(["0", "1"]).sum() - len(expected))
    assert removed["kept"] == len(expected) and removed["rows_read"] == N
    summary = data["data_summary"]
    for split in ("train", "validation", "eval"):
        part = expected[expected["split"] == split]
        assert summary["splits"][split]["rows"] == len(part)
        for g, rows in part.groupby("grp"):
            assert summary["splits"][split]["features"]["grp"][g]["count"] == len(rows)
            assert summary["splits"][split]["features"]["grp"][g]["positives"] == rows["label"].sum()
        # the in-memory tables are capped, stratified samples of the split
        assert len(data[split]) == min(200, len(part))
        assert set(data[split]["example_id"]) <= set(part["id"])
    assert len(data["audit_sample"]) == 60
    # the split shards hold every kept row
    shard_rows = pd.concat(pd.read_parquet(p) for p in data["splits"].glob("*.parquet"))
    assert sorted(shard_rows["example_id"]) == sorted(expected["id"])
    # statistics come from the full shards, one slice per group
    stats = val["statistics_train"]
    counts = {ds.name: ds.num_examples for ds in stats.datasets}
    train = expected[expected["split"] == "train"]
    assert counts["All Examples"] == len(train)
    for g in ("a", "b", "c"):
        assert counts[f"grp_{g}"] == (train["grp"] == g).sum()
    # the leakage check read every row of the shards: deduplicated before the split, nothing is shared
    leak = val["validation_summary"]["leakage"]
    assert leak["scope"] == "every row of the split shards"
    rows = {p["a"]: p["a_rows"] for p in leak["pairs"] if p["b"] == "train"}
    assert rows["eval"] == (expected["split"] == "eval").sum() and all(p["near"] == 0 for p in leak["pairs"])


def test_beam_data_refuses_unlabelled_rows_by_default(shards, write_config):
    frame, folder = shards
    cfg = load_config(write_config({
        "audit": {"name": "beamdata"}, "data": {"source": "file", "file": {
            "path": str(folder / "part-*.csv"), "text_column": "comment", "label_column": "y",
            "sensitive_columns": ["grp"]}},
        "beam": {"data": True}}))
    with pytest.raises(DataError, match=r"column 'y' must hold labels.*'maybe' x"):
        run_audit(cfg, [LOAD_DATA_STAGE], run_id="r", started_at="t")


def test_beam_data_needs_a_file_source(write_config):
    with pytest.raises(ConfigError, match="beam.data: true.*data.source: file"):
        load_config(write_config({"audit": {"name": "x"}, "beam": {"data": True}}))


def test_tfrecord_shards_give_what_csv_shards_give(shards, write_config, tmp_path):
    from tests.foundation.test_data import write_tfrecord

    frame, folder = shards
    tf_folder = tmp_path / "tf"
    tf_folder.mkdir()
    for i, part in enumerate(np.array_split(frame, 3)):
        write_tfrecord(tf_folder / f"part-{i}.tfrecord.gz", part.to_dict(orient="records"))
    csv_out = run_audit(_config(write_config, folder), [LOAD_DATA_STAGE], run_id="csv", started_at="t").outputs
    tf_cfg = _config(write_config, tf_folder, "part-*.tfrecord.gz")
    tf_out = run_audit(tf_cfg, [LOAD_DATA_STAGE], run_id="tf", started_at="t").outputs["load_data"]
    csv_out = csv_out["load_data"]
    assert tf_out["removed_rows"]["by_reason"] == csv_out["removed_rows"]["by_reason"]
    assert tf_out["data_summary"]["splits"] == csv_out["data_summary"]["splits"]
    for split in ("train", "validation", "eval", "audit_sample"):
        pd.testing.assert_frame_equal(tf_out[split].drop(columns="source_file"),
                                      csv_out[split].drop(columns="source_file"))


def test_a_missing_column_is_reported_before_the_beam_pass(shards, write_config):
    frame, folder = shards
    frame.drop(columns="grp").to_csv(folder / "part-9.csv", index=False)
    with pytest.raises(DataError, match=r"part-9.csv: column 'grp' \(sensitive feature.*Columns found: id, comment, y"):
        run_audit(_config(write_config, folder), [LOAD_DATA_STAGE], run_id="r", started_at="t")


def test_group_by_on_beam_keeps_pairs_together_and_dedupes_across_groups(tmp_path, write_config):
    """Minimal pairs on the Beam path: the split hashes the pair id; a text repeated in another group (or with other
    punctuation) is removed once, before the split."""
    from tests.foundation.test_leakage import minimal_pairs

    frame = minimal_pairs(90).rename(columns={"text": "comment"})
    dup = frame.iloc[[0]].assign(id="zz-dup", pair="other", grp="disability", comment=frame.iloc[0]["comment"].upper())
    frame = pd.concat([frame, dup], ignore_index=True)
    (tmp_path / "shards").mkdir()
    for i, part in enumerate(np.array_split(frame, 2)):
        part.to_csv(tmp_path / "shards" / f"part-{i}.csv", index=False)
    cfg = _config(write_config, tmp_path / "shards", split={"group_by": "pair"})
    out = run_audit(cfg, [LOAD_DATA_STAGE], run_id="r", started_at="t").outputs["load_data"]
    rows = pd.concat(pd.read_parquet(p) for p in out["splits"].glob("*.parquet"))
    assert len(rows) == 180 and "zz-dup" not in set(rows["example_id"])  # the smallest id is kept
    assert (rows.groupby("pair")["split"].nunique() == 1).all()
    expected = {p: split_of(p, seed=5, eval_fraction=0.3, validation_fraction=0.1) for p in rows["pair"]}
    assert (rows["split"] == rows["pair"].map(expected)).all()
    assert out["removed_rows"]["by_reason"]["duplicate_text_across_groups"] == 1
