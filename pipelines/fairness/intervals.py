"""Intervals with known coverage and gate decisions with known error rates.

A gate asks whether a metric lies on the allowed side of a bound (``direction="max"``:
value <= bound; ``"min"``: value >= bound). Each judged unit (a group, or the one gap of a
feature) gets two one-sided tests at level ``alpha = (1 - level) / 2``:

* **pass** rejects "the value is on the wrong side": the unit's interval lies wholly on
  the allowed side. A gate passes only if *every* unit passes; that is an
  intersection-union test (Berger 1982), whose level is ``alpha`` without any adjustment.
* **fail** rejects "the value is on the allowed side". A gate fails if *any* unit fails,
  a union-intersection test, so the per-unit fail tests are adjusted for multiplicity
  (``"holm"`` by default; ``"bonferroni"`` or ``"none"``).
* otherwise the unit is **insufficient_evidence**.

So a gate whose every group sits exactly on the bound is declared ``fail`` at most
``alpha`` of the time (familywise), and a gate with one group beyond the bound passes at
most ``alpha`` of the time. The estimators per metric family:

================  ==============================================================
family            method
================  ==============================================================
rate per group    exact binomial (Clopper-Pearson 1934); Wilson 1927 and Jeffreys
                  as options. Valid at 0 and n events.
flip rate         the same: the flips among ``n`` twins are Binomial(n, q).
gap (max - min)   pairwise Miettinen-Nurminen (1985) score tests of every
                  difference against the margin: pass if all pairs are within
                  the bound (IUT, no adjustment), fail if some pair is beyond
                  it (Bonferroni over the pairs). Equalized odds: both rates.
AUC (subgroup,    DeLong (1988) variance, Wald interval on the logit scale; at an
BPSN, BNSP)       AUC of 0 or 1 a Wilson interval on the smaller class (Bamber's
                  variance bound).
anything else     bootstrap replicates: BCa (Efron 1987) or percentile ends, with
                  the Monte Carlo error of each end; a decision within
                  ``mc_z`` Monte Carlo standard errors of the bound is
                  ``near_bound`` and not claimed (see :func:`bootstrap_gate`,
                  :func:`adaptive_bootstrap_gate`).
================  ==============================================================

Intervals are never widened to contain their point estimate: for a gap the point
(max - min of the group estimates) is biased upward, and the interval is the one the
decision uses. All functions are vectorised: leading axes are batches (for instance
simulation replicates), the last axis holds the units of one gate. ``docs/statistics.md``
gives the reasoning, the references and the calibration study.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from scipy import special, stats

__all__ = [
    "PASS",
    "FAIL",
    "INSUFFICIENT",
    "DIRECTIONS",
    "PROPORTION_METHODS",
    "BOOTSTRAP_METHODS",
    "MULTIPLICITY_METHODS",
    "DEFAULT_MULTIPLICITY",
    "DEFAULT_MC_Z",
    "GateDecision",
    "BootstrapInterval",
    "proportion_interval",
    "proportion_pvalues",
    "difference_interval",
    "difference_pvalues",
    "delong_auc",
    "auc_interval",
    "bias_auc_delong",
    "effective_counts",
    "adjust_pvalues",
    "rate_gate",
    "flip_rate_gate",
    "gap_gate",
    "equalized_odds_gate",
    "auc_gate",
    "bootstrap_interval",
    "bootstrap_gate",
    "adaptive_bootstrap_gate",
]

PASS = "pass"
FAIL = "fail"
INSUFFICIENT = "insufficient_evidence"

DIRECTIONS = ("max", "min")
PROPORTION_METHODS = ("clopper-pearson", "wilson", "jeffreys")
BOOTSTRAP_METHODS = ("bca", "percentile")
MULTIPLICITY_METHODS = ("none", "bonferroni", "holm")
#: Holm: familywise control of false *fail* verdicts under any dependence between groups,
#: uniformly more powerful than Bonferroni; pass decisions need no adjustment (IUT).
DEFAULT_MULTIPLICITY = "holm"
#: A bootstrap interval end closer to the bound than this many Monte Carlo standard
#: errors is ``near_bound`` (z = 3: the B = infinity end lies on the other side of the
#: bound with probability below 0.14% when Monte Carlo error is normal).
DEFAULT_MC_Z = 3.0

MSG_CHOICE = "`{name}` must be one of {choices}. Got {value!r} instead."
MSG_LEVEL = "`level` must be a number strictly between 0.5 and 1 (e.g. 0.95). Got {value!r} instead."
MSG_BOUND = "`bound` must be a finite number in [{low:g}, {high:g}] ({what}). Got {value!r} instead.{hint}"
MSG_COUNTS = ("`{events}` must lie in [0, `{trials}`] and `{trials}` must be positive and finite. "
              "Got {events}={ev!r} and {trials}={tr!r} instead.")
MSG_SHAPES = "`{a}` and `{b}` must have the same shape. Got {sa} and {sb} instead."
MSG_GROUPS = "a gap needs at least 2 groups on the last axis of `{name}`. Got shape {shape} instead."
MSG_AUC_SIZES = ("`positive_scores` and `negative_scores` need at least 2 scores each on their last axis "
                 "(DeLong's variance). Got {m} and {n} instead.")
MSG_REPLICATES = ("`replicates` must have shape (B, *estimate.shape) with B >= 2. Got {shape} for an estimate of "
                  "shape {est} instead.")
MSG_JACKKNIFE = "`jackknife` must have shape (n, *estimate.shape) with n >= 3. Got {shape} instead."
MSG_RESAMPLES = ("`initial_resamples` must be >= 100 and <= `max_resamples`. Got initial_resamples={initial!r}, "
                 "max_resamples={max!r} instead.")
MSG_DRAW = "`draw(n, rng)` must return an array of shape (n, *estimate.shape) = {want}. Got {got} instead."


# -- validation -------------------------------------------------------------------------------------------------

def _choice(name: str, value: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValueError(MSG_CHOICE.format(name=name, choices=", ".join(repr(c) for c in choices), value=value))
    return value


def _alpha(level: float) -> float:
    try:
        ok = 0.5 < float(level) < 1.0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(MSG_LEVEL.format(value=level))
    return (1.0 - float(level)) / 2.0


_NOUNS = {"a rate": "Rates", "a difference between group rates": "Differences of rates", "an AUC": "AUCs"}


def _bound(bound: float, *, what: str) -> float:
    """A finite bound in [0, 1]; a percent typo (20 for 0.20) gets a hint."""
    try:
        b = float(bound)
    except (TypeError, ValueError):
        raise ValueError(MSG_BOUND.format(low=0, high=1, what=what, value=bound, hint="")) from None
    if not np.isfinite(b) or not 0.0 <= b <= 1.0:
        hint = ""
        if np.isfinite(b) and 1.0 < b <= 100.0:
            v = b / 100
            guess = f"{v:.2f}" if round(v, 2) == v else f"{v:g}"
            hint = f" {_NOUNS.get(what, 'They')} are fractions in [0, 1]; did you mean {guess}?"
        raise ValueError(MSG_BOUND.format(low=0, high=1, what=what, value=bound, hint=hint))
    return b


def _counts(events, trials, *, names=("events", "trials")) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(events, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    if x.shape != n.shape:
        raise ValueError(MSG_SHAPES.format(a=names[0], b=names[1], sa=x.shape, sb=n.shape))
    bad = ~(np.isfinite(x) & np.isfinite(n) & (n > 0) & (x >= 0) & (x <= n))
    if bad.any():
        i = tuple(np.argwhere(bad)[0])
        raise ValueError(MSG_COUNTS.format(events=names[0], trials=names[1], ev=x[i].item(), tr=n[i].item()))
    return x, n


# -- results ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class GateDecision:
    """The judgement of one gate: per unit (group, or the single gap) and rolled up.

    Arrays have shape ``(..., k)`` for ``k`` units (``k = 1`` for a gap), with any
    leading batch axes; ``verdict`` has shape ``(...)``.

    Attributes
    ----------
    status
        ``pass`` / ``fail`` / ``insufficient_evidence`` per unit.
    verdict
        The gate: ``fail`` if any unit fails, else ``insufficient_evidence`` if any unit
        is (or there are no units), else ``pass``.
    estimate, low, high
        Point estimate and the two-sided interval at ``level`` (each tail ``alpha``).
        The interval is not widened to contain the estimate.
    p_pass
        p-value of "the value is on the wrong side"; the unit passes when ``p_pass <= alpha``.
    p_fail
        p-value of "the value is on the allowed side", after the multiplicity
        adjustment; the unit fails when ``p_fail <= alpha``.
    near_bound
        A bootstrap end within ``mc_z`` Monte Carlo standard errors of the bound
        (always False for the exact and analytic methods). Such a unit is reported as
        ``insufficient_evidence``: its decision could change with the bootstrap seed.
    """

    status: np.ndarray
    verdict: np.ndarray
    estimate: np.ndarray
    low: np.ndarray
    high: np.ndarray
    p_pass: np.ndarray
    p_fail: np.ndarray
    near_bound: np.ndarray
    bound: float
    direction: str
    level: float
    method: str
    multiplicity: str
    resamples: int | None = None

    @property
    def alpha(self) -> float:
        return (1.0 - self.level) / 2.0

    def reasons(self) -> np.ndarray:
        """One sentence per unit that says why it got its status (same shape as ``status``)."""
        out = np.empty(self.status.shape, dtype=object)
        a = self.alpha
        pct = f"{100 * self.level:g}%"
        for idx in np.ndindex(self.status.shape):
            s, lo, hi = self.status[idx], self.low[idx], self.high[idx]
            ci = f"{pct} interval [{lo:.4g}, {hi:.4g}] ({self.method})"
            side = "<=" if self.direction == "max" else ">="
            if self.near_bound[idx]:
                text = (f"{ci} has an end within Monte Carlo error of the bound {self.bound:g}"
                        f" after {self.resamples} resamples: not claimed")
            elif s == PASS:
                text = f"{ci} lies wholly {side} {self.bound:g}"
            elif s == FAIL:
                adj = "" if self.multiplicity == "none" else f", {self.multiplicity}-adjusted p {self.p_fail[idx]:.3g}"
                text = f"{ci} lies wholly beyond {self.bound:g}{adj}"
            elif np.isfinite(self.p_fail[idx]) and (self.direction == "max" and lo > self.bound
                                                    or self.direction == "min" and hi < self.bound):
                text = (f"{ci} lies beyond {self.bound:g}, but the {self.multiplicity}-adjusted p "
                        f"{self.p_fail[idx]:.3g} > {a:.3g} ({self.status.shape[-1]} units judged)")
            else:
                text = f"{ci} straddles the bound {self.bound:g}"
            out[idx] = f"{s}: {text}"
        return out


def _rollup(status: np.ndarray) -> np.ndarray:
    if status.shape[-1] == 0:
        return np.full(status.shape[:-1], INSUFFICIENT, dtype=object)
    fail = (status == FAIL).any(axis=-1)
    insufficient = (status == INSUFFICIENT).any(axis=-1)
    return np.where(fail, FAIL, np.where(insufficient, INSUFFICIENT, PASS)).astype(object)


def _decide(*, estimate, low, high, p_pass, p_fail_raw, alpha, level, bound, direction, method, multiplicity,
            near_bound=None, resamples=None, adjust=True) -> GateDecision:
    p_fail = np.asarray(p_fail_raw, dtype=np.float64)
    if adjust:
        p_fail = adjust_pvalues(pvalues=p_fail, method=multiplicity)
    p_pass = np.asarray(p_pass, dtype=np.float64)
    status = np.full(p_pass.shape, INSUFFICIENT, dtype=object)
    status[np.nan_to_num(p_pass, nan=1.0) <= alpha] = PASS
    status[np.nan_to_num(p_fail, nan=1.0) <= alpha] = FAIL
    near = np.zeros(p_pass.shape, dtype=bool) if near_bound is None else np.asarray(near_bound, dtype=bool)
    status[near] = INSUFFICIENT
    return GateDecision(status=status, verdict=_rollup(status), estimate=np.asarray(estimate, dtype=np.float64),
                        low=np.asarray(low, dtype=np.float64), high=np.asarray(high, dtype=np.float64), p_pass=p_pass,
                        p_fail=p_fail, near_bound=near, bound=bound, direction=direction, level=float(level),
                        method=method, multiplicity=multiplicity, resamples=resamples)


def _sides(p_below: np.ndarray, p_above: np.ndarray, direction: str) -> tuple[np.ndarray, np.ndarray]:
    """(p_pass, p_fail) from the p-values of "value < bound" and "value > bound"."""
    return (p_below, p_above) if direction == "max" else (p_above, p_below)


# -- multiplicity -----------------------------------------------------------------------------------------------

def adjust_pvalues(*, pvalues, method: str = DEFAULT_MULTIPLICITY, axis: int = -1) -> np.ndarray:
    """Familywise-adjusted p-values along ``axis`` (NaN entries are not counted).

    Parameters
    ----------
    pvalues
        p-values, any shape.
    method
        ``"none"``, ``"bonferroni"`` (``m * p``) or ``"holm"`` (Holm 1979 step-down:
        the ``j``-th smallest becomes ``max_{i <= j} (m - i + 1) p_(i)``), capped at 1.
    axis
        The axis of the family.

    Examples
    --------
    >>> adjust_pvalues(pvalues=[0.01, 0.04, 0.03], method="holm").round(3).tolist()
    [0.03, 0.06, 0.06]
    >>> adjust_pvalues(pvalues=[0.01, float("nan"), 0.03], method="bonferroni").round(3).tolist()
    [0.02, nan, 0.06]
    """
    _choice("method", method, MULTIPLICITY_METHODS)
    p = np.asarray(pvalues, dtype=np.float64)
    if method == "none" or p.size == 0:
        return p.copy()
    q = np.moveaxis(p, axis, -1)
    finite = np.isfinite(q)
    m = finite.sum(axis=-1, keepdims=True)
    if method == "bonferroni":
        out = np.where(finite, np.minimum(1.0, q * m), np.nan)
    else:
        order = np.argsort(np.where(finite, q, np.inf), axis=-1, kind="stable")
        sorted_p = np.take_along_axis(q, order, axis=-1)
        rank = np.arange(q.shape[-1])
        scaled = np.where(rank < m, (m - rank) * sorted_p, np.nan)
        scaled = np.fmax.accumulate(np.nan_to_num(scaled, nan=-np.inf), axis=-1)
        scaled = np.where(rank < m, np.minimum(1.0, scaled), np.nan)
        out = np.empty_like(q)
        np.put_along_axis(out, order, scaled, axis=-1)
    return np.moveaxis(out, -1, axis)


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


# -- bootstrap --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BootstrapInterval:
    """Bootstrap interval ends with their Monte Carlo standard errors.

    ``low_mc_se``/``high_mc_se`` estimate how much each end would move with another
    bootstrap seed (same number of resamples): the standard deviation of the end's
    quantile level (``q (1 - q) / B``, plus the Monte Carlo error of the BCa bias
    correction ``z0``) times the sparsity ``1 / density`` at the end, estimated by a
    difference quotient of the replicates' quantiles with the Hall and Sheather (1988)
    bandwidth. ``levels`` holds the quantile levels of the two ends.
    """

    low: np.ndarray
    high: np.ndarray
    low_mc_se: np.ndarray
    high_mc_se: np.ndarray
    z0: np.ndarray
    acceleration: np.ndarray
    levels: tuple[np.ndarray, np.ndarray]
    resamples: np.ndarray


def _sorted_valid(replicates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r = np.where(np.isfinite(replicates), replicates, np.nan)
    return np.sort(r, axis=0), np.isfinite(r).sum(axis=0)


def _quantile(sorted_r: np.ndarray, n_valid: np.ndarray, q) -> np.ndarray:
    """Linear-interpolation quantile at per-column levels ``q`` of a NaN-last sorted array."""
    q = np.clip(np.asarray(q, dtype=np.float64), 0.0, 1.0)
    pos = q * np.maximum(n_valid - 1, 0)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, np.maximum(n_valid - 1, 0))
    frac = pos - lo
    a = np.take_along_axis(sorted_r, lo[None], axis=0)[0]
    b = np.take_along_axis(sorted_r, hi[None], axis=0)[0]
    return np.where(n_valid > 0, a + frac * (b - a), np.nan)


def _bca_map(z0, acc, z):
    """Quantile level of the BCa end for normal quantile ``z``."""
    u = z0 + z
    with np.errstate(all="ignore"):
        return stats.norm.cdf(z0 + u / (1 - acc * u))


def _acceleration(jackknife: np.ndarray) -> np.ndarray:
    """Jackknife acceleration; NaN rows are ignored (units with fewer leave-one-out values pad with NaN)."""
    valid = np.isfinite(jackknife)
    k = np.maximum(valid.sum(axis=0), 1)
    mean = np.where(valid, jackknife, 0.0).sum(axis=0) / k
    d = np.where(valid, mean - jackknife, 0.0)
    s2 = (d ** 2).sum(axis=0)
    with np.errstate(all="ignore"):
        a = (d ** 3).sum(axis=0) / (6 * s2 ** 1.5)
    return np.where(s2 > 0, a, 0.0)


def _bootstrap_parts(estimate, replicates, method, jackknife):
    _choice("method", method, BOOTSTRAP_METHODS)
    est = np.asarray(estimate, dtype=np.float64)
    reps = np.asarray(replicates, dtype=np.float64)
    if reps.ndim != est.ndim + 1 or reps.shape[1:] != est.shape or reps.shape[0] < 2:
        raise ValueError(MSG_REPLICATES.format(shape=reps.shape, est=est.shape))
    sorted_r, n_valid = _sorted_valid(reps)
    nv = np.maximum(n_valid, 1)
    if method == "bca":
        below = (np.nan_to_num(reps, nan=np.inf) < est).sum(axis=0) + 0.5 * (reps == est).sum(axis=0)
        share = np.clip(below / nv, 0.5 / nv, 1 - 0.5 / nv)
        z0 = stats.norm.ppf(share)
        if jackknife is None:
            acc = np.zeros(est.shape)
        else:
            jk = np.asarray(jackknife, dtype=np.float64)
            if jk.ndim != est.ndim + 1 or jk.shape[1:] != est.shape or jk.shape[0] < 3:
                raise ValueError(MSG_JACKKNIFE.format(shape=jk.shape))
            acc = _acceleration(jk)
    else:
        z0 = np.zeros(est.shape)
        acc = np.zeros(est.shape)
    return est, reps, sorted_r, n_valid, z0, acc


def _end_and_se(sorted_r, n_valid, z0, acc, z, bca: bool):
    """Quantile end for normal quantile ``z`` and its Monte Carlo standard error."""
    nv = np.maximum(n_valid, 1)
    q = _bca_map(z0, acc, z) if bca else stats.norm.cdf(z) * np.ones(np.shape(z0))
    var_q = q * (1 - q) / nv
    if bca:
        # z0 = Phi^-1(share) with share ~ binomial / B; d q / d z0 by the chain rule
        share = stats.norm.cdf(z0)
        var_z0 = share * (1 - share) / (nv * stats.norm.pdf(z0) ** 2)
        u = z0 + z
        with np.errstate(all="ignore"):
            dq = stats.norm.pdf(stats.norm.ppf(np.clip(q, 1e-300, 1 - 1e-16))) * (1 + 1 / (1 - acc * u) ** 2)
        var_q = var_q + np.nan_to_num(dq ** 2 * var_z0)
    # sparsity (1 / density) at the end from a difference quotient with the Hall and Sheather
    # (1988) bandwidth; times the standard deviation of the end's quantile level
    zq = stats.norm.ppf(np.clip(q, 1e-12, 1 - 1e-12))
    h = nv ** (-1 / 3) * stats.norm.isf(0.025) ** (2 / 3) * (
        1.5 * stats.norm.pdf(zq) ** 2 / (2 * zq ** 2 + 1)) ** (1 / 3)
    h = np.maximum(np.minimum(h, 0.99 * np.minimum(q, 1 - q)), 1.0 / nv)
    sparsity = (_quantile(sorted_r, n_valid, q + h) - _quantile(sorted_r, n_valid, q - h)) / (2 * h)
    end = _quantile(sorted_r, n_valid, q)
    return end, sparsity * np.sqrt(var_q)


def bootstrap_interval(*, estimate, replicates, level: float = 0.95, method: str = "bca",
                       jackknife=None) -> BootstrapInterval:
    """BCa or percentile interval from bootstrap replicates, with Monte Carlo errors of its ends.

    Parameters
    ----------
    estimate
        Point estimate(s), any shape ``S``.
    replicates
        Bootstrap replicates, shape ``(B, *S)``; NaN replicates are ignored, and ends
        are NaN where fewer than half are finite.
    level
        Two-sided level.
    method
        ``"bca"`` (bias-corrected and accelerated; Efron 1987) or ``"percentile"``.
        BCa's ``z0`` counts ties with the estimate as one half, which keeps it sane for
        discrete statistics.
    jackknife
        Leave-one-out estimates, shape ``(n, *S)``, for BCa's acceleration (Efron and
        Tibshirani 1993, eq. 14.15); without them the acceleration is 0 (BC). Units with
        fewer leave-one-out values pad their column with NaN.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.exponential(size=40)
    >>> reps = rng.choice(x, size=(4000, 40)).mean(axis=1)
    >>> jk = (x.sum() - x) / 39
    >>> iv = bootstrap_interval(estimate=x.mean(), replicates=reps, jackknife=jk)
    >>> round(float(iv.low), 2), round(float(iv.high), 2), bool(iv.high_mc_se < 0.02)
    (0.86, 1.61, True)
    """
    a = _alpha(level)
    est, reps, sorted_r, n_valid, z0, acc = _bootstrap_parts(estimate, replicates, method, jackknife)
    bca = method == "bca"
    za = stats.norm.ppf(a)
    low, low_se = _end_and_se(sorted_r, n_valid, z0, acc, za, bca)
    high, high_se = _end_and_se(sorted_r, n_valid, z0, acc, -za, bca)
    enough = n_valid >= 0.5 * reps.shape[0]
    nan = np.full(est.shape, np.nan)
    ql = _bca_map(z0, acc, za) if bca else np.full(est.shape, a)
    qh = _bca_map(z0, acc, -za) if bca else np.full(est.shape, 1 - a)
    return BootstrapInterval(low=np.where(enough, low, nan), high=np.where(enough, high, nan),
                             low_mc_se=np.where(enough, low_se, nan), high_mc_se=np.where(enough, high_se, nan),
                             z0=z0, acceleration=acc, levels=(ql, qh), resamples=n_valid)


def _bootstrap_pvalues(est, reps, z0, acc, bound, bca: bool):
    """p-values of "value >= bound" (small: below) and "value <= bound" (small: above) by
    inverting the BCa (or percentile) map at the bound (Efron and Tibshirani 1993, 14.3)."""
    valid = np.isfinite(reps)
    nv = np.maximum(valid.sum(axis=0), 1)
    share = ((reps < bound) & valid).sum(axis=0) + 0.5 * ((reps == bound) & valid).sum(axis=0)
    share = np.clip(share / nv, 0.5 / nv, 1 - 0.5 / nv)
    if not bca:
        return 1 - share, share
    t = stats.norm.ppf(share) - z0
    with np.errstate(all="ignore"):
        zeta = np.where(1 + acc * t > 0, t / (1 + acc * t) - z0, np.copysign(np.inf, -acc))
    # the upper end at level 1 - p equals the bound when p = 1 - Phi(zeta)
    return stats.norm.sf(zeta), stats.norm.cdf(zeta)


def bootstrap_gate(*, estimate, replicates, bound: float, direction: str, level: float = 0.95,
                   method: str = "bca", jackknife=None, multiplicity: str = DEFAULT_MULTIPLICITY,
                   mc_z: float = DEFAULT_MC_Z, bound_range: tuple[float, float] = (0.0, 1.0)) -> GateDecision:
    """Gate decided from bootstrap replicates, per unit on the last axis, with a Monte Carlo guard.

    For metrics without an exact or analytic method (Brier score, ECE, balanced
    accuracy, mean score deltas, composite scores). The per-unit tests are the BCa
    (or percentile) interval's, inverted into p-values at the bound so that Holm
    can be applied. A unit whose deciding interval end (the pass end at ``alpha``; the
    fail end at the unit's multiplicity-adjusted level) lies within ``mc_z`` Monte
    Carlo standard errors of the bound is ``near_bound`` and ``insufficient_evidence``:
    another seed could decide it the other way. :func:`adaptive_bootstrap_gate`
    draws more resamples first.

    Parameters
    ----------
    estimate, replicates, level, method, jackknife
        As in :func:`bootstrap_interval` (``estimate`` has the units on its last axis).
    bound, direction, multiplicity
        As in :func:`rate_gate`.
    mc_z
        Width of the near-bound zone in Monte Carlo standard errors.
    bound_range
        The allowed range of ``bound`` (the metric's range).

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> x = rng.normal(0.10, 0.05, size=(60, 2))          # e.g. mean |score delta| of twins, 2 groups
    >>> reps = np.stack([rng.choice(x[:, g], size=(2000, 60)).mean(axis=1) for g in range(2)], axis=-1)
    >>> d = bootstrap_gate(estimate=x.mean(axis=0), replicates=reps, bound=0.12, direction="max")
    >>> d.status.tolist()
    ['pass', 'pass']
    """
    _choice("direction", direction, DIRECTIONS)
    _choice("multiplicity", multiplicity, MULTIPLICITY_METHODS)
    a = _alpha(level)
    lo_b, hi_b = bound_range
    try:
        b = float(bound)
    except (TypeError, ValueError):
        b = float("nan")
    if not (np.isfinite(b) and lo_b <= b <= hi_b):
        raise ValueError(MSG_BOUND.format(low=lo_b, high=hi_b, what="the metric's range", value=bound, hint=""))
    est, reps, sorted_r, n_valid, z0, acc = _bootstrap_parts(estimate, replicates, method, jackknife)
    if est.ndim == 0:
        raise ValueError(MSG_REPLICATES.format(shape=reps.shape, est=est.shape))
    bca = method == "bca"
    iv = bootstrap_interval(estimate=est, replicates=reps, level=level, method=method, jackknife=jackknife)
    p_below, p_above = _bootstrap_pvalues(est, reps, z0, acc, b, bca)
    p_pass, p_fail_raw = _sides(p_below, p_above, direction)
    enough = np.isfinite(iv.low) & np.isfinite(iv.high)
    p_pass = np.where(enough, p_pass, np.nan)
    p_fail_raw = np.where(enough, p_fail_raw, np.nan)
    # the level at which each unit's fail test is made: Holm's step for its rank
    m = np.isfinite(p_fail_raw).sum(axis=-1, keepdims=True)
    if multiplicity == "none":
        fail_alpha = np.full(p_fail_raw.shape, a)
    elif multiplicity == "bonferroni":
        fail_alpha = a / np.maximum(m, 1) * np.ones(p_fail_raw.shape)
    else:
        rank = np.argsort(np.argsort(np.nan_to_num(p_fail_raw, nan=np.inf), axis=-1, kind="stable"), axis=-1)
        fail_alpha = a / np.maximum(m - rank, 1)
    zp = stats.norm.ppf(a)
    zf = stats.norm.ppf(fail_alpha)
    pass_z, fail_z = (-zp, zf) if direction == "max" else (zp, -zf)
    pass_end, pass_se = _end_and_se(sorted_r, n_valid, z0, acc, pass_z * np.ones(est.shape), bca)
    fail_end, fail_se = _end_and_se(sorted_r, n_valid, z0, acc, fail_z, bca)
    near = enough & ((np.abs(pass_end - b) <= mc_z * pass_se) | (np.abs(fail_end - b) <= mc_z * fail_se))
    return _decide(estimate=est, low=iv.low, high=iv.high, p_pass=p_pass, p_fail_raw=p_fail_raw, alpha=a, level=level,
                   bound=b, direction=direction, method=f"bootstrap-{method}", multiplicity=multiplicity,
                   near_bound=near, resamples=int(reps.shape[0]))


def adaptive_bootstrap_gate(*, estimate, draw: Callable[[int, np.random.Generator], np.ndarray], bound: float,
                            direction: str, seed, level: float = 0.95, method: str = "bca", jackknife=None,
                            multiplicity: str = DEFAULT_MULTIPLICITY, mc_z: float = DEFAULT_MC_Z,
                            initial_resamples: int = 1000, max_resamples: int = 16000,
                            bound_range: tuple[float, float] = (0.0, 1.0)) -> GateDecision:
    """:func:`bootstrap_gate`, doubling the resamples while a unit is near the bound.

    Starts with ``initial_resamples`` replicates from ``draw(n, rng)`` and, while any
    unit is ``near_bound``, draws as many again (one continuing generator from
    ``seed``) up to ``max_resamples``. Monte Carlo error shrinks like ``1/sqrt(B)``,
    so the zone in which a decision can change with the seed narrows 4-fold from 1,000
    to 16,000 resamples; a unit still inside it stays ``near_bound`` (insufficient
    evidence) and the decision says after how many resamples.

    Examples
    --------
    >>> rng0 = np.random.default_rng(5)
    >>> x = rng0.normal(0.30, 0.05, size=80)
    >>> draw = lambda n, rng: rng.choice(x, size=(n, 80)).mean(axis=1)[:, None]
    >>> d = adaptive_bootstrap_gate(estimate=x.mean(keepdims=True), draw=draw, bound=0.32, direction="max", seed=0)
    >>> d.status.tolist(), d.resamples
    (['pass'], 1000)
    """
    if not (100 <= initial_resamples <= max_resamples):
        raise ValueError(MSG_RESAMPLES.format(initial=initial_resamples, max=max_resamples))
    est = np.asarray(estimate, dtype=np.float64)
    rng = np.random.default_rng(seed)

    def more(k: int) -> np.ndarray:
        r = np.asarray(draw(k, rng), dtype=np.float64)
        if r.shape != (k, *est.shape):
            raise ValueError(MSG_DRAW.format(want=(k, *est.shape), got=r.shape))
        return r

    reps = more(initial_resamples)
    while True:
        decision = bootstrap_gate(estimate=est, replicates=reps, bound=bound, direction=direction, level=level,
                                  method=method, jackknife=jackknife, multiplicity=multiplicity, mc_z=mc_z,
                                  bound_range=bound_range)
        if not decision.near_bound.any() or reps.shape[0] >= max_resamples:
            return decision
        reps = np.concatenate([reps, more(min(reps.shape[0], max_resamples - reps.shape[0]))], axis=0)
