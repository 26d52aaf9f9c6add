"""AUCs with DeLong's variance: logit-scale intervals and AUC gates (subgroup, BPSN, BNSP)."""

from __future__ import annotations

import numpy as np
from scipy import special, stats

from pipelines.fairness._binomial import proportion_interval
from pipelines.fairness._decide import (
    DEFAULT_MULTIPLICITY,
    DIRECTIONS,
    MSG_AUC_SIZES,
    MULTIPLICITY_METHODS,
    GateDecision,
    _alpha,
    _bound,
    _choice,
    _decide,
    _sides,
)

__all__ = ["delong_auc", "auc_interval", "auc_gate", "bias_auc_delong"]


# -- AUC --------------------------------------------------------------------------------------------------------

def delong_auc(*, positive_scores, negative_scores) -> tuple[np.ndarray, np.ndarray]:
    """AUC (Mann-Whitney, ties count 1/2) and DeLong's (1988) variance.

    Parameters
    ----------
    positive_scores, negative_scores
        Shapes ``(..., m)`` and ``(..., n)`` with ``m, n >= 2``; leading axes are batches.

    Returns
    -------
    (auc, variance)
        ``variance = s10^2 / m + s01^2 / n`` from the structural components
        ``V10_i`` (share of negatives below positive ``i``) and ``V01_j`` (share of
        positives above negative ``j``).

    Examples
    --------
    >>> auc, var = delong_auc(positive_scores=[0.9, 0.8, 0.4], negative_scores=[0.5, 0.3, 0.2, 0.1])
    >>> round(float(auc), 4), round(float(var), 5)
    (0.9167, 0.01389)
    """
    pos = np.asarray(positive_scores, dtype=np.float64)
    neg = np.asarray(negative_scores, dtype=np.float64)
    m, n = pos.shape[-1], neg.shape[-1]
    if m < 2 or n < 2:
        raise ValueError(MSG_AUC_SIZES.format(m=m, n=n))
    batch = np.broadcast_shapes(pos.shape[:-1], neg.shape[:-1])
    pooled = np.concatenate([np.broadcast_to(pos, batch + (m,)), np.broadcast_to(neg, batch + (n,))], axis=-1)
    r = stats.rankdata(pooled, axis=-1)
    r_pos = stats.rankdata(pooled[..., :m], axis=-1)
    r_neg = stats.rankdata(pooled[..., m:], axis=-1)
    v10 = (r[..., :m] - r_pos) / n
    v01 = 1.0 - (r[..., m:] - r_neg) / m
    auc = v10.mean(axis=-1)
    var = v10.var(axis=-1, ddof=1) / m + v01.var(axis=-1, ddof=1) / n
    return auc, var


def _logit(p):
    with np.errstate(all="ignore"):
        return np.log(p) - np.log1p(-p)


def _auc_z(auc, variance, n_positive, n_negative, value):
    """z of the AUC against ``value``: logit-scale Wald with DeLong's variance, or the
    Wilson score on min(m, n) trials where DeLong's variance is 0 (AUC 0 or 1)."""
    auc = np.asarray(auc, dtype=np.float64)
    var = np.asarray(variance, dtype=np.float64)
    k = np.minimum(np.asarray(n_positive, dtype=np.float64), np.asarray(n_negative, dtype=np.float64))
    degenerate = (auc <= 0) | (auc >= 1) | ~(var > 0)
    with np.errstate(all="ignore"):
        se = np.sqrt(var) / (auc * (1 - auc))
        z_logit = (_logit(auc) - _logit(value)) / se
        z_score = (auc - value) / np.sqrt(value * (1 - value) / k)
    z = np.where(degenerate, z_score, z_logit)
    return np.where(np.isnan(z) & np.isfinite(auc), 0.0, z)  # NaN only where the AUC is undefined


def auc_interval(*, auc, variance, n_positive, n_negative, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Interval for an AUC from its DeLong variance, on the logit scale.

    The Wald interval ``logit(AUC) +- z * se / (AUC (1 - AUC))`` keeps the ends in
    (0, 1) and is close to nominal at the demo's sizes (see ``docs/statistics.md``).
    Where DeLong's variance is 0 (complete separation, AUC 0 or 1) it uses the Wilson
    interval with ``min(n_positive, n_negative)`` trials: Bamber's (1975) bound
    ``AUC (1 - AUC) / min(m, n)`` on the variance makes that conservative.

    Examples
    --------
    >>> low, high = auc_interval(auc=[0.8, 1.0], variance=[0.002, 0.0], n_positive=[140, 140], n_negative=[20, 17])
    >>> low.round(3).tolist(), high.round(3).tolist()
    ([0.698, 0.816], [0.874, 1.0])
    """
    a = _alpha(level)
    auc, var, n_pos, n_neg = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64)
                                                   for v in (auc, variance, n_positive, n_negative)))
    z = stats.norm.isf(a)
    k = np.minimum(n_pos, n_neg)
    ok = np.isfinite(auc) & (k > 0)
    degenerate = (auc <= 0) | (auc >= 1) | ~(var > 0)
    with np.errstate(all="ignore"):
        se = np.sqrt(var) / (auc * (1 - auc))
        lg = _logit(auc)
        lo = special.expit(lg - z * se)
        hi = special.expit(lg + z * se)
    wl, wh = proportion_interval(events=np.where(ok, np.clip(auc, 0, 1) * k, 0.0), trials=np.where(ok, k, 1.0),
                                 level=level, method="wilson")
    low = np.where(ok, np.where(degenerate, wl, lo), np.nan)
    high = np.where(ok, np.where(degenerate, wh, hi), np.nan)
    return low, high


def auc_gate(*, auc, variance, n_positive, n_negative, bound: float, direction: str = "min", level: float = 0.95,
             multiplicity: str = DEFAULT_MULTIPLICITY) -> GateDecision:
    """Gate on an AUC-type metric in every group (subgroup, BPSN or BNSP AUC).

    Parameters
    ----------
    auc, variance
        Per group on the last axis, from :func:`delong_auc` or :func:`bias_auc_delong`.
    n_positive, n_negative
        The sizes of the two samples behind each AUC (for BPSN: the background
        positives and the group's negatives).
    bound, direction
        ``min``: AUC >= bound in every group.
    level, multiplicity
        As in :func:`rate_gate`.

    Examples
    --------
    >>> d = auc_gate(auc=[0.85, 0.66, 0.52], variance=[0.002, 0.003, 0.004], n_positive=[140, 140, 150],
    ...              n_negative=[25, 20, 17], bound=0.6)
    >>> d.status.tolist()
    ['pass', 'insufficient_evidence', 'insufficient_evidence']
    """
    _choice("direction", direction, DIRECTIONS)
    _choice("multiplicity", multiplicity, MULTIPLICITY_METHODS)
    a = _alpha(level)
    b = _bound(bound, what="an AUC")
    z = _auc_z(auc, variance, n_positive, n_negative, b)
    p_below, p_above = stats.norm.cdf(z), stats.norm.sf(z)
    if b in (0.0, 1.0):  # an AUC cannot be shown to lie beyond 0 or 1
        p_below = np.where(b == 0.0, 1.0, p_below)
        p_above = np.where(b == 1.0, 1.0, p_above)
    low, high = auc_interval(auc=auc, variance=variance, n_positive=n_positive, n_negative=n_negative, level=level)
    p_pass, p_fail = _sides(p_below, p_above, direction)
    return _decide(estimate=auc, low=low, high=high, p_pass=p_pass, p_fail_raw=p_fail, alpha=a, level=level, bound=b,
                   direction=direction, method="delong-logit", multiplicity=multiplicity)


def bias_auc_delong(*, scores, labels, groups, kind: str) -> dict[str, np.ndarray]:
    """Per-group subgroup, BPSN or BNSP AUC (Borkan et al. 2019) with DeLong variances.

    Parameters
    ----------
    scores, labels, groups
        One entry per row: score, 0/1 label, group name.
    kind
        ``"subgroup"`` (the group's positives vs its negatives), ``"bpsn"`` (background
        positives vs the group's negatives) or ``"bnsp"`` (the group's positives vs
        background negatives).

    Returns
    -------
    dict
        ``group`` (sorted names), ``auc``, ``variance``, ``n_positive``, ``n_negative``;
        NaN where a side has fewer than 2 scores.

    Examples
    --------
    >>> r = bias_auc_delong(scores=[.9, .2, .8, .65, .7, .1, .6, .4], labels=[1, 0, 1, 0, 1, 0, 1, 0],
    ...                     groups=list("aaaabbbb"), kind="bpsn")
    >>> r["group"].tolist(), r["auc"].tolist(), r["n_positive"].tolist()
    (['a', 'b'], [0.75, 1.0], [2.0, 2.0])
    """
    _choice("kind", kind, ("subgroup", "bpsn", "bnsp"))
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels)
    g = np.asarray(groups)
    names = np.unique(g)
    out = {k: np.full(len(names), np.nan) for k in ("auc", "variance", "n_positive", "n_negative")}
    for i, name in enumerate(names):
        inside = g == name
        pos_mask = (y == 1) & (inside if kind in ("subgroup", "bnsp") else ~inside)
        neg_mask = (y != 1) & (inside if kind in ("subgroup", "bpsn") else ~inside)
        m, n = int(pos_mask.sum()), int(neg_mask.sum())
        out["n_positive"][i], out["n_negative"][i] = m, n
        if m >= 2 and n >= 2:
            out["auc"][i], out["variance"][i] = delong_auc(positive_scores=s[pos_mask], negative_scores=s[neg_mask])
    return {"group": names, **out}
