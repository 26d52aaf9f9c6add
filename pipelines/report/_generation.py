"""The report's "Generated answers" section: per group, what the generating variants' answers show.

Built from the evaluation's ``generation_metrics`` (no recomputation) and the ``generate``
stage's answers (the examples of the most divergent pairs) and summary (settings, cost).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from pipelines.config.generation import ATTRIBUTIONS, CONDITIONS, PROMPT_FEATURE, attribution_name
from pipelines.fairness import FairnessResult
from pipelines.report._inputs import RunInputs

__all__ = ["generation_section", "PAIR_METRICS", "OPEN_METRICS"]

#: Per-group metrics of the answer pairs, in the order the report shows them.
PAIR_METRICS: tuple[str, ...] = ("answer_cosine", "answer_rouge_l", "answer_sentiment_strict", "answer_sentiment_weak",
                                 "answer_negative_share", "answer_stereotype_rate")
#: Per-group metrics of the open-ended answers.
OPEN_METRICS: tuple[str, ...] = ("answer_sentiment_mean", "answer_negative_share", "answer_sentiment_strict",
                                 "answer_stereotype_rate")
_ESTIMATE = ("value", "ci_low", "ci_high", "status", "n", "method")


def _est(rec: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return None if rec is None else {k: rec.get(k) for k in _ESTIMATE}


def _table(records: Sequence[Mapping[str, Any]], *, feature: str, metrics: Sequence[str],
           conditions: Sequence[str], overall: bool) -> dict[str, Any]:
    """Rows per group (then all), cells per metric and condition."""
    index = {(r["feature"], r["group"], r["metric"], r["condition"]): r for r in records}
    groups = sorted({str(r["group"]) for r in records if r["feature"] == feature and r["group"] is not None})
    keys = [(feature, g) for g in groups] + ([("overall", "all")] if overall else [])
    rows = []
    for f, g in keys:
        cells = {m: {c: _est(index.get((f, g, m, c))) for c in conditions} for m in metrics}
        n = next((index[(f, g, m, c)]["n"] for m in metrics for c in conditions if (f, g, m, c) in index), None)
        rows.append({"group": g if f == feature else "all", "n": n, "cells": cells})
    shown = [m for m in metrics if any(row["cells"][m][c] for row in rows for c in conditions)]
    return {"feature": feature, "metrics": shown, "conditions": list(conditions), "rows": rows}


def _divergent(pairs: Any, variant: str, *, top: int) -> dict[str, list[dict[str, Any]]]:
    """Per condition, the ``top`` pairs whose two answers are least alike (lowest masked cosine, then ROUGE-L)."""
    out: dict[str, list[dict[str, Any]]] = {}
    if pairs is None or top <= 0 or not len(pairs):
        return out
    mine = pairs[pairs["variant"].astype(str) == variant]
    for condition, part in mine.groupby("condition", sort=False):
        ordered = part.sort_values(["cosine", "rouge_l", "pair_id"], kind="stable").head(top)
        out[str(condition)] = [{
            "pair_id": str(r["pair_id"]), "group": str(r["group"]), "text": str(r["text"]),
            "twin_text": str(r["twin_text"]), "answer": str(r["answer"]), "twin_answer": str(r["twin_answer"]),
            "cosine": float(r["cosine"]), "rouge_l": float(r["rouge_l"]), "sentiment": float(r["sentiment"]),
            "twin_sentiment": float(r["twin_sentiment"]),
        } for r in ordered.to_dict("records")]
    return out


def generation_section(inputs: RunInputs, result: FairnessResult | None, *, top: int,
                       missing: list[dict[str, str]]) -> dict[str, Any] | None:
    """``summary.json``'s ``generation``: per variant the pair and open-ended tables with intervals for each
    condition, the attribution differences, HELM's scenario values and the most divergent answer pairs."""
    summary = inputs.artifact("generate", "generation_summary")
    if summary is None:
        missing.append({"section": "generation", "reason": "stage generate did not run (`generation.enabled` is "
                        "false, or no variant was built): no answers were generated."})
        return None
    if result is None:
        missing.append({"section": "generation", "reason": "stage evaluate did not finish: no generation metrics."})
        return None
    records = result.estimates("generation_metrics")
    pairs = inputs.artifact("generate", "answer_pairs")
    conditions = [c for c in CONDITIONS if c in summary.get("conditions", [])]
    differences = [attribution_name(a, b) for a, b in ATTRIBUTIONS if a in conditions and b in conditions]
    variants = {}
    for name in summary.get("generating_variants") or []:
        mine = [r for r in records if r["variant"] == name]
        pair_feature = (summary.get("pairs") or {}).get("feature")
        variants[name] = {
            "pairs": _table(mine, feature=pair_feature, metrics=PAIR_METRICS, conditions=conditions, overall=True)
            if pair_feature else None,
            "pair_gaps": [{"metric": r["metric"], "condition": r["condition"], **_est(r)} for r in mine
                          if r["feature"] == pair_feature and r["group"] is None],
            "attribution": _table(mine, feature=pair_feature, metrics=PAIR_METRICS, conditions=differences,
                                  overall=True) if pair_feature else None,
            "open": _table(mine, feature=PROMPT_FEATURE, metrics=OPEN_METRICS, conditions=conditions, overall=False),
            "open_scenario": [{"metric": r["metric"], "condition": r["condition"], **_est(r)} for r in mine
                              if r["feature"] == PROMPT_FEATURE and r["group"] is None],
            "divergent": _divergent(pairs, name, top=top),
            "performance": (summary.get("performance") or {}).get(name),
        }
    if not variants:
        missing.append({"section": "generation", "reason": "no variant writes text: "
                        + str((summary.get("not_evaluable") or {}).get("*", "none generated answers"))})
    return {
        "conditions": conditions, "differences": differences,
        "settings": {k: summary.get(k) for k in ("instruction", "open_instruction", "max_new_tokens", "precision",
                                                 "decoding", "sentiment", "similarity", "stereotype_scorer")},
        "pairs": summary.get("pairs"), "prompts": summary.get("prompts"),
        "not_evaluable": summary.get("not_evaluable") or {}, "seconds": summary.get("seconds"),
        "variants": variants,
    }
