"""The ``mitigation:`` section: what per-group thresholds (fairlearn's ``ThresholdOptimizer``) would buy.

The ``mitigate`` stage fits fairlearn's ``ThresholdOptimizer`` on each variant's
validation scores (the calibrated ``score``, as a prefit estimator's output) under
``constraint`` and ``objective``, applies it to the audit sample, and evaluates the
result exactly like the deployed model (same metrics, intervals and gates). It also
sweeps a tolerance on the constrained gap (``tolerances``) to draw the trade-off
between accuracy and the gap.

Per-group thresholds need the group of every example *at prediction time*; see
``docs/mitigation.md`` for what that implies before anyone deploys them.

Examples
--------
>>> from pipelines.config.mitigation import MitigationConfig
>>> cfg = MitigationConfig(enabled=True)
>>> cfg.constraint, cfg.objective, cfg.gap_metric, cfg.objective_metric
('equalized_odds', 'accuracy', 'equalized_odds_difference', 'accuracy')
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from pipelines.config._base import Section, did_you_mean

__all__ = ["MitigationConfig", "CONSTRAINTS", "OBJECTIVES", "TWIN_SUFFIX_MITIGATED"]

#: fairlearn constraint name -> the evaluation's disparity that measures it (max - min over groups).
CONSTRAINTS: dict[str, str] = {
    "equalized_odds": "equalized_odds_difference",
    "demographic_parity": "demographic_parity_difference",
    "true_positive_rate_parity": "tpr_difference",
    "false_negative_rate_parity": "fnr_difference",
    "false_positive_rate_parity": "fpr_difference",
}
#: our objective name -> (fairlearn's objective, the evaluation's group metric).
OBJECTIVES: dict[str, tuple[str, str]] = {
    "accuracy": ("accuracy_score", "accuracy"),
    "balanced_accuracy": ("balanced_accuracy_score", "balanced_accuracy"),
}
#: The mitigated twin of variant ``v`` is evaluated as ``v + TWIN_SUFFIX_MITIGATED``. Configured
#: variant names cannot contain ``+``, so a twin never collides with a configured variant.
TWIN_SUFFIX_MITIGATED = "+thresholds"

MSG_UNKNOWN_VARIANT = (
    "`mitigation.variants` names variant {name!r}, which is not configured.{hint} Configured variants: {known}."
)
MSG_UNKNOWN_FEATURE = (
    "`mitigation.feature` names sensitive feature {name!r}, which the evaluation does not slice by.{hint} "
    "Evaluated sensitive features: {known}."
)
MSG_NO_VALIDATION = (
    "`mitigation.enabled` is true, but `data.split.validation_fraction` is 0: the thresholds are fitted on the "
    "validation split. Set `data.split.validation_fraction` above 0, or disable mitigation."
)


class MitigationConfig(Section):
    """Post-processing with per-group thresholds, evaluated beside the deployed model (off by default)."""

    enabled: bool = False
    constraint: Literal["equalized_odds", "demographic_parity", "true_positive_rate_parity",
                        "false_negative_rate_parity", "false_positive_rate_parity"] = "equalized_odds"
    objective: Literal["accuracy", "balanced_accuracy"] = "accuracy"
    feature: str | None = Field(
        default=None, description="The sensitive feature whose groups get their own thresholds. Null: the first "
        "evaluated sensitive feature (the one gates use by default).")
    variants: tuple[str, ...] = Field(default=(), description="Empty: every variant.")
    grid_size: int = Field(default=1000, ge=10, le=100_000, description="fairlearn's `grid_size`.")
    on_small_groups: Literal["warn", "error"] = Field(
        default="warn", description="A validation group smaller than `evaluation.min_group_size`: a warning in "
        "the report, or an error that stops the run. Either way the message says how many rows are needed. A group "
        "with one label only (or an audit group missing from validation) leaves the variant unmitigated: under "
        "`warn` the run goes on and its twin's gates are not evaluable, saying why; under `error` the run stops.")
    tolerances: tuple[float, ...] = Field(
        default=(0.02, 0.05, 0.1, 0.15, 0.2, 0.3),
        description="The trade-off sweep: for each tolerance, the best single threshold per group whose "
        "validation gap is at most the tolerance. Empty: no sweep.")
    verdict_on: Literal["deployed", "mitigated", "both"] = Field(
        default="deployed", description="Whose gates decide the run's verdict: the deployed variants' (the "
        "default), their mitigated twins', or both.")

    @field_validator("tolerances")
    @classmethod
    def _tolerances(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if any(not 0.0 < t <= 1.0 for t in value):
            raise ValueError("list tolerances in (0, 1] (0 is fairlearn's exact solution, always included)")
        return tuple(sorted(set(value)))

    @field_validator("variants")
    @classmethod
    def _unique(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("list each variant once")
        return value

    @property
    def gap_metric(self) -> str:
        """The evaluation's disparity that the constraint drives to zero."""
        return CONSTRAINTS[self.constraint]

    @property
    def objective_metric(self) -> str:
        """The evaluation's group metric that the objective maximizes."""
        return OBJECTIVES[self.objective][1]

    @property
    def fairlearn_objective(self) -> str:
        return OBJECTIVES[self.objective][0]

    def feature_for(self, evaluated_features: tuple[str, ...] | list[str]) -> str:
        """The feature whose groups get thresholds: ``feature``, or the first evaluated one."""
        return self.feature or tuple(evaluated_features)[0]

    def variants_for(self, configured: tuple[str, ...] | list[str]) -> tuple[str, ...]:
        """The variants to mitigate, in config order."""
        return tuple(v for v in configured if not self.variants or v in self.variants)

    def check_refs(self, root: Any) -> None:
        """Check the variant and feature names against the other sections (called by the root config)."""
        if not self.enabled:
            return
        variants = tuple(v.name for v in getattr(root, "variants", ()))
        for name in self.variants:
            if name not in variants:
                raise ValueError(MSG_UNKNOWN_VARIANT.format(name=name, hint=did_you_mean(name, variants),
                                                            known=", ".join(variants) or "none"))
        data = getattr(root, "data", None)
        data_features = tuple(getattr(data, "sensitive_features", ()) or ())
        evaluation = getattr(root, "evaluation", None)
        if self.feature is not None and data_features and evaluation is not None:
            usable = evaluation.features(data_features)
            if self.feature not in usable:
                raise ValueError(MSG_UNKNOWN_FEATURE.format(name=self.feature, hint=did_you_mean(self.feature, usable),
                                                            known=", ".join(usable)))
        split = getattr(data, "split", None)
        if split is not None and split.validation_fraction <= 0.0:
            raise ValueError(MSG_NO_VALIDATION)
