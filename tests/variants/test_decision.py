import numpy as np
import pytest

from pipelines.core.sampling import stratified_rows
from pipelines.variants import choose_threshold, fit_calibrator


def _brute(scores, labels, objective):
    best_t, best = None, -np.inf
    for t in sorted(set(scores.tolist())):
        pred = scores >= t
        tpr = (pred & (labels == 1)).sum() / (labels == 1).sum()
        tnr = (~pred & (labels == 0)).sum() / (labels == 0).sum()
        prec = (pred & (labels == 1)).sum() / max(pred.sum(), 1)
        val = {"youden": tpr + tnr - 1, "balanced_accuracy": (tpr + tnr) / 2,
               "f1": 2 * prec * tpr / (prec + tpr) if prec + tpr else 0.0}[objective]
        if val > best + 1e-15:
            best_t, best = t, val
    return best_t, best


@pytest.mark.parametrize("method", ["youden", "balanced_accuracy", "f1"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_threshold_matches_brute_force(method, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 80)
    scores = np.round(np.clip(0.3 * labels + rng.normal(0.35, 0.2, 80), 0, 1), 3)
    got = choose_threshold(scores, labels, method=method)
    t, v = _brute(scores, labels, method)
    assert got["value"] == pytest.approx(t)
    assert got["objective_value"] == pytest.approx(v)
    assert got["split"] == "validation" and got["validation_rows"] == 80


def test_hand_checked_threshold():
    scores = np.array([0.1, 0.2, 0.3, 0.4])
    labels = np.array([0, 0, 1, 1])
    got = choose_threshold(scores, labels, method="youden")
    assert got["value"] == 0.3 and got["objective_value"] == 1.0


def test_fixed_threshold_reports_balanced_accuracy():
    got = choose_threshold(np.array([0.1, 0.6, 0.4, 0.9]), np.array([0, 0, 1, 1]), method="fixed", value=0.5)
    assert got["value"] == 0.5 and got["objective_value"] == pytest.approx(0.5)


def test_single_class_validation_falls_back():
    got = choose_threshold(np.array([0.1, 0.6]), np.array([1, 1]), method="youden", value=0.5)
    assert got["value"] == 0.5 and "fell back" in got["note"]


def test_platt_is_monotone_and_matches_sklearn():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    raw = np.clip(0.17 + 0.2 * labels + rng.normal(0, 0.1, 200), 0.01, 0.99)  # compressed, like RAG
    cal = fit_calibrator("platt", raw, labels)
    z = np.log(raw / (1 - raw)).reshape(-1, 1)
    ref = LogisticRegression(C=1e6, max_iter=1000).fit(z, labels).predict_proba(z)[:, 1]
    np.testing.assert_allclose(cal(raw), ref, atol=1e-6)
    grid = np.linspace(0.01, 0.99, 50)
    assert np.all(np.diff(cal(grid)) > 0)
    # calibrated mean matches the base rate (logistic regression's score equation)
    assert cal(raw).mean() == pytest.approx(labels.mean(), abs=1e-3)


def test_isotonic_in_unit_interval_and_non_decreasing():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 100)
    raw = rng.random(100)
    cal = fit_calibrator("isotonic", raw, labels)
    out = cal(np.linspace(-1, 2, 30))
    assert out.min() >= 0 and out.max() <= 1 and np.all(np.diff(out) >= 0)


def test_calibration_skipped_with_one_class():
    cal = fit_calibrator("platt", np.array([0.2, 0.3, 0.4]), np.array([1, 1, 1]))
    assert cal.method == "none" and "skipped" in cal.note
    np.testing.assert_array_equal(cal(np.array([0.2])), [0.2])


def test_stratified_rows_keeps_label_shares():
    labels = np.array([1] * 70 + [0] * 30)
    rows = stratified_rows(labels, 10, seed=3)
    assert len(rows) == 10 and labels[rows].sum() == 7
    np.testing.assert_array_equal(rows, stratified_rows(labels, 10, seed=3))
    np.testing.assert_array_equal(stratified_rows(labels, None, seed=3), np.arange(100))


def test_platt_never_inverts_the_model():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, 200)
    raw = np.clip(0.6 - 0.3 * labels + rng.normal(0, 0.1, 200), 0.01, 0.99)  # anti-correlated
    cal = fit_calibrator("platt", raw, labels)
    assert cal.method == "none" and "invert" in cal.note
    np.testing.assert_array_equal(cal(raw), raw)
