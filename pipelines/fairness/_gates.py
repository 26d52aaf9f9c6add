"""Gate rules judged with calibrated tests (``docs/statistics.md``); every configured gate gets a result.

Per rule and variant, the units are the groups (group metrics) or the feature's gap
(feature metrics). Each unit gets the test of its metric family:

* proportions (rates, flip rates, retrieval shares): exact binomial (:func:`rate_gate`);
* AUCs: DeLong on the logit scale (:func:`auc_gate`);
* gaps of proportions: pairwise score tests (:func:`gap_gate`, :func:`equalized_odds_gate`);
* everything else: the bootstrap with a near-bound guard (:func:`bootstrap_gate`).

The per-group fail tests of one gate are adjusted for multiplicity (``holm`` by default);
pass needs every unit to pass. What cannot be judged is listed, never dropped: a variant
without the measurement (no twins scored, no retrieval), a group without examples or
without trials for the metric, is ``not_evaluable`` with its reason; a group too small for
the metric's method, or whose bootstrap end is near the bound, is ``insufficient_evidence``.
The verdict rule is :func:`pipelines.fairness.verdict`.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from pipelines.config import did_you_mean
from pipelines.config.evaluation import (
    AUC_METRICS,
    BIAS_AUC_METRICS,
    COUNTERFACTUAL_METRICS,
    EXPOSURE_METRICS,
    GAP_COMPONENTS,
    GATE_GROUP_METRICS,
    GENERATION_METRICS,
    PROPORTION_METRICS,
    GateRule,
    metric_range,
)
from pipelines.errors import ConfigError
from pipelines.fairness._binomial import rate_gate
from pipelines.fairness._calibrate import gap_units
from pipelines.fairness._decide import GateDecision
from pipelines.fairness._delong import auc_gate
from pipelines.fairness._gaps import equalized_odds_gate, gap_gate
from pipelines.fairness._metrics import STATUS_OK, STATUS_UNDEFINED
from pipelines.fairness._resampling import bootstrap_gate
from pipelines.fairness.result import INSUFFICIENT, NOT_EVALUABLE

__all__ = ["evaluate_gates", "gate_source", "MSG_UNKNOWN_GROUP"]

MSG_UNKNOWN_GROUP = (
    "`evaluation.gates[{index}].groups` names group {group!r}, which feature {feature!r} of the data does not "
    "have.{hint} Groups: {known}."
)
_TRIALS = {"tpr": "positives", "fnr": "positives", "fpr": "negatives", "precision": "predicted positives",
           "flip_rate": "counterfactual twins", "same_group_share": "retrieved documents with a group",
           "stereotype_share": "retrieved documents with a label"}


def gate_source(metric: str) -> str:
    """Which table of the evaluation holds a gate metric."""
    if metric in GENERATION_METRICS:
        return "generation"
    if metric in COUNTERFACTUAL_METRICS or metric == "flip_rate_difference":
        return "counterfactual"
    if metric in EXPOSURE_METRICS or metric in ("same_group_share_difference", "stereotype_share_difference"):
        return "exposure"
    if metric in BIAS_AUC_METRICS:
        return "bias_auc"
    if metric in GATE_GROUP_METRICS:
        return "group_metrics"
    return "disparities"


def _missing_reason(source: str, variant: str, mode: str | None, metric: str, condition: str | None = None,
                    reasons: dict[str, str] | None = None) -> str:
    if source == "generation":
        why = (reasons or {}).get(metric) or (reasons or {}).get("*")
        return (f"variant {variant!r} has no {metric} in condition {condition!r}"
                + (f": {why}" if why else " (its kind does not generate text, or it wrote no answers for this "
                   "metric's prompts)"))
    if source == "counterfactual":
        return (f"variant {variant!r} has no counterfactual twins scored in mode {mode!r} (no twins were made, "
                "or its kind cannot score new texts)")
    if source == "exposure":
        return f"variant {variant!r} retrieves no documents, so {metric} is not defined for it"
    return f"the evaluation has no {metric} for variant {variant!r}"


def _unit_problem(rec: dict[str, Any] | None, metric: str, group: str, settings: dict[str, Any]) -> tuple[str, str]:
    """``(status, reason)`` of a group that cannot be judged."""
    if rec is None and metric in GENERATION_METRICS:
        return NOT_EVALUABLE, f"group {group!r} has no generated answers (no pair or prompt of it was drawn)"
    if rec is None and gate_source(metric) == "counterfactual":
        return NOT_EVALUABLE, (f"group {group!r} has no counterfactual twins (no term pairs for it, or none of its "
                               "examples mentions one: see the counterfactual coverage)")
    if rec is None:
        return NOT_EVALUABLE, f"group {group!r} has no examples in the audit sample"
    if rec["status"] == STATUS_UNDEFINED and metric in GENERATION_METRICS:
        return INSUFFICIENT, (f"{metric} is undefined for {group!r} (e.g. a share of no trials, or no HELM word "
                              "occurs in the answers)")
    if rec["status"] != STATUS_OK and metric in GENERATION_METRICS:
        return INSUFFICIENT, (f"group {group!r} has {rec.get('n')} answer(s), too few for {metric}: needs "
                              f"{(settings.get('generation') or {}).get('min_group_size')} "
                              "(generation.min_group_size)")
    if metric in PROPORTION_METRICS and not (rec.get("trials") or 0) > 0:
        return NOT_EVALUABLE, f"group {group!r} has no {_TRIALS.get(metric, 'examples')} for {metric}"
    if rec["status"] != STATUS_OK:
        return INSUFFICIENT, (f"group {group!r} (n={rec.get('n')}) is too small for {metric}: needs "
                              f"{settings.get('min_group_size')} rows and {settings.get('min_class_count')} of each "
                              f"class (evaluation.min_group_size / min_class_count)")
    return INSUFFICIENT, f"no bootstrap resamples of {metric} for group {group!r} (evaluation.bootstrap.resamples)"


def _decide(rule: GateRule, metric: str, recs: list[dict[str, Any]], all_recs: list[dict[str, Any]], *,
            level: float, multiplicity: str, proportion_method: str) -> GateDecision | None:
    """The joint decision over ``recs`` (units that can be judged), or None when the family needs what is missing."""
    bound, direction = rule.bound, rule.direction
    if metric in PROPORTION_METRICS:
        return rate_gate(events=[r["events"] for r in recs], trials=[r["trials"] for r in recs], bound=bound,
                         direction=direction, level=level, method=proportion_method, multiplicity=multiplicity)
    if metric in AUC_METRICS:
        return auc_gate(auc=[r["_auc"][0] for r in recs], variance=[r["_auc"][1] for r in recs],
                        n_positive=[r["_auc"][2] for r in recs], n_negative=[r["_auc"][3] for r in recs],
                        bound=bound, direction=direction, level=level, multiplicity=multiplicity)
    if metric in GAP_COMPONENTS and len(recs) == 1:
        units = gap_units(all_recs, recs[0])
        if units is None:
            return None
        if len(units) == 2:
            (tp, pos, _), (fp, neg, _) = units
            return equalized_odds_gate(tp=tp, positives=pos, fp=fp, negatives=neg, bound=bound,
                                       direction=direction, level=level)
        return gap_gate(events=units[0][0], trials=units[0][1], bound=bound, direction=direction, level=level)
    if any(r.get("_boot") is None for r in recs):
        return None
    low, high, _ = metric_range(metric)
    return bootstrap_gate(estimate=np.array([r["value"] for r in recs]),
                          replicates=np.stack([np.asarray(r["_boot"]) for r in recs], axis=-1), bound=bound,
                          direction=direction, level=level, method="bca", multiplicity=multiplicity,
                          bound_range=(low, high))


def evaluate_gates(rules: Sequence[GateRule], *, records: dict[str, list[dict[str, Any]]], variants: Sequence[str],
                   features: Sequence[str], settings: dict[str, Any], level: float, multiplicity: str,
                   proportion_method: str, expected_groups: dict[str, Sequence[str]] | None = None
                   ) -> list[dict[str, Any]]:
    """One row per rule x variant (x group for group metrics), never fewer.

    ``records`` maps a source (``group_metrics``, ``bias_auc``, ``disparities``,
    ``counterfactual``, ``exposure``) to its records with their evidence;
    ``expected_groups`` lists, per feature, the groups the data has (a group absent from
    the audit sample is ``not_evaluable``, not dropped).
    """
    expected = {f: set(map(str, g)) for f, g in (expected_groups or {}).items()}
    groups_of: dict[str, set[str]] = {f: set(g) for f, g in expected.items()}
    for recs in records.values():
        for r in recs:
            if r.get("group") is not None and r["feature"] != "overall":
                groups_of.setdefault(r["feature"], set()).add(str(r["group"]))
    results: list[dict[str, Any]] = []
    for i, rule in enumerate(rules):
        source = gate_source(rule.metric)
        feature = rule.feature or (features[0] if features else None)
        mode = rule.mode if source == "counterfactual" else None
        condition = rule.condition if source == "generation" else None
        known = sorted(groups_of.get(feature, set()))
        for g in rule.groups:
            if g not in known:
                raise ConfigError(MSG_UNKNOWN_GROUP.format(index=i, group=g, feature=feature,
                                                           hint=did_you_mean(g, known), known=", ".join(known)))
        per_group = rule.metric in GATE_GROUP_METRICS
        targets: list[str | None] = list(rule.groups or known) if per_group else [None]
        for v in (rule.variants or variants):
            base = {"gate": rule.label, "gate_index": i, "variant": v, "metric": rule.metric, "feature": feature,
                    "mode": mode, "condition": condition, "bound": rule.bound, "direction": rule.direction,
                    "optional": rule.optional}
            mine = [r for r in records.get(source, []) if r.get("variant") == v
                    and (mode is None or r.get("mode") == mode)
                    and (condition is None or r.get("condition") == condition)]
            if source == "generation" and not any(r["metric"] == rule.metric for r in mine):
                mine = []  # e.g. no stereotype scorer, or no open-ended prompts: say why, per variant
            # the group records a gap is computed from (for a disparity, the group metrics)
            pool = mine + [r for r in records.get("group_metrics", []) if r.get("variant") == v] \
                if source == "disparities" else mine
            if not mine:
                results.append({**base, "group": None, "status": NOT_EVALUABLE,
                                "reason": _missing_reason(source, v, mode, rule.metric, condition,
                                                          (settings.get("generation") or {}).get("not_evaluable"))})
                continue
            index = {(r["feature"], r["group"], r["metric"]): r for r in mine}
            rows, judged = [], []
            for g in targets:
                rec = index.get((feature, g, rule.metric))
                row = {**base, "group": g}
                if rec is not None:
                    row.update(n=rec.get("n"), events=rec.get("events"), trials=rec.get("trials"))
                ok = rec is not None and rec["status"] == STATUS_OK and (
                    rule.metric not in PROPORTION_METRICS or (rec.get("trials") or 0) > 0) and (
                    rule.metric not in AUC_METRICS or rec.get("_auc") is not None)
                if not ok:
                    if g is None and rule.metric in GENERATION_METRICS and rec is not None:
                        row["status"], row["reason"] = _unit_problem(rec, rule.metric, feature, settings)
                    elif g is None:
                        row.update(status=NOT_EVALUABLE if rec is None else INSUFFICIENT,
                                   reason=f"fewer than two groups of {feature!r} have data for {rule.metric}")
                    else:
                        row["status"], row["reason"] = _unit_problem(rec, rule.metric, g, settings)
                else:
                    judged.append((row, rec))
                rows.append(row)
            if judged:
                decision = _decide(rule, rule.metric, [r for _, r in judged], pool, level=level,
                                   multiplicity=multiplicity, proportion_method=proportion_method)
                if decision is None:
                    for row, rec in judged:
                        row["status"], row["reason"] = _unit_problem(rec, rule.metric, row["group"] or feature,
                                                                     settings)
                else:
                    reasons = decision.reasons()
                    for k, (row, _) in enumerate(judged):
                        row.update(value=float(decision.estimate[k]), ci_low=_num(decision.low[k]),
                                   ci_high=_num(decision.high[k]), status=str(decision.status[k]),
                                   reason=str(reasons[k]).split(": ", 1)[1], method=decision.method,
                                   p_pass=_num(decision.p_pass[k]), p_fail=_num(decision.p_fail[k]),
                                   near_bound=bool(decision.near_bound[k]), multiplicity=decision.multiplicity)
            if not per_group and rule.metric in GAP_COMPONENTS and rows[0]["status"] in ("pass", INSUFFICIENT):
                rec = index.get((feature, None, rule.metric))
                units = gap_units(pool, rec) if rec is not None else None
                compared = set.intersection(*(set(u[2]) for u in units)) if units else set()
                _note_absent_groups(rows[0], set(groups_of.get(feature, set())) - compared, rule.metric)
            results.extend(rows)
    return results


def _note_absent_groups(row: dict[str, Any], absent: set[str], metric: str) -> None:
    """A gap judged without some of the data's groups cannot pass: the missing groups could widen it."""
    if absent:
        row["status"] = INSUFFICIENT
        row["reason"] = (f"{row.get('reason') or 'not judged'}; groups {', '.join(sorted(absent))} have no data "
                         f"for {metric}, so the gap over all groups is not shown to be within the bound")


def _num(x: Any) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None
