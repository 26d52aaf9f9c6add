"""The machine-readable run summary (``summary.json``), built once from a finished run.

Everything the HTML shows comes from this summary, so the two never disagree. The
verdict is the run's own, read from the final manifest; the numbers come from the
evaluation's :class:`~pipelines.fairness.FairnessResult`. A stage that did not run
leaves an entry in ``missing`` saying so; nothing is recomputed here. The
structure is documented in ``docs/report.md``; bump :data:`SUMMARY_VERSION` when a
key changes meaning or disappears.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from pipelines.core.artifacts import to_jsonable
from pipelines.fairness import FAIL, INSUFFICIENT, NOT_EVALUABLE, PASS, FairnessResult, describe_gate
from pipelines.report._generation import generation_section
from pipelines.report._inputs import RunInputs
from pipelines.report._mitigation import mitigation_section
from pipelines.report._sections import data_section, examples_section, provenance_section, trend_section
from pipelines.report._verdict import gate_summaries, headline

__all__ = [
    "SUMMARY_VERSION",
    "SECTIONS",
    "CHART_METRICS",
    "TABLE_METRICS",
    "MAIN_DISPARITIES",
    "KEY_METRIC_LABELS",
    "build_summary",
    "key_metrics_of",
]

SUMMARY_VERSION = 2

#: Report sections, in the order the HTML shows them.
SECTIONS: tuple[tuple[str, str], ...] = (
    ("verdict", "Verdict"),
    ("data", "Data"),
    ("variants", "Variants"),
    ("comparison", "Side by side"),
    ("mitigation", "Mitigation"),
    ("generation", "Generated answers"),
    ("examples", "Examples"),
    ("provenance", "Provenance"),
    ("trend", "Trend"),
)

OVERALL_FEATURE = "overall"
BIAS_AUC_METRICS = ("subgroup_auc", "bpsn_auc", "bnsp_auc")

#: Group metrics drawn as interval charts, and shown in the per-group table.
CHART_METRICS: tuple[str, ...] = ("accuracy", "fpr", "fnr", "roc_auc")
TABLE_METRICS: tuple[str, ...] = ("base_rate", "selection_rate", "accuracy", "tpr", "fpr", "fnr", "roc_auc", "ece")
#: Disparities shown in the main table (the rest go to a collapsed table).
MAIN_DISPARITIES: tuple[str, ...] = (
    "demographic_parity_difference",
    "equalized_odds_difference",
    "equal_opportunity_difference",
    "accuracy_difference",
    "fpr_difference",
    "fnr_difference",
    "roc_auc_difference",
    "final_bias_score",
)

#: The numbers compared side by side, and kept per run in the history.
KEY_METRIC_LABELS: dict[str, str] = {
    "accuracy": "Accuracy",
    "roc_auc": "ROC AUC",
    "worst_group_gap": "Worst-group accuracy gap",
    "flip_rate": "Counterfactual flip rate",
    "latency_ms_per_example": "Latency per example (ms)",
    "examples_per_s": "Throughput (examples/s)",
    "build_seconds": "Cost of building (s)",
}
#: Whether higher is better for each key metric (for "better" markers); None: neutral.
HIGHER_IS_BETTER: dict[str, bool | None] = {
    "accuracy": True, "roc_auc": True, "worst_group_gap": False, "flip_rate": False,
    "latency_ms_per_example": False, "examples_per_s": True, "build_seconds": False,
}
_ESTIMATE = ("value", "ci_low", "ci_high", "status", "n", "method")
#: Side-by-side rows that are measurements of this run (no sampling interval).
MEASURED = ("latency_ms_per_example", "examples_per_s", "build_seconds")


def _estimate(rec: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: (rec or {}).get(k) for k in _ESTIMATE}


def _rows(records: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> list[dict[str, Any]]:
    return [{**{k: r.get(k) for k in keys}, **_estimate(r)} for r in records]


# -- verdict -------------------------------------------------------------------------------


def _gates(result: FairnessResult | None) -> list[dict[str, Any]]:
    if result is None:
        return []
    return [{"label": g["gate"], "gate_index": int(g["gate_index"]), "metric": g["metric"], "variant": g["variant"], "feature": g["feature"],
             "group": g["group"], "mode": g["mode"], "bound": g["bound"], "direction": g["direction"],
             "value": g["value"], "ci_low": g["ci_low"], "ci_high": g["ci_high"], "result": g["status"],
             "reason": g["reason"], "method": g["method"], "near_bound": bool(g["near_bound"]),
             "optional": bool(g["optional"]), "events": g["events"], "trials": g["trials"]}
            for g in result.estimates("gate_results")]


def _verdict_section(inputs: RunInputs, gates: list[dict[str, Any]]) -> dict[str, Any]:
    """The run's verdict (from the manifest), the gates per variant, and a plain-words explanation."""
    overall = inputs.manifest["verdict"]
    reasons = list(inputs.manifest.get("verdict_reasons") or [])
    result = inputs.result
    by_variant: dict[str, Any] = {}
    for name in (result.variants if result is not None else ()):
        own = [g for g in gates if g["variant"] == name]
        failed = [g for g in own if g["result"] == FAIL]
        undecided = [g for g in own if g["result"] not in (PASS, FAIL)]
        v = result.variant_verdict(name) or "no_gates"
        if not own:
            words = f"{name}: no gate was judged."
        elif failed:
            words = (f"{name} fails {len(failed)} of {len(own)} gate(s): "
                     + "; ".join(describe_gate(g) for g in failed[:4]) + ("; ..." if len(failed) > 4 else "") + ".")
        elif undecided:
            words = (f"{name}: no gate failed, {len(undecided)} of {len(own)} undecided: "
                     + "; ".join(describe_gate(g) for g in undecided[:4])
                     + ("; ..." if len(undecided) > 4 else "") + ".")
        else:
            words = f"{name} passes all {len(own)} gate(s)."
        by_variant[name] = {"verdict": v, "gates": len(own), "passed": sum(g["result"] == PASS for g in own),
                            "failed": len(failed), "insufficient": len(undecided), "plain_words": words}
    failed = [g for g in gates if g["result"] == FAIL]
    undecided = [g for g in gates if g["result"] == INSUFFICIENT]
    unmeasured = [g for g in gates if g["result"] == NOT_EVALUABLE]
    near = [g for g in gates if g["near_bound"]]
    if overall == FAIL:
        words = ("FAIL: " + (f"{len(failed)} of {len(gates)} gate result(s) failed: "
                             + "; ".join(f"{g['variant']} {describe_gate(g)}" for g in failed[:6])
                             + ("; ..." if len(failed) > 6 else "") if failed else "; ".join(reasons)) + ".")
    elif overall == PASS:
        words = f"PASS: all {len(gates)} gate result(s) passed for every variant, intervals included."
    elif not gates:
        words = "INSUFFICIENT EVIDENCE: nothing was judged: " + "; ".join(reasons) + "."
    else:
        parts = []
        if undecided:
            parts.append(f"{len(undecided)} undecided (the interval straddles the bound, or the group is too "
                         "small for the metric)")
        if unmeasured:
            parts.append(f"{len(unmeasured)} not evaluable (nothing to measure: "
                         + "; ".join(f"{g['variant']} {g['label']}" for g in unmeasured[:3])
                         + ("; ..." if len(unmeasured) > 3 else "") + ")")
        words = f"INSUFFICIENT EVIDENCE: no gate failed, but of {len(gates)} gate result(s) " + ", ".join(parts) + "."
    attention = [g for g in gates if g["result"] in (FAIL, NOT_EVALUABLE) or g["near_bound"]
                 or (g["result"] == INSUFFICIENT)]
    by_gate = gate_summaries(gates, list(result.variants) if result is not None else [])
    return {"overall": overall, "reasons": reasons, "plain_words": words, "gates_evaluated": bool(gates),
            "headline": headline(overall, by_gate, reasons),
            "by_variant": by_variant, "gates": gates, "attention": attention, "by_gate": by_gate,
            "counts": {"fail": len(failed), "insufficient_evidence": len(undecided),
                       "not_evaluable": len(unmeasured), "near_bound": len(near),
                       "pass": sum(g["result"] == PASS for g in gates)}}


# -- variants ------------------------------------------------------------------------------


def _variant_section(name: str, inputs: RunInputs) -> dict[str, Any]:
    result = inputs.result
    assert result is not None
    mine = result.estimates("group_metrics", variant=name)
    group = [r for r in mine if r["metric"] not in BIAS_AUC_METRICS]
    built = (inputs.artifact("build_variants", "variants") or {}).get(name) or {}
    thresholds = (inputs.artifact("predict", "thresholds") or {}).get(name)
    performance = (inputs.artifact("predict", "performance") or {}).get(name)
    return {
        "name": name,
        "kind": built.get("kind"),
        "twin_modes": list((performance or {}).get("twin_modes") or []),
        "features": [f for f in result.features],
        "overall": {r["metric"]: _estimate(r) for r in group if r["feature"] == OVERALL_FEATURE},
        "group_metrics": _rows([r for r in group if r["feature"] != OVERALL_FEATURE], ("feature", "group", "metric")),
        "disparities": _rows(result.estimates("disparities", variant=name), ("feature", "metric")),
        "bias_auc": _rows([r for r in mine if r["metric"] in BIAS_AUC_METRICS], ("feature", "group", "metric")),
        "counterfactual": _rows(result.estimates("counterfactual_metrics", variant=name),
                                ("mode", "feature", "group", "metric")),
        "exposure": _rows(result.estimates("exposure_metrics", variant=name), ("feature", "group", "metric")),
        "threshold": to_jsonable(thresholds) if thresholds else None,
        "performance": to_jsonable(performance) if performance else None,
    }


def _worst_group_gap(section: Mapping[str, Any]) -> dict[str, Any] | None:
    """The between-group accuracy difference on the first sensitive feature (the evaluation's own)."""
    feature = section["features"][0] if section["features"] else None
    for d in section["disparities"]:
        if d["feature"] == feature and d["metric"] == "accuracy_difference" and d["value"] is not None:
            return {"metric": "accuracy", "feature": feature, **_estimate(d)}
    return None


def key_metrics_of(section: Mapping[str, Any]) -> dict[str, Any]:
    """The numbers kept per variant in the history and compared side by side."""
    perf = section.get("performance") or {}
    gap = _worst_group_gap(section)
    flip = next((r["value"] for r in section["counterfactual"] if r["metric"] == "flip_rate"
                 and r["mode"] == "full" and r["feature"] == OVERALL_FEATURE), None)
    return {
        "accuracy": (section["overall"].get("accuracy") or {}).get("value"),
        "roc_auc": (section["overall"].get("roc_auc") or {}).get("value"),
        "worst_group_gap": gap["value"] if gap else None,
        "flip_rate": flip,
        "latency_ms_per_example": perf.get("latency_ms_per_example"),
        "examples_per_s": perf.get("examples_per_s"),
        "build_seconds": perf.get("build_seconds"),
    }


def _value_ci(section: Mapping[str, Any], metric: str) -> list[float] | None:
    """The interval of a variant's key metric, as the evaluation computed it."""
    if metric in ("accuracy", "roc_auc"):
        est = section["overall"].get(metric) or {}
    elif metric == "worst_group_gap":
        est = _worst_group_gap(section) or {}
    elif metric == "flip_rate":
        est = next((r for r in section["counterfactual"] if r["metric"] == "flip_rate" and r["mode"] == "full"
                    and r["feature"] == OVERALL_FEATURE), None) or {}
    else:
        return None
    lo, hi = est.get("ci_low"), est.get("ci_high")
    return [lo, hi] if lo is not None and hi is not None else None


def _comparisons(result: FairnessResult, sections: Mapping[str, Mapping[str, Any]],
                 key_metrics: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for a, b in result.comparisons:
        paired = {r["metric"]: r for r in result.estimates("comparison", a=a, b=b, kind="metric",
                                                           feature=OVERALL_FEATURE)}
        cf = result.estimate("comparison", a=a, b=b, kind="counterfactual", feature=OVERALL_FEATURE,
                             metric="flip_rate")
        if cf is not None:
            paired["flip_rate"] = cf
        gap = result.estimate("comparison", a=a, b=b, kind="disparity", metric="accuracy_difference",
                              feature=(result.features or [None])[0])
        if gap is not None:
            paired["worst_group_gap"] = gap
        rows = []
        for metric, label in KEY_METRIC_LABELS.items():
            va, vb = key_metrics[a].get(metric), key_metrics[b].get(metric)
            diff = va - vb if va is not None and vb is not None else None
            est = paired.get(metric) or {}
            hib = HIGHER_IS_BETTER.get(metric)
            lo, hi = est.get("ci_low"), est.get("ci_high")
            better = None
            if diff is not None and hib is not None and diff != 0:
                if metric in MEASURED:
                    better = a if (diff > 0) == hib else b
                elif lo is not None and hi is not None and (lo > 0 or hi < 0):
                    better = a if (lo > 0) == hib else b
                else:
                    better = "no clear difference"
            rows.append({"metric": metric, "label": label, "a": va, "b": vb,
                         "a_ci": _value_ci(sections[a], metric), "b_ci": _value_ci(sections[b], metric),
                         "difference": diff, "difference_ci_low": lo, "difference_ci_high": hi,
                         "measured": metric in MEASURED, "better": better})
        out.append({"a": a, "b": b, "rows": rows,
                    "worst_group_gap": {a: _worst_group_gap(sections[a]), b: _worst_group_gap(sections[b])},
                    "note": "difference = a - b; latency and build cost were measured on this run's machine."})
    return out


# -- the whole summary -----------------------------------------------------------------------


def build_summary(inputs: RunInputs) -> dict[str, Any]:
    """The run summary (``summary.json``); see ``docs/report.md`` for its keys."""
    cfg = inputs.config
    result = inputs.result
    missing: list[dict[str, str]] = []
    data = data_section(inputs, missing)
    if "predict" not in inputs.stages:
        missing.append({"section": "variants", "reason": "stage predict did not finish: no predictions, latency "
                        "or thresholds for any variant."})
    if result is None:
        missing.append({"section": "evaluation", "reason": "stage evaluate did not finish: no per-group metrics, "
                        "confidence intervals, disparities, bias AUCs or gates."})
    names = list(result.variants) if result is not None else []
    sections = {n: _variant_section(n, inputs) for n in names}
    key_metrics = {n: key_metrics_of(s) for n, s in sections.items()}
    if names and not any(s["counterfactual"] for s in sections.values()):
        missing.append({"section": "counterfactuals", "reason": "no counterfactual twins were scored in this run."})
    if names and not any(s["exposure"] for s in sections.values()):
        missing.append({"section": "exposure", "reason": "no variant retrieves documents: retrieval exposure "
                        "does not apply."})
    comparisons = _comparisons(result, sections, key_metrics) if result is not None else []
    if len(names) == 1:
        missing.append({"section": "comparison", "reason": "only one variant ran: nothing to compare side by side."})
    gates = _gates(result)
    verdict = _verdict_section(inputs, gates)
    features = list((data or {}).get("sensitive_features") or cfg.data.sensitive_features)
    if not inputs.history:
        reason = ("the run history could not be read (" + inputs.history_error + ")" if inputs.history_error
                  else "no earlier finished run of this audit is recorded")
        missing.append({"section": "trend", "reason": f"{reason}: no trend yet."})
    summary = {
        "summary_version": SUMMARY_VERSION,
        "audit": cfg.audit.name,
        "title": cfg.report.title or f"Fairness audit: {cfg.audit.name}",
        "description": cfg.audit.description,
        "run_id": inputs.manifest.get("run_id"),
        "sections": [s for s, _ in SECTIONS],
        "variant_order": names,
        "verdict": verdict,
        "data": data,
        "evaluation": None if result is None else {
            "settings": dict(result.settings), "examples": result.examples, "notes": list(result.notes),
            "counterfactual_coverage": result.counterfactual_coverage,
        },
        "variants": sections,
        "key_metrics": key_metrics,
        "comparisons": comparisons,
        "mitigation": mitigation_section(inputs, missing),
        "examples": examples_section(inputs, variant_names=names, feature=features[0] if features else None,
                                     top=cfg.report.top_examples),
        "generation": generation_section(inputs, result, top=cfg.generation.examples, missing=missing),
        "provenance": provenance_section(inputs),
        "trend": trend_section(inputs, verdict=verdict["overall"], key_metrics=key_metrics),
        "missing": missing,
    }
    return to_jsonable(summary)
