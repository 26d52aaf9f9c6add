"""The names of the evaluation's metrics: which are judged per group or per feature, which are
proportions, AUCs or gaps (they choose the interval method), and the values each can take."""

from __future__ import annotations

from pipelines.config.generation import (
    GENERATION_FEATURE_METRICS,
    GENERATION_GROUP_METRICS,
    GENERATION_PROPORTIONS,
    GENERATION_RANGES,
)

__all__ = [
    "GROUP_METRICS",
    "DISPARITY_BASE_METRICS",
    "NAMED_DISPARITIES",
    "DISPARITY_SUFFIXES",
    "DISPARITIES",
    "BIAS_AUC_METRICS",
    "COUNTERFACTUAL_METRICS",
    "EXPOSURE_METRICS",
    "GATE_GROUP_METRICS",
    "GATE_FEATURE_METRICS",
    "GATE_METRICS",
    "PROPORTION_METRICS",
    "AUC_METRICS",
    "GAP_COMPONENTS",
    "MULTIPLICITY_METHODS",
    "PROPORTION_METHODS",
    "metric_range",
]

#: Per-group metrics, in report order.
GROUP_METRICS: tuple[str, ...] = (
    "count",
    "base_rate",
    "selection_rate",
    "accuracy",
    "balanced_accuracy",
    "precision",
    "tpr",
    "fpr",
    "fnr",
    "roc_auc",
    "brier",
    "ece",
)

#: Rate metrics whose between-group difference/ratio is reported (``count`` is not a rate).
DISPARITY_BASE_METRICS: tuple[str, ...] = tuple(m for m in GROUP_METRICS if m != "count")

#: Named fairness disparities (besides ``<metric>_difference`` etc. for every rate metric).
NAMED_DISPARITIES: tuple[str, ...] = (
    "demographic_parity_difference",
    "demographic_parity_ratio",
    "equalized_odds_difference",
    "equalized_odds_ratio",
    "equal_opportunity_difference",
    "equal_opportunity_ratio",
)

DISPARITY_SUFFIXES: tuple[str, ...] = ("difference", "ratio", "difference_to_overall", "ratio_to_overall")

DISPARITIES: tuple[str, ...] = NAMED_DISPARITIES + tuple(
    f"{m}_{s}" for m in DISPARITY_BASE_METRICS for s in DISPARITY_SUFFIXES
)

BIAS_AUC_METRICS: tuple[str, ...] = ("subgroup_auc", "bpsn_auc", "bnsp_auc")
COUNTERFACTUAL_METRICS: tuple[str, ...] = ("flip_rate", "mean_abs_delta")
EXPOSURE_METRICS: tuple[str, ...] = ("same_group_share", "stereotype_share")

#: Gate metrics judged per group.
GATE_GROUP_METRICS: tuple[str, ...] = (
    GROUP_METRICS + BIAS_AUC_METRICS + COUNTERFACTUAL_METRICS + EXPOSURE_METRICS + GENERATION_GROUP_METRICS
)
#: Gate metrics judged per sensitive feature (one value per variant and feature).
GATE_FEATURE_METRICS: tuple[str, ...] = DISPARITIES + (
    "final_bias_score", "flip_rate_difference", "same_group_share_difference", "stereotype_share_difference",
) + GENERATION_FEATURE_METRICS
GATE_METRICS: tuple[str, ...] = GATE_GROUP_METRICS + GATE_FEATURE_METRICS

#: Shares of events among trials in a group: exact binomial intervals and tests.
PROPORTION_METRICS: tuple[str, ...] = ("base_rate", "selection_rate", "accuracy", "precision", "tpr", "fpr", "fnr",
                                       "flip_rate", "same_group_share", "stereotype_share",
                                       *GENERATION_PROPORTIONS)
#: Mann-Whitney AUCs: DeLong intervals and tests.
AUC_METRICS: tuple[str, ...] = ("roc_auc", *BIAS_AUC_METRICS)
#: Gaps (max - min over groups) of proportions: pairwise score tests; value -> the proportions compared.
GAP_COMPONENTS: dict[str, tuple[str, ...]] = {
    **{f"{m}_difference": (m,) for m in PROPORTION_METRICS},
    "demographic_parity_difference": ("selection_rate",),
    "equal_opportunity_difference": ("tpr",),
    "equalized_odds_difference": ("tpr", "fpr"),
}
MULTIPLICITY_METHODS: tuple[str, ...] = ("none", "bonferroni", "holm")
PROPORTION_METHODS: tuple[str, ...] = ("clopper-pearson", "wilson", "jeffreys")


def metric_range(metric: str) -> tuple[float, float, str]:
    """The values a metric can take, and what to call them in an error: ``(low, high, noun)``.

    >>> metric_range("fpr"), metric_range("fpr_ratio")[:2], metric_range("accuracy_difference")[:2]
    ((0.0, 1.0, 'rates'), (0.0, 1.0), (-1.0, 1.0))
    """
    if metric in ("count", "docs_per_query"):
        return 0.0, float("inf"), "counts"
    if metric in GENERATION_RANGES:
        return GENERATION_RANGES[metric]
    if "ratio" in metric:
        return 0.0, 1.0, "ratios"
    if "difference" in metric or metric == "mean_delta":
        return -1.0, 1.0, "differences"
    if metric in AUC_METRICS:
        return 0.0, 1.0, "AUCs"
    if metric in PROPORTION_METRICS:
        return 0.0, 1.0, "rates"
    return 0.0, 1.0, "these scores"
