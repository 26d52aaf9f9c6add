"""Every metric cross-checked against scikit-learn / fairlearn on random data."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve

from pipelines.fairness import _bias_auc as ba
from pipelines.fairness._bootstrap import resample_weights
from pipelines.fairness._metrics import build_slicing, group_sums, metrics_from_sums, threshold_design
from pipelines.fairness._sliced import SlicedSettings, sliced_evaluation

BINS = 10


def _data(seed, n=600, ties=False):
    rng = np.random.default_rng(seed)
    g = rng.choice(["a", "b", "c", "d"], n, p=[0.4, 0.3, 0.2, 0.1])
    h = rng.choice(["x", "y"], n)
    y = (rng.random(n) < np.where(g == "a", 0.6, 0.4)).astype(int)
    s = np.clip(0.3 + 0.35 * y + rng.normal(0, 0.25, n), 0, 1)
    if ties:
        s = np.round(s, 1)  # many tied scores, some exactly on bin edges
    p = (s >= 0.5).astype(int)
    return g, h, y, s, p


def _ece(y, s):
    prob_true, prob_pred = calibration_curve(y, s, n_bins=BINS, strategy="uniform")
    edges = np.linspace(0, 1, BINS + 1)
    counts = np.bincount(np.searchsorted(edges[1:-1], s), minlength=BINS)
    counts = counts[counts > 0]
    return float(np.sum(counts / len(y) * np.abs(prob_true - prob_pred)))


def _reference(y, s, p):
    tn, fp, fn, tp = skm.confusion_matrix(y, p, labels=[0, 1]).ravel()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "count": len(y),
            "base_rate": y.mean(),
            "selection_rate": p.mean(),
            "accuracy": skm.accuracy_score(y, p),
            "balanced_accuracy": skm.balanced_accuracy_score(y, p),
            "precision": skm.precision_score(y, p, zero_division=np.nan),
            "tpr": skm.recall_score(y, p),
            "fpr": fp / (fp + tn),
            "fnr": fn / (fn + tp),
            "roc_auc": skm.roc_auc_score(y, s),
            "brier": skm.brier_score_loss(y, s),
            "ece": _ece(y, s),
        }


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_group_metric_matches_sklearn(seed, ties):
    g, h, y, s, p = _data(seed, ties=ties)
    settings = SlicedSettings(features=("g", "h"), min_group_size=1, min_class_count=1, resamples=0, ece_bins=BINS)
    res = sliced_evaluation(y=y, scores={"m": s}, preds={"m": p}, sensitive=pd.DataFrame({"g": g, "h": h}),
                            settings=settings)
    got = {(r["feature"], r["group"], r["metric"]): r["value"] for r in res["group_metrics"]}
    masks = {("overall", "all"): np.ones(len(y), bool)}
    masks.update({("g", v): g == v for v in np.unique(g)})
    masks.update({("h", v): h == v for v in np.unique(h)})
    masks.update({("g|h", f"{a}|{b}"): (g == a) & (h == b) for a in np.unique(g) for b in np.unique(h)})
    for (feature, group), m in masks.items():
        for metric, expected in _reference(y[m], s[m], p[m]).items():
            assert got[(feature, group, metric)] == pytest.approx(expected, abs=1e-9), (feature, group, metric)


def test_by_group_matches_fairlearn_metricframe_with_two_features():
    from fairlearn.metrics import MetricFrame, false_positive_rate, selection_rate

    g, h, y, s, p = _data(5)
    settings = SlicedSettings(features=("g", "h"), min_group_size=1, min_class_count=1, resamples=0)
    res = sliced_evaluation(y=y, scores={"m": s}, preds={"m": p}, sensitive=pd.DataFrame({"g": g, "h": h}),
                            settings=settings)
    mf = MetricFrame(metrics={"tpr": skm.recall_score, "fpr": false_positive_rate, "selection_rate": selection_rate},
                     y_true=y, y_pred=p, sensitive_features=pd.DataFrame({"g": g, "h": h}))
    got = {(r["group"], r["metric"]): r["value"] for r in res["group_metrics"] if r["feature"] == "g|h"}
    for (a, b), row in mf.by_group.iterrows():
        for metric in ("tpr", "fpr", "selection_rate"):
            assert got[(f"{a}|{b}", metric)] == pytest.approx(row[metric])
    disp = {r["metric"]: r["value"] for r in res["disparities"] if r["feature"] == "g|h"}
    for method in ("between_groups", "to_overall"):
        suffix = "" if method == "between_groups" else "_to_overall"
        for metric in ("tpr", "fpr", "selection_rate"):
            assert disp[f"{metric}_difference{suffix}"] == pytest.approx(mf.difference(method=method)[metric])
            assert disp[f"{metric}_ratio{suffix}"] == pytest.approx(mf.ratio(method=method)[metric])


def test_fairlearn_fairness_functions_on_random_data():
    from fairlearn.metrics import (demographic_parity_difference, demographic_parity_ratio,
                                   equalized_odds_difference, equalized_odds_ratio)

    g, h, y, s, p = _data(7)
    settings = SlicedSettings(features=("g",), min_group_size=1, min_class_count=1, resamples=0)
    res = sliced_evaluation(y=y, scores={"m": s}, preds={"m": p}, sensitive=pd.DataFrame({"g": g}), settings=settings)
    disp = {r["metric"]: r["value"] for r in res["disparities"] if r["feature"] == "g"}
    kw = dict(y_true=y, y_pred=p, sensitive_features=g)
    assert disp["demographic_parity_difference"] == pytest.approx(demographic_parity_difference(**kw))
    assert disp["demographic_parity_ratio"] == pytest.approx(demographic_parity_ratio(**kw))
    assert disp["equalized_odds_difference"] == pytest.approx(equalized_odds_difference(**kw))
    assert disp["equalized_odds_ratio"] == pytest.approx(equalized_odds_ratio(**kw))


@pytest.mark.parametrize("ties", [False, True])
def test_bias_aucs_match_sklearn_on_the_defining_subsets(ties):
    g, h, y, s, p = _data(3, ties=ties)
    settings = SlicedSettings(features=("g",), min_group_size=1, min_class_count=1, resamples=0)
    res = sliced_evaluation(y=y, scores={"m": s}, preds={"m": p}, sensitive=pd.DataFrame({"g": g}), settings=settings)
    got = {(r["group"], r["metric"]): r["value"] for r in res["bias_auc"]}
    subs, bpsns, bnsps = [], [], []
    for v in np.unique(g):
        inside = g == v
        sub = skm.roc_auc_score(y[inside], s[inside])
        bpsn_mask = (~inside & (y == 1)) | (inside & (y == 0))
        bnsp_mask = (~inside & (y == 0)) | (inside & (y == 1))
        bpsn = skm.roc_auc_score(y[bpsn_mask], s[bpsn_mask])
        bnsp = skm.roc_auc_score(y[bnsp_mask], s[bnsp_mask])
        assert got[(v, "subgroup_auc")] == pytest.approx(sub, abs=1e-12)
        assert got[(v, "bpsn_auc")] == pytest.approx(bpsn, abs=1e-12)
        assert got[(v, "bnsp_auc")] == pytest.approx(bnsp, abs=1e-12)
        subs.append(sub), bpsns.append(bpsn), bnsps.append(bnsp)
    # Borkan et al.: 0.25 * overall + 0.25 * sum of the p = -5 power means
    pm = lambda x: np.mean(np.power(x, -5.0)) ** (1 / -5.0)  # noqa: E731
    expected = 0.25 * skm.roc_auc_score(y, s) + 0.25 * (pm(subs) + pm(bpsns) + pm(bnsps))
    final = next(r["value"] for r in res["disparities"] if r["metric"] == "final_bias_score")
    assert final == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("ties", [False, True])
def test_vectorized_bootstrap_equals_sklearn_on_each_expanded_resample(ties):
    """The weight-matrix path gives, per resample, what sklearn gives on the resampled rows.

    Bootstrap chunks are float32 (the counts are exact; score sums round at ~1e-7).
    """
    g, h, y, s, p = _data(11, n=300, ties=ties)
    slicing, order = build_slicing(pd.DataFrame({"g": g}), features=("g",), intersections=False)
    y, s, p, g = y[order], s[order], p[order], g[order]
    X = threshold_design(y, p, s, ece_bins=BINS)
    layouts = ba.auc_layouts(s, y, slicing)
    W = next(resample_weights(slicing.cells, n_resamples=4, seed=123))
    sums = group_sums(W, X, slicing)
    conc = ba.auc_sums(W, layouts, slicing)
    got = metrics_from_sums(sums, ece_bins=BINS, auc_concordant=conc["within"])
    bias = ba.bias_aucs(conc, sums[..., 1], sums[..., 0] - sums[..., 1])
    for b in range(W.shape[0]):
        idx = np.repeat(np.arange(len(y)), W[b].astype(int))
        yy, ss, pp, gg = y[idx], s[idx], p[idx], g[idx]
        for j, (feature, group) in enumerate(slicing.columns):
            m = np.ones(len(yy), bool) if feature == "overall" else gg == group
            for metric, expected in _reference(yy[m], ss[m], pp[m]).items():
                assert got[metric][b, j] == pytest.approx(expected, rel=1e-6, abs=1e-7), (b, group, metric)
            if feature == "overall":
                continue
            bpsn_mask = (~m & (yy == 1)) | (m & (yy == 0))
            assert bias["bpsn_auc"][b, j] == pytest.approx(skm.roc_auc_score(yy[bpsn_mask], ss[bpsn_mask]), rel=1e-6)
            bnsp_mask = (~m & (yy == 0)) | (m & (yy == 1))
            assert bias["bnsp_auc"][b, j] == pytest.approx(skm.roc_auc_score(yy[bnsp_mask], ss[bnsp_mask]), rel=1e-6)
