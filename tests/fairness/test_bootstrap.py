"""The stratified bootstrap: strata keep their sizes, seeds reproduce, CIs behave."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.fairness._bootstrap import chunk_size, percentile_ci, resample_weights


def _all(strata, n, seed, **kw):
    return np.vstack(list(resample_weights(np.asarray(strata), n_resamples=n, seed=seed, **kw)))


def test_each_stratum_keeps_its_size_and_weights_stay_inside_it():
    strata = np.array([2, 0, 0, 1, 2, 2, 1, 0, 2])
    W = _all(strata, 50, 0)
    assert W.shape == (50, 9)
    for k in np.unique(strata):
        assert np.all(W[:, strata == k].sum(axis=1) == (strata == k).sum())
    assert np.all(W >= 0) and np.all(W == np.round(W))


def test_same_seed_same_weights_other_seed_other_weights():
    strata = np.repeat([0, 1, 2], 40)
    assert np.array_equal(_all(strata, 30, 7), _all(strata, 30, 7))
    assert not np.array_equal(_all(strata, 30, 7), _all(strata, 30, 8))


def test_chunking_yields_the_requested_number_of_resamples():
    strata = np.repeat([0, 1], 1000)
    chunks = list(resample_weights(strata, n_resamples=25, seed=0, chunk_elements=10_000))
    assert [c.shape[0] for c in chunks] == [5, 5, 5, 5, 5]
    assert chunk_size(2000, chunk_elements=10_000) == 5
    assert list(resample_weights(strata, n_resamples=0, seed=0)) == []


def test_resampling_is_uniform_within_a_stratum():
    # each row of a stratum of size m is drawn m * B / m = B times on average
    strata = np.repeat([0, 1], [5, 20])
    W = _all(strata, 4000, 1)
    assert np.allclose(W.mean(axis=0), 1.0, atol=0.06)


def test_bootstrap_se_of_a_mean_matches_theory():
    rng = np.random.default_rng(0)
    x = rng.normal(size=400)
    W = _all(np.zeros(400, int), 2000, 3)
    means = W @ x / 400
    assert means.std() == pytest.approx(x.std() / np.sqrt(400), rel=0.1)
    low, high, share = percentile_ci(means[:, None], level=0.95)
    assert share[0] == 1.0
    assert low[0] < x.mean() < high[0]
    assert (high[0] - low[0]) == pytest.approx(2 * 1.96 * x.std() / 20, rel=0.15)


def test_percentile_ci_ignores_nan_and_refuses_mostly_undefined():
    s = np.array([[1.0, np.nan], [2.0, np.nan], [3.0, 1.0], [np.nan, np.nan]])
    low, high, share = percentile_ci(s, level=0.5)
    assert share.tolist() == [0.75, 0.25]
    assert low[0] == pytest.approx(1.5) and high[0] == pytest.approx(2.5)
    assert np.isnan(low[1]) and np.isnan(high[1])
