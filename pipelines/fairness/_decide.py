"""Shared pieces of the gate decisions: constants, argument checks, GateDecision, multiplicity."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = ["PASS", "FAIL", "INSUFFICIENT", "DIRECTIONS", "PROPORTION_METHODS", "BOOTSTRAP_METHODS",
           "MULTIPLICITY_METHODS", "DEFAULT_MULTIPLICITY", "DEFAULT_MC_Z", "GateDecision", "adjust_pvalues"]

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
