"""The model card of a run: ``report/model_card.json`` and ``report/model_card.md``, from ``summary.json`` only.

One file of each per run, with a part per audited variant: the audit compares the
variants on the same examples, so their cards share the intended use, factors, metrics
and data, and a reader choosing a variant to release sees the others beside it.

``model_card.json`` holds, per variant, a card in the Model Card Toolkit's JSON schema
(v0.0.2: ``model_details``, ``model_parameters``, ``quantitative_analysis``,
``considerations``; numbers as strings, as that schema has them), so tools that read
MCT cards can load each one; beside the cards, the sections the Toolkit's schema has no
field for (factors, metric definitions, gates, the data's groups). ``model_card.md`` is
rendered from that JSON, so the two never disagree, and every number in both is copied
from the summary, never recomputed.
"""

from __future__ import annotations

from typing import Any, Mapping

from pipelines.report._summary import KEY_METRIC_LABELS, MAIN_DISPARITIES
from pipelines.report._verdict import STATUS_WORDS, bound_text

__all__ = ["build_model_card", "render_model_card", "MODEL_CARD_MD", "MODEL_CARD_JSON", "MCT_SCHEMA_VERSION",
           "FORMAT_VERSION", "METRIC_DEFINITIONS"]

MODEL_CARD_MD = "model_card.md"
MODEL_CARD_JSON = "model_card.json"
MCT_SCHEMA_VERSION = "0.0.2"
FORMAT_VERSION = 1
TEMPLATE = "model_card.md.j2"
NOT_STATED = "not stated in the audit config (report.model_card.{field})"

#: What each metric measures, in the card's "Metrics" section.
METRIC_DEFINITIONS: dict[str, str] = {
    "accuracy": "share of examples whose decision equals the label",
    "balanced_accuracy": "mean of the true positive and true negative rates",
    "roc_auc": "probability that a random positive example scores above a random negative one",
    "base_rate": "share of examples labelled positive",
    "selection_rate": "share of examples the model decides positive",
    "precision": "share of positive decisions that are correct",
    "tpr": "true positive rate: share of positive examples decided positive",
    "fpr": "false positive rate: share of negative examples decided positive",
    "fnr": "false negative rate: share of positive examples decided negative",
    "ece": "expected calibration error of the scores (10 bins)",
    "brier": "mean squared error of the scores",
    "subgroup_auc": "ROC AUC within the group",
    "bpsn_auc": "background-positive, subgroup-negative AUC: the group's negatives against the other groups' "
                "positives (low: the group's harmless comments score high)",
    "bnsp_auc": "background-negative, subgroup-positive AUC: the group's positives against the other groups' "
                "negatives",
    "flip_rate": "share of counterfactual twins (identity terms swapped) whose decision differs from the "
                 "original's",
    "mean_abs_delta": "mean absolute change of the score between an example and its twin",
    "same_group_share": "share of retrieved documents about the query's own group",
    "stereotype_share": "share of retrieved documents labelled as stereotypes",
    "equalized_odds_difference": "the larger of the largest between-group TPR gap and FPR gap",
    "demographic_parity_difference": "largest between-group gap in selection rate",
    "equal_opportunity_difference": "largest between-group gap in TPR",
    "final_bias_score": "generalized mean of the bias AUCs' shortfalls (Borkan et al. 2019)",
}


def _num(x: Any) -> str | None:
    """A number as the Toolkit's schema stores it (a string), exact: ``float(_num(x)) == x``."""
    return None if x is None else repr(float(x))


def _metric(type_: str, est: Mapping[str, Any], slice_: str | None = None) -> dict[str, Any] | None:
    if est.get("value") is None:
        return None
    out: dict[str, Any] = {"type": type_, "value": _num(est["value"])}
    if slice_:
        out["slice"] = slice_
    if est.get("ci_low") is not None and est.get("ci_high") is not None:
        out["confidence_interval"] = {"lower_bound": _num(est["ci_low"]), "upper_bound": _num(est["ci_high"])}
    return out


def _definition(metric: str) -> str:
    if metric in METRIC_DEFINITIONS:
        return METRIC_DEFINITIONS[metric]
    for suffix, words in (("_difference", "largest between-group difference in {}"),
                          ("_ratio", "smallest between-group ratio of {}")):
        if metric.endswith(suffix):
            return words.format(metric[: -len(suffix)].replace("_", " "))
    return metric.replace("_", " ")


def _performance_metrics(v: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every estimate of a variant's summary section, as the Toolkit's ``performance_metric`` entries."""
    out = [_metric(m, est, "overall") for m, est in (v.get("overall") or {}).items() if m != "count"]
    out += [_metric(r["metric"], r, f"{r['feature']}={r['group']}") for r in v.get("group_metrics") or []
            if r["metric"] != "count"]
    out += [_metric(r["metric"], r, f"{r['feature']}={r['group']}") for r in v.get("bias_auc") or []]
    out += [_metric(r["metric"], r, str(r["feature"])) for r in v.get("disparities") or []]
    out += [_metric(f"{r['metric']} ({r.get('mode') or 'full'} twins)", r,
                    f"{r['feature']}={r['group']}" if r.get("group") is not None else str(r["feature"]))
            for r in v.get("counterfactual") or []]
    out += [_metric(f"retrieval {r['metric']}", r,
                    f"{r['feature']}={r['group']}" if r.get("group") is not None else str(r["feature"]))
            for r in v.get("exposure") or []]
    return [m for m in out if m is not None]


def _spec(summary: Mapping[str, Any], name: str) -> dict[str, Any]:
    config = (summary.get("provenance") or {}).get("config") or {}
    return next((dict(v) for v in config.get("variants") or [] if v.get("name") == name), {})


def _flat(d: Mapping[str, Any], prefix: str = "") -> list[str]:
    out = []
    for k, v in d.items():
        if k in ("name", "kind") and not prefix:
            continue
        if isinstance(v, Mapping):
            out += _flat(v, f"{prefix}{k}.")
        elif v is not None:
            out.append(f"{prefix}{k}: {v}")
    return out


def _risks(summary: Mapping[str, Any], name: str, info: Mapping[str, Any]) -> list[dict[str, str]]:
    risks = []
    for gate in (summary.get("verdict") or {}).get("by_gate") or []:
        part = next((p for p in gate.get("by_variant") or [] if p["variant"] == name), None)
        if part is None or part["status"] == "pass":
            continue
        risks.append({"name": f"gate '{gate['label']}' ({bound_text(gate['direction'], gate['bound'], symbols=True)})"
                              f": {part['words']}",
                      "mitigation_strategy": "none recorded in this audit"})
    for risk in info.get("ethical_considerations") or []:
        risks.append({"name": risk["name"], "mitigation_strategy": risk.get("mitigation_strategy")
                      or "none stated"})
    return risks


def _limitations(summary: Mapping[str, Any], name: str, info: Mapping[str, Any]) -> list[str]:
    out = []
    data = summary.get("data") or {}
    settings = (summary.get("evaluation") or {}).get("settings") or {}
    if data.get("audit_sample_rows") is not None:
        out.append(f"Measured on an audit sample of {data['audit_sample_rows']} examples of "
                   f"{data.get('source')}; groups smaller than {settings.get('min_group_size')} get no AUC or "
                   "bootstrap interval, and small groups have wide intervals.")
    by_variant = ((summary.get("verdict") or {}).get("by_variant") or {}).get(name) or {}
    if by_variant.get("insufficient"):
        out.append(f"{by_variant['insufficient']} of {by_variant.get('gates')} gate results are undecided or not "
                   "evaluable: the data cannot tell whether those bounds hold.")
    v = data.get("validation") or {}
    drift = [f"{d['feature']} ({d['measure']} {d['value']:.3g} > {d['threshold']:g})"
             for d in (v.get("drift") or []) + (v.get("skew") or []) if d.get("exceeded")]
    if drift:
        out.append("The evaluation data drifts from the training data beyond the configured thresholds: "
                   + ", ".join(drift) + ".")
    if v.get("anomaly_count"):
        out.append(f"TFDV found {v['anomaly_count']} schema anomal{'y' if v['anomaly_count'] == 1 else 'ies'} "
                   "in the data (see the report's Data section).")
    for m in summary.get("missing") or []:
        out.append(f"Not measured in this run ({m['section']}): {m['reason']}")
    out += list(info.get("caveats") or [])
    return out


def _recommendation(verdict: str | None, name: str) -> str:
    if verdict == "fail":
        return (f"Do not release {name} as audited: at least one fairness gate failed. Fix the "
                "failing groups (see Ethical considerations), then audit again.")
    if verdict == "pass":
        return (f"{name} met every gate on this data, intervals included. Audit again when the model, the "
                "data or the population it serves changes.")
    return (f"The audit could not decide every gate for {name}: collect more labelled examples for the "
            "undecided groups (or widen the audit sample), then audit again before relying on it.")


def _card(summary: Mapping[str, Any], name: str, info: Mapping[str, Any]) -> dict[str, Any]:
    """One variant's card, with exactly the Model Card Toolkit's v0.0.2 fields."""
    v = summary["variants"][name]
    prov = summary.get("provenance") or {}
    model = (prov.get("models") or {}).get(name) or {}
    threshold = v.get("threshold") or {}
    data = summary.get("data") or {}
    splits = data.get("splits") or {}
    task = summary.get("description") or summary.get("title") or summary.get("audit")
    verdict = (((summary.get("verdict") or {}).get("by_variant") or {}).get(name) or {})
    details: dict[str, Any] = {
        "name": name,
        "overview": f"Variant '{name}' (kind {v.get('kind')}) of audit '{summary.get('audit')}': {task}",
        "documentation": (f"Audited by fairness-audit {prov.get('pipeline_version')} in run {summary.get('run_id')} "
                          f"(config hash {prov.get('config_hash')}, seed {prov.get('seed')}). Audit verdict for "
                          f"this variant: {verdict.get('verdict', 'n/a')}. {verdict.get('plain_words', '')}").strip(),
        "version": {"name": f"weights sha256 {model['weights_sha256'][:16]}" if model.get("weights_sha256")
                    else f"run {summary.get('run_id')}", "date": str(prov.get("started_at") or "")[:10]},
    }
    if model.get("model_dir"):
        details["path"] = model["model_dir"]
    if info.get("owners"):
        details["owners"] = [{k: o[k] for k in ("name", "contact") if o.get(k)} for o in info["owners"]]
    if info.get("license"):
        lic = info["license"]
        details["licenses"] = [{"identifier": lic} if " " not in lic.strip() else {"custom_text": lic}]
    if info.get("references"):
        details["references"] = [{"reference": r} for r in info["references"]]
    datasets = []
    for split, role in (("eval", "evaluation"), ("train", "training")):
        if split in splits:
            s = splits[split]
            datasets.append({"name": f"{data.get('source')} {split} split",
                             "sensitive": {"sensitive_data": list(data.get("sensitive_features") or [])},
                             "description": f"{s['rows']} rows, base rate {s['base_rate']:.3f}; used for {role}"
                             + (f" (the audit sample is {data.get('audit_sample_rows')} of its rows)"
                                if split == "eval" and data.get("audit_sample_rows") else "") + "."})
    out_fmt = "a score in [0, 1] for the positive label"
    if threshold.get("value") is not None:
        out_fmt += f", decided positive at or above {threshold['value']:.4g} ({threshold.get('method') or 'n/a'})"
    considerations: dict[str, Any] = {
        "users": [{"description": u} for u in info.get("intended_users") or []],
        "use_cases": [{"description": u} for u in info.get("intended_uses") or []]
        + [{"description": f"Out of scope: {u}"} for u in info.get("out_of_scope_uses") or []],
        "limitations": [{"description": t} for t in _limitations(summary, name, info)],
        "tradeoffs": [{"description": t} for t in _tradeoffs(summary, name)],
        "ethical_considerations": _risks(summary, name, info),
    }
    return {
        "schema_version": MCT_SCHEMA_VERSION,
        "model_details": details,
        "model_parameters": {"model_architecture": "; ".join([f"kind: {v.get('kind')}"] + _flat(_spec(summary, name))),
                             "data": datasets, "input_format": "text (one comment per example)",
                             "output_format": out_fmt},
        "quantitative_analysis": {"performance_metrics": _performance_metrics(v)},
        "considerations": {k: val for k, val in considerations.items() if val},
    }


def _tradeoffs(summary: Mapping[str, Any], name: str) -> list[str]:
    out = []
    for comp in summary.get("comparisons") or []:
        if name not in (comp["a"], comp["b"]):
            continue
        other = comp["b"] if comp["a"] == name else comp["a"]
        sign = 1 if comp["a"] == name else -1
        for row in comp["rows"]:
            if row.get("difference") is None or row.get("better") in (None, "no clear difference"):
                continue
            word = "better" if row["better"] == name else "worse"
            out.append(f"{KEY_METRIC_LABELS.get(row['metric'], row['metric'])}: {word} than {other} by "
                       f"{abs(sign * row['difference']):.3g}" + (" (measured on this run's machine)"
                                                                  if row.get("measured") else ""))
    return out


def build_model_card(summary: Mapping[str, Any]) -> dict[str, Any]:
    """``model_card.json``: the run's cards (one per variant, Model Card Toolkit schema v0.0.2) and the
    sections that schema has no field for; every number copied from ``summary``."""
    info = ((((summary.get("provenance") or {}).get("config") or {}).get("report") or {}).get("model_card")) or {}
    verdict = summary.get("verdict") or {}
    data = summary.get("data") or {}
    settings = (summary.get("evaluation") or {}).get("settings") or {}
    order = list(summary.get("variant_order") or summary.get("variants") or [])
    gate_metrics = [g["metric"] for g in verdict.get("by_gate") or []]
    shown = list(dict.fromkeys(["accuracy", "roc_auc", "fpr", "fnr", *gate_metrics]))
    factors = []
    for feature in data.get("sensitive_features") or []:
        groups = ((data.get("splits") or {}).get("eval") or {}).get("groups", {}).get(feature) or {}
        factors.append({"feature": feature, "groups": [{"group": g, **{k: e.get(k) for k in
                                                                       ("count", "share", "base_rate")}}
                                                       for g, e in groups.items()]})
    return {
        "format": "fairness-audit model card", "format_version": FORMAT_VERSION,
        "model_card_schema": f"Model Card Toolkit model_card.schema.json v{MCT_SCHEMA_VERSION} (each variants.<v>.model_card)",
        "audit": summary.get("audit"), "title": summary.get("title"), "task": summary.get("description"),
        "run_id": summary.get("run_id"), "summary_version": summary.get("summary_version"),
        "verdict": {"overall": verdict.get("overall"), "headline": verdict.get("headline"),
                    "plain_words": verdict.get("plain_words")},
        "intended_use": {"primary_uses": list(info.get("intended_uses") or []),
                         "primary_users": list(info.get("intended_users") or []),
                         "out_of_scope": list(info.get("out_of_scope_uses") or [])},
        "factors": {"relevant": list(data.get("sensitive_features") or []), "evaluation": factors,
                    "intersections": bool(settings.get("intersections"))},
        "metrics": {"measures": [{"metric": m, "definition": _definition(m)} for m in shown],
                    "decision_thresholds": {n: (summary["variants"][n].get("threshold") or None) for n in order},
                    "uncertainty": {"level": settings.get("level"), "proportion_method": settings.get("proportion_method"),
                                    "bootstrap": settings.get("bootstrap"), "multiplicity": settings.get("multiplicity")},
                    "gates": [{k: g[k] for k in ("index", "label", "metric", "bound", "direction", "feature", "mode",
                                                 "optional", "status", "variants")}
                              for g in verdict.get("by_gate") or []]},
        "evaluation_data": {"source": data.get("source"), "rows": data.get("rows"),
                            "audit_sample_rows": data.get("audit_sample_rows"),
                            "removed_rows": (data.get("removed_rows") or {}).get("by_reason")},
        "variants": {n: {"verdict": ((verdict.get("by_variant") or {}).get(n) or {}).get("verdict"),
                         "plain_words": ((verdict.get("by_variant") or {}).get(n) or {}).get("plain_words"),
                         "gates": [g for g in verdict.get("gates") or [] if g["variant"] == n],
                         "recommendation": _recommendation(((verdict.get("by_variant") or {}).get(n) or {})
                                                           .get("verdict"), n),
                         "model_card": _card(summary, n, info)} for n in order},
    }


def render_model_card(card: Mapping[str, Any], summary: Mapping[str, Any]) -> str:
    """``model_card.md`` from :func:`build_model_card`'s output (and the summary's tables it lays out)."""
    import jinja2

    from pipelines.report._render import TEMPLATES_DIR, fmt

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)), autoescape=False,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True)
    env.filters.update(md=md_escape, fmt=fmt, est=_est_text, definition=_definition,
                       bound=lambda g: bound_text(g["direction"], g["bound"], symbols=True),
                       int_or_na=lambda x: f"{int(x):,}" if isinstance(x, (int, float)) else "n/a")
    return env.get_template(TEMPLATE).render(c=card, s=summary, not_stated=NOT_STATED, status_words=STATUS_WORDS,
                                             disparities=MAIN_DISPARITIES)


def md_escape(text: Any) -> str:
    r"""Text safe inside a Markdown table cell or paragraph: no HTML, no table breaks, no emphasis,
    one line.

    >>> print(md_escape("<b>a|b</b>_*\nnext"))
    &lt;b&gt;a\|b&lt;/b&gt;\_\* next
    """
    s = "" if text is None else str(text)
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\\", "\\\\")
    for ch in "`*_[]|#":
        s = s.replace(ch, "\\" + ch)
    return " ".join(s.split())


def _est_text(est: Mapping[str, Any] | None) -> str:
    """``0.519 [0.378, 0.657]`` (the report's own number format), or the status when there is no value."""
    from pipelines.report._render import fmt

    if not est or est.get("value") is None:
        return str((est or {}).get("status") or "n/a").replace("_", " ")
    out = fmt(est["value"])
    if est.get("ci_low") is not None and est.get("ci_high") is not None:
        out += f" [{fmt(est['ci_low'])}, {fmt(est['ci_high'])}]"
    return out
