"""`beam.inference: true`: the predict stage scores through RunInference and gets what in-process gets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.stages.build_variants.run import build_variants as build_variants_stage
from pipelines.stages.predict.run import predict as predict_stage
from tests.variants.test_stage import _config, _ctx, frames  # noqa: F401  (frames is a fixture)

MULTI = {"runner": "DirectRunner", "inference": True,
         "options": ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]}


def _predict(cfg, tmp_path, frames):
    ctx = _ctx(cfg, tmp_path)
    built = build_variants_stage(ctx, train=frames["train"])["variants"]
    return predict_stage(ctx, audit_sample=frames["audit_sample"], twins=frames["twins"],
                         validation=frames["validation"], variants=built)


def _assert_same(local: pd.DataFrame, beam: pd.DataFrame, keys: list[str]) -> None:
    local = local.sort_values(keys).reset_index(drop=True)
    beam = beam.sort_values(keys).reset_index(drop=True)
    assert local[keys].equals(beam[keys])
    # RAG: in-process twins reuse the original's KV cache; Beam scores each prompt whole, so
    # the two differ by float rounding only.
    np.testing.assert_allclose(beam["raw_score"], local["raw_score"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(beam["score"], local["score"], rtol=0, atol=1e-5)
    assert beam["truncated"].tolist() == local["truncated"].tolist()
    # Labels are equal except where a score sits within rounding of the threshold.
    differ = beam["predicted_label"] != local["predicted_label"]
    if "threshold" in local:
        assert (np.abs(local.loc[differ, "score"] - local.loc[differ, "threshold"]) < 1e-5).all()
    else:
        assert differ.sum() == 0


@pytest.mark.parametrize("beam", [{"inference": True}, MULTI], ids=["in_process", "multi_processing_2"])
def test_beam_inference_matches_in_process_predict(tmp_path, frames, tiny_bert_dir, tiny_classifier_dir,
                                                   tiny_lm_dir, beam):
    local = _predict(_config(tmp_path / "local", tiny_bert_dir, tiny_classifier_dir, tiny_lm_dir), tmp_path / "local",
                     frames)
    on_beam = _predict(_config(tmp_path / "beam", tiny_bert_dir, tiny_classifier_dir, tiny_lm_dir, beam=beam),
                       tmp_path / "beam", frames)

    _assert_same(local["predictions"], on_beam["predictions"], ["variant", "example_id"])
    assert on_beam["predictions"]["retrieved_ids"].tolist() == local["predictions"]["retrieved_ids"].tolist()
    _assert_same(local["twin_predictions"], on_beam["twin_predictions"], ["variant", "mode", "twin_id"])
    assert sorted(on_beam["twin_predictions"].groupby(["variant", "mode"]).groups) == [
        ("finetuned", "full"), ("rag", "full"), ("rag", "query_only")]
    pd.testing.assert_frame_equal(local["retrievals"].drop(columns="similarity"),
                                  on_beam["retrievals"].drop(columns="similarity"))
    for name in ("finetuned", "rag"):
        assert on_beam["thresholds"][name]["value"] == pytest.approx(local["thresholds"][name]["value"], abs=1e-5)
        perf = on_beam["performance"][name]
        n = len(frames["audit_sample"]) + len(frames["validation"].iloc[:16]) + \
            len(frames["twins"]) * (2 if name == "rag" else 1)
        assert perf["beam"]["elements"] == n
        assert perf["beam"]["pipeline_args"][0] == "--runner=DirectRunner"
        # 2 local worker processes share the 2 threads of `variants.num_threads` (default 2)
        assert perf["beam"]["threads_per_worker"] == (1 if beam is MULTI else 2)
        assert "beam" not in local["performance"][name]


def test_local_worker_processes():
    import os

    from pipelines.beam import local_worker_processes as _local_worker_processes

    multi = ["--runner=DirectRunner", "--direct_running_mode=multi_processing"]
    assert _local_worker_processes(["--runner=DirectRunner"]) == 1
    assert _local_worker_processes([*multi, "--direct_num_workers=3"]) == 3
    assert _local_worker_processes([*multi, "--direct_num_workers=0"]) == (os.cpu_count() or 1)
    assert _local_worker_processes(["--runner=DirectRunner", "--direct_num_workers=4"]) == 1  # in-memory mode
    assert _local_worker_processes(["--runner=FlinkRunner", "--direct_running_mode=multi_processing",
                                    "--direct_num_workers=4"]) == 1
