"""Beam pipelines built from the config's ``beam:`` section, in one place.

Stages never parse flags or build ``PipelineOptions`` themselves: they ask for
:func:`beam_pipeline` (a ``beam.Pipeline`` whose workers' errors come back as our
own, in one line) with the flags of :func:`pipeline_args`.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Iterator, Sequence

from pipelines.beam._errors import worker_errors

__all__ = ["pipeline_args", "pipeline_options", "beam_pipeline", "runner_name", "local_worker_processes",
           "temp_location"]


def pipeline_args(beam_config: Any) -> list[str]:
    """The Beam flags of a ``beam:`` config section: ``--runner=...`` then its ``options``."""
    return [f"--runner={beam_config.runner}", *beam_config.options]


def _flags(args: Sequence[str]) -> dict[str, str]:
    return dict(a[2:].split("=", 1) for a in args if a.startswith("--") and "=" in a)


def runner_name(args: Sequence[str]) -> str:
    """The runner as the flags name it (``DirectRunner`` by default), for messages."""
    return _flags(args).get("runner", "DirectRunner")


def _runner_kind(args: Sequence[str]) -> str:
    """The runner normalised as Beam matches it (``direct`` for ``DirectRunner`` or ``direct``)."""
    name = runner_name(args)
    return name if "." in name else name.lower().removesuffix("runner")


def local_worker_processes(args: Sequence[str]) -> int:
    """How many processes a multi-process DirectRunner starts on this machine (1 otherwise)."""
    flags = _flags(args)
    if _runner_kind(args) != "direct" or flags.get("direct_running_mode") != "multi_processing":
        return 1
    n = int(flags.get("direct_num_workers", "1"))
    return (os.cpu_count() or 1) if n == 0 else max(1, n)  # Beam: 0 means one per core


def temp_location(args: Sequence[str]) -> str | None:
    """``--temp_location`` when the flags set one (a bucket every remote worker can reach)."""
    return _flags(args).get("temp_location")


def pipeline_options(args: Sequence[str]) -> Any:
    """``PipelineOptions`` for the flags (imports Beam)."""
    from apache_beam.options.pipeline_options import PipelineOptions

    return PipelineOptions(list(args))


@contextlib.contextmanager
def beam_pipeline(args: Sequence[str], *, what: str) -> Iterator[Any]:
    """A ``beam.Pipeline`` on the flags' runner; it runs when the block ends.

    A worker's failure is raised as the project's own error, naming ``what`` and the runner.
    """
    import apache_beam as beam

    with worker_errors(what, runner_name(args)), beam.Pipeline(options=pipeline_options(args)) as pipeline:
        yield pipeline
