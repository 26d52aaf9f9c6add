"""Render the summary as one self-contained HTML file (Jinja2, autoescape on).

The page has inline CSS and inline SVG only: no scripts, no fonts, no images,
no links that load anything. A Content-Security-Policy meta tag forbids
network loads as a second line of defence.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from markupsafe import Markup

from pipelines.config.evaluation import metric_range
from pipelines.fairness import FAIL, INSUFFICIENT, NOT_EVALUABLE, PASS
from pipelines.report import _svg
from pipelines.report._forest import STATUS_COLOURS, forest_plot
from pipelines.report._summary import (
    CHART_METRICS,
    KEY_METRIC_LABELS,
    MAIN_DISPARITIES,
    SECTIONS,
    TABLE_METRICS,
)

__all__ = ["render_html", "TEMPLATE", "MAX_GATE_LINES", "section_gists", "gate_views"]

TEMPLATE = "report.html.j2"
TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"

METRIC_LABELS = {
    "count": "n", "base_rate": "base rate", "selection_rate": "selection rate", "accuracy": "accuracy",
    "balanced_accuracy": "balanced accuracy", "precision": "precision", "tpr": "TPR", "fpr": "FPR", "fnr": "FNR",
    "roc_auc": "ROC AUC", "brier": "Brier", "ece": "ECE", "subgroup_auc": "subgroup AUC", "bpsn_auc": "BPSN AUC",
    "bnsp_auc": "BNSP AUC", "flip_rate": "flip rate", "mean_abs_delta": "mean |score change|",
    "same_group_share": "same-group share", "stereotype_share": "stereotype share",
    "mean_delta": "mean score change", "docs_per_query": "documents per query",
    "answer_cosine": "answer cosine", "answer_rouge_l": "answer ROUGE-L",
    "answer_sentiment_strict": "sentiment W1 (strict)", "answer_sentiment_weak": "negative-share change (weak)",
    "answer_negative_share": "negative answers", "answer_stereotype_rate": "stereotyped answers",
    "answer_sentiment_mean": "mean sentiment", "answer_sentiment_strict_max": "largest sentiment W1 between groups",
}


def fmt(x: Any, digits: int = 3) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}"
    if _svg._finite(x):
        return f"{x:,.{min(digits, 1) if abs(x) >= 100 else digits}f}"
    return str(x)


def pct(x: Any, digits: int = 1) -> str:
    return f"{x * 100:.{digits}f}%" if _svg._finite(x) else "n/a"


def ci(est: Mapping[str, Any] | None) -> str:
    if not est:
        return "n/a"
    if est.get("value") is None:
        return str(est.get("status") or "n/a").replace("_", " ")
    out = fmt(est["value"])
    if est.get("ci_low") is not None and est.get("ci_high") is not None:
        out += f" [{fmt(est['ci_low'])}, {fmt(est['ci_high'])}]"
    return out


def ci_cell(est: Mapping[str, Any] | None) -> Markup:
    """Value with its CI on a second, smaller line (table cells)."""
    from markupsafe import escape

    if not est or est.get("value") is None:
        return Markup(escape(ci(est)))
    out = escape(fmt(est["value"]))
    if est.get("ci_low") is not None and est.get("ci_high") is not None:
        out += Markup('<span class="ci">[') + escape(fmt(est["ci_low"])) + Markup(", ") \
            + escape(fmt(est["ci_high"])) + Markup("]</span>")
    return Markup(out)


def _environment():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(fmt=fmt, pct=pct, ci=ci, ci_cell=ci_cell, metric_label=lambda m: METRIC_LABELS.get(m, str(m).replace("_", " ")))
    return env


def _group_charts(section: Mapping[str, Any]) -> list[dict[str, Any]]:
    charts = []
    for feature in section.get("features") or []:
        for metric in CHART_METRICS:
            rows = [r for r in section["group_metrics"] if r.get("feature") == feature and r.get("metric") == metric]
            if not rows:
                continue
            overall = (section.get("overall") or {}).get(metric) or {}
            chart = _svg.interval_chart(
                [{"label": r["group"], "value": r["value"], "ci_low": r["ci_low"], "ci_high": r["ci_high"],
                  "note": str(r.get("status") or "").replace("_", " ")} for r in rows],
                title=f"{METRIC_LABELS.get(metric, metric)} by {feature}",
                reference=overall.get("value"),
            )
            charts.append({"feature": feature, "metric": metric, "svg": chart})
    return charts


def _group_table(section: Mapping[str, Any], feature: str) -> dict[str, Any]:
    rows: dict[str, dict[str, Any]] = {}
    for r in section["group_metrics"]:
        if r.get("feature") != feature:
            continue
        row = rows.setdefault(str(r["group"]), {"group": r["group"], "n": r.get("n"), "metrics": {}})
        row["metrics"][r["metric"]] = r
        if r.get("n") is not None:
            row["n"] = r["n"]
    metrics = [m for m in TABLE_METRICS if any(m in row["metrics"] for row in rows.values())]
    return {"feature": feature, "metrics": metrics, "rows": list(rows.values())}


def _pivot(records, row_keys: tuple[str, ...]) -> dict[str, Any]:
    """Wide table: one row per ``row_keys`` combination, one column per metric (in first-seen order)."""
    metrics: list[str] = []
    rows: dict[tuple, dict[str, Any]] = {}
    for r in records:
        key = tuple(r.get(k) for k in row_keys)
        row = rows.setdefault(key, {**{k: r.get(k) for k in row_keys}, "metrics": {}})
        row["metrics"][r["metric"]] = r
        if r["metric"] not in metrics:
            metrics.append(r["metric"])
    return {"metrics": metrics, "rows": list(rows.values())}


def _split_groupwise(records) -> tuple[list, list]:
    """Per-group records, and the across-group spreads (``group`` None: ``<metric>_difference``)."""
    return [r for r in records if r.get("group") is not None], [r for r in records if r.get("group") is None]


def _representation_charts(data: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    out = []
    if not data:
        return out
    for feature in data.get("sensitive_features") or []:
        for split in ("train", "eval"):
            groups = ((data["splits"].get(split) or {}).get("groups") or {}).get(feature) or {}
            if not groups:
                continue
            out.append({"feature": feature, "split": split, "svg": _svg.bar_chart(
                [{"label": g, "value": v.get("share")} for g, v in groups.items()],
                title=f"{feature} share of {split}")})
    return out


def _trend_charts(summary: Mapping[str, Any]) -> list[Markup]:
    runs = summary.get("trend") or []
    series = list(summary.get("key_metrics") or {})
    for run in runs:
        for name in run.get("key_metrics") or {}:
            if name not in series:
                series.append(name)
    charts = []
    for metric in ("accuracy", "roc_auc", "worst_group_gap", "flip_rate"):
        if any(_svg._finite(((r.get("key_metrics") or {}).get(s) or {}).get(metric)) for r in runs for s in series):
            charts.append(_svg.trend_chart(runs, metric=metric, title=KEY_METRIC_LABELS[metric], series=series))
    return charts


def _mitigation_charts(mitigation: Mapping[str, Any] | None) -> dict[str, Markup]:
    """One trade-off chart per mitigated variant (accuracy against the constrained gap)."""
    from pipelines.report._mitigation import tradeoff_chart

    if not mitigation:
        return {}
    gap = str(mitigation["settings"]["gap_metric"]).replace("_", " ")
    return {name: tradeoff_chart(v["tradeoff"], title=f"{name}: accuracy vs {gap}", gap_label=gap,
                                 chosen={"gap": v["gap"]["after"], "accuracy": v["accuracy_cost"]["after"]})
            for name, v in (mitigation.get("variants") or {}).items()}


SPLIT_ORDER = ("all", "train", "validation", "eval", "serving")

#: Gate lines shown on the first screen; the rest are one click away (the first forest plot stays in view).
MAX_GATE_LINES = 8
#: First-screen order: what needs attention first.
_SEVERITY = {FAIL: 0, INSUFFICIENT: 1, NOT_EVALUABLE: 2, PASS: 3}
STATUS_WORDS = {PASS: "pass", FAIL: "fail", INSUFFICIENT: "undecided", NOT_EVALUABLE: "not evaluable",
                "no_gates": "no gates"}


def gate_views(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One entry per configured gate, most severe first (then in config order): the gate's summary,
    its bound in words, the page anchor and its forest plot."""
    from pipelines.report._verdict import bound_text

    verdict = summary.get("verdict") or {}
    level = (((summary.get("evaluation") or {}).get("settings")) or {}).get("level")
    order = list(summary.get("variant_order") or [])
    out = []
    for gate in sorted(verdict.get("by_gate") or [], key=lambda g: (_SEVERITY.get(g["status"], 9), g["index"])):
        results = [g for g in verdict.get("gates") or [] if g.get("gate_index") == gate["index"]]
        low, high, _ = metric_range(gate["metric"])
        anchor = f"gate-{gate['index']}"
        out.append({"gate": gate, "anchor": anchor,
                    "bound": bound_text(gate["direction"], gate["bound"], symbols=True),
                    "svg": forest_plot(gate, results, variants=[v for v in order if v in gate["variants"]]
                                       + [v for v in gate["variants"] if v not in order],
                                       plot_id=f"{anchor}-plot", level=level, limits=(low, high))})
    return out


def section_gists(summary: Mapping[str, Any]) -> dict[str, str]:
    """One line per detail section, shown beside its collapsed heading."""
    gists: dict[str, str] = {}
    data = summary.get("data")
    if data:
        v = data.get("validation") or {}
        drift = [d["feature"] for d in (v.get("drift") or []) + (v.get("skew") or []) if d.get("exceeded")]
        gists["data"] = (f"{fmt(data.get('rows'))} rows, audit sample {fmt(data.get('audit_sample_rows'))}; "
                         + (f"{fmt(v.get('anomaly_count'))} TFDV anomal{'y' if v.get('anomaly_count') == 1 else 'ies'}"
                            + (f", drift beyond threshold: {', '.join(drift)}" if drift else ", no drift beyond threshold")
                            if v else "no data validation"))
    variants = summary.get("variants") or {}
    gists["variants"] = "; ".join(
        f"{n}: accuracy {ci((v.get('overall') or {}).get('accuracy'))}" for n, v in variants.items()) \
        or "no variant was scored"
    comps = summary.get("comparisons") or []
    gists["comparison"] = "; ".join(f"{c['a']} vs {c['b']}" for c in comps) or "nothing to compare"
    mit = summary.get("mitigation") or {}
    gists["mitigation"] = (f"fairlearn per-group thresholds ({(mit.get('settings') or {}).get('constraint')}) for "
                           f"{', '.join(mit.get('variants') or {})}" if mit.get("variants") else "not evaluated")
    gen = summary.get("generation") or {}
    gists["generation"] = (f"answers of {', '.join(gen.get('variants') or {})} to counterfactual pairs and open prompts"
                           if gen.get("variants") else "no answers generated")
    flips = (summary.get("examples") or {}).get("counterfactual_flips") or {}
    gists["examples"] = "largest counterfactual changes and most confident errors" if variants else "no predictions"
    if flips and not any(flips.values()):
        gists["examples"] = "most confident errors per group"
    p = summary.get("provenance") or {}
    gists["provenance"] = (f"config hash {str(p.get('config_hash') or 'n/a')[:12]}, seed {p.get('seed')}, "
                           f"fairness-audit {p.get('pipeline_version')}")
    runs = summary.get("trend") or []
    gists["trend"] = f"{len(runs)} run{'s' if len(runs) != 1 else ''} of this audit" if len(runs) > 1 else \
        "first recorded run"
    return gists


def _ordered(summary: Mapping[str, Any]) -> dict[str, Any]:
    """Put dicts that summary.json stores with sorted keys back in display order."""
    out = dict(summary)
    order = list(out.get("variant_order") or [])
    for key in ("variants", "key_metrics"):
        part = out.get(key) or {}
        out[key] = {n: part[n] for n in order + sorted(set(part) - set(order)) if n in part}
    data = out.get("data")
    if data and data.get("splits"):
        splits = data["splits"]
        rank = {s: i for i, s in enumerate(SPLIT_ORDER)}
        out["data"] = {**data, "splits": {k: splits[k] for k in sorted(splits, key=lambda k: (rank.get(k, 99), k))}}
    return out


def render_html(summary: Mapping[str, Any]) -> str:
    """The report page for a summary built by :func:`pipelines.report.build_summary`."""
    env = _environment()
    summary = _ordered(summary)
    variants = summary.get("variants") or {}
    views = {}
    for name, section in variants.items():
        counterfactual, counterfactual_spread = _split_groupwise(section["counterfactual"])
        exposure, exposure_spread = _split_groupwise(section["exposure"])
        views[name] = {
            "charts": _group_charts(section),
            "tables": [_group_table(section, f) for f in section.get("features") or []
                       if any(r.get("feature") == f for r in section["group_metrics"])],
            "bias": _pivot(section["bias_auc"], ("feature", "group"))["rows"],
            "main_disparities": [d for d in section["disparities"] if d.get("metric") in MAIN_DISPARITIES],
            "other_disparities": [d for d in section["disparities"] if d.get("metric") not in MAIN_DISPARITIES],
            "counterfactual": _pivot(counterfactual, ("mode", "feature", "group")),
            "counterfactual_spread": counterfactual_spread,
            "exposure": _pivot(exposure, ("feature", "group")),
            "exposure_spread": exposure_spread,
        }
    config_json = json.dumps((summary.get("provenance") or {}).get("config") or {}, indent=2, sort_keys=True)
    level = (((summary.get("evaluation") or {}).get("settings")) or {}).get("level")
    gists = section_gists(summary)
    return env.get_template(TEMPLATE).render(
        s=summary,
        sections=SECTIONS,
        titles=dict(SECTIONS),
        gists={sid: gists.get(sid, "") for sid, _ in SECTIONS},
        gate_views=gate_views(summary),
        max_gate_lines=MAX_GATE_LINES,
        colours=STATUS_COLOURS,
        status_words=STATUS_WORDS,
        level_words=f"{level * 100:g}%" if _svg._finite(level) else "confidence",
        views=views,
        palette=_svg.PALETTE,
        representation=_representation_charts(summary.get("data")),
        trend_charts=_trend_charts(summary),
        mitigation_charts=_mitigation_charts(summary.get("mitigation")),
        config_json=config_json,
    )
