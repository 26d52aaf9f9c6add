"""The tolerance sweep (deterministic per-group thresholds) against brute force, and the audit point estimates
against the evaluation itself."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from pipelines.fairness._tradeoff import best_single_threshold, best_within, group_curves, point_on
from pipelines.fairness.mitigation import point_estimates

CONSTRAINT_RATES = {
    "equalized_odds": ("tpr", "fpr"),
    "demographic_parity": ("sel",),
    "true_positive_rate_parity": ("tpr",),
    "false_negative_rate_parity": ("fnr",),
    "false_positive_rate_parity": ("fpr",),
}


def _data(seed: int, sizes=(7, 8, 6)):
    rng = np.random.default_rng(seed)
    s, y, g = [], [], []
    for k, n in enumerate(sizes):
        labels = np.array([0, 1] + list(rng.integers(0, 2, n - 2)))
        s += list(np.round(rng.uniform(0, 1, n) * 0.6 + 0.3 * labels + 0.1 * k, 2))
        y += list(labels)
        g += [f"g{k}"] * n
    return np.array(s), np.array(y), np.array(g)


def _brute(s, y, g, *, constraint, objective, tolerance):
    """Every combination of one cut per group (all distinct 'score > t' partitions), the best within tolerance."""
    groups = sorted(set(g))
    options = []
    for name in groups:
        vals = np.unique(s[g == name])
        cuts = [np.inf] + list((vals[1:] + vals[:-1]) / 2)[::-1] + [-np.inf]
        options.append(cuts)
    P, N = y.sum(), (1 - y).sum()
    best = None
    for combo in itertools.product(*options):
        t = np.array([combo[groups.index(x)] for x in g])
        pred = (s > t).astype(int)
        rates = {}
        for name in groups:
            m = g == name
            tp, fp = (pred[m] & y[m]).sum(), (pred[m] & (1 - y[m])).sum()
            pos, neg = y[m].sum(), (1 - y[m]).sum()
            rates[name] = {"tpr": tp / pos, "fpr": fp / neg, "fnr": 1 - tp / pos, "sel": pred[m].mean()}
        gap = max(max(r[k] for r in rates.values()) - min(r[k] for r in rates.values())
                  for k in CONSTRAINT_RATES[constraint])
        if gap > tolerance + 1e-12:
            continue
        tp, fp = (pred & y).sum(), (pred & (1 - y)).sum()
        value = (tp + N - fp) / len(y) if objective == "accuracy" else 0.5 * tp / P + 0.5 * (N - fp) / N
        if best is None or value > best + 1e-12:
            best = value
    return best


@pytest.mark.parametrize("constraint", sorted(CONSTRAINT_RATES))
@pytest.mark.parametrize("objective", ["accuracy", "balanced_accuracy"])
@pytest.mark.parametrize("tolerance", [0.05, 0.2, 0.5, 1.0])
def test_best_within_matches_brute_force(constraint, objective, tolerance):
    s, y, g = _data(seed=len(constraint) + int(tolerance * 10))
    found = best_within(group_curves(s, y, g), constraint=constraint, objective=objective, tolerance=tolerance)
    expected = _brute(s, y, g, constraint=constraint, objective=objective, tolerance=tolerance)
    if expected is None:
        assert found is None
        return
    assert found is not None
    assert found["objective"] == pytest.approx(expected)
    assert found["gap"] <= tolerance + 1e-9
    # the returned thresholds reproduce the returned numbers
    t = np.array([found["thresholds"][x] for x in g])
    on = point_on((s > t).astype(float), y, g, constraint=constraint, objective=objective)
    assert on["objective"] == pytest.approx(found["objective"])
    assert on["gap"] == pytest.approx(found["gap"])


def test_unconstrained_tolerance_is_each_groups_own_best():
    s, y, g = _data(seed=5)
    found = best_within(group_curves(s, y, g), constraint="equalized_odds", objective="accuracy", tolerance=1.0)
    for name in sorted(set(g)):
        m = g == name
        own = best_single_threshold(s[m], y[m], objective="accuracy")
        acc = lambda t: ((s[m] > t).astype(int) == y[m]).mean()  # noqa: E731
        assert acc(found["thresholds"][name]) == pytest.approx(acc(own))


def test_best_single_threshold_by_hand():
    # scores 0.1 0.4 0.35 0.8 with labels 0 0 1 1: 'score > 0.375' gets 3 of 4 right, no cut gets all 4
    s = np.array([0.1, 0.4, 0.35, 0.8])
    y = np.array([0, 0, 1, 1])
    t = best_single_threshold(s, y, objective="accuracy")
    assert ((s > t).astype(int) == y).mean() == 0.75
    # balanced accuracy ties there too (TPR 1/2, TNR 1) vs 'score > 0.225' (TPR 1, TNR 1/2)
    assert best_single_threshold(s, y, objective="balanced_accuracy") in (pytest.approx(0.375), pytest.approx(0.6),
                                                                          pytest.approx(0.225))


def test_point_estimates_agree_with_the_evaluation():
    from pipelines.config import EvaluationConfig
    from pipelines.fairness import evaluate_fairness

    rng = np.random.default_rng(1)
    n = 240
    sample = pd.DataFrame({"example_id": [f"e{i:03d}" for i in range(n)], "label": rng.integers(0, 2, n),
                           "group": rng.choice(["a", "b", "c", "tiny"], n, p=[0.4, 0.3, 0.25, 0.05])})
    # 'tiny' (about 12 rows, below min_group_size) has negatives only: its FPR and selection rate take part in
    # the gaps (exact intervals at any size), its TPR/FNR are undefined and do not
    sample.loc[sample["group"] == "tiny", "label"] = 0
    labels = {f"r{k}": (rng.uniform(0, 1, n) < 0.3 + 0.1 * k + 0.3 * sample["label"]).astype(int)
              for k in range(4)}
    cfg = EvaluationConfig(min_group_size=20, min_class_count=8, bootstrap={"resamples": 0}, intersections=False)
    preds = pd.concat([pd.DataFrame({"variant": k, "example_id": sample["example_id"], "score": v.astype(float),
                                     "predicted_label": v}) for k, v in labels.items()])
    result = evaluate_fairness(audit_sample=sample, predictions=preds, config=cfg, data_features=("group",), seed=0)
    for metric in ("equalized_odds_difference", "demographic_parity_difference", "tpr_difference", "fpr_difference",
                   "fnr_difference"):
        got = point_estimates(labels=labels, y=sample["label"].to_numpy(), groups=sample["group"].to_numpy(),
                              disparity=metric)
        for k in labels:
            want = result.estimate("disparities", variant=k, feature="group", metric=metric)["value"]
            assert got[k][metric] == pytest.approx(want, abs=1e-12), (metric, k)
            for m in ("accuracy", "balanced_accuracy"):
                assert got[k][m] == pytest.approx(
                    result.estimate("group_metrics", variant=k, feature="overall", metric=m)["value"])
