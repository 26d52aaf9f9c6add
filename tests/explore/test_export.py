"""The export_wit stage: the TFRecord round trip, the description JSON, and bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from pipelines.errors import DataError
from pipelines.core.runner import load_stage_outputs
from pipelines.stages.export_wit import SPEC as EXPORT_WIT_STAGE
from pipelines.stages.export_wit.run import (
    LABEL_VOCAB,
    examples_to_frame,
    read_tfrecord,
    wit_table,
    write_tfrecord,
)


def test_import_pipelines_explore_stays_light():
    code = ("import sys, pipelines.explore as w, pipelines.stages.export_wit; w.latest_run; w.AuditRun; "
            "heavy = [m for m in ('tensorflow', 'torch', 'witwidget', 'transformers', 'google.protobuf') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_stage_spec_wires_the_contract_inputs():
    assert EXPORT_WIT_STAGE.name == "export_wit"
    assert EXPORT_WIT_STAGE.inputs == {"audit_sample": "load_data.audit_sample", "predictions": "predict.predictions",
                                       "variants": "build_variants.variants",
                                       "mitigated_predictions": "mitigate.mitigated_predictions",
                                       "answer_pairs": "generate.answer_pairs"}
    assert EXPORT_WIT_STAGE.optional_inputs == ("variants", "mitigated_predictions", "answer_pairs")


def test_round_trip_matches_the_predictions_table(tiny_run):
    sample = load_stage_outputs(tiny_run / "load_data")["audit_sample"]
    preds = load_stage_outputs(tiny_run / "predict")["predictions"]
    out = load_stage_outputs(tiny_run / "export_wit")
    desc = out["wit_export"]
    examples = read_tfrecord(out["wit_examples"])
    back = examples_to_frame(examples)

    assert len(examples) == desc["example_count"] == len(sample) == 40
    assert list(back["example_id"]) == list(sample["example_id"])  # the audit sample's order
    assert list(back["text"]) == list(sample["text"])
    assert list(back["label"]) == list(sample["label"])
    assert list(back["group"]) == list(sample["group"]) and list(back["axis"]) == list(sample["axis"])
    assert list(back["n_tokens"]) == list(sample["n_tokens"])
    for variant in ("finetuned", "rag"):
        p = preds[preds["variant"] == variant].set_index("example_id").loc[back["example_id"]]
        # tf.Example floats are float32
        np.testing.assert_allclose(back[f"score_{variant}"], p["score"], rtol=0, atol=1e-6)
        assert list(back[f"predicted_label_{variant}"]) == list(p["predicted_label"])
        assert desc["variant_features"][variant]["threshold"] == pytest.approx(float(p["threshold"].iloc[0]))
    assert set(back.columns) == set(desc["feature_names"])


def test_description_says_where_and_what(tiny_run):
    desc = json.loads((tiny_run / "export_wit" / "wit_export.json").read_text())
    assert desc["examples_path"] == "export_wit/wit_examples.tfrecord"
    assert (tiny_run / desc["examples_path"]).is_file()  # relative to the run directory
    assert desc["run_id"] == "tiny-run"
    assert desc["variants"] == ["finetuned", "rag"]
    assert desc["target_feature"] == "label" and desc["label_vocab"] == list(LABEL_VOCAB)
    assert desc["sensitive_features"] == ["group", "axis"]
    assert desc["derived_features"] == ["n_chars", "n_tokens"]
    assert desc["feature_types"]["score_rag"] == "float" and desc["feature_types"]["label"] == "int64"
    assert desc["models"]["rag"]["kind"] == "rag"


def test_tf_example_feature_kinds(tiny_run):
    ex = read_tfrecord(tiny_run / "export_wit" / "wit_examples.tfrecord", limit=1)[0]
    kinds = {name: f.WhichOneof("kind") for name, f in ex.features.feature.items()}
    assert kinds["text"] == "bytes_list" and kinds["group"] == "bytes_list"
    assert kinds["label"] == "int64_list" and kinds["predicted_label_rag"] == "int64_list"
    assert kinds["score_finetuned"] == "float_list"


def _small():
    sample = pd.DataFrame({"example_id": ["a", "b", "c"], "text": ["x one", "y", "z z z"], "label": [0, 1, 1],
                           "group": ["g1", "g2", "g1"]})
    preds = pd.DataFrame({"variant": ["m1"] * 3 + ["m2"] * 3, "example_id": ["c", "a", "b", "a", "b", "c"],
                          "score": [0.9, 0.1, 0.6, 0.2, 0.3, 0.4], "predicted_label": [1, 0, 1, 0, 0, 0]})
    return sample, preds


def test_wit_table_aligns_scores_by_id_and_derives_lengths():
    sample, preds = _small()
    table, variants = wit_table(audit_sample=sample, predictions=preds, sensitive_features=("group",))
    assert variants == ["m1", "m2"]
    assert list(table["score_m1"]) == [0.1, 0.6, 0.9]  # a, b, c
    assert list(table["predicted_label_m2"]) == [0, 0, 0]
    assert list(table["n_chars"]) == [5, 1, 5] and list(table["n_tokens"]) == [2, 1, 3]


@pytest.mark.parametrize("mutate, words", [
    (lambda s, p: (s.drop(columns=["text"]), p), ["audit_sample", "'text'", "missing"]),
    (lambda s, p: (s, p.drop(columns=["score"])), ["predictions", "'score'", "missing"]),
    (lambda s, p: (s, p.iloc[:-1]), ["'m2'", "1 example", "'c'"]),
    (lambda s, p: (s, p.iloc[:0]), ["no rows"]),
    (lambda s, p: (s.assign(label=[0, 2, 1]), p), ["label", "0/1"]),
    (lambda s, p: (s, pd.concat([p, p.iloc[:1]])), ["duplicate", "predictions"]),
    (lambda s, p: (s.drop(columns=["group"]), p), ["'group'", "missing"]),
])
def test_bad_input_is_a_data_error_naming_the_problem(mutate, words):
    sample, preds = mutate(*_small())
    with pytest.raises(DataError) as err:
        wit_table(audit_sample=sample, predictions=preds, sensitive_features=("group",))
    for w in words:
        assert w in str(err.value)


def test_write_and_read_tfrecord_of_a_hand_made_table(tmp_path):
    sample, preds = _small()
    table, _ = wit_table(audit_sample=sample, predictions=preds, sensitive_features=("group",))
    path = tmp_path / "x.tfrecord"
    assert write_tfrecord(table, path) == 3
    back = examples_to_frame(read_tfrecord(path))
    assert list(back["text"]) == ["x one", "y", "z z z"]
    np.testing.assert_allclose(back["score_m2"], [0.2, 0.3, 0.4], atol=1e-7)


def test_unreadable_tfrecord_is_a_data_error(tmp_path):
    bad = tmp_path / "bad.tfrecord"
    bad.write_bytes(b"not a tfrecord at all, just bytes")
    with pytest.raises(DataError, match="not a readable TFRecord"):
        read_tfrecord(bad)
    with pytest.raises(DataError, match="does not exist"):
        read_tfrecord(tmp_path / "missing.tfrecord")


def test_a_rerun_with_cached_upstream_stages_names_its_own_run(tiny_run, tiny_models):
    from tests.explore.conftest import run_tiny_audit

    result = run_tiny_audit(tiny_run.parents[2], tiny_models, run_id="second-run")
    stages = result.manifest["stages"]
    assert stages["predict"]["cache_hit"] and not stages["export_wit"]["cache_hit"]
    desc = json.loads((result.run_dir / "export_wit" / "wit_export.json").read_text())
    assert desc["run_id"] == "second-run"
    first = (tiny_run / "export_wit" / "wit_examples.tfrecord").read_bytes()
    assert (result.run_dir / "export_wit" / "wit_examples.tfrecord").read_bytes() == first  # same inputs, same bytes
