"""The ``beam:`` section: the Apache Beam runner and pipeline options (read by :mod:`pipelines.beam`)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from pipelines.config._base import Section, did_you_mean

__all__ = ["BeamConfig", "BEAM_RUNNERS"]

BEAM_RUNNERS = ("DirectRunner", "PrismRunner", "DataflowRunner", "FlinkRunner", "SparkRunner", "PortableRunner",
                "BundleBasedDirectRunner", "SwitchingDirectRunner", "InteractiveRunner", "TestDirectRunner",
                "TestDataflowRunner")


class BeamConfig(Section):
    """Apache Beam runner and pipeline options for the stages that run on Beam.

    TFDV statistics always run on Beam; with ``data: true`` the data stage does too,
    and with ``inference: true`` the predict stage scores through ``RunInference``.
    """

    runner: str = "DirectRunner"
    options: tuple[str, ...] = ()
    data: bool = Field(
        default=False,
        description="Read, normalize and split the data on Beam (sharded inputs, never loaded whole); "
        "statistics then come straight from the split shards. Needs `data.source: file`.",
    )
    inference: bool = Field(default=False, description="Score the variants with Beam's RunInference.")
    max_in_memory_rows: int = Field(
        default=50_000, ge=100,
        description="With `data: true`, the train/validation/eval tables handed to the model stages are "
        "seeded stratified samples of at most this many rows each.",
    )

    @field_validator("runner")
    @classmethod
    def _runner(cls, value: str) -> str:
        # Beam's own names (StandardOptions.ALL_KNOWN_RUNNERS), matched as Beam matches them:
        # any case, "Runner" optional; a dotted path names a PipelineRunner class.
        known = {r.lower().removesuffix("runner") for r in BEAM_RUNNERS}
        if "." in value or value.lower().removesuffix("runner") in known:
            return value
        raise ValueError(f"must be one of Beam's runners ({', '.join(BEAM_RUNNERS)}) or the dotted path of a "
                         f"PipelineRunner class. Got {value!r} instead.{did_you_mean(value, BEAM_RUNNERS)}")

    @field_validator("options")
    @classmethod
    def _flags(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for opt in value:
            if not opt.startswith("--"):
                raise ValueError(f"be pipeline flags of the form '--name=value'; {opt!r} is not")
            if opt.split("=", 1)[0] == "--runner":
                raise ValueError(f"must not set the runner ({opt!r}); set `beam.runner` instead")
        return value

    def check_refs(self, root: Any) -> None:
        if self.data and root.data.source != "file":
            raise ValueError("`beam.data: true` reads sharded user files; it needs `data.source: file` "
                             f"(got {root.data.source!r}).")
