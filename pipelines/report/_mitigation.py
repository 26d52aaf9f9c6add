"""The report's mitigation section (``summary["mitigation"]``) and its trade-off chart.

Everything comes from the mitigate stage's artifacts: its :class:`~pipelines.fairness.FairnessResult`
(the deployed variants beside their per-group-threshold twins, with paired ``twin - variant``
comparisons), its ``mitigation`` JSON (settings, fitted rules, warnings, the caveat) and its
``tradeoff`` table. Nothing is recomputed here.
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

from pipelines.fairness import RESULT_ARTIFACTS, FairnessResult
from pipelines.report import _svg
from pipelines.report._inputs import RunInputs

__all__ = ["mitigation_section", "tradeoff_chart", "MITIGATION_DISPARITIES", "MITIGATION_METRICS"]

#: Disparities shown before / after (the constrained gap is added first when it is not among them).
MITIGATION_DISPARITIES: tuple[str, ...] = ("equalized_odds_difference", "demographic_parity_difference",
                                           "equal_opportunity_difference", "fpr_difference")
#: Overall metrics shown before / after (the accuracy cost first).
MITIGATION_METRICS: tuple[str, ...] = ("accuracy", "balanced_accuracy", "selection_rate", "tpr", "fpr")
GROUP_METRICS: tuple[str, ...] = ("selection_rate", "tpr", "fpr", "accuracy")
_EST = ("value", "ci_low", "ci_high", "status", "n")


def _est(rec: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: (rec or {}).get(k) for k in _EST}


def _row(result: FairnessResult, *, table: str, kind: str, variant: str, twin: str, feature: str, metric: str,
         group: str | None = None) -> dict[str, Any]:
    where = {"feature": feature, "metric": metric, **({"group": group} if group is not None else {})}
    return {"metric": metric, "feature": feature, "group": group,
            "before": _est(result.estimate(table, variant=variant, **where)),
            "after": _est(result.estimate(table, variant=twin, **where)),
            "difference": _est(result.estimate("comparison", a=twin, b=variant, kind=kind, **where))}


def _gates(result: FairnessResult, variant: str, twin: str) -> list[dict[str, Any]]:
    """Each gate result of the deployed variant beside the same gate on its twin."""
    def key(g: Mapping[str, Any]) -> tuple:
        return (g["gate_index"], g["feature"], g["group"], g["mode"])

    after = {key(g): g for g in result.estimates("gate_results", variant=twin)}
    out = []
    for g in result.estimates("gate_results", variant=variant):
        a = after.get(key(g)) or {}
        out.append({"gate": g["gate"], "feature": g["feature"], "group": g["group"], "bound": g["bound"],
                    "direction": g["direction"], "before": {**_est(g), "result": g["status"]},
                    "after": {**_est(a), "result": a.get("status")}})
    return out


def _words(name: str, gap: Mapping[str, Any], accuracy: Mapping[str, Any], gap_label: str) -> str:
    def ci(e: Mapping[str, Any]) -> str:
        if e.get("value") is None:
            return str(e.get("status") or "n/a").replace("_", " ")
        out = f"{e['value']:.3f}"
        if e.get("ci_low") is not None:
            out += f" [{e['ci_low']:.3f}, {e['ci_high']:.3f}]"
        return out

    return (f"{name}: {gap_label} {ci(gap['before'])} deployed, {ci(gap['after'])} with per-group thresholds "
            f"(change {ci(gap['difference'])}); accuracy {ci(accuracy['before'])} -> {ci(accuracy['after'])} "
            f"(change {ci(accuracy['difference'])}).")


def _points(tradeoff: Any, variant: str) -> list[dict[str, Any]]:
    rows = tradeoff[tradeoff["variant"].astype(str) == variant] if tradeoff is not None else []
    out = []
    for r in (rows.to_dict("records") if len(rows) else []):
        clean = {k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()}
        clean["thresholds"] = json.loads(clean["thresholds"]) if clean.get("thresholds") else None
        out.append(clean)
    return out


def mitigation_section(inputs: RunInputs, missing: list[dict[str, str]]) -> dict[str, Any] | None:
    """Per mitigated variant: the constrained gap and key disparities before / after / difference with
    intervals, the accuracy cost, per-group rates, the gates on both, the fitted rule and the trade-off."""
    arts = inputs.stages.get("mitigate")
    if arts is None:
        if inputs.config.mitigation.enabled:
            missing.append({"section": "mitigation", "reason": "stage mitigate did not finish: no per-group "
                            "thresholds were evaluated."})
        return None
    result = FairnessResult.from_artifacts({k: arts[k] for k in RESULT_ARTIFACTS})
    meta = arts["mitigation"]
    settings = meta["settings"]
    feature, gap_metric = settings["feature"], settings["gap_metric"]
    disparities = tuple(dict.fromkeys((gap_metric,) + MITIGATION_DISPARITIES))
    variants = {}
    for v in meta["mitigated_variants"]:
        info = meta["variants"][v]
        twin = info["twin"]
        gaps = [_row(result, table="disparities", kind="disparity", variant=v, twin=twin, feature=feature, metric=m)
                for m in disparities]
        overall = [_row(result, table="group_metrics", kind="metric", variant=v, twin=twin, feature="overall",
                        metric=m, group="all") for m in MITIGATION_METRICS]
        groups = sorted({str(r["group"]) for r in result.estimates("group_metrics", variant=v, feature=feature)})
        per_group = [{"group": g, "rows": [_row(result, table="group_metrics", kind="metric", variant=v, twin=twin,
                                                feature=feature, metric=m, group=g) for m in GROUP_METRICS]}
                     for g in groups]
        gap = next(r for r in gaps if r["metric"] == gap_metric)
        accuracy = overall[0]
        eo = next(r for r in gaps if r["metric"] == "equalized_odds_difference")
        variants[v] = {
            "twin": twin,
            "gap": gap,
            "equalized_odds": eo,
            "accuracy_cost": accuracy,
            "disparities": gaps,
            "overall": overall,
            "groups": per_group,
            "gates": _gates(result, v, twin),
            "twin_verdict": result.variant_verdict(twin),
            "deployed_verdict": result.variant_verdict(v),
            "policy": [{"group": g, **r, **(info["validation"]["groups"].get(g) or {})}
                       for g, r in sorted(info["policy"].items())],
            "validation_rows": info["validation"]["rows"],
            "warnings": list(info.get("warnings") or []),
            "tradeoff": _points(arts.get("tradeoff"), v),
            "plain_words": _words(v, gap, accuracy, gap_metric.replace("_", " ")),
        }
    return {"settings": settings, "verdict_on": meta["verdict_on"], "caveat": meta["caveat"],
            "skipped_gates": list(meta.get("skipped_gates") or []), "seconds": meta.get("seconds"),
            "variants": variants, "order": list(meta["mitigated_variants"]),
            "not_mitigated": dict(meta.get("not_mitigated") or {})}


def tradeoff_chart(points: Sequence[Mapping[str, Any]], *, title: str, gap_label: str,
                   chosen: Mapping[str, Any] | None = None, width: int = 460, height: int = 300) -> Any:
    """Accuracy (y) against the constrained gap (x) on the audit sample, one point per rule of the sweep.

    ``points``: tradeoff rows (``kind``, ``tolerance``, ``audit_accuracy``, ``audit_gap``); the relaxed
    rules are joined by a line in order of tolerance; the deployed rule is a square and fairlearn's
    (chosen) rule a larger ring, with its intervals (the evaluation's) in both directions from ``chosen``
    (``{"accuracy": est, "gap": est}``).
    """
    left, right, top, bottom = 48, 14, 24, 40
    pw, ph = width - left - right, height - top - bottom
    pts = [p for p in points if _svg._finite(p.get("audit_accuracy")) and _svg._finite(p.get("audit_gap"))]
    xs = [p["audit_gap"] for p in pts]
    ys = [p["audit_accuracy"] for p in pts]
    for axis, vals in (("gap", xs), ("accuracy", ys)):
        est = (chosen or {}).get(axis) or {}
        vals += [v for v in (est.get("ci_low"), est.get("ci_high")) if _svg._finite(v)]
    x_lo, x_hi = 0.0, max(xs + [0.1]) * 1.08
    y_lo, y_hi = _svg._domain(ys, None, None)
    pad = (y_hi - y_lo) * 0.1
    y_lo, y_hi = max(0.0, y_lo - pad), min(1.0, y_hi + pad)

    def x(v: float) -> float:
        return left + (v - x_lo) / (x_hi - x_lo) * pw

    def y(v: float) -> float:
        return top + ph - (v - y_lo) / (y_hi - y_lo) * ph

    el = _svg._el
    out = [el("text", {"x": 4, "y": 14, "font-weight": "600"}, title)]
    out.append(el("line", {"x1": left, "x2": left, "y1": top, "y2": top + ph, "stroke": "#888"}))
    out.append(el("line", {"x1": left, "x2": left + pw, "y1": top + ph, "y2": top + ph, "stroke": "#888"}))
    for i in range(5):
        xv, yv = x_lo + (x_hi - x_lo) * i / 4, y_lo + (y_hi - y_lo) * i / 4
        out.append(el("text", {"x": x(xv), "y": top + ph + 14, "text-anchor": "middle", "fill": "#555"},
                      f"{xv:.2f}"))
        out.append(el("text", {"x": left - 4, "y": y(yv) + 4, "text-anchor": "end", "fill": "#555"}, f"{yv:.2f}"))
    out.append(el("text", {"x": left + pw / 2, "y": height - 6, "text-anchor": "middle", "fill": "#333"},
                  f"{gap_label} (audit sample)"))
    out.append(el("text", {"x": 10, "y": top + ph / 2, "fill": "#333",
                           "transform": f"rotate(-90 10 {top + ph / 2:.0f})", "text-anchor": "middle"}, "accuracy"))
    relaxed = sorted((p for p in pts if p["kind"] == "relaxed"), key=lambda p: p["tolerance"])
    if len(relaxed) >= 2:
        d = " ".join(f"{'M' if i == 0 else 'L'}{x(p['audit_gap']):.1f},{y(p['audit_accuracy']):.1f}"
                     for i, p in enumerate(relaxed))
        out.append(el("path", {"d": d, "fill": "none", "stroke": _svg.PALETTE[5], "stroke-width": 1.2,
                               "class": "sweep-line"}))
    est = chosen or {}
    for p in pts:
        cx, cy = x(p["audit_gap"]), y(p["audit_accuracy"])
        tip = (f"{_label(p)}: accuracy {_svg._fmt(p['audit_accuracy'])}, gap {_svg._fmt(p['audit_gap'])}")
        title_el = [el("title", text=tip)]
        if p["kind"] == "deployed":
            out.append(el("rect", {"x": cx - 5, "y": cy - 5, "width": 10, "height": 10, "fill": _svg.PALETTE[0],
                                   "class": "point-deployed"}, children=title_el))
        elif p["kind"] == "fairlearn":
            for axis, horizontal in (("gap", True), ("accuracy", False)):
                e = est.get(axis) or {}
                if _svg._finite(e.get("ci_low")) and _svg._finite(e.get("ci_high")):
                    a, b = (x(e["ci_low"]), x(e["ci_high"])) if horizontal else (y(e["ci_low"]), y(e["ci_high"]))
                    coords = {"x1": a, "x2": b, "y1": cy, "y2": cy} if horizontal else \
                        {"x1": cx, "x2": cx, "y1": a, "y2": b}
                    out.append(el("line", {**coords, "stroke": _svg.PALETTE[1], "stroke-width": 1.5, "class": "ci"}))
            out.append(el("circle", {"cx": cx, "cy": cy, "r": 7, "fill": "none", "stroke": _svg.PALETTE[1],
                                     "stroke-width": 2.5, "class": "point-chosen"}, children=title_el))
        elif p["kind"] == "single_threshold":
            out.append(el("path", {"d": f"M{cx:.1f},{cy - 6:.1f} L{cx + 6:.1f},{cy + 5:.1f} L{cx - 6:.1f},"
                                        f"{cy + 5:.1f} Z", "fill": _svg.PALETTE[2], "class": "point-single"},
                          children=title_el))
        else:
            out.append(el("circle", {"cx": cx, "cy": cy, "r": 3.5, "fill": _svg.PALETTE[5], "class": "point-relaxed"},
                          children=title_el))
            out.append(el("text", {"x": cx + 5, "y": cy - 5, "fill": "#777", "font-size": "9"},
                          f"{p['tolerance']:g}"))
    return _svg._svg(width, height, title, out)


def _label(p: Mapping[str, Any]) -> str:
    kind = p["kind"]
    if kind == "deployed":
        return "deployed threshold"
    if kind == "fairlearn":
        return "fairlearn ThresholdOptimizer (chosen)"
    if kind == "single_threshold":
        return "one objective-optimal threshold for everyone"
    if p.get("tolerance") == 1.0:
        return "best single threshold per group, no constraint"
    return f"best single threshold per group, gap at most {p.get('tolerance'):g}"
