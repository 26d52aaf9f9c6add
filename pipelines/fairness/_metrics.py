"""Per-group classification metrics from weighted sufficient statistics.

Every metric is a function of a few weighted sums per group (counts, positives,
selections, true positives, squared errors, calibration-bin sums). A weight
matrix ``W`` of shape ``(b, n)`` gives those sums for ``b`` bootstrap resamples
at once; ``W = ones((1, n))`` gives the point estimate through the very same
code. Groups of every sensitive feature (and their intersection) are unions of
*cells* (the finest partition), so sums are taken per cell once and then added
up per group with a small membership matrix.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pipelines.config.evaluation import GROUP_METRICS

__all__ = [
    "Slicing",
    "build_slicing",
    "cell_sums",
    "group_sums",
    "threshold_design",
    "metrics_from_sums",
    "metric_eligibility",
    "proportion_counts",
    "OVERALL",
    "STATUS_OK",
    "STATUS_INSUFFICIENT",
    "STATUS_UNDEFINED",
]

OVERALL = ("overall", "all")
STATUS_OK = "ok"
STATUS_INSUFFICIENT = "insufficient_data"
STATUS_UNDEFINED = "undefined"

# Columns of the threshold design matrix before the calibration bins.
_N, _POS, _SEL, _TP, _SQ = range(5)
_FIXED = 5


@dataclass(frozen=True)
class Slicing:
    """How rows map to cells and to the groups of each sensitive feature.

    Rows are expected in cell order (``cell_starts`` are contiguous slices).
    Column 0 of every group axis is the overall population.
    """

    features: tuple[str, ...]
    groups: dict[str, tuple[str, ...]]
    codes: dict[str, np.ndarray]
    cells: np.ndarray
    cell_starts: np.ndarray
    member: np.ndarray  # (K cells, G columns) 0/1
    columns: tuple[tuple[str, str], ...]
    notes: tuple[str, ...] = field(default=())

    @property
    def n_rows(self) -> int:
        return int(self.cells.shape[0])

    def feature_columns(self, feature: str) -> np.ndarray:
        return np.array([i for i, (f, _) in enumerate(self.columns) if f == feature], dtype=np.int64)


def build_slicing(frame: pd.DataFrame, *, features: tuple[str, ...], intersections: bool) -> tuple[Slicing, np.ndarray]:
    """Group structure for ``frame``'s sensitive ``features``.

    Returns the slicing and the row order (cell order) that every per-row array must
    be put in before use.
    """
    values = {f: frame[f].astype(str).to_numpy() for f in features}
    all_features = list(features)
    notes: list[str] = []
    if intersections and len(features) > 1:
        cross_name = "|".join(features)
        cross = values[features[0]].astype(object)
        for f in features[1:]:
            cross = cross + "|" + values[f].astype(object)
        cross = cross.astype(str)
        n_cross = len(np.unique(cross))
        duplicate = next((f for f in features if len(np.unique(values[f])) == n_cross), None)
        if duplicate is not None:
            notes.append(f"intersection {cross_name!r} has the same groups as {duplicate!r}; not repeated")
        else:
            values[cross_name] = cross
            all_features.append(cross_name)
    # Cells: the cross of every feature (the bootstrap strata).
    key = pd.MultiIndex.from_arrays([values[f] for f in features]) if len(features) > 1 else None
    if key is not None:
        cell_codes, _ = pd.factorize(key, sort=True)
    else:
        cell_codes, _ = pd.factorize(values[features[0]], sort=True)
    cell_codes = np.asarray(cell_codes, dtype=np.int64)
    order = np.argsort(cell_codes, kind="stable")
    cells = cell_codes[order]
    n_cells = int(cells.max()) + 1 if cells.size else 0
    cell_starts = np.flatnonzero(np.r_[True, cells[1:] != cells[:-1]]) if cells.size else np.zeros(0, np.int64)
    groups: dict[str, tuple[str, ...]] = {}
    codes: dict[str, np.ndarray] = {}
    columns: list[tuple[str, str]] = [OVERALL]
    member_cols: list[np.ndarray] = [np.ones(n_cells)]
    for f in all_features:
        v = values[f][order]
        names, inv = np.unique(v, return_inverse=True)
        groups[f] = tuple(str(x) for x in names)
        codes[f] = inv.astype(np.int64)
        # Every cell lies inside exactly one group of every feature.
        cell_group = inv[cell_starts]
        for gi, name in enumerate(names):
            columns.append((f, str(name)))
            member_cols.append((cell_group == gi).astype(np.float64))
    member = np.stack(member_cols, axis=1) if n_cells else np.zeros((0, len(columns)))
    slicing = Slicing(tuple(all_features), groups, codes, cells, cell_starts, member, tuple(columns), tuple(notes))
    return slicing, order


def cell_sums(W: np.ndarray, X: np.ndarray, cell_starts: np.ndarray) -> np.ndarray:
    """Weighted column sums of ``X`` per cell: ``(b, K, S)`` from ``W (b, n)`` and ``X (n, S)``."""
    bounds = np.r_[cell_starts, X.shape[0]]
    out = np.empty((W.shape[0], len(cell_starts), X.shape[1]), dtype=W.dtype)
    for k in range(len(cell_starts)):  # loop over cells (few), never over resamples
        a, b = bounds[k], bounds[k + 1]
        out[:, k, :] = W[:, a:b] @ X[a:b]
    return out


def group_sums(W: np.ndarray, X: np.ndarray, slicing: Slicing) -> np.ndarray:
    """Weighted column sums of ``X`` per group column: ``(b, G, S)``, float64.

    ``X`` is cast to ``W``'s dtype (float32 for bootstrap chunks, float64 for the
    point estimate) so that the matrix product does not upcast the weights.
    """
    sums = cell_sums(W, X.astype(W.dtype, copy=False), slicing.cell_starts).astype(np.float64)
    return np.einsum("bks,kg->bgs", sums, slicing.member)


def threshold_design(y: np.ndarray, pred: np.ndarray, score: np.ndarray, *, ece_bins: int) -> np.ndarray:
    """Per-row values whose weighted sums give every threshold and calibration metric.

    Columns: 1, y, pred, y*pred, (score - y)^2, then per calibration bin
    ``(y - score)`` of the rows in that bin: ECE = sum over bins of |sum of those| / n
    (the bin's share times |fraction positive - mean score|). Bins are equal-width on
    [0, 1] with scikit-learn's ``calibration_curve`` convention (a score on an inner
    edge goes to the lower bin).
    """
    y = np.asarray(y, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    score = np.asarray(score, dtype=np.float64)
    n = y.shape[0]
    edges = np.linspace(0.0, 1.0, ece_bins + 1)
    bin_id = np.searchsorted(edges[1:-1], score)
    X = np.zeros((n, _FIXED + ece_bins))
    X[:, _N] = 1.0
    X[:, _POS] = y
    X[:, _SEL] = pred
    X[:, _TP] = y * pred
    X[:, _SQ] = (score - y) ** 2
    X[np.arange(n), _FIXED + bin_id] = y - score
    return X


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1.0), np.nan)


def metrics_from_sums(sums: np.ndarray, *, ece_bins: int, auc_concordant: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Every group metric from weighted sums ``(b, G, S)``; each value is ``(b, G)``.

    ``auc_concordant`` is the weighted count of (positive, negative) pairs of the same
    group ordered correctly (ties count one half); see :mod:`._bias_auc`.
    """
    n, pos, sel, tp, sq = (sums[..., i] for i in (_N, _POS, _SEL, _TP, _SQ))
    neg = n - pos
    fp = sel - tp
    fn = pos - tp
    tn = neg - fp
    tpr = _div(tp, pos)
    fpr = _div(fp, neg)
    tnr = _div(tn, neg)
    bins_gap = sums[..., _FIXED:_FIXED + ece_bins]  # per bin: sum of (y - score)
    out = {
        "count": n.astype(np.float64),
        "base_rate": _div(pos, n),
        "selection_rate": _div(sel, n),
        "accuracy": _div(tp + tn, n),
        "balanced_accuracy": (tpr + tnr) / 2.0,
        "precision": _div(tp, sel),
        "tpr": tpr,
        "fpr": fpr,
        "fnr": _div(fn, pos),
        "roc_auc": _div(auc_concordant, pos * neg) if auc_concordant is not None else np.full(n.shape, np.nan),
        "brier": _div(sq, n),
        "ece": _div(np.abs(bins_gap).sum(axis=-1), n),
    }
    assert tuple(out) == GROUP_METRICS
    return out


def proportion_counts(point_sums: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{metric: (events, trials)}`` per group column for every proportion among the group metrics.

    >>> sums = np.array([[10.0, 4.0, 5.0, 3.0, 0.0]])  # n, positives, selected, true positives, squared error
    >>> {m: (float(e[0]), float(t[0])) for m, (e, t) in proportion_counts(sums).items()}["fpr"]
    (2.0, 6.0)
    """
    n, pos, sel, tp = (point_sums[:, i] for i in (_N, _POS, _SEL, _TP))
    neg = n - pos
    fp = sel - tp
    return {
        "base_rate": (pos, n),
        "selection_rate": (sel, n),
        "accuracy": (tp + neg - fp, n),
        "precision": (tp, sel),
        "tpr": (tp, pos),
        "fpr": (fp, neg),
        "fnr": (pos - tp, pos),
    }


def metric_eligibility(point_sums: np.ndarray, *, min_group_size: int, min_class_count: int) -> dict[str, np.ndarray]:
    """Status of each metric per group column from the point-estimate sums ``(G, S)``.

    A proportion (selection rate, accuracy, precision, TPR, FPR, FNR, base rate) is
    ``ok`` whenever it has a trial: its exact interval is valid at any size (a group of 5
    negatives gets a wide FPR interval, not a hidden value); with no trial it is
    ``undefined``. The AUC and the bootstrap-based metrics (balanced accuracy, Brier,
    ECE) need ``min_group_size`` rows; the AUC and balanced accuracy also need
    ``min_class_count`` positives and negatives.
    """
    n = point_sums[:, _N]
    pos = point_sums[:, _POS]
    neg = n - pos
    small = n < min_group_size
    few = (pos < min_class_count) | (neg < min_class_count)
    counts = proportion_counts(point_sums)
    status: dict[str, np.ndarray] = {}
    for m in GROUP_METRICS:
        s = np.full(n.shape, STATUS_OK, dtype=object)
        if m in counts:
            s[counts[m][1] <= 0] = STATUS_UNDEFINED
        elif m in ("roc_auc", "balanced_accuracy"):
            s[small | few] = STATUS_INSUFFICIENT
        elif m != "count":
            s[small] = STATUS_INSUFFICIENT
        status[m] = s
    return status
