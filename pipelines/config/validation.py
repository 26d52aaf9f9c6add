"""The ``validation:`` section: TFDV schema, drift and skew thresholds."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from pipelines.config._base import Section

__all__ = ["ValidationConfig", "DriftThreshold", "LeakageConfig"]


class DriftThreshold(Section):
    """A bound on the distance between two splits' distributions of one feature.

    ``l_infinity`` applies to categorical features, ``jensen_shannon`` to
    numeric and categorical ones (TFDV's two drift comparators).
    """

    l_infinity: float | None = Field(default=None, gt=0.0, le=1.0)
    jensen_shannon: float | None = Field(default=None, gt=0.0, le=1.0)

    @model_validator(mode="after")
    def _one(self) -> "DriftThreshold":
        if self.l_infinity is None and self.jensen_shannon is None:
            raise ValueError("set `l_infinity` or `jensen_shannon` (or both)")
        return self


class LeakageConfig(Section):
    """Texts shared between eval and train, validation, or a RAG knowledge base.

    The stage always reports exact and near (normalized: case, punctuation and spacing
    ignored) duplicates per pair. A pair with more than ``max_shared`` evaluated rows
    whose text is in the other set is a finding; with ``block: true`` it fails the run.
    """

    check: bool = True
    max_shared: int | None = Field(
        default=0, ge=0, description="Rows of an evaluated set allowed to share a normalized text with a reference "
        "set; null: report only.")
    block: bool = Field(default=False, description="Fail the run when a pair shares more than `max_shared` texts.")


class ValidationConfig(Section):
    """TFDV statistics, schema validation, drift and skew, and leakage between splits.

    When ``schema`` names no existing file (and ``on_missing_schema`` is ``infer``), the schema is
    inferred from the train split and written to ``validate_data/schema_inferred.pbtxt`` in the
    run's folder, to be reviewed and checked in at ``schema``; the validation summary then says
    ``schema.inferred_from_same_data: true``.
    """

    schema_path: str | None = Field(default=None, alias="schema")
    on_missing_schema: Literal["infer", "error"] = "infer"
    drift: dict[str, DriftThreshold] = Field(default_factory=dict)
    skew: dict[str, DriftThreshold] = Field(default_factory=dict)
    serving_path: str | None = Field(default=None, alias="serving")
    block_on_anomalies: bool = False
    leakage: LeakageConfig = LeakageConfig()

    model_config = Section.model_config | {"populate_by_name": True}
