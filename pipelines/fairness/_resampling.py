"""Bootstrap intervals (BCa or percentile) with the Monte Carlo error of their ends, and bootstrap gates
with a near-bound guard and adaptive resampling."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import stats

from pipelines.fairness._decide import (
    BOOTSTRAP_METHODS,
    DEFAULT_MC_Z,
    DEFAULT_MULTIPLICITY,
    DIRECTIONS,
    MSG_BOUND,
    MSG_DRAW,
    MSG_JACKKNIFE,
    MSG_REPLICATES,
    MSG_RESAMPLES,
    MULTIPLICITY_METHODS,
    GateDecision,
    _alpha,
    _choice,
    _decide,
    _sides,
)

__all__ = ["BootstrapInterval", "bootstrap_interval", "bootstrap_gate", "adaptive_bootstrap_gate"]


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
