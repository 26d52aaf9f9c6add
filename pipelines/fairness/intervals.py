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

from pipelines.fairness._binomial import (
    effective_counts,
    flip_rate_gate,
    proportion_interval,
    proportion_pvalues,
    rate_gate,
)
from pipelines.fairness._decide import (
    BOOTSTRAP_METHODS,
    DEFAULT_MC_Z,
    DEFAULT_MULTIPLICITY,
    DIRECTIONS,
    FAIL,
    INSUFFICIENT,
    MULTIPLICITY_METHODS,
    PASS,
    PROPORTION_METHODS,
    GateDecision,
    adjust_pvalues,
)
from pipelines.fairness._delong import auc_gate, auc_interval, bias_auc_delong, delong_auc
from pipelines.fairness._gaps import difference_interval, difference_pvalues, equalized_odds_gate, gap_gate
from pipelines.fairness._resampling import (
    BootstrapInterval,
    adaptive_bootstrap_gate,
    bootstrap_gate,
    bootstrap_interval,
)

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
