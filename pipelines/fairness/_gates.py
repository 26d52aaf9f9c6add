"""Gate rules judged on the evaluation's tidy records (the verdict rule is :func:`pipelines.fairness.verdict`)."""

from __future__ import annotations

from typing import Any, Sequence

from pipelines.config import did_you_mean
from pipelines.errors import ConfigError
from pipelines.fairness.result import FAIL, INSUFFICIENT, PASS
from pipelines.config.evaluation import (
    BIAS_AUC_METRICS,
    COUNTERFACTUAL_METRICS,
    EXPOSURE_METRICS,
    GATE_GROUP_METRICS,
    GateRule,
)

__all__ = ["judge", "evaluate_gates", "MSG_UNKNOWN_GROUP"]

MSG_UNKNOWN_GROUP = (
    "`evaluation.gates[{index}].groups` names group {group!r}, which feature {feature!r} of the data does not "
    "have.{hint} Groups: {known}."
)


def judge(*, value: float | None, ci_low: float | None, ci_high: float | None, status: str, bound: float,
          direction: str) -> tuple[str, str]:
    """Judge one value against a bound: ``(pass|fail|insufficient_evidence, reason)``.

    With a CI, the whole interval must lie on one side of the bound; a CI that
    straddles it is insufficient evidence. Without a CI (``bootstrap.resamples: 0``)
    the point estimate decides.

    >>> judge(value=0.2, ci_low=0.1, ci_high=0.3, status="ok", bound=0.25, direction="max")
    ('insufficient_evidence', 'CI [0.1, 0.3] straddles the bound 0.25')
    """
    if status != "ok" or value is None:
        return INSUFFICIENT, f"no estimate ({status})"
    if ci_low is None or ci_high is None:
        ok = value <= bound if direction == "max" else value >= bound
        return (PASS if ok else FAIL), f"point estimate {value:.4g} (no CI)"
    if direction == "max":
        if ci_high <= bound:
            return PASS, f"CI upper {ci_high:.4g} <= {bound:g}"
        if ci_low > bound:
            return FAIL, f"CI lower {ci_low:.4g} > {bound:g}"
    else:
        if ci_low >= bound:
            return PASS, f"CI lower {ci_low:.4g} >= {bound:g}"
        if ci_high < bound:
            return FAIL, f"CI upper {ci_high:.4g} < {bound:g}"
    return INSUFFICIENT, f"CI [{ci_low:.4g}, {ci_high:.4g}] straddles the bound {bound:g}"


def _source(metric: str) -> str:
    if metric in COUNTERFACTUAL_METRICS or metric == "flip_rate_difference":
        return "counterfactual"
    if metric in EXPOSURE_METRICS or metric in ("same_group_share_difference", "stereotype_share_difference"):
        return "exposure"
    if metric in BIAS_AUC_METRICS:
        return "bias_auc"
    if metric in GATE_GROUP_METRICS:
        return "group_metrics"
    return "disparities"


def evaluate_gates(rules: Sequence[GateRule], *, records: dict[str, list[dict[str, Any]]], variants: Sequence[str],
                   features: Sequence[str]) -> list[dict[str, Any]]:
    """Judge every rule per variant (and per group for group metrics).

    ``records`` maps a source (``group_metrics``, ``bias_auc``, ``disparities``,
    ``counterfactual``, ``exposure``) to its tidy records.
    """
    index: dict[tuple, dict[str, Any]] = {}
    groups_of: dict[str, set[str]] = {}
    for source, recs in records.items():
        for r in recs:
            key = (source, r.get("variant"), r.get("mode", "full") if source == "counterfactual" else None,
                   r["feature"], r["group"], r["metric"])
            index[key] = r
            if r["group"] is not None and r["feature"] != "overall":
                groups_of.setdefault(r["feature"], set()).add(str(r["group"]))
    results: list[dict[str, Any]] = []
    for i, rule in enumerate(rules):
        source = _source(rule.metric)
        feature = rule.feature or (features[0] if features else None)
        mode = rule.mode if source == "counterfactual" else None
        known = sorted(groups_of.get(feature, set()))
        for g in rule.groups:
            if g not in known and known:
                raise ConfigError(MSG_UNKNOWN_GROUP.format(index=i, group=g, feature=feature,
                                                           hint=did_you_mean(g, known), known=", ".join(known)))
        targets: list[str | None] = list(rule.groups or known) if rule.metric in GATE_GROUP_METRICS else [None]
        for v in (rule.variants or variants):
            measured = any(k[0] == source and k[1] == v and k[2] == mode for k in index)
            if not measured and not rule.variants:
                continue  # e.g. retrieval exposure of a variant without retrieval
            for g in targets:
                r = index.get((source, v, mode, feature, g, rule.metric))
                base = {"gate": rule.label, "gate_index": i, "variant": v, "metric": rule.metric, "feature": feature,
                        "group": g, "mode": mode, "bound": rule.bound, "direction": rule.direction}
                if r is None:
                    results.append({**base, "value": None, "ci_low": None, "ci_high": None, "n": None,
                                    "status": INSUFFICIENT, "reason": "not measured for this variant"})
                    continue
                status, reason = judge(value=r["value"], ci_low=r["ci_low"], ci_high=r["ci_high"],
                                       status=r["status"], bound=rule.bound, direction=rule.direction)
                results.append({**base, "value": r["value"], "ci_low": r["ci_low"], "ci_high": r["ci_high"],
                                "n": r.get("n"), "status": status, "reason": reason})
    return results
