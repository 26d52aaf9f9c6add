"""Beam's DirectRunner in multi-process mode gives the same statistics and predictions as in-process."""

from __future__ import annotations


import numpy as np
import pandas as pd

from pipelines.beam.inference import score_on_beam
from pipelines.stages.validate_data.run import generate_split_statistics

MULTI = ["--runner=DirectRunner", "--direct_running_mode=multi_processing", "--direct_num_workers=2"]


def _frame(n=300, seed=0):
    rng = np.random.default_rng(seed)
    groups = rng.choice(["a", "b", "c"], n)
    text = [" ".join(rng.choice(["the", "people", "are", "kind", "bad", "x"], int(k))) for k in rng.integers(1, 25, n)]
    frame = pd.DataFrame({"text": text, "label": rng.integers(0, 2, n), "group": groups})
    return frame.assign(n_chars=frame["text"].str.len(), n_tokens=frame["text"].str.split().str.len())


def _strip(stats):
    """Statistics as comparable dicts (feature path -> serialized proto), per slice.

    Combining partial results across workers changes the order of floating-point
    sums, so ``mean`` and ``std_dev`` are rounded to 9 decimals; every other field
    (counts, histograms, quantiles, top values) must be byte-identical.
    """
    out = {}
    for ds in stats.datasets:
        feats = {}
        for f in ds.features:
            f = type(f).FromString(f.SerializeToString())
            if f.HasField("num_stats"):
                f.num_stats.mean = round(f.num_stats.mean, 9)
                f.num_stats.std_dev = round(f.num_stats.std_dev, 9)
            feats[".".join(f.path.step) or f.name] = f.SerializeToString(deterministic=True)
        out[ds.name] = (ds.num_examples, feats)
    return out


def test_multiprocess_statistics_equal_in_process(tmp_path):
    frame = _frame(n=1000)
    local = generate_split_statistics(frame, name="local", sensitive=("group",), workdir=tmp_path)
    multi = generate_split_statistics(frame, name="multi", sensitive=("group",), workdir=tmp_path, pipeline_args=MULTI)
    a, b = _strip(local), _strip(multi)
    assert sorted(a) == sorted(b) == ["All Examples", "group_a", "group_b", "group_c"]
    for name in a:
        assert a[name][0] == b[name][0]
        assert a[name][1] == b[name][1], name


class _LengthPredictor:
    """A deterministic stand-in predictor: no model weights, the real Beam path."""

    name = "length"

    def predict(self, texts):
        from pipelines.variants._base import Predictions

        lengths = np.array([len(t) for t in texts], dtype=float)
        return Predictions(scores=lengths / (lengths + 10.0), truncated=lengths > 50)


def test_run_inference_matches_direct_call(tmp_path):
    frame = _frame(n=40)
    ids = [f"e{i:03d}" for i in range(len(frame))]
    out = score_on_beam(ids, frame["text"].tolist(), factory=_LengthPredictor,
                        pipeline_args=["--runner=DirectRunner"], workdir=tmp_path / "beam", batch_size=8)
    direct = _LengthPredictor().predict(frame["text"].tolist())
    assert out["example_id"].tolist() == ids
    np.testing.assert_allclose(out["score"].to_numpy(), direct.scores, rtol=0, atol=1e-12)
    assert out["truncated"].tolist() == direct.truncated.tolist()


def test_run_inference_multiprocess_matches_in_process(tmp_path):
    frame = _frame(n=60, seed=3)
    ids = [f"e{i:03d}" for i in range(len(frame))]
    local = score_on_beam(ids, frame["text"].tolist(), factory=_LengthPredictor,
                          pipeline_args=["--runner=DirectRunner"], workdir=tmp_path / "local", batch_size=8)
    multi = score_on_beam(ids, frame["text"].tolist(), factory=_LengthPredictor, pipeline_args=MULTI,
                          workdir=tmp_path / "multi", batch_size=8)
    pd.testing.assert_frame_equal(local, multi)
