"""The ``validation:`` section: TFDV schema, drift and skew thresholds."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from pipelines.config._base import Section

__all__ = ["ValidationConfig", "DriftThreshold"]


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


class ValidationConfig(Section):
    """TFDV statistics, schema validation, drift and skew."""

    schema_path: str | None = Field(default=None, alias="schema")
    on_missing_schema: Literal["infer", "error"] = "infer"
    drift: dict[str, DriftThreshold] = Field(default_factory=dict)
    skew: dict[str, DriftThreshold] = Field(default_factory=dict)
    serving_path: str | None = Field(default=None, alias="serving")
    block_on_anomalies: bool = False

    model_config = Section.model_config | {"populate_by_name": True}
