"""Binomial proportions: exact (Clopper-Pearson), Wilson and Jeffreys intervals and tests; rate gates;
Rao-Scott effective counts of clustered proportions."""

from __future__ import annotations

import numpy as np
from scipy import special, stats

from pipelines.fairness._decide import (
    DEFAULT_MULTIPLICITY,
    DIRECTIONS,
    MULTIPLICITY_METHODS,
    PROPORTION_METHODS,
    GateDecision,
    _alpha,
    _bound,
    _choice,
    _counts,
    _decide,
    _sides,
)

__all__ = ["proportion_interval", "proportion_pvalues", "effective_counts", "rate_gate", "flip_rate_gate"]


# -- proportions ------------------------------------------------------------------------------------------------

def proportion_interval(*, events, trials, level: float = 0.95,
                        method: str = "clopper-pearson") -> tuple[np.ndarray, np.ndarray]:
    """Equal-tailed interval for a binomial proportion, valid at 0 and ``trials`` events.

    Parameters
    ----------
    events, trials
        Counts of the same shape (``trials > 0``). Non-integer counts are accepted
        (effective counts, see :func:`effective_counts`).
    level
        Two-sided level; each tail holds ``(1 - level) / 2``.
    method
        ``"clopper-pearson"`` (exact: Beta quantiles; Clopper and Pearson 1934),
        ``"wilson"`` (score; Wilson 1927) or ``"jeffreys"`` (Beta(x + 1/2, n - x + 1/2)
        quantiles, lower end 0 at x = 0 and upper end 1 at x = n; Brown, Cai and
        DasGupta 2001).

    Returns
    -------
    (low, high)
        Arrays of the shape of ``events``.

    Examples
    --------
    Zero flips among 54 twins: the exact 95% upper end is 0.066, not 0.

    >>> low, high = proportion_interval(events=[0, 81], trials=[54, 263])
    >>> low.round(4).tolist(), high.round(4).tolist()
    ([0.0, 0.2527], [0.066, 0.3676])
    >>> [round(float(v), 4) for v in proportion_interval(events=81, trials=263, method="wilson")]
    [0.2553, 0.3662]
    """
    _choice("method", method, PROPORTION_METHODS)
    a = _alpha(level)
    x, n = _counts(events, trials)
    with np.errstate(all="ignore"):
        if method == "wilson":
            z = stats.norm.isf(a)
            p = x / n
            centre = (x + z * z / 2) / (n + z * z)
            half = z * np.sqrt(n * p * (1 - p) + z * z / 4) / (n + z * z)
            low, high = centre - half, centre + half
        else:
            k = 1.0 if method == "clopper-pearson" else 0.5
            low = stats.beta.ppf(a, x + (1 - k), n - x + k)
            high = stats.beta.ppf(1 - a, x + k, n - x + (1 - k))
    low = np.where(x <= 0, 0.0, np.clip(low, 0.0, 1.0))
    high = np.where(x >= n, 1.0, np.clip(high, 0.0, 1.0))
    return low, high


def proportion_pvalues(*, events, trials, bound: float,
                       method: str = "clopper-pearson") -> tuple[np.ndarray, np.ndarray]:
    """One-sided p-values of a proportion against ``bound``: ``(p_below, p_above)``.

    ``p_below`` is small when the data show the rate is below ``bound`` (it tests
    H0: rate >= bound), ``p_above`` when they show it is above. Each matches its
    interval: ``p_below <= alpha`` exactly when the upper end of the
    ``1 - 2 alpha`` interval of the same ``method`` is ``<= bound``.

    Examples
    --------
    >>> pb, pa = proportion_pvalues(events=2, trials=20, bound=0.3)
    >>> round(float(pb), 4), round(float(pa), 4)    # P(X <= 2), P(X >= 2) at p = 0.3
    (0.0355, 0.9924)
    """
    _choice("method", method, PROPORTION_METHODS)
    b = _bound(bound, what="a rate")
    x, n = _counts(events, trials)
    with np.errstate(all="ignore"):
        if method == "clopper-pearson":
            # P_b(X <= x) = I_{1-b}(n - x, x + 1), P_b(X >= x) = I_b(x, n - x + 1), for real x too
            p_below = special.betainc(np.maximum(n - x, 1e-300), x + 1, 1 - b)
            p_above = special.betainc(np.maximum(x, 1e-300), n - x + 1, b)
        elif method == "jeffreys":
            p_below = special.betainc(n - x + 0.5, x + 0.5, 1 - b)
            p_above = special.betainc(x + 0.5, n - x + 0.5, b)
        else:
            z = (x / n - b) / np.sqrt(b * (1 - b) / n)
            p_below = stats.norm.cdf(z)
            p_above = stats.norm.sf(z)
    p_below = np.where(x >= n, 1.0, np.nan_to_num(p_below, nan=1.0))
    p_above = np.where(x <= 0, 1.0, np.nan_to_num(p_above, nan=1.0))
    return p_below, p_above


def effective_counts(*, successes, sizes, cluster_group, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Rao-Scott effective counts of a clustered proportion, per group.

    For clusters (e.g. the retrieved documents of one query) with ``successes[i]`` of
    ``sizes[i]`` items, group ``g``'s proportion ``sum(successes) / sum(sizes)`` has a
    variance inflated by the design effect ``d`` (cluster variance over binomial
    variance, floored at 1). Dividing both counts by ``d`` gives counts that binomial
    methods can use (Rao and Scott 1992).

    Parameters
    ----------
    successes, sizes
        Per cluster, shape ``(c,)``.
    cluster_group
        Group index of each cluster in ``range(n_groups)``.
    n_groups
        Number of groups.

    Returns
    -------
    (events, trials)
        Effective counts per group, shape ``(n_groups,)``; a group without clusters
        gets ``(0, 0)``.

    Examples
    --------
    Three documents per query, all documents of a query alike: the 12 documents carry
    the information of 3 (the 4 queries, less the small-sample factor ``c / (c - 1)``).

    >>> e, n = effective_counts(successes=[3, 0, 3, 0], sizes=[3, 3, 3, 3], cluster_group=[0, 0, 0, 0], n_groups=1)
    >>> e.round(3).tolist(), n.round(3).tolist()
    ([1.5], [3.0])
    """
    y = np.asarray(successes, dtype=np.float64)
    m = np.asarray(sizes, dtype=np.float64)
    g = np.asarray(cluster_group, dtype=np.int64)
    c = np.bincount(g, minlength=n_groups).astype(np.float64)
    sy = np.bincount(g, weights=y, minlength=n_groups)
    sm = np.bincount(g, weights=m, minlength=n_groups)
    with np.errstate(all="ignore"):
        p = np.where(sm > 0, sy / sm, 0.0)
        resid = np.bincount(g, weights=(y - p[g] * m) ** 2, minlength=n_groups)
        var_cluster = c / (c - 1) * resid / sm ** 2
        var_binom = p * (1 - p) / sm
        deff = np.where((c > 1) & (var_binom > 0), var_cluster / var_binom, 1.0)
    deff = np.maximum(deff, 1.0)
    return np.where(sm > 0, sy / deff, 0.0), np.where(sm > 0, sm / deff, 0.0)


# -- per-group rates --------------------------------------------------------------------------------------------

def rate_gate(*, events, trials, bound: float, direction: str, level: float = 0.95,
              method: str = "clopper-pearson", multiplicity: str = DEFAULT_MULTIPLICITY) -> GateDecision:
    """Gate on a rate in every group (e.g. ``fpr <= 0.45`` per group).

    Parameters
    ----------
    events, trials
        Per group counts on the last axis (``(..., G)``), e.g. false positives and
        negatives of each group.
    bound, direction
        ``max``: rate <= bound in every group; ``min``: rate >= bound.
    level
        Two-sided level of the intervals shown; each decision's error rate is
        ``(1 - level) / 2``.
    method
        See :func:`proportion_interval`. ``clopper-pearson`` (default) is exact: its
        one-sided test is the uniformly most powerful non-randomised test.
    multiplicity
        Adjustment of the per-group *fail* tests (pass needs none; see the module
        docstring).

    Examples
    --------
    >>> d = rate_gate(events=[2, 5, 14], trials=[25, 20, 17], bound=0.45, direction="max")
    >>> d.status.tolist(), d.verdict.item()
    (['pass', 'insufficient_evidence', 'fail'], 'fail')
    >>> d.high.round(3).tolist(), d.p_fail.round(4).tolist()
    ([0.26, 0.491, 0.962], [1.0, 1.0, 0.0056])
    >>> print(d.reasons()[2])
    fail: 95% interval [0.5657, 0.962] (clopper-pearson) lies wholly beyond 0.45, holm-adjusted p 0.0056
    """
    _choice("direction", direction, DIRECTIONS)
    _choice("multiplicity", multiplicity, MULTIPLICITY_METHODS)
    a = _alpha(level)
    b = _bound(bound, what="a rate")
    x, n = _counts(events, trials)
    low, high = proportion_interval(events=x, trials=n, level=level, method=method)
    p_below, p_above = proportion_pvalues(events=x, trials=n, bound=b, method=method)
    p_pass, p_fail = _sides(p_below, p_above, direction)
    return _decide(estimate=x / n, low=low, high=high, p_pass=p_pass, p_fail_raw=p_fail, alpha=a, level=level,
                   bound=b, direction=direction, method=method, multiplicity=multiplicity)


def flip_rate_gate(*, flips, twins, bound: float, direction: str = "max", level: float = 0.95,
                   method: str = "clopper-pearson", multiplicity: str = DEFAULT_MULTIPLICITY) -> GateDecision:
    """Gate on the counterfactual flip rate of every group.

    A twin is a pair (original, swapped text); it *flips* when the two decisions
    differ, i.e. it is a discordant pair. Given ``twins`` pairs of a group, the number
    of discordant pairs is Binomial(twins, q) whatever the correlation inside a pair
    (the conditioning behind McNemar's test), so the exact binomial methods of
    :func:`rate_gate` apply with one trial per twin.

    Examples
    --------
    >>> d = flip_rate_gate(flips=[0, 3], twins=[54, 47], bound=0.20)
    >>> d.status.tolist(), d.high.round(3).tolist()
    (['pass', 'pass'], [0.066, 0.175])
    """
    return rate_gate(events=flips, trials=twins, bound=bound, direction=direction, level=level, method=method,
                     multiplicity=multiplicity)
