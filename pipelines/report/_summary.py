"""Build the machine-readable run summary (``summary.json``) from stage artifacts.

Everything the HTML shows comes from this summary, so the two never disagree.
Inputs may be missing (a stage that did not run or is not in the graph yet):
each absent part becomes an entry of ``missing`` and the rest still renders.
The structure is documented in ``docs/report.md``; bump :data:`SUMMARY_VERSION`
when a key changes meaning or disappears.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Sequence

__all__ = [
    "SUMMARY_VERSION",
    "SECTIONS",
    "CHART_METRICS",
    "KEY_METRIC_LABELS",
    "build_summary",
    "key_metrics_of",
    "verdict_section",
]

SUMMARY_VERSION = 1

#: Report sections, in the order the HTML shows them.
SECTIONS: tuple[tuple[str, str], ...] = (
    ("verdict", "Verdict"),
    ("data", "Data"),
    ("variants", "Variants"),
    ("comparison", "Side by side"),
    ("examples", "Examples"),
    ("provenance", "Provenance"),
    ("trend", "Trend"),
)

OVERALL_FEATURE = "overall"
OVERALL_GROUP = "all"
BIAS_AUC_METRICS = ("subgroup_auc", "bpsn_auc", "bnsp_auc")
STATUS_OK = "ok"
VERDICTS = ("pass", "fail", "insufficient_evidence")

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


# -- small helpers -----------------------------------------------------------


def _num(x: Any) -> float | None:
    if x is None or isinstance(x, bool):
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _clean(value: Any) -> Any:
    """Plain JSON values: numpy scalars to Python, NaN to None, tuples to lists."""
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return _clean(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _records(source: Any) -> list[dict[str, Any]]:
    """Tidy records from a DataFrame, a list of dicts, or ``{"records": [...]}``."""
    if source is None:
        return []
    if hasattr(source, "to_dict") and hasattr(source, "columns"):
        return [_clean(r) for r in source.to_dict("records")]
    if isinstance(source, Mapping) and isinstance(source.get("records"), list):
        source = source["records"]
    if isinstance(source, list):
        return [_clean(dict(r)) for r in source if isinstance(r, Mapping)]
    return []


def _first(mapping: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        if key in mapping and mapping[key] is not None:
            return mapping[key]
    return None


def _estimate(rec: Mapping[str, Any]) -> dict[str, Any]:
    """``{value, ci_low, ci_high, status, n}`` from a tidy record (tolerates a few spellings)."""
    ci = rec.get("ci") if isinstance(rec.get("ci"), (list, tuple)) and len(rec.get("ci")) == 2 else (None, None)
    value = _num(_first(rec, "value", "estimate", "point"))
    status = rec.get("status") or (STATUS_OK if value is not None else "undefined")
    return {
        "value": value,
        "ci_low": _num(_first(rec, "ci_low", "low", "lower")) if ci[0] is None else _num(ci[0]),
        "ci_high": _num(_first(rec, "ci_high", "high", "upper")) if ci[1] is None else _num(ci[1]),
        "status": status,
        "n": rec.get("n"),
    }


def _by_variant(records: Iterable[Mapping[str, Any]], variant: str) -> list[dict[str, Any]]:
    return [dict(r) for r in records if r.get("variant") == variant]


def _evaluate_part(evaluate: Mapping[str, Any] | None, *names: str) -> list[dict[str, Any]]:
    """Tidy records named ``names[0]`` (or an alias) from the evaluate artifacts or the fairness json."""
    if not evaluate:
        return []
    fairness = evaluate.get("fairness") if isinstance(evaluate.get("fairness"), Mapping) else {}
    for name in names:
        if name in evaluate and not isinstance(evaluate[name], (str, bytes)):
            recs = _records(evaluate[name])
            if recs:
                return recs
        if name in fairness:
            recs = _records(fairness[name])
            if recs:
                return recs
    return []


# -- verdict -------------------------------------------------------------------


def _gate_result(rec: Mapping[str, Any]) -> str:
    # the evaluation's gate records carry the outcome in `status`
    result = _first(rec, "result", "verdict", "outcome", "status")
    return str(result) if result is not None else "insufficient_evidence"


def _combine(results: Iterable[str]) -> str | None:
    results = list(results)
    if not results:
        return None
    if "fail" in results:
        return "fail"
    if any(r != "pass" for r in results):
        return "insufficient_evidence"
    return "pass"


def _gate_words(g: Mapping[str, Any]) -> str:
    where = f" for {g['group']}" if g.get("group") else (f" ({g['feature']})" if g.get("feature") else "")
    value = g.get("value")
    if value is None:
        return f"{g['label']}{where}: no estimate"
    ci = (f" [{g['ci_low']:.3f}, {g['ci_high']:.3f}]" if g.get("ci_low") is not None and g.get("ci_high") is not None
          else "")
    return f"{g['label']}{where}: {value:.3f}{ci}"


def verdict_section(*, fairness: Mapping[str, Any] | None, validation_summary: Mapping[str, Any] | None,
                    variant_names: Sequence[str], gates: list[dict[str, Any]],
                    manifest: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The verdict, the gates per variant, and a plain-words explanation.

    The overall verdict is the pipeline's own (:func:`pipelines.stages.verdict_of`, or the
    finished manifest's ``verdict``), so the report and the exit code always agree.
    """
    if manifest and manifest.get("verdict"):
        overall = manifest["verdict"]
        reasons = list(manifest.get("verdict_reasons") or [])
    else:
        from pipelines.stages import verdict_of  # lazy: stages.py imports this package

        v = verdict_of({"evaluate": {"fairness": fairness} if fairness else {},
                        "validate_data": {"validation_summary": validation_summary} if validation_summary else {}})
        overall, reasons = v["verdict"], list(v.get("verdict_reasons") or [])
    fairness_variants = (fairness or {}).get("variants") if isinstance((fairness or {}).get("variants"), Mapping) else {}
    by_variant: dict[str, Any] = {}
    for name in variant_names:
        own = [g for g in gates if g.get("variant") in (name, None)]
        stated = (fairness_variants.get(name) or {}).get("verdict") if isinstance(fairness_variants.get(name), Mapping) else None
        results = [g["result"] for g in own]
        v_verdict = stated or _combine(results) or "no_gates"
        failed_here = [g for g in own if g["result"] == "fail"]
        undecided_here = [g for g in own if g["result"] not in ("pass", "fail")]
        if v_verdict == "no_gates":
            words = f"{name}: no gate was judged."
        elif failed_here:
            words = (f"{name} fails {len(failed_here)} of {len(own)} gate(s): "
                     + "; ".join(_gate_words(g) for g in failed_here[:4]) + ("; ..." if len(failed_here) > 4 else "") + ".")
        elif undecided_here:
            words = (f"{name}: no gate failed, {len(undecided_here)} of {len(own)} undecided: "
                     + "; ".join(_gate_words(g) for g in undecided_here[:4])
                     + ("; ..." if len(undecided_here) > 4 else "") + ".")
        else:
            words = f"{name} passes all {len(own)} gate(s)."
        by_variant[name] = {
            "verdict": v_verdict,
            "gates": len(own),
            "passed": sum(r == "pass" for r in results),
            "failed": len(failed_here),
            "insufficient": len(undecided_here),
            "plain_words": words,
        }
    gates_evaluated = bool(gates)
    failed = [g for g in gates if g["result"] == "fail"]
    undecided = [g for g in gates if g["result"] not in ("pass", "fail")]
    if overall == "fail":
        if failed:
            words = (f"FAIL: {len(failed)} of {len(gates)} gate(s) failed: "
                     + "; ".join(f"{g.get('variant') or 'all variants'} {_gate_words(g)}" for g in failed[:6])
                     + ("; ..." if len(failed) > 6 else "") + ".")
        else:
            words = "FAIL: " + "; ".join(reasons) + "."
    elif overall == "insufficient_evidence":
        words = (f"INSUFFICIENT EVIDENCE: no gate failed, but {len(undecided)} of {len(gates)} gate(s) could not be "
                 "decided (the confidence interval straddles the bound, or the group is too small).")
    elif gates_evaluated:
        words = f"PASS: all {len(gates)} gate(s) passed for every variant, confidence intervals included."
    elif fairness:
        words = ("PASS by default: no fairness gates were evaluated (the evaluation ran, but `evaluation.gates` "
                 "is empty), so nothing could fail. Configure gates for a real verdict.")
    else:
        words = ("PASS by default: no fairness gates were evaluated in this run (the evaluation did not run), "
                 "so nothing could fail. Run the evaluation with `evaluation.gates` for a real verdict.")
    return {
        "overall": overall,
        "reasons": reasons,
        "plain_words": words,
        "gates_evaluated": gates_evaluated,
        "by_variant": by_variant,
        "gates": gates,
    }


def _gates(fairness: Mapping[str, Any] | None, evaluate: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    out = []
    for rec in _evaluate_part(evaluate, "gate_results", "gates"):
        est = _estimate(rec)
        bound = _num(rec.get("bound"))
        direction = rec.get("direction")
        label = rec.get("gate") or rec.get("label") or rec.get("name")
        if not label:
            op = "<=" if direction == "max" else ">=" if direction == "min" else "vs"
            label = f"{rec.get('metric')} {op} {bound:g}" if bound is not None else str(rec.get("metric"))
        out.append({
            "label": str(label),
            "metric": rec.get("metric"),
            "variant": rec.get("variant"),
            "feature": rec.get("feature"),
            "group": rec.get("group"),
            "mode": rec.get("mode"),
            "bound": bound,
            "direction": direction,
            "value": est["value"],
            "ci_low": est["ci_low"],
            "ci_high": est["ci_high"],
            "result": _gate_result(rec),
            "reason": rec.get("reason") or rec.get("message"),
        })
    return out


# -- data ----------------------------------------------------------------------


def _data_section(data: Mapping[str, Any] | None, validation: Mapping[str, Any] | None,
                  missing: list[dict[str, str]]) -> dict[str, Any] | None:
    if not data:
        missing.append({"section": "data", "reason": "stage load_data did not run: no data summary."})
        return None
    summary = data.get("data_summary") or {}
    removed = data.get("removed_rows") or {}
    splits = {}
    for split, entry in (summary.get("splits") or {}).items():
        splits[split] = {
            "rows": entry.get("rows"),
            "base_rate": _num(entry.get("base_rate")),
            "groups": {feature: {str(g): {"count": v.get("count"), "share": _num(v.get("share")),
                                          "positives": v.get("positives"), "base_rate": _num(v.get("base_rate"))}
                                 for g, v in groups.items()}
                       for feature, groups in (entry.get("features") or {}).items()},
        }
    out: dict[str, Any] = {
        "source": summary.get("source"),
        "rows": summary.get("rows"),
        "sensitive_features": list(summary.get("sensitive_features") or []),
        "audit_sample_rows": summary.get("audit_sample_rows"),
        "encodings": summary.get("encodings") or {},
        "splits": splits,
        "removed_rows": {
            "total": removed.get("total", summary.get("removed_rows")),
            "rows_read": removed.get("rows_read"),
            "kept": removed.get("kept"),
            "by_reason": dict(removed.get("by_reason") or {}),
            "by_file": dict(removed.get("by_file") or {}),
        },
        "validation": None,
    }
    vs = (validation or {}).get("validation_summary") if validation else None
    if not vs:
        missing.append({"section": "data.validation",
                        "reason": "stage validate_data did not run: no TFDV anomalies, drift or skew."})
    else:
        def anomaly(a: Mapping[str, Any]) -> dict[str, Any]:
            return {k: a.get(k) for k in ("feature", "severity", "short_description", "description")} | {
                "types": list(a.get("types") or [])}

        def distance(d: Mapping[str, Any]) -> dict[str, Any]:
            return {"feature": d.get("feature"), "measure": d.get("measure"), "value": _num(d.get("value")),
                    "threshold": _num(d.get("threshold")), "exceeded": bool(d.get("exceeded"))}

        schema = vs.get("schema") or {}
        out["validation"] = {
            "blessed": vs.get("blessed"),
            "block_on_anomalies": vs.get("block_on_anomalies"),
            "anomaly_count": vs.get("anomaly_count"),
            "anomalies": {split: [anomaly(a) for a in items if isinstance(a, Mapping)]
                          for split, items in sorted((vs.get("anomalies") or {}).items())},
            "drift": [distance(d) for d in vs.get("drift") or [] if isinstance(d, Mapping)],
            "skew": [distance(d) for d in vs.get("skew") or [] if isinstance(d, Mapping)],
            "schema": {"origin": schema.get("origin"), "path": schema.get("path"), "sha256": schema.get("sha256")},
            "examples_per_slice": vs.get("examples_per_slice") or {},
        }
    return out


# -- variants ------------------------------------------------------------------


def _labels_by_id(data: Mapping[str, Any] | None) -> Any:
    sample = (data or {}).get("audit_sample")
    if sample is None or not hasattr(sample, "columns"):
        return None
    return sample


def _auc(labels: Sequence[int], scores: Sequence[float]) -> float | None:
    """ROC AUC by the rank-sum formula (ties get average ranks)."""
    pairs = sorted(zip(scores, labels))
    n_pos = sum(1 for _, y in pairs if y == 1)
    n_neg = len(pairs) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    rank_sum, i = 0.0, 0
    while i < len(pairs):
        j = i
        while j + 1 < len(pairs) and pairs[j + 1][0] == pairs[i][0]:
            j += 1
        avg = (i + j) / 2 + 1
        rank_sum += avg * sum(1 for k in range(i, j + 1) if pairs[k][1] == 1)
        i = j + 1
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def _fallback_overall(predictions: Any, sample: Any, variant: str) -> dict[str, float | None]:
    """Accuracy and AUC straight from predictions when the evaluation did not run."""
    if predictions is None or sample is None or not len(predictions):
        return {}
    rows = predictions[predictions["variant"] == variant]
    labels = dict(zip(sample["example_id"].astype(str), sample["label"].astype(int)))
    ys, ss, ps = [], [], []
    for eid, score, pred in zip(rows["example_id"].astype(str), rows["score"], rows["predicted_label"]):
        if eid in labels:
            ys.append(labels[eid])
            ss.append(float(score))
            ps.append(int(pred))
    if not ys:
        return {}
    return {"accuracy": sum(int(p == y) for p, y in zip(ps, ys)) / len(ys), "roc_auc": _auc(ys, ss)}


def _fallback_flip_rate(predict: Mapping[str, Any] | None, variant: str) -> float | None:
    if not predict:
        return None
    preds, twins = predict.get("predictions"), predict.get("twin_predictions")
    if preds is None or twins is None or not len(twins):
        return None
    t = twins[(twins["variant"] == variant) & (twins["mode"] == "full")] if "mode" in twins.columns \
        else twins[twins["variant"] == variant]
    if not len(t):
        return None
    orig = dict(zip(preds.loc[preds["variant"] == variant, "example_id"].astype(str),
                    preds.loc[preds["variant"] == variant, "predicted_label"].astype(int)))
    flips = [int(orig[e] != int(p)) for e, p in zip(t["example_id"].astype(str), t["predicted_label"]) if e in orig]
    return sum(flips) / len(flips) if flips else None


def _est_rows(records: list[dict[str, Any]], keys: Sequence[str]) -> list[dict[str, Any]]:
    out = []
    for r in records:
        row = {k: r.get(k) for k in keys}
        row.update(_estimate(r))
        out.append(row)
    return out


def _variant_section(name: str, *, evaluate: Mapping[str, Any] | None, predict: Mapping[str, Any] | None,
                     variants: Mapping[str, Any] | None, data: Mapping[str, Any] | None,
                     features: Sequence[str]) -> dict[str, Any]:
    # the evaluation's `group_metrics` table holds the bias-AUC records too
    everything = _by_variant(_evaluate_part(evaluate, "group_metrics"), name)
    group = [r for r in everything if r.get("metric") not in BIAS_AUC_METRICS]
    bias = [r for r in everything if r.get("metric") in BIAS_AUC_METRICS]
    if not bias:
        bias = _by_variant(_evaluate_part(evaluate, "bias_auc"), name)
    disp = _by_variant(_evaluate_part(evaluate, "disparities"), name)
    cf = _by_variant(_evaluate_part(evaluate, "counterfactual_metrics", "counterfactual"), name)
    exposure = _by_variant(_evaluate_part(evaluate, "exposure_metrics", "exposure"), name)
    group_rows = _est_rows(group, ("feature", "group", "metric"))
    overall = {r["metric"]: {k: r[k] for k in ("value", "ci_low", "ci_high", "status", "n")}
               for r in group_rows if r.get("feature") == OVERALL_FEATURE}
    source = "evaluate"
    if not overall:
        fb = _fallback_overall((predict or {}).get("predictions"), _labels_by_id(data), name)
        overall = {m: {"value": v, "ci_low": None, "ci_high": None, "status": STATUS_OK if v is not None else "undefined",
                       "n": None} for m, v in fb.items()}
        source = "predictions" if overall else None
    feats = [f for f in dict.fromkeys(r.get("feature") for r in group_rows) if f and f != OVERALL_FEATURE]
    if not feats:
        feats = list(features)
    cf_rows = _est_rows(cf, ("mode", "feature", "group", "metric"))
    thresholds = ((predict or {}).get("thresholds") or {}).get(name)
    performance = ((predict or {}).get("performance") or {}).get(name)
    identity = (((variants or {}).get("variants") or {}).get(name)) if variants else None
    return {
        "name": name,
        "kind": (identity or {}).get("kind") or name,
        "metrics_source": source,
        "features": feats,
        "overall": overall,
        "group_metrics": [r for r in group_rows if r.get("feature") != OVERALL_FEATURE],
        "disparities": _est_rows(disp, ("feature", "metric")),
        "bias_auc": _est_rows(bias, ("feature", "group", "metric")),
        "counterfactual": cf_rows,
        "exposure": _est_rows(exposure, ("feature", "group", "metric")),
        "threshold": ({"value": _num(thresholds.get("value")), "method": thresholds.get("method"),
                       **{k: _clean(v) for k, v in thresholds.items() if k not in ("value", "method")}}
                      if isinstance(thresholds, Mapping) else None),
        "performance": _clean(performance) if performance else None,
    }


def _worst_group_gap(section: Mapping[str, Any]) -> dict[str, Any] | None:
    """Largest between-group accuracy difference on the first sensitive feature."""
    if not section["features"]:
        return None
    feature = section["features"][0]
    for d in section["disparities"]:
        if d.get("feature") == feature and d.get("metric") == "accuracy_difference" and d.get("value") is not None:
            return {"metric": "accuracy", "feature": feature, "value": d["value"], "ci_low": d["ci_low"],
                    "ci_high": d["ci_high"], "source": "disparities"}
    groups = [r for r in section["group_metrics"] if r.get("feature") == feature and r.get("metric") == "accuracy"
              and r.get("status") == STATUS_OK and r.get("value") is not None]
    if len(groups) < 2:
        return None
    worst = min(groups, key=lambda r: r["value"])
    best = max(groups, key=lambda r: r["value"])
    return {"metric": "accuracy", "feature": feature, "value": best["value"] - worst["value"], "ci_low": None,
            "ci_high": None, "worst_group": worst["group"], "best_group": best["group"], "source": "group_metrics"}


def _flip_rate(section: Mapping[str, Any], predict: Mapping[str, Any] | None) -> float | None:
    for r in section["counterfactual"]:
        if r.get("metric") == "flip_rate" and r.get("mode") in (None, "full") \
                and r.get("group") in (None, "all") and r.get("feature") in (None, OVERALL_FEATURE):
            return r.get("value")
    return _fallback_flip_rate(predict, section["name"])


def key_metrics_of(section: Mapping[str, Any], predict: Mapping[str, Any] | None) -> dict[str, Any]:
    perf = section.get("performance") or {}
    gap = _worst_group_gap(section)
    return {
        "accuracy": (section["overall"].get("accuracy") or {}).get("value"),
        "roc_auc": (section["overall"].get("roc_auc") or {}).get("value"),
        "worst_group_gap": gap["value"] if gap else None,
        "flip_rate": _flip_rate(section, predict),
        "latency_ms_per_example": _num(perf.get("latency_ms_per_example")),
        "examples_per_s": _num(perf.get("examples_per_s")),
        "build_seconds": _num(perf.get("build_seconds")),
    }


def _comparison(sections: Mapping[str, Mapping[str, Any]], key_metrics: Mapping[str, Mapping[str, Any]],
                evaluate: Mapping[str, Any] | None, pair: Sequence[str] | None) -> dict[str, Any] | None:
    names = list(sections)
    if len(names) < 2:
        return None
    a, b = (pair if pair and all(p in sections for p in pair) else names[:2])
    paired = {r.get("metric"): _estimate(r) for r in _evaluate_part(evaluate, "comparison")
              if r.get("kind") in (None, "metric") and r.get("feature") == OVERALL_FEATURE
              and r.get("group") in (None, OVERALL_GROUP) and (r.get("a"), r.get("b")) in ((None, None), (a, b))}
    rows = []
    for metric, label in KEY_METRIC_LABELS.items():
        va, vb = key_metrics[a].get(metric), key_metrics[b].get(metric)
        diff = va - vb if va is not None and vb is not None else None
        est = paired.get(metric) or {}
        better = None
        hib = HIGHER_IS_BETTER.get(metric)
        if diff is not None and hib is not None and diff != 0:
            better = a if (diff > 0) == hib else b
        rows.append({"metric": metric, "label": label, "a": va, "b": vb, "difference": diff,
                     "difference_ci_low": est.get("ci_low"), "difference_ci_high": est.get("ci_high"),
                     "better": better})
    gap_a, gap_b = _worst_group_gap(sections[a]), _worst_group_gap(sections[b])
    return {"a": a, "b": b, "rows": rows, "worst_group_gap": {a: gap_a, b: gap_b},
            "note": "difference = a - b; latency and build cost were measured on this run's machine."}


# -- examples --------------------------------------------------------------------


def _text_lookup(frame: Any, key: str) -> dict[str, Mapping[str, Any]]:
    if frame is None or not hasattr(frame, "columns") or key not in frame.columns:
        return {}
    return {str(r[key]): r for r in frame.to_dict("records")}


def _examples(*, data, counterfactuals, predict, variant_names, feature: str | None, top: int) -> dict[str, Any]:
    out: dict[str, Any] = {"counterfactual_flips": {}, "worst_errors": {}}
    if top <= 0 or not predict:
        return out
    sample = _text_lookup((data or {}).get("audit_sample"), "example_id")
    twins = _text_lookup((counterfactuals or {}).get("twins"), "twin_id")
    preds = predict.get("predictions")
    tw = predict.get("twin_predictions")
    for name in variant_names:
        orig = {}
        if preds is not None and len(preds):
            for r in preds[preds["variant"] == name].to_dict("records"):
                orig[str(r["example_id"])] = r
        if tw is not None and len(tw):
            rows = tw[tw["variant"] == name]
            if "mode" in rows.columns:
                rows = rows[rows["mode"] == "full"]
            items = []
            for r in rows.to_dict("records"):
                o = orig.get(str(r["example_id"]))
                if o is None:
                    continue
                delta = float(r["score"]) - float(o["score"])
                items.append({
                    "example_id": str(r["example_id"]),
                    "twin_id": str(r["twin_id"]),
                    "group": _clean((sample.get(str(r["example_id"])) or {}).get(feature)) if feature else None,
                    "label": _clean((sample.get(str(r["example_id"])) or {}).get("label")),
                    "text": (sample.get(str(r["example_id"])) or {}).get("text"),
                    "twin_text": (twins.get(str(r["twin_id"])) or {}).get("text"),
                    "score": float(o["score"]),
                    "twin_score": float(r["score"]),
                    "delta": delta,
                    "flipped": int(o["predicted_label"]) != int(r["predicted_label"]),
                })
            items.sort(key=lambda d: (not d["flipped"], -abs(d["delta"]), d["twin_id"]))
            out["counterfactual_flips"][name] = items[:top]
        if orig and sample and feature:
            by_group: dict[str, list[dict[str, Any]]] = {}
            for eid, o in orig.items():
                s = sample.get(eid)
                if s is None or int(o["predicted_label"]) == int(s["label"]):
                    continue
                by_group.setdefault(str(s.get(feature)), []).append({
                    "example_id": eid, "group": str(s.get(feature)), "label": int(s["label"]), "text": s.get("text"),
                    "score": float(o["score"]), "predicted_label": int(o["predicted_label"]),
                    "error": abs(float(o["score"]) - int(s["label"])),
                })
            per_group = max(1, top // max(len(by_group), 1))
            out["worst_errors"][name] = {
                g: sorted(items, key=lambda d: (-d["error"], d["example_id"]))[:per_group]
                for g, items in sorted(by_group.items())
            }
    return out


# -- provenance and trend --------------------------------------------------------------


def _provenance(*, config, data, variants, input_hashes, packages, run_id) -> dict[str, Any]:
    summary = (data or {}).get("data_summary") or {}
    models = {}
    for name, ident in (((variants or {}).get("variants") or {}).items() if variants else []):
        ident = ident or {}
        models[name] = {
            "kind": ident.get("kind"),
            "model_dir": ident.get("model_dir"),
            "weights_sha256": ident.get("weights_sha256"),
            "config_sha256": ident.get("config_sha256"),
            "embedder_weights_sha256": (ident.get("embedder") or {}).get("weights_sha256"),
            "knowledge_base_key": (ident.get("knowledge_base") or {}).get("key"),
            "build_seconds": ident.get("build_seconds"),
        }
    from pipelines import __version__

    return {
        "run_id": run_id,
        "audit": config.audit.name,
        "config_source": config.source,
        "config_hash": config.config_hash(),
        "seed": config.seed,
        "pipeline_version": __version__,
        "data_fingerprint": summary.get("fingerprint"),
        "data_files_sha256": dict(summary.get("file_sha256") or {}),
        "models": models,
        "packages": dict(packages or {}),
        "input_hashes": dict(sorted((input_hashes or {}).items())),
        "config": config.model_dump(mode="json", by_alias=True),
        "from_manifest": False,
        "started_at": None,
        "status": None,
        "python": None,
        "platform": None,
        "stages": [],
    }


def trend_runs(history_rows: Sequence[Mapping[str, Any]] | None, *, run_id: str, started_at: str | None,
               verdict: str, key_metrics: Mapping[str, Any], limit: int = 20) -> list[dict[str, Any]]:
    """Previous runs (oldest first, this run excluded) followed by this run."""
    prev = [dict(r) for r in (history_rows or []) if r.get("run_id") != run_id]
    prev.sort(key=lambda r: (r.get("started_at") or "", r.get("run_id") or ""))
    prev = prev[-(limit - 1):] if limit > 1 else []
    out = [{"run_id": r.get("run_id"), "started_at": r.get("started_at"), "status": r.get("status"),
            "verdict": r.get("verdict"), "key_metrics": _clean(r.get("key_metrics") or {}), "current": False}
           for r in prev]
    out.append({"run_id": run_id, "started_at": started_at, "status": "complete", "verdict": verdict,
                "key_metrics": _clean(dict(key_metrics)), "current": True})
    return out


# -- the whole summary -----------------------------------------------------------------


def build_summary(
    *,
    config,
    run_id: str,
    data: Mapping[str, Any] | None = None,
    validation: Mapping[str, Any] | None = None,
    counterfactuals: Mapping[str, Any] | None = None,
    variants: Mapping[str, Any] | None = None,
    predict: Mapping[str, Any] | None = None,
    evaluate: Mapping[str, Any] | None = None,
    history: Sequence[Mapping[str, Any]] | None = None,
    input_hashes: Mapping[str, str] | None = None,
    packages: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The run summary (``summary.json``); see ``docs/report.md`` for its keys.

    Every argument but ``config`` and ``run_id`` may be ``None`` (the stage did not run).
    ``data`` etc. are a stage's artifacts as a dict (the runner's ``"stage.*"`` input).
    """
    missing: list[dict[str, str]] = []
    fairness = (evaluate or {}).get("fairness") if evaluate else None
    fairness = fairness if isinstance(fairness, Mapping) else None
    data_part = _data_section(data, validation, missing)
    features = list((data_part or {}).get("sensitive_features") or config.data.sensitive_features)

    names: list[str] = []
    if predict and predict.get("predictions") is not None and len(predict["predictions"]):
        names = [str(v) for v in dict.fromkeys(predict["predictions"]["variant"].astype(str))]
    for rec in _evaluate_part(evaluate, "group_metrics"):
        if rec.get("variant") and rec["variant"] not in names:
            names.append(rec["variant"])
    if not predict:
        missing.append({"section": "variants", "reason": "stage predict did not run: no predictions, latency or "
                        "thresholds for any variant."})
    if not evaluate:
        missing.append({"section": "evaluation", "reason": "stage evaluate did not run: no per-group metrics, "
                        "confidence intervals, disparities, bias AUCs or gates."})

    sections = {n: _variant_section(n, evaluate=evaluate, predict=predict, variants=variants, data=data,
                                    features=features) for n in names}
    key_metrics = {n: key_metrics_of(s, predict) for n, s in sections.items()}
    if names and not any(s["counterfactual"] for s in sections.values()) and \
            not any(v.get("flip_rate") is not None for v in key_metrics.values()):
        missing.append({"section": "counterfactuals", "reason": "no counterfactual twins were scored in this run."})
    if names and not any(s["kind"] == "rag" for s in sections.values()):
        missing.append({"section": "rag", "reason": "no RAG variant in this run: retrieval exposure does not apply."})
    gates = _gates(fairness, evaluate)
    verdict = verdict_section(fairness=fairness, validation_summary=(validation or {}).get("validation_summary"),
                              variant_names=names, gates=gates)
    pair = tuple(config.evaluation.comparison) if config.evaluation.comparison else None
    comparison = _comparison(sections, key_metrics, evaluate, pair)
    if names and comparison is None:
        missing.append({"section": "comparison", "reason": "only one variant ran: nothing to compare side by side."})
    examples = _examples(data=data, counterfactuals=counterfactuals, predict=predict, variant_names=names,
                         feature=features[0] if features else None, top=config.report.top_examples)
    if not (history or []):
        missing.append({"section": "trend", "reason": "no earlier run of this audit is recorded: no trend yet."})
    provenance = _provenance(config=config, data=data, variants=variants, input_hashes=input_hashes,
                             packages=packages, run_id=run_id)
    summary = {
        "summary_version": SUMMARY_VERSION,
        "audit": config.audit.name,
        "title": config.report.title or f"Fairness audit: {config.audit.name}",
        "description": config.audit.description,
        "run_id": run_id,
        "finalized": False,
        "sections": [s for s, _ in SECTIONS],
        "variant_order": names,
        "verdict": verdict,
        "data": data_part,
        "evaluation": None if not fairness else {
            "schema_version": fairness.get("schema_version"),
            "settings": fairness.get("settings"),
            "examples": fairness.get("examples"),
            "notes": fairness.get("notes") or [],
            "counterfactual_coverage": fairness.get("counterfactual_coverage"),
        },
        "variants": sections,
        "key_metrics": key_metrics,
        "comparison": comparison,
        "examples": examples,
        "provenance": provenance,
        "trend": trend_runs(history, run_id=run_id, started_at=None, verdict=verdict["overall"],
                            key_metrics=key_metrics),
        "missing": missing,
    }
    return _clean(summary)
