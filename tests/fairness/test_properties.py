"""Property tests: invariants that must hold on any data."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings, strategies as st

from pipelines.config import EvaluationConfig
from pipelines.fairness import evaluate_fairness
from pipelines.fairness._metrics import STATUS_INSUFFICIENT
from pipelines.fairness._sliced import SlicedSettings, sliced_evaluation


@st.composite
def datasets(draw):
    n = draw(st.integers(min_value=8, max_value=60))
    seed = draw(st.integers(min_value=0, max_value=2**31 - 1))
    n_groups = draw(st.integers(min_value=2, max_value=4))
    rng = np.random.default_rng(seed)
    g = rng.integers(0, n_groups, n).astype(str)
    y = rng.integers(0, 2, n)
    s = np.round(rng.random(n), draw(st.sampled_from([1, 2, 6])))
    p = (s >= 0.5).astype(int)
    return g, y, s, p, seed


SETTINGS = dict(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _run(g, y, s, p, **kw):
    opts = dict(features=("g",), min_group_size=1, min_class_count=1, resamples=30, seed=1)
    opts.update(kw)
    return sliced_evaluation(y=y, scores={"m": s}, preds={"m": p}, sensitive=pd.DataFrame({"g": g}),
                             settings=SlicedSettings(**opts))


@settings(**SETTINGS)
@given(datasets())
def test_point_estimates_are_permutation_invariant(data):
    g, y, s, p, seed = data
    perm = np.random.default_rng(seed + 1).permutation(len(y))
    a = _run(g, y, s, p, resamples=0)
    b = _run(g[perm], y[perm], s[perm], p[perm], resamples=0)
    for key in ("group_metrics", "bias_auc", "disparities"):
        va = [(r["feature"], r["group"], r["metric"], r["status"], r["value"]) for r in a[key]]
        vb = [(r["feature"], r["group"], r["metric"], r["status"], r["value"]) for r in b[key]]
        assert [x[:4] for x in va] == [x[:4] for x in vb]
        assert np.allclose([np.nan if x[4] is None else x[4] for x in va],
                           [np.nan if x[4] is None else x[4] for x in vb], equal_nan=True)


@settings(**SETTINGS)
@given(datasets())
def test_ratios_in_unit_interval_differences_non_negative_ci_contains_point(data):
    g, y, s, p, _ = data
    res = _run(g, y, s, p)
    for r in res["disparities"]:
        if r["value"] is None:
            continue
        if r["metric"].endswith("ratio") or r["metric"].endswith("ratio_to_overall"):
            assert 0.0 <= r["value"] <= 1.0, r
        if "difference" in r["metric"]:
            assert r["value"] >= 0.0, r
    for key in ("group_metrics", "bias_auc", "disparities"):
        for r in res[key]:
            if r["value"] is not None and r["ci_low"] is not None:
                assert r["ci_low"] <= r["value"] <= r["ci_high"], r


@settings(**SETTINGS)
@given(datasets())
def test_rates_and_aucs_stay_in_unit_interval(data):
    g, y, s, p, _ = data
    res = _run(g, y, s, p)
    for r in res["group_metrics"] + res["bias_auc"]:
        if r["value"] is not None and r["metric"] != "count":
            assert -1e-12 <= r["value"] <= 1 + 1e-12, r


def test_single_class_group_gives_insufficient_data_for_auc_not_a_crash():
    g = np.array(["a"] * 10 + ["b"] * 10)
    y = np.array([1] * 10 + [0, 1] * 5)  # group a has positives only
    s = np.linspace(0.05, 0.95, 20)
    res = _run(g, y, s, (s > 0.5).astype(int), min_class_count=1)
    by = {(r["group"], r["metric"]): r for r in res["group_metrics"] + res["bias_auc"]}
    for metric in ("roc_auc", "subgroup_auc", "bpsn_auc", "balanced_accuracy"):
        assert by[("a", metric)]["status"] == STATUS_INSUFFICIENT
        assert by[("a", metric)]["value"] is None and by[("a", metric)]["ci_low"] is None
    # a rate without a single trial is undefined (no negatives: no FPR), never 0
    assert by[("a", "fpr")]["status"] == "undefined" and by[("a", "fpr")]["value"] is None
    assert by[("a", "tpr")]["status"] == "ok"
    assert by[("b", "roc_auc")]["status"] == "ok"
    # a disparity over a single eligible group is insufficient, not a number
    disp = {r["metric"]: r for r in res["disparities"]}
    assert disp["roc_auc_difference"]["status"] == STATUS_INSUFFICIENT
    assert disp["roc_auc_difference"]["value"] is None


def test_small_group_keeps_its_rates_and_loses_only_what_needs_size():
    g = np.array(["a"] * 5 + ["b"] * 40)
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 45)
    s = rng.random(45)
    res = _run(g, y, s, (s > 0.5).astype(int), min_group_size=10)
    by = {r["metric"]: r for r in res["group_metrics"] if r["group"] == "a"}
    assert by["count"]["value"] == 5
    for m in ("roc_auc", "balanced_accuracy", "brier", "ece"):  # need min_group_size rows
        assert by[m]["status"] == STATUS_INSUFFICIENT and by[m]["value"] is None
    assert by["accuracy"]["status"] == "ok" and by["accuracy"]["trials"] == 5  # exact interval at any size


def test_full_evaluation_is_invariant_to_row_order_including_cis(audit):
    cfg = EvaluationConfig(bootstrap={"resamples": 50}, min_group_size=10, min_class_count=5)
    kw = dict(config=cfg, data_features=("group", "axis"), seed=3)
    a = evaluate_fairness(audit_sample=audit["audit_sample"], predictions=audit["predictions"], **kw)
    shuffled = evaluate_fairness(audit_sample=audit["audit_sample"].sample(frac=1, random_state=1),
                                 predictions=audit["predictions"].sample(frac=1, random_state=2), **kw)
    pd.testing.assert_frame_equal(a.group_metrics, shuffled.group_metrics)
    pd.testing.assert_frame_equal(a.disparities, shuffled.disparities)


def test_same_seed_same_cis_different_seed_different_cis(audit):
    def run(seed):
        cfg = EvaluationConfig(bootstrap={"resamples": 50}, min_group_size=10, min_class_count=5)
        return evaluate_fairness(audit_sample=audit["audit_sample"], predictions=audit["predictions"], config=cfg,
                                 data_features=("group", "axis"), seed=seed).group_metrics

    pd.testing.assert_frame_equal(run(1), run(1))
    assert not run(1)["ci_low"].equals(run(2)["ci_low"])


def test_counterfactual_and_exposure_cis_do_not_depend_on_row_order(audit):
    cfg = EvaluationConfig(bootstrap={"resamples": 50}, min_group_size=10, min_class_count=5)
    kw = dict(audit_sample=audit["audit_sample"], predictions=audit["predictions"], config=cfg,
              data_features=("group", "axis"), seed=3)
    a = evaluate_fairness(twin_predictions=audit["twin_predictions"], retrievals=audit["retrievals"], **kw)
    b = evaluate_fairness(twin_predictions=audit["twin_predictions"].sample(frac=1, random_state=4),
                          retrievals=audit["retrievals"].sample(frac=1, random_state=5), **kw)
    pd.testing.assert_frame_equal(a.counterfactual_metrics, b.counterfactual_metrics)
    pd.testing.assert_frame_equal(a.exposure_metrics, b.exposure_metrics)
