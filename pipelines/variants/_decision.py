"""Calibration and decision thresholds, fitted on the validation split (numpy + scikit-learn only)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Calibrator", "fit_calibrator", "choose_threshold"]

_EPS = 1e-6


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


@dataclass
class Calibrator:
    """A monotone map from raw scores to calibrated P(positive)."""

    method: str = "none"
    params: dict[str, Any] = field(default_factory=dict)
    note: str | None = None

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        scores = np.asarray(scores, dtype=np.float64)
        if self.method == "platt":
            z = self.params["a"] * _logit(scores) + self.params["b"]
            return 1.0 / (1.0 + np.exp(-z))
        if self.method == "isotonic":
            # The fitted step function's knots, linearly interpolated and clamped at the ends:
            # what IsotonicRegression(out_of_bounds="clip").predict computes.
            return np.clip(np.interp(scores, self.params["x_knots"], self.params["y_knots"]), 0.0, 1.0)
        return scores

    def describe(self) -> dict[str, Any]:
        out = {"method": self.method, "fitted_on": "validation", **self.params}
        if self.note:
            out["note"] = self.note
        return out


def fit_calibrator(method: str, scores: np.ndarray, labels: np.ndarray) -> Calibrator:
    """Fit Platt scaling (logistic regression on the score's logit) or isotonic regression.

    With fewer than 2 examples of either class there is nothing to fit: the
    identity map is returned and the reason recorded.
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if method == "none":
        return Calibrator("none")
    n_pos, n_neg = int(labels.sum()), int((1 - labels).sum())
    if min(n_pos, n_neg) < 2:
        return Calibrator("none", note=f"{method} calibration skipped: validation has {n_pos} positive and "
                                       f"{n_neg} negative examples (need at least 2 of each)")
    if method == "platt":
        from sklearn.linear_model import LogisticRegression

        lr = LogisticRegression(C=1e6, solver="lbfgs", max_iter=1000)
        lr.fit(_logit(scores).reshape(-1, 1), labels)
        if lr.coef_[0, 0] <= 0:
            # A negative slope would silently invert the model; report it instead of hiding it.
            return Calibrator("none", note=f"platt calibration not applied: the fitted slope is "
                                           f"{lr.coef_[0, 0]:.3f} <= 0 (raw scores do not increase with the label "
                                           "on validation), so calibrating would invert the model")
        return Calibrator("platt", {"a": float(lr.coef_[0, 0]), "b": float(lr.intercept_[0]),
                                    "feature": "logit(raw score)", "rows": int(len(labels))})
    if method == "isotonic":
        from sklearn.isotonic import IsotonicRegression

        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip", increasing=True)
        iso.fit(scores, labels)
        return Calibrator("isotonic", {"rows": int(len(labels)), "knots": int(len(iso.X_thresholds_)),
                                       "x_knots": [float(v) for v in iso.X_thresholds_],
                                       "y_knots": [float(v) for v in iso.y_thresholds_]})
    raise ValueError(f"unknown calibration method {method!r}")


def choose_threshold(scores: np.ndarray, labels: np.ndarray, *, method: str, value: float = 0.5) -> dict[str, Any]:
    """Pick the threshold (predict positive when ``score >= threshold``) on labelled scores.

    ``youden`` maximises TPR - FPR, ``balanced_accuracy`` (TPR + TNR) / 2 (the
    same argmax), ``f1`` the F1 score; ``fixed`` returns ``value``. Candidates
    are the observed scores; ties go to the lowest threshold. The objective is
    reported for the chosen threshold (for ``fixed`` too: balanced accuracy).
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    n_pos, n_neg = int(labels.sum()), int((1 - labels).sum())

    def rates(t: float) -> tuple[float, float, float]:
        pred = scores >= t
        tp = float((pred & (labels == 1)).sum())
        fp = float((pred & (labels == 0)).sum())
        tpr = tp / n_pos if n_pos else float("nan")
        tnr = 1 - fp / n_neg if n_neg else float("nan")
        prec = tp / (tp + fp) if (tp + fp) else 0.0
        f1 = 2 * prec * tpr / (prec + tpr) if (prec + tpr) and n_pos else 0.0
        return tpr, tnr, f1

    def objective(t: float) -> float:
        tpr, tnr, f1 = rates(t)
        if method == "f1":
            return f1
        if method == "youden":
            return tpr + tnr - 1
        return (tpr + tnr) / 2

    base = {"split": "validation", "validation_rows": int(len(labels)), "validation_positives": n_pos,
            "method": method}
    if method == "fixed":
        tpr, tnr, _ = rates(value)
        return {**base, "value": float(value), "objective": "balanced_accuracy",
                "objective_value": (tpr + tnr) / 2 if n_pos and n_neg else None}
    if n_pos == 0 or n_neg == 0:
        return {**base, "value": float(value), "objective": method, "objective_value": None,
                "note": f"validation has {n_pos} positives and {n_neg} negatives; fell back to the fixed value {value}"}
    candidates = np.unique(scores)
    values = np.array([objective(t) for t in candidates])
    best = int(np.flatnonzero(values == values.max())[0])
    return {**base, "value": float(candidates[best]), "objective": method, "objective_value": float(values[best])}
