"""`fairness-audit validate` finds what it can without compute: missing files, wrong columns, labels, text types,
schema files, term lists and model folders, all at once; `run` stops on the same problems before any stage."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd

from pipelines.config import load_config
from pipelines.graph import preflight
from tests.conftest import REPO, file_source

PY = sys.executable


def _validate(cfg_path):
    return subprocess.run([PY, "-m", "pipelines", "validate", str(cfg_path)], capture_output=True, text=True,
                          cwd=REPO, timeout=300)


def _messages(cfg) -> list[str]:
    return [str(p) for p in preflight(cfg)]


def test_demo_config_has_no_problem():
    assert _messages(load_config(REPO / "pipelines" / "configs" / "demo.yaml")) == []


def test_whole_split_demo_config_is_the_demo_on_the_whole_eval_split():
    demo = load_config(REPO / "pipelines" / "configs" / "demo.yaml").model_dump(mode="json")
    full = load_config(REPO / "pipelines" / "configs" / "demo_full.yaml").model_dump(mode="json")
    assert _messages(load_config(REPO / "pipelines" / "configs" / "demo_full.yaml")) == []
    assert full["data"].pop("audit_sample_size") is None and demo["data"].pop("audit_sample_size") == 520
    assert full["audit"].pop("name") == "demo-full" and demo["audit"].pop("name") == "demo"
    assert full == demo  # everything else kept in step


def test_missing_file_and_misspelled_columns_are_reported_by_validate(tmp_path, write_config, small_csv):
    missing = write_config({"audit": {"name": "m"}, "data": file_source(tmp_path / "nope.csv")}, name="m.yaml")
    res = _validate(missing)
    assert res.returncode == 2 and "nope.csv: data file not found" in res.stderr and "OK" not in res.stdout
    typo = write_config({"audit": {"name": "t"}, "data": file_source(small_csv, text_column="coment",
                                                                     sensitive_columns=["gpr"])}, name="t.yaml")
    res = _validate(typo)
    assert res.returncode == 2
    assert "column 'coment' (text (data.file.text_column)) not found. Did you mean 'comment'?" in res.stderr
    ok = write_config({"audit": {"name": "ok"}, "data": file_source(small_csv), "validation": {"schema": None}},
                      name="ok.yaml")
    res = _validate(ok)
    assert res.returncode == 0 and "OK" in res.stdout, res.stderr


def test_label_values_and_a_group_by_column_are_checked(tmp_path, write_config):
    data = tmp_path / "d.csv"
    pd.DataFrame({"id": ["1", "2", "3"], "comment": ["a", "b", "c"], "y": ["0", "1", "maybe"],
                  "grp": ["a", "b", "a"]}).to_csv(data, index=False)
    cfg = load_config(write_config({"audit": {"name": "l"}, "data": {**file_source(data),
                                                                     "split": {"group_by": "pair"}}}))
    msgs = _messages(cfg)
    assert any("column 'pair' (split key (data.split.group_by)) not found" in m for m in msgs), msgs
    cfg = load_config(write_config({"audit": {"name": "l"}, "data": file_source(data)}))
    (msg,) = _messages(cfg)
    assert "d.csv: column 'y' must hold labels in ['0', '1']" in msg and "'maybe' x1" in msg
    cfg = load_config(write_config({"audit": {"name": "l"}, "data": file_source(data, drop_unlabelled=True)}))
    assert _messages(cfg) == []


def test_numbers_in_the_text_column_are_found_in_every_format(tmp_path, write_config):
    from tests.foundation.test_data import write_tfrecord

    rows = [{"id": f"r{i}", "comment": 80 + i / 4, "y": i % 2, "grp": "ab"[i % 2]} for i in range(4)]
    write_tfrecord(tmp_path / "d.tfrecord", rows)
    cfg = load_config(write_config({"audit": {"name": "n"}, "data": file_source(tmp_path / "d.tfrecord")}))
    (msg,) = _messages(cfg)
    assert "d.tfrecord: record 0: feature 'comment' must hold text" in msg and "float_list" in msg
    pd.DataFrame(rows).to_parquet(tmp_path / "d.parquet")
    cfg = load_config(write_config({"audit": {"name": "n"}, "data": file_source(tmp_path / "d.parquet")}))
    (msg,) = _messages(cfg)
    assert "d.parquet: column 'comment' (data.file.text_column) must hold text" in msg and "double" in msg
    pd.DataFrame(rows).to_json(tmp_path / "d.jsonl", orient="records", lines=True)
    cfg = load_config(write_config({"audit": {"name": "n"}, "data": file_source(tmp_path / "d.jsonl")}))
    (msg,) = _messages(cfg)
    assert "d.jsonl: column 'comment' (data.file.text_column) must hold text" in msg and "80.0" in msg


def test_schema_term_lists_and_model_folders_are_checked_all_at_once(tmp_path, write_config, small_csv):
    (tmp_path / "bad.pbtxt").write_text("feature { name: 'x' typ: INT }\n", encoding="utf-8")
    (tmp_path / "empty_model").mkdir()
    cfg = load_config(write_config({
        "audit": {"name": "s"}, "data": file_source(small_csv),
        "validation": {"schema": str(tmp_path / "bad.pbtxt")},
        "variants": [{"name": "clf", "kind": "classifier", "model": str(tmp_path / "empty_model")},
                     {"name": "gone", "kind": "classifier", "model": str(tmp_path / "no_such_model")}],
        "evaluation": {"counterfactual": {"term_lists": {"a": str(tmp_path / "missing_terms.csv")}}},
    }))
    msgs = _messages(cfg)
    assert len(msgs) == 4, msgs
    assert "bad.pbtxt: `validation.schema` is not a valid TFDV schema" in msgs[0]
    assert "`evaluation.counterfactual.term_lists.a`" in msgs[1] and "missing_terms.csv: file not found" in msgs[1]
    assert "variants[0] (clf): the model files were not found" in msgs[2]
    assert "variants[1] (gone): the model files were not found" in msgs[3]


def test_a_model_folder_without_weights_is_named(tmp_path, write_config, small_csv):
    folder = tmp_path / "half_model"
    folder.mkdir()
    (folder / "config.json").write_text("{}", encoding="utf-8")
    (folder / "tokenizer.json").write_text("{}", encoding="utf-8")
    cfg = load_config(write_config({"audit": {"name": "w"}, "data": file_source(small_csv),
                                    "validation": {"schema": None},
                                    "variants": [{"name": "clf", "kind": "classifier", "model": str(folder)}]}))
    (msg,) = _messages(cfg)
    assert "half_model" in msg and "weights" in msg.lower()


def test_run_stops_before_any_stage_and_points_at_validate(tmp_path, write_config):
    cfg = write_config({"audit": {"name": "r"}, "data": file_source(tmp_path / "nope.csv"),
                        "variants": [{"name": "gone", "kind": "classifier", "model": str(tmp_path / "nope")}]})
    res = subprocess.run([PY, "-m", "pipelines", "run", str(cfg), "--no-progress", "-q"], capture_output=True,
                         text=True, cwd=REPO, timeout=300)
    assert res.returncode == 2
    (line,) = [l for l in res.stderr.splitlines() if l.startswith("error:")]
    assert "nope.csv: data file not found" in line and "1 more" in line and "fairness-audit validate" in line
    assert not list((tmp_path / "runs").rglob("_stage.json"))
