"""Gaps between groups: Miettinen-Nurminen score limits for every pairwise difference of rates, combined
into gap and equalized-odds gates (intersection-union for pass, Bonferroni for fail)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import stats

from pipelines.fairness._decide import DIRECTIONS, MSG_GROUPS, GateDecision, _alpha, _bound, _choice, _counts, _decide

__all__ = ["difference_interval", "difference_pvalues", "gap_gate", "equalized_odds_gate", "gap_interval"]


# -- difference of two proportions (Miettinen-Nurminen score) ---------------------------------------------------

def _mn_restricted(x1, n1, x2, n2, delta):
    """Maximum-likelihood (p1, p2) under p1 - p2 = delta (Farrington and Manning 1990, closed form)."""
    p1, p2 = x1 / n1, x2 / n2
    theta = n2 / n1
    a = 1 + theta
    b = -(1 + theta + p1 + theta * p2 + delta * (theta + 2))
    c = delta * delta + delta * (2 * p1 + theta + 1) + p1 + theta * p2
    d = -p1 * delta * (1 + delta)
    v = b ** 3 / (27 * a ** 3) - b * c / (6 * a * a) + d / (2 * a)
    u = np.sign(v) * np.sqrt(np.maximum(b * b / (9 * a * a) - c / (3 * a), 0.0))
    with np.errstate(all="ignore"):
        cos_arg = np.where(u != 0, v / u ** 3, 0.0)
    w = (np.pi + np.arccos(np.clip(cos_arg, -1.0, 1.0))) / 3
    t1 = np.where(u != 0, 2 * u * np.cos(w) - b / (3 * a), -b / (3 * a))
    t1 = np.clip(t1, np.maximum(0.0, delta), np.minimum(1.0, 1.0 + delta))
    return t1, t1 - delta


def _mn_z(x1, n1, x2, n2, delta):
    """Miettinen-Nurminen (1985) score statistic for H0: p1 - p2 = delta (decreasing in delta)."""
    t1, t2 = _mn_restricted(x1, n1, x2, n2, delta)
    total = n1 + n2
    var = (t1 * (1 - t1) / n1 + t2 * (1 - t2) / n2) * total / (total - 1)
    num = x1 / n1 - x2 / n2 - delta
    with np.errstate(all="ignore"):
        z = num / np.sqrt(var)
    return np.where(num == 0, 0.0, z)


def difference_pvalues(*, events1, trials1, events2, trials2, margin: float) -> tuple[np.ndarray, np.ndarray]:
    """Score p-values of ``d = p1 - p2`` against ``margin``: ``(p_below, p_above)``.

    ``p_below`` tests H0: d >= margin (small when d < margin), ``p_above`` tests
    H0: d <= margin; both from the Miettinen-Nurminen statistic at ``delta = margin``,
    referred to the normal distribution (Farrington and Manning 1990).

    Examples
    --------
    >>> pb, pa = difference_pvalues(events1=7, trials1=20, events2=3, trials2=25, margin=0.3)
    >>> round(float(pb), 4)
    0.2906
    """
    x1, n1 = _counts(events1, trials1, names=("events1", "trials1"))
    x2, n2 = _counts(events2, trials2, names=("events2", "trials2"))
    z = _mn_z(x1, n1, x2, n2, float(margin))
    return stats.norm.cdf(z), stats.norm.sf(z)


def _mn_limits(x1, n1, x2, n2, alpha, *, iterations: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """One-sided ``1 - alpha`` limits of p1 - p2 by bisection on the score statistic."""
    alpha = np.broadcast_to(np.asarray(alpha, dtype=np.float64), np.broadcast_shapes(np.shape(x1), np.shape(alpha)))
    z = stats.norm.isf(alpha)
    d = x1 / n1 - x2 / n2
    eps = 1e-12
    limits = []
    for target, lo, hi in ((-z, d, np.full_like(d, 1 - eps)), (z, np.full_like(d, -1 + eps), d)):
        lo, hi = np.array(lo, dtype=np.float64), np.array(hi, dtype=np.float64)
        for _ in range(iterations):  # z(delta) decreases in delta; find z(delta) == target
            mid = (lo + hi) / 2
            above = _mn_z(x1, n1, x2, n2, mid) > target
            lo = np.where(above, mid, lo)
            hi = np.where(above, hi, mid)
        limits.append((lo + hi) / 2)
    upper, lower = limits
    upper = np.where(d >= 1 - eps, 1.0, upper)
    lower = np.where(d <= -1 + eps, -1.0, lower)
    return lower, upper


def difference_interval(*, events1, trials1, events2, trials2,
                        level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Miettinen-Nurminen score interval for the difference ``p1 - p2`` of two independent proportions.

    The interval inverts the score test with the variance at the restricted maximum
    likelihood estimate, times ``N / (N - 1)`` (Miettinen and Nurminen 1985); it stays
    inside [-1, 1] and is not degenerate at 0 or ``n`` events.

    Examples
    --------
    >>> low, high = difference_interval(events1=56, trials1=70, events2=48, trials2=80)
    >>> round(float(low), 4), round(float(high), 4)          # Newcombe (1998), Table II
    (0.0528, 0.3382)
    """
    a = _alpha(level)
    x1, n1 = _counts(events1, trials1, names=("events1", "trials1"))
    x2, n2 = _counts(events2, trials2, names=("events2", "trials2"))
    return _mn_limits(x1, n1, x2, n2, a)


# -- gaps between groups ----------------------------------------------------------------------------------------

def _pairs(g: int) -> tuple[np.ndarray, np.ndarray]:
    i, j = np.triu_indices(g, k=1)
    return i, j


def _gap_components(components: Sequence[tuple[np.ndarray, np.ndarray]], names: Sequence[str]):
    out = []
    for (events, trials), name in zip(components, names, strict=True):
        x, n = _counts(events, trials, names=(f"{name} events", f"{name} trials"))
        if x.ndim == 0 or x.shape[-1] < 2:
            raise ValueError(MSG_GROUPS.format(name=name, shape=x.shape))
        out.append((x, n))
    return out


def _gap_decision(components, *, bound: float, direction: str, level: float, intervals: bool,
                  names: Sequence[str]) -> GateDecision:
    """Max over components of (max - min over groups), decided from all pairwise differences.

    pass (direction max): every pair's one-sided ``1 - alpha`` limits lie within
    ``[-bound, bound]`` (intersection-union over 2K one-sided tests per component, no
    adjustment); fail: some pair's limit at ``alpha / (2 K_total)`` lies beyond
    (Bonferroni over all one-sided tests). The interval ``[low, high]`` is built from the
    same limits, so the decision is "interval vs bound".
    """
    _choice("direction", direction, DIRECTIONS)
    a = _alpha(level)
    b = _bound(bound, what="a difference between group rates")
    comps = _gap_components(components, names)
    n_tests = sum(2 * len(_pairs(x.shape[-1])[0]) for x, _ in comps)
    est, iut_p, union_p, low, high = [], [], [], [], []
    for x, n in comps:
        i, j = _pairs(x.shape[-1])
        x1, n1, x2, n2 = x[..., i], n[..., i], x[..., j], n[..., j]
        rate = x / n
        est.append(rate.max(axis=-1) - rate.min(axis=-1))
        # p-values of "d >= b" and "d <= -b" (both small => |d| < b), and of "d <= b", "d >= -b"
        z_hi = _mn_z(x1, n1, x2, n2, b)
        z_lo = _mn_z(x1, n1, x2, n2, -b)
        p_in = np.maximum(stats.norm.cdf(z_hi), stats.norm.sf(z_lo))      # TOST p-value per pair
        p_out = np.minimum(stats.norm.sf(z_hi), stats.norm.cdf(z_lo))     # smaller one-sided "beyond" p
        iut_p.append(p_in.max(axis=-1))
        union_p.append(p_out.min(axis=-1))
        if intervals:
            lo_a, up_a = _mn_limits(x1, n1, x2, n2, a)
            lo_b, up_b = _mn_limits(x1, n1, x2, n2, a / n_tests)
            high.append(np.maximum(up_a, -lo_a).max(axis=-1))
            low.append(np.maximum(np.maximum(lo_b, -up_b), 0.0).max(axis=-1))
    estimate = np.max(est, axis=0)
    p_within = np.max(iut_p, axis=0)                                   # IUT: all pairs within the bound
    p_beyond = np.minimum(1.0, n_tests * np.min(union_p, axis=0))      # Bonferroni: some pair beyond
    if intervals:
        lo_arr, hi_arr = np.max(low, axis=0), np.max(high, axis=0)
    else:
        lo_arr = hi_arr = np.full(estimate.shape, np.nan)
    p_pass, p_fail = (p_within, p_beyond) if direction == "max" else (p_beyond, p_within)
    return _decide(estimate=estimate[..., None], low=lo_arr[..., None], high=hi_arr[..., None],
                   p_pass=p_pass[..., None], p_fail_raw=p_fail[..., None], alpha=a, level=level, bound=b,
                   direction=direction, method="miettinen-nurminen pairwise (IUT / Bonferroni)",
                   multiplicity="bonferroni (pairs)", adjust=False)


def gap_gate(*, events, trials, bound: float, direction: str = "max", level: float = 0.95,
             intervals: bool = True) -> GateDecision:
    """Gate on the gap ``max - min`` of a rate over groups (e.g. ``fpr_difference <= 0.3``).

    Parameters
    ----------
    events, trials
        Per group counts on the last axis, e.g. false positives and negatives; shape
        ``(..., G)`` with ``G >= 2`` (only the groups eligible for the metric).
    bound, direction
        The gate: ``max`` means gap <= bound.
    level
        Two-sided level of the interval; each decision has error rate ``(1 - level) / 2``.
    intervals
        Compute the interval ends (bisection; skip in large simulations: the decision
        uses p-values at the bound and does not need them).

    Returns
    -------
    GateDecision
        One unit (the gap); ``estimate`` is the plain max - min, ``[low, high]`` the
        interval built from the pairwise score limits (see ``docs/statistics.md``).

    Examples
    --------
    Five groups of the demo's sizes (17-38 negatives) with false-positive rates of
    0.29-0.32: the gap could still be up to 0.29. With rates of 0.18-0.39 it could be
    up to 0.44, and ``gap <= 0.30`` is not shown.

    >>> d = gap_gate(events=[11, 8, 7, 5, 8], trials=[38, 26, 23, 17, 25], bound=0.30)
    >>> d.verdict.item(), round(float(d.estimate[0]), 3), round(float(d.low[0]), 3), round(float(d.high[0]), 3)
    ('pass', 0.031, 0.0, 0.294)
    >>> d = gap_gate(events=[7, 8, 9, 5, 8], trials=[38, 26, 23, 17, 25], bound=0.30)
    >>> d.verdict.item(), round(float(d.estimate[0]), 3), round(float(d.high[0]), 3)
    ('insufficient_evidence', 0.207, 0.438)
    """
    return _gap_decision([(events, trials)], bound=bound, direction=direction, level=level, intervals=intervals,
                         names=("rate",))


def equalized_odds_gate(*, tp, positives, fp, negatives, bound: float, direction: str = "max",
                        level: float = 0.95, intervals: bool = True) -> GateDecision:
    """Gate on the equalized odds difference ``max(TPR gap, FPR gap)`` over groups.

    Both gaps must be within the bound to pass (an intersection-union test again);
    a fail needs one pairwise TPR or FPR difference beyond it, Bonferroni over all of
    them. Arguments as in :func:`gap_gate`, per group: true positives and positives,
    false positives and negatives.

    Examples
    --------
    >>> d = equalized_odds_gate(tp=[160, 120, 180], positives=[200, 150, 220], fp=[20, 60, 90],
    ...                         negatives=[200, 150, 220], bound=0.3)
    >>> d.verdict.item(), round(float(d.estimate[0]), 3), d.low.round(3).tolist(), d.high.round(3).tolist()
    ('insufficient_evidence', 0.309, [0.193], [0.389])
    """
    return _gap_decision([(tp, positives), (fp, negatives)], bound=bound, direction=direction, level=level,
                         intervals=intervals, names=("tpr", "fpr"))


def gap_interval(*, components: Sequence[tuple[np.ndarray, np.ndarray]], level: float = 0.95) -> tuple[float, float]:
    """The interval of a gap (max over components of max - min over groups) that :func:`gap_gate` decides with.

    ``components``: per compared rate, the groups' ``(events, trials)`` (two components for
    equalized odds). It does not depend on any bound.

    >>> low, high = gap_interval(components=[([11, 8, 7, 5, 8], [38, 26, 23, 17, 25])])
    >>> round(low, 3), round(high, 3)
    (0.0, 0.294)
    """
    d = _gap_decision(list(components), bound=0.5, direction="max", level=level, intervals=True,
                      names=tuple(f"component {i}" for i in range(len(components))))
    return float(d.low[0]), float(d.high[0])
