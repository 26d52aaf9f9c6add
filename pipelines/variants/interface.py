"""The variant-kind interface: how a kind of variant is built, turned into a predictor and scored.

The audit config lists named variants, each with a ``kind``; :func:`variant_kind`
returns the object that handles one of them. The stages use only this interface,
so no code compares a variant's name or kind:

* :meth:`VariantKind.build` -> the build entry (JSON): the model folders it put in the
  model cache, their hashes, training metrics, build seconds;
* :meth:`VariantKind.predictor` -> a :class:`~pipelines.variants.Predictor` (texts in,
  P(positive) out), from the build entry alone (Beam workers call it too);
* :meth:`VariantKind.score` -> :class:`ScoreSets`: the audit sample, the counterfactual
  twins in each of the kind's :attr:`~VariantKind.twin_modes`, and the validation sample;
* :meth:`VariantKind.columns` and :meth:`VariantKind.retrievals`: what a kind adds to the
  predictions tables (RAG: the retrieved documents);
* :meth:`VariantKind.generator` -> an :class:`~pipelines.variants.generation.AnswerWriter`
  for a kind that writes text (RAG), None otherwise; :attr:`VariantKind.judges_text`:
  whether its predictor is a text classifier that can score generated answers.

Adding a kind: a config model in :mod:`pipelines.config.variants` (with a ``kind``
literal) and a subclass here registered in :data:`KINDS`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping

import numpy as np

from pipelines.errors import DataError
from pipelines.variants._base import Predictions, Progress, no_progress

__all__ = ["BuildContext", "ScoringRequest", "TwinScores", "ScoreSets", "VariantKind", "rate", "timed",
           "all_twins", "require_table", "model_files", "SAMPLE_COLUMNS"]

SAMPLE_COLUMNS = ("example_id", "text", "label")


def rate(n: int, seconds: float) -> dict[str, Any]:
    """Throughput and latency of scoring ``n`` texts in ``seconds``."""
    return {"examples": int(n), "seconds": round(seconds, 3),
            "examples_per_s": round(n / seconds, 2) if seconds > 0 and n else None,
            "latency_ms_per_example": round(1000 * seconds / n, 2) if n else None}


def timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


@dataclass(frozen=True)
class BuildContext:
    """What building a variant may use (handed over by the build_variants stage)."""

    cache: Any  # ModelCache
    seed: int
    resolve: Callable[[str], Path]
    num_threads: int = 2
    data_features: tuple[str, ...] = ()
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("pipelines.variants"))
    progress: Progress = no_progress


@dataclass(frozen=True)
class ScoringRequest:
    """The texts every variant scores: the audit sample, its counterfactual twins and the validation sample.

    ``audit`` and ``validation`` are tables with ``example_id`` and ``text`` (plus the
    data's passthrough columns); ``twins`` has ``twin_id``, ``example_id``, ``text``, and
    ``twin_rows[j]`` is the position in ``audit`` of twin ``j``'s original.
    """

    audit: Any
    twins: Any
    twin_rows: np.ndarray
    validation: Any

    @property
    def audit_texts(self) -> list[str]:
        return list(self.audit["text"])

    @property
    def twin_texts(self) -> list[str]:
        return list(self.twins["text"])

    @property
    def validation_texts(self) -> list[str]:
        return list(self.validation["text"])


@dataclass(frozen=True)
class TwinScores:
    """Scores of some of the request's twins (``rows``: their positions in ``request.twins``)."""

    rows: np.ndarray
    predictions: Predictions


@dataclass
class ScoreSets:
    """A variant's raw scores of one :class:`ScoringRequest`."""

    audit: Predictions
    twins: dict[str, TwinScores]
    validation: Predictions
    timing: dict[str, Any]
    batch_size: int | None = None


def all_twins(request: ScoringRequest, predictions: Predictions) -> TwinScores:
    return TwinScores(np.arange(len(request.twins)), predictions)


class VariantKind:
    """Base class of the variant kinds; ``spec`` is the variant's config model.

    Parameters
    ----------
    spec
        One entry of the config's ``variants`` list.
    index
        Its position in that list (error messages name ``variants[index].<field>``).
    """

    kind: ClassVar[str] = ""
    #: Counterfactual twin modes this kind scores (``full``: the twin alone; ``query_only``:
    #: the twin with its original's retrieved documents).
    twin_modes: ClassVar[tuple[str, ...]] = ("full",)
    #: Whether the kind can score new texts (twins, What-If Tool edits, Beam).
    scores_texts: ClassVar[bool] = True
    #: Whether the kind is a text classifier that may score generated answers (for stereotypes).
    judges_text: ClassVar[bool] = False

    def __init__(self, spec: Any, *, index: int = 0):
        self.spec = spec
        self.index = index

    @property
    def name(self) -> str:
        return self.spec.name

    def field(self, sub: str) -> str:
        """The config path of one of the variant's fields, for error messages."""
        return f"variants[{self.index}].{sub}"

    @property
    def batch_size(self) -> int:
        return int(getattr(self.spec, "batch_size", 64))

    # -- what the stages call ---------------------------------------------------------------
    def external_files(self, resolve: Callable[[str], Path]) -> dict[str, list[Path]]:
        """Files outside the run that the build reads, ``{label: [files]}`` (they key the stage cache)."""
        return {}

    def build(self, ctx: BuildContext, *, train: Any) -> dict[str, Any]:
        raise NotImplementedError

    def predictor(self, built: Mapping[str, Any], *, num_threads: int = 2) -> Any:
        raise NotImplementedError

    def precisions(self) -> tuple[str, ...]:
        """The precisions the config asks of this variant's scoring models (``fp32``, ``bf16``, ``auto``).

        What they resolve to on this CPU keys the predict stage's cache (see
        :func:`pipelines.variants.effective_precision`); none for kinds without models.
        """
        return ()

    def model_folders(self, built: Mapping[str, Any]) -> list[Path]:
        """Folders of the model cache the predictor reads (checked before use)."""
        return [Path(built["model_dir"])] if built.get("model_dir") else []

    def score(self, predictor: Any, request: ScoringRequest, *, progress: Progress = no_progress) -> ScoreSets:
        """Score the audit sample, the twins and the validation sample, one pass each."""
        audit, t_audit = timed(predictor.predict, request.audit_texts, progress=progress)
        twins, t_twins = timed(predictor.predict, request.twin_texts, progress=progress)
        val, t_val = timed(predictor.predict, request.validation_texts, progress=progress)
        return ScoreSets(
            audit=audit, twins={"full": all_twins(request, twins)}, validation=val,
            timing={"audit": rate(len(request.audit), t_audit), "twins": rate(len(request.twins), t_twins),
                    "validation": rate(len(request.validation), t_val)},
            batch_size=self.batch_size)

    def columns(self, predictions: Predictions) -> dict[str, list[Any]]:
        """Extra columns of the kind in the ``predictions`` table (one value per audit row)."""
        return {}

    def retrievals(self, built: Mapping[str, Any], example_ids: list[str],
                   predictions: Predictions) -> list[dict[str, Any]]:
        """Rows of the ``retrievals`` table (documents shown to the model), if the kind retrieves."""
        return []

    def generator(self, built: Mapping[str, Any], *, settings: Any, num_threads: int = 2) -> Any | None:
        """An :class:`~pipelines.variants.generation.AnswerWriter` for the variant's generator, or None.

        ``settings`` is the config's ``generation`` section (answer length, batch size,
        precision, prompt limits). None: the kind does not write text.
        """
        return None


def require_table(df: Any, columns: tuple[str, ...], *, artifact: str) -> Any:
    from pipelines.core.tables import require_columns

    if df is None:
        raise DataError(f"input `{artifact}` is missing.")
    require_columns(df.columns, f"input `{artifact}`", {c: f"needed by {artifact}" for c in columns})
    return df


def model_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        return [p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    return []
