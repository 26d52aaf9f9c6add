"""The evaluate stage: the fairness library over the predictions (a thin wrapper)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from pipelines.core.runner import StageContext
from pipelines.fairness import evaluate_fairness

__all__ = ["evaluate"]


def evaluate(ctx: StageContext, *, audit_sample: pd.DataFrame, twins: pd.DataFrame | None,
             predictions: pd.DataFrame, twin_predictions: pd.DataFrame | None,
             retrievals: pd.DataFrame | None, data_summary: dict[str, Any] | None = None,
             answer_pairs: pd.DataFrame | None = None, open_answers: pd.DataFrame | None = None,
             generation_summary: dict[str, Any] | None = None) -> dict[str, Any]:
    """Sliced metrics, disparities, bias AUCs, counterfactuals, exposure, comparisons and gates.

    Every group the data has (in any split, from ``data_summary``) is expected: one that the
    audit sample lacks is reported with n = 0 and makes its gates not evaluable. The generated
    answers, when the ``generate`` stage ran, add the generation metrics (``docs/generation.md``).
    """
    cfg = ctx.config
    features = ((data_summary or {}).get("splits", {}).get("all", {}).get("features")) or {}
    expected = {f: sorted(groups) for f, groups in features.items()}
    result = evaluate_fairness(audit_sample=audit_sample, predictions=predictions, config=cfg.evaluation,
                               data_features=tuple(cfg.data.sensitive_features), seed=ctx.seed, twins=twins,
                               twin_predictions=twin_predictions, retrievals=retrievals,
                               variant_order=cfg.variant_names(), expected_groups=expected,
                               answer_pairs=answer_pairs, open_answers=open_answers,
                               generation={"min_group_size": cfg.generation.min_group_size,
                                           "not_evaluable": (generation_summary or {}).get("not_evaluable")})
    ctx.log.info("fairness verdict: %s (%d gate results)", result.verdict, len(result.gate_results))
    return result.to_artifacts()
