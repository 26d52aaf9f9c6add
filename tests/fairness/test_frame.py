"""fairlearn's MetricFrame (the point estimates) and the vectorized weighted sums (the bootstrap) compute the
same statistics: on the data, and on bootstrap resamples given to MetricFrame as sample weights."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import MetricFrame, equalized_odds_difference, false_positive_rate

from pipelines.config.evaluation import GROUP_METRICS
from pipelines.fairness import metric_frame, resample_weights
from pipelines.fairness._bias_auc import auc_layouts, auc_sums
from pipelines.fairness._frame import mean_by_group, metricframe_point
from pipelines.fairness._metrics import build_slicing, group_sums, metrics_from_sums, threshold_design
from pipelines.fairness._sliced import SlicedSettings, disparity_arrays, sliced_evaluation

BINS = 10


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(11)
    n = 400
    group = rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2])
    y = rng.integers(0, 2, n)
    score = np.clip(0.3 * y + rng.uniform(0, 0.7, n), 0, 1)
    score[::17] = 0.5  # ties, and a score on a bin edge
    pred = (score >= 0.45).astype(int)
    return pd.DataFrame({"group": group, "y": y, "score": score, "pred": pred})


def _vectorized(df, W):
    slicing, order = build_slicing(df[["group"]], features=("group",), intersections=False)
    y, s, p = (df[c].to_numpy(float)[order] for c in ("y", "score", "pred"))
    sums = group_sums(W[:, order], threshold_design(y, p, s, ece_bins=BINS), slicing)
    conc = auc_sums(W[:, order].astype(np.float64), auc_layouts(s, y, slicing), slicing)
    return slicing, metrics_from_sums(sums, ece_bins=BINS, auc_concordant=conc["within"])


def test_metricframe_point_equals_the_weighted_sums(data):
    slicing, order = build_slicing(data[["group"]], features=("group",), intersections=False)
    y, s, p = (data[c].to_numpy(float)[order] for c in ("y", "score", "pred"))
    mf = metricframe_point(y=y, scores={"m": s}, preds={"m": p}, slicing=slicing, ece_bins=BINS)
    _, ours = _vectorized(data, np.ones((1, len(data))))
    for m in GROUP_METRICS:
        np.testing.assert_allclose(mf[("m", m)], ours[m], rtol=0, atol=1e-12, err_msg=m)
    assert np.isnan(mf[("m", "subgroup_auc")][0, 0])  # not defined for the whole sample
    np.testing.assert_allclose(mf[("m", "subgroup_auc")][0, 1:], ours["roc_auc"][0, 1:], atol=1e-12)


def test_bootstrap_resamples_equal_metricframe_with_sample_weights(data):
    """The bootstrap's statistic of a resample is MetricFrame's with that resample's counts as weights."""
    strata = pd.factorize(data["group"], sort=True)[0]
    W = np.vstack(list(resample_weights(strata, n_resamples=5, seed=3, dtype=np.float64)))
    slicing, ours = _vectorized(data, W)
    for b in range(W.shape[0]):
        frame = metric_frame(y=data["y"].to_numpy(), pred=data["pred"].to_numpy(), score=data["score"].to_numpy(),
                             groups=data["group"].to_numpy(), ece_bins=BINS, sample_weight=W[b])
        for m in ("count", "base_rate", "selection_rate", "accuracy", "tpr", "fpr", "fnr", "precision", "brier",
                  "ece", "balanced_accuracy", "roc_auc"):
            expected = [frame.overall[m], *[frame.by_group.loc[g, m] for g in slicing.groups["group"]]]
            np.testing.assert_allclose(ours[m][b], expected, rtol=1e-6, atol=1e-9, err_msg=f"{m}, resample {b}")


def test_disparities_match_fairlearns_definitions(data):
    slicing, order = build_slicing(data[["group"]], features=("group",), intersections=False)
    y, s, p = (data[c].to_numpy(float)[order] for c in ("y", "score", "pred"))
    point = metricframe_point(y=y, scores={"m": s}, preds={"m": p}, slicing=slicing, ece_bins=BINS)
    cols = slicing.feature_columns("group")
    disp = disparity_arrays({m: point[("m", m)][:, cols] for m in ("tpr", "fpr", "selection_rate")},
                            {m: point[("m", m)][:, 0] for m in ("tpr", "fpr", "selection_rate")})
    assert disp["equalized_odds_difference"][0] == pytest.approx(equalized_odds_difference(
        data["y"], data["pred"], sensitive_features=data["group"]), abs=1e-12)
    fpr = MetricFrame(metrics=false_positive_rate, y_true=data["y"], y_pred=data["pred"],
                      sensitive_features=data["group"])
    assert disp["fpr_difference"][0] == pytest.approx(fpr.difference(), abs=1e-12)
    assert disp["fpr_ratio"][0] == pytest.approx(fpr.ratio(), abs=1e-12)
    assert disp["fpr_difference_to_overall"][0] == pytest.approx(fpr.difference(method="to_overall"), abs=1e-12)


def test_mean_by_group_is_the_group_mean(data):
    slicing, order = build_slicing(data[["group"]], features=("group",), intersections=False)
    values = data["score"].to_numpy()[order]
    got = mean_by_group(values, slicing=slicing)
    expected = [data["score"].mean(), *data.groupby("group")["score"].mean().loc[list(slicing.groups["group"])]]
    np.testing.assert_allclose(got[0], expected, atol=1e-12)


def test_the_evaluation_reports_metricframes_numbers(data):
    res = sliced_evaluation(y=data["y"].to_numpy(), scores={"m": data["score"].to_numpy()},
                            preds={"m": data["pred"].to_numpy()}, sensitive=data[["group"]],
                            settings=SlicedSettings(features=("group",), min_group_size=1, min_class_count=1,
                                                    resamples=0))
    frame = MetricFrame(metrics={"fpr": false_positive_rate}, y_true=data["y"], y_pred=data["pred"],
                        sensitive_features=data["group"])
    got = {r["group"]: r["value"] for r in res["group_metrics"] if r["metric"] == "fpr" and r["feature"] == "group"}
    assert got == pytest.approx(frame.by_group["fpr"].to_dict(), abs=1e-15)
