"""Intervals with known coverage for the evaluation's records, from the evidence each record carries.

============================  ====================================================  ======================
records                       interval                                              ``method``
============================  ====================================================  ======================
proportions (with ``events``  exact binomial (or Wilson / Jeffreys,                 ``clopper-pearson``, ...
and ``trials``)               ``evaluation.proportion_method``)
AUCs (with ``_auc``)          DeLong variance, logit scale                          ``delong-logit``
gaps of proportions           pairwise Miettinen-Nurminen score limits              ``miettinen-nurminen``
(``<rate>_difference``,       over the groups (the interval the gap gate decides
equalized odds, ...)          with)
everything else               bias-corrected bootstrap interval of ``_boot``        ``bootstrap-bc``
============================  ====================================================  ======================

No interval is widened to contain its point estimate (``docs/statistics.md``).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from pipelines.config.evaluation import AUC_METRICS, GAP_COMPONENTS, PROPORTION_METRICS
from pipelines.fairness._binomial import proportion_interval
from pipelines.fairness._delong import auc_interval
from pipelines.fairness._gaps import gap_interval
from pipelines.fairness._metrics import STATUS_OK
from pipelines.fairness._resampling import bootstrap_interval

__all__ = ["assign_intervals", "gap_units", "BOOTSTRAP_METHOD"]

BOOTSTRAP_METHOD = "bootstrap-bc"
#: Columns that identify the population an estimate belongs to (besides group and metric).
_SCOPE = ("variant", "mode", "condition", "feature", "a", "b", "kind")


def _scope(rec: dict[str, Any]) -> tuple:
    return tuple(rec.get(k) for k in _SCOPE)


def gap_units(records: Sequence[dict[str, Any]], rec: dict[str, Any]
              ) -> list[tuple[np.ndarray, np.ndarray, list[str]]] | None:
    """For a gap record, per component the ``(events, trials, group names)`` of the compared groups, or None.

    A group is compared when its proportion has a trial (status ``ok``); a component
    needs at least two such groups. ``records`` must hold the group records (for a
    disparity: the group metrics of the same variant and feature).
    """
    components = GAP_COMPONENTS.get(rec["metric"])
    if components is None or rec.get("group") is not None:
        return None
    scope = _scope(rec)
    out = []
    for metric in components:
        rows = [r for r in records if r.get("group") is not None and r["metric"] == metric
                and _scope(r) == scope and r["status"] == STATUS_OK and (r.get("trials") or 0) > 0]
        if len(rows) < 2:
            return None
        out.append((np.array([r["events"] for r in rows]), np.array([r["trials"] for r in rows]),
                    [str(r["group"]) for r in rows]))
    return out


def assign_intervals(records: list[dict[str, Any]], *, level: float, proportion_method: str,
                     analytic: bool = True) -> None:
    """Set ``ci_low``, ``ci_high`` and ``method`` of every ``ok`` record, in place.

    ``analytic=False`` (paired differences between variants) uses the bootstrap for all.
    """
    for rec in records:
        rec.setdefault("method", None)
        if rec["status"] != STATUS_OK:
            continue
        lo = hi = None
        method = None
        metric = rec["metric"]
        if analytic and metric in PROPORTION_METRICS and (rec.get("trials") or 0) > 0:
            low, high = proportion_interval(events=rec["events"], trials=rec["trials"], level=level,
                                            method=proportion_method)
            lo, hi, method = float(low), float(high), proportion_method
        elif analytic and metric in AUC_METRICS and rec.get("_auc") is not None and np.isfinite(rec["_auc"][0]):
            auc, var, n_pos, n_neg = rec["_auc"]
            low, high = auc_interval(auc=auc, variance=var, n_positive=n_pos, n_negative=n_neg, level=level)
            lo, hi, method = float(low), float(high), "delong-logit"
        elif analytic and (units := gap_units(records, rec)) is not None:
            lo, hi = gap_interval(components=[(e, t) for e, t, _ in units], level=level)
            method = "miettinen-nurminen"
        elif rec.get("_boot") is not None:
            iv = bootstrap_interval(estimate=np.float64(rec["value"]), replicates=np.asarray(rec["_boot"]),
                                    level=level, method="bca")
            if np.isfinite(iv.low) and np.isfinite(iv.high):
                lo, hi, method = float(iv.low), float(iv.high), BOOTSTRAP_METHOD
        rec.update(ci_low=lo, ci_high=hi, method=method)
