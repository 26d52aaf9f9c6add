"""Point estimates per group from fairlearn's ``MetricFrame``.

Every per-group point estimate the evaluation reports (and every disparity and
paired difference derived from them) comes from :class:`fairlearn.metrics.MetricFrame`
with fairlearn's and scikit-learn's metric functions; the metrics fairlearn lacks
(base rate, ECE, subgroup AUC as a per-group ROC AUC, means of per-row values such
as counterfactual flips) plug in as custom metric functions. Bias AUCs that compare
a group with its background (BPSN, BNSP) do not fit MetricFrame's one-group-at-a-time
model and come from :mod:`._bias_auc`.

The bootstrap intervals come from the vectorized weighted sums in :mod:`._metrics`,
which compute the same statistics (``tests/fairness`` checks the two against each
other, on the data and on bootstrap resamples as sample weights).
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from pipelines.config.evaluation import GROUP_METRICS
from pipelines.fairness._metrics import Slicing

__all__ = ["metricframe_point", "group_metric_functions", "ece", "mean_by_group", "metric_frame"]


def _quiet(fn: Callable[..., float]) -> Callable[..., float]:
    """A metric that answers NaN (instead of raising or warning) where it is not defined for a group."""

    def wrapped(y_true: Any, y_pred: Any, **kwargs: Any) -> float:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            try:
                return float(fn(y_true, y_pred, **kwargs))
            except ValueError:  # e.g. ROC AUC of a group with one class
                return float("nan")

    wrapped.__name__ = getattr(fn, "__name__", "metric")
    return wrapped


def ece(y_true: Any, y_prob: Any, *, n_bins: int = 10, sample_weight: Any = None) -> float:
    """Expected calibration error: sum over equal-width bins of |sum(y - p)| / n.

    Bins follow scikit-learn's ``calibration_curve`` (a score on an inner edge goes to
    the lower bin).

    >>> round(ece([0, 1, 1, 0], [0.2, 0.8, 0.6, 0.4], n_bins=2), 3)
    0.3
    """
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_prob, dtype=np.float64)
    w = np.ones_like(y) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    if w.sum() <= 0:
        return float("nan")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.searchsorted(edges[1:-1], p)
    gaps = np.bincount(bins, weights=w * (y - p), minlength=n_bins)
    return float(np.abs(gaps).sum() / w.sum())


def _count(y_true: Any, y_pred: Any, sample_weight: Any = None) -> float:
    """Rows in the group (fairlearn's ``count``), or their total weight."""
    return float(len(y_true) if sample_weight is None else np.sum(sample_weight))


def _base_rate(y_true: Any, y_pred: Any, sample_weight: Any = None) -> float:
    return float(np.average(np.asarray(y_true, dtype=np.float64), weights=sample_weight))


def group_metric_functions(*, ece_bins: int) -> dict[str, tuple[Callable[..., float], bool]]:
    """``{metric: (function, takes scores)}`` for every name in ``GROUP_METRICS``.

    A function that takes scores is called as ``f(y_true, scores)``, the others as
    ``f(y_true, predicted_labels)``.
    """
    from fairlearn.metrics import (
        false_negative_rate,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )
    from sklearn.metrics import (
        accuracy_score,
        balanced_accuracy_score,
        brier_score_loss,
        precision_score,
        roc_auc_score,
    )

    def precision(y_true: Any, y_pred: Any, sample_weight: Any = None) -> float:
        return precision_score(y_true, y_pred, zero_division=np.nan, sample_weight=sample_weight)

    def ece_fn(y_true: Any, y_prob: Any, sample_weight: Any = None) -> float:
        return ece(y_true, y_prob, n_bins=ece_bins, sample_weight=sample_weight)

    table: dict[str, tuple[Callable[..., float], bool]] = {
        "count": (_count, False),
        "base_rate": (_base_rate, False),
        "selection_rate": (selection_rate, False),
        "accuracy": (accuracy_score, False),
        "balanced_accuracy": (balanced_accuracy_score, False),
        "precision": (precision, False),
        "tpr": (true_positive_rate, False),
        "fpr": (false_positive_rate, False),
        "fnr": (false_negative_rate, False),
        "roc_auc": (roc_auc_score, True),
        "brier": (brier_score_loss, True),
        "ece": (ece_fn, True),
    }
    assert tuple(table) == GROUP_METRICS
    return {m: (_quiet(fn), scored) for m, (fn, scored) in table.items()}


def metric_frame(*, y: np.ndarray, pred: np.ndarray, score: np.ndarray, groups: np.ndarray, ece_bins: int,
                 sample_weight: np.ndarray | None = None) -> Any:
    """One ``MetricFrame`` with every group metric for one sensitive feature.

    Metrics on scores get the scores through ``sample_params`` (MetricFrame splits them
    by group like ``y_true``), so one frame serves both kinds.
    """
    from fairlearn.metrics import MetricFrame

    class _ScoreMetric:  # MetricFrame passes y_pred; route the scores in instead
        def __init__(self, fn: Callable[..., float]):
            self.fn = fn

        def __call__(self, y_true: Any, y_pred: Any, *, scores: Any, sample_weight: Any = None) -> float:
            kwargs = {} if sample_weight is None else {"sample_weight": sample_weight}
            return self.fn(y_true, scores, **kwargs)

    metrics: dict[str, Callable[..., float]] = {}
    params: dict[str, dict[str, Any]] = {}
    for m, (fn, scored) in group_metric_functions(ece_bins=ece_bins).items():
        metrics[m] = _ScoreMetric(fn) if scored else fn
        p: dict[str, Any] = {"scores": score} if scored else {}
        if sample_weight is not None:
            p["sample_weight"] = sample_weight
        if p:
            params[m] = p
    return MetricFrame(metrics=metrics, y_true=y, y_pred=pred, sensitive_features=pd.Series(groups, name="group"),
                       sample_params=params)


def metricframe_point(*, y: np.ndarray, scores: Mapping[str, np.ndarray], preds: Mapping[str, np.ndarray],
                      slicing: Slicing, ece_bins: int) -> dict[tuple[str, str], np.ndarray]:
    """Point estimates ``{(variant, metric): (1, G)}`` in the slicing's column layout, from MetricFrame.

    Rows (``y``, scores, predictions) are in the slicing's cell order. Column 0 is
    MetricFrame's ``overall``; the other columns its ``by_group`` per feature. Also
    returns ``subgroup_auc`` (the ROC AUC of each group alone; not defined overall).
    """
    out: dict[tuple[str, str], np.ndarray] = {}
    labels = {f: np.asarray(slicing.groups[f], dtype=object)[slicing.codes[f]] for f in slicing.features}
    for v in scores:
        values = {m: np.full((1, len(slicing.columns)), np.nan) for m in GROUP_METRICS}
        for fi, f in enumerate(slicing.features):
            frame = metric_frame(y=y, pred=preds[v], score=scores[v], groups=labels[f], ece_bins=ece_bins)
            by_group = frame.by_group
            for m in GROUP_METRICS:
                if fi == 0:
                    values[m][0, 0] = float(frame.overall[m])
                for j in slicing.feature_columns(f):
                    values[m][0, j] = float(by_group.loc[slicing.columns[j][1], m])
        for m, arr in values.items():
            out[(v, m)] = arr
        sub = values["roc_auc"].copy()
        sub[0, 0] = np.nan
        out[(v, "subgroup_auc")] = sub
    return out


def mean_by_group(values: np.ndarray, *, slicing: Slicing) -> np.ndarray:
    """Per-group means ``(1, G)`` of per-row ``values`` (rows in cell order), from MetricFrame.

    Used for means such as counterfactual flip rates, as a custom metric of the
    values alone.
    """
    from fairlearn.metrics import MetricFrame

    def mean_of(y_true: Any, y_pred: Any) -> float:
        return float(np.mean(np.asarray(y_pred, dtype=np.float64))) if len(y_pred) else float("nan")

    out = np.full((1, len(slicing.columns)), np.nan)
    values = np.asarray(values, dtype=np.float64)
    dummy = np.zeros(len(values))
    for fi, f in enumerate(slicing.features):
        groups = np.asarray(slicing.groups[f], dtype=object)[slicing.codes[f]]
        frame = MetricFrame(metrics={"mean": mean_of}, y_true=dummy, y_pred=values,
                            sensitive_features=pd.Series(groups, name="group"))
        if fi == 0:
            out[0, 0] = float(frame.overall["mean"])
        for j in slicing.feature_columns(f):
            out[0, j] = float(frame.by_group.loc[slicing.columns[j][1], "mean"])
    return out
