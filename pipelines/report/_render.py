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

from pipelines.report import _svg
from pipelines.report._summary import (
    CHART_METRICS,
    KEY_METRIC_LABELS,
    MAIN_DISPARITIES,
    SECTIONS,
    TABLE_METRICS,
)

__all__ = ["render_html", "TEMPLATE"]

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


SPLIT_ORDER = ("all", "train", "validation", "eval", "serving")


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
    return env.get_template(TEMPLATE).render(
        s=summary,
        sections=SECTIONS,
        views=views,
        palette=_svg.PALETTE,
        representation=_representation_charts(summary.get("data")),
        trend_charts=_trend_charts(summary),
        config_json=config_json,
    )
