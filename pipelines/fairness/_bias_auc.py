"""ROC AUC, subgroup AUC, BPSN and BNSP AUC for many bootstrap resamples at once.

Borkan, Dixon, Sorensen, Thain and Vasserman (2019), *Nuanced Metrics for
Measuring Unintended Bias with Real Data for Text Classification*:

* subgroup AUC: AUC on the group's own examples;
* BPSN AUC (background positive, subgroup negative): positives from outside the
  group against the group's negatives; low means the group's benign comments
  score high;
* BNSP AUC (background negative, subgroup positive): the group's positives against
  negatives from outside; low means the group's harmful comments score low;
* final score: ``w0 * AUC_overall + sum_k w_k * M_p(bias AUCs of kind k)``, the
  power mean ``M_p(x) = (mean(x ** p)) ** (1 / p)`` with ``p = -5`` and all weights
  0.25 in the paper.

Every AUC is ``C / (P * N)`` where ``C`` is the weighted count of correctly ordered
(positive, negative) pairs (a tie counts one half). Write ``C[g, h]`` for positives of
group g against negatives of group h. Then subgroup ``= C[g, g]``, BPSN
``= sum_h C[h, g] - C[g, g]`` (all positives against g's negatives, minus g's own),
BNSP ``= sum_h C[g, h] - C[g, g]``, overall ``= sum C``. Positives and negatives are
kept apart, each sorted by score; the position of every positive among the
negatives (and vice versa), strictly below and including ties, is found once with
``searchsorted``. A resample then needs only cumulative sums of the weights and
two gathers: ``(CN[left] + CN[right]) / 2`` is the weighted count of negatives
below a positive, ties counting one half. The row and column sums come from the
overall sort, ``C[g, g]`` from a (group, score) sort per sensitive feature, so the
cost is a few ``O(b * n)`` array passes, independent of the number of groups.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipelines.fairness._metrics import Slicing

__all__ = ["PairLayout", "pair_layout", "AucLayouts", "auc_layouts", "within_concordant", "cross_concordant",
           "auc_sums", "bias_aucs", "power_mean", "final_bias_score"]


@dataclass(frozen=True)
class PairLayout:
    """Positives and negatives of one score vector, each sorted by (group, score).

    ``neg_left``/``neg_right``: for each sorted positive, how many sorted negatives
    come before its (group, score) key, strictly / including ties; likewise
    ``pos_left``/``pos_right`` for each sorted negative. They do not depend on the
    resample, so a resample only needs cumulative sums and gathers.
    """

    pos_order: np.ndarray
    neg_order: np.ndarray
    neg_left: np.ndarray
    neg_right: np.ndarray
    pos_left: np.ndarray
    pos_right: np.ndarray
    neg_group_start: np.ndarray  # (G,) first sorted negative of each group
    pos_onehot: np.ndarray  # (n_pos, G) group indicator of the sorted positives (float32)


def pair_layout(score: np.ndarray, y: np.ndarray, codes: np.ndarray | None = None,
                n_groups: int | None = None) -> PairLayout:
    """Precompute the sort order of ``score`` within the groups ``codes`` (None: one group)."""
    score = np.asarray(score, dtype=np.float64)
    y = np.asarray(y)
    n = score.shape[0]
    codes = np.zeros(n, dtype=np.int64) if codes is None else np.asarray(codes, dtype=np.int64)
    n_groups = int(codes.max()) + 1 if n_groups is None else n_groups
    _, rank = np.unique(score, return_inverse=True)
    n_levels = int(rank.max()) + 1 if n else 1
    key = codes * n_levels + rank
    pos_idx = np.flatnonzero(y == 1)
    neg_idx = np.flatnonzero(y != 1)
    pos_order = pos_idx[np.argsort(key[pos_idx], kind="stable")]
    neg_order = neg_idx[np.argsort(key[neg_idx], kind="stable")]
    pk, nk = key[pos_order], key[neg_order]
    onehot = np.zeros((len(pos_order), n_groups), dtype=np.float32)
    onehot[np.arange(len(pos_order)), codes[pos_order]] = 1.0
    return PairLayout(
        pos_order=pos_order, neg_order=neg_order,
        neg_left=np.searchsorted(nk, pk, "left"), neg_right=np.searchsorted(nk, pk, "right"),
        pos_left=np.searchsorted(pk, nk, "left"), pos_right=np.searchsorted(pk, nk, "right"),
        neg_group_start=np.searchsorted(nk, np.arange(n_groups, dtype=np.int64) * n_levels, "left"),
        pos_onehot=onehot,
    )


def _cumulative(Wsorted: np.ndarray) -> np.ndarray:
    """``C[:, k]`` = sum of the first ``k`` columns (a leading zero column)."""
    out = np.zeros((Wsorted.shape[0], Wsorted.shape[1] + 1), dtype=Wsorted.dtype)
    np.cumsum(Wsorted, axis=1, out=out[:, 1:])
    return out


def _half_sum(C: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Weighted count strictly below plus half of the ties: ``(C[left] + C[right]) / 2``.

    Computed as ``C[left]`` plus a correction at the (usually few) tied positions.
    """
    out = np.take(C, left, axis=1)
    tied = np.flatnonzero(right != left)
    if tied.size:
        out[:, tied] += 0.5 * (np.take(C, right[tied], axis=1) - out[:, tied])
    return out


def within_concordant(W: np.ndarray, layout: PairLayout) -> np.ndarray:
    """``C[g, g]`` for every group of the layout's partition: ``(b, G)``.

    For a positive of group g, the negatives below it in the (group, score) order
    include every negative of the earlier groups; ``neg_group_start`` removes them.
    """
    Wp = np.take(W, layout.pos_order, axis=1)
    CN = _cumulative(np.take(W, layout.neg_order, axis=1))
    below = _half_sum(CN, layout.neg_left, layout.neg_right)
    below *= Wp
    onehot = layout.pos_onehot.astype(W.dtype, copy=False)
    num = (below @ onehot).astype(np.float64)
    pos_g = (Wp @ onehot).astype(np.float64)
    return num - CN[:, layout.neg_group_start].astype(np.float64) * pos_g


def cross_concordant(W: np.ndarray, layout: PairLayout, pos_cells: np.ndarray, neg_cells: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Overall concordant count ``(b,)`` and, per cell, positives-vs-all and negatives-vs-all ``(b, K)``.

    ``layout`` must be the single-group layout; ``pos_cells``/``neg_cells`` are the
    ``(n_pos, K)``/``(n_neg, K)`` cell indicators of its sorted positives/negatives.
    """
    Wp = np.take(W, layout.pos_order, axis=1)
    Wn = np.take(W, layout.neg_order, axis=1)
    CN = _cumulative(Wn)
    CP = _cumulative(Wp)
    neg_below = _half_sum(CN, layout.neg_left, layout.neg_right)
    pos_above = _half_sum(CP, layout.pos_left, layout.pos_right)
    np.subtract(CP[:, -1:], pos_above, out=pos_above)
    neg_below *= Wp
    pos_above *= Wn
    pos_vs_all = (neg_below @ pos_cells.astype(W.dtype, copy=False)).astype(np.float64)
    neg_vs_all = (pos_above @ neg_cells.astype(W.dtype, copy=False)).astype(np.float64)
    return pos_vs_all.sum(axis=1), pos_vs_all, neg_vs_all


@dataclass(frozen=True)
class AucLayouts:
    overall: PairLayout
    pos_cells: np.ndarray
    neg_cells: np.ndarray
    features: dict[str, PairLayout]


def auc_layouts(score: np.ndarray, y: np.ndarray, slicing: Slicing) -> AucLayouts:
    """Precompute the sort orders one score vector needs (rows in cell order)."""
    overall = pair_layout(score, y)
    k = len(slicing.cell_starts)
    pos_cells = np.zeros((len(overall.pos_order), k), dtype=np.float32)
    pos_cells[np.arange(len(overall.pos_order)), slicing.cells[overall.pos_order]] = 1.0
    neg_cells = np.zeros((len(overall.neg_order), k), dtype=np.float32)
    neg_cells[np.arange(len(overall.neg_order)), slicing.cells[overall.neg_order]] = 1.0
    feats = {f: pair_layout(score, y, slicing.codes[f], len(slicing.groups[f])) for f in slicing.features}
    return AucLayouts(overall, pos_cells, neg_cells, feats)


def auc_sums(W: np.ndarray, layouts: AucLayouts, slicing: Slicing) -> dict[str, np.ndarray]:
    """Concordant-pair counts per group column ``(b, G)``.

    Keys: ``within`` (C[g, g]; the overall column holds the overall count),
    ``pos_vs_all`` (group positives against all negatives), ``neg_vs_all`` (group
    negatives against all positives).
    """
    overall, pos_cells, neg_cells = cross_concordant(W, layouts.overall, layouts.pos_cells, layouts.neg_cells)
    pos_vs_all = pos_cells @ slicing.member
    neg_vs_all = neg_cells @ slicing.member
    within = np.empty_like(pos_vs_all)
    within[:, 0] = overall
    for f in slicing.features:  # a few features, not resamples
        within[:, slicing.feature_columns(f)] = within_concordant(W, layouts.features[f])
    return {"within": within, "pos_vs_all": pos_vs_all, "neg_vs_all": neg_vs_all}


def bias_aucs(conc: dict[str, np.ndarray], pos: np.ndarray, neg: np.ndarray) -> dict[str, np.ndarray]:
    """Subgroup, BPSN and BNSP AUC per group column ``(b, G)`` (NaN where undefined)."""
    total_pos = pos[:, :1]
    total_neg = neg[:, :1]
    with np.errstate(divide="ignore", invalid="ignore"):
        sub = conc["within"] / (pos * neg)
        bpsn = (conc["neg_vs_all"] - conc["within"]) / ((total_pos - pos) * neg)
        bnsp = (conc["pos_vs_all"] - conc["within"]) / (pos * (total_neg - neg))
    out = {}
    for name, v in (("subgroup_auc", sub), ("bpsn_auc", bpsn), ("bnsp_auc", bnsp)):
        v = np.where(np.isfinite(v), v, np.nan)
        v[:, 0] = np.nan  # not defined for the overall population
        out[name] = v
    return out


def power_mean(values: np.ndarray, *, p: float, axis: int = -1) -> np.ndarray:
    """Generalized mean ``(mean(x ** p)) ** (1 / p)`` over ``axis``, ignoring NaN.

    >>> float(power_mean(np.array([0.5, 1.0]), p=1.0))
    0.75
    """
    values = np.asarray(values, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            m = np.nanmean(values ** p, axis=axis)
            return m ** (1.0 / p)


def final_bias_score(overall_auc: np.ndarray, sub: np.ndarray, bpsn: np.ndarray, bnsp: np.ndarray, *,
                     p: float, overall_weight: float, bias_weights: tuple[float, float, float]) -> np.ndarray:
    """Borkan et al.'s final metric over the group axis (last axis) of each bias AUC array."""
    terms = [w * power_mean(v, p=p) for w, v in zip(bias_weights, (sub, bpsn, bnsp))]
    return overall_weight * overall_auc + terms[0] + terms[1] + terms[2]
