"""Errors of the What-If Tool helpers, written for a notebook reader.

Each one is an :class:`~pipelines.errors.AuditError` subclass whose message says what is
missing and how to produce it. In IPython they render as that message alone
(``_render_traceback_``), not as a traceback from deep inside the helpers.
"""

from __future__ import annotations

from pipelines.errors import DataError, ModelError

__all__ = [
    "WitInputError",
    "RunNotFoundError",
    "ExportMissingError",
    "NotEnoughVariantsError",
    "PredictorsUnavailableError",
    "MSG_NO_RUNS",
    "MSG_NOT_A_RUN",
    "MSG_NO_EXPORT",
    "MSG_ONE_VARIANT",
    "MSG_NO_BUILD",
    "MSG_PROTOBUF",
]

RUN_HINT = "`fairness-audit run pipelines/configs/demo.yaml` (or `make demo`)"

MSG_NO_RUNS = (
    "No complete run of audit {audit!r} under {root}. Produce one with " + RUN_HINT + ", "
    "or set RUN_DIR in the parameter cell (or $FAIRNESS_AUDIT_RUN_DIR) to a run directory."
)
MSG_NOT_A_RUN = (
    "{path} is not a run directory: {problem}. A run directory is reports/runs/<audit>/<run-id>/ with a "
    "manifest.json; produce one with " + RUN_HINT + "."
)
MSG_NO_EXPORT = (
    "{run_dir}: this run has no What-If Tool export ({missing}). Its finished stages: {stages}. "
    "The `export_wit` stage writes it after `predict`; produce it with " + RUN_HINT + ", "
    "or pick a run that has an `export_wit/` folder."
)
MSG_ONE_VARIANT = (
    "{run_dir}: the What-If Tool compares two model variants, but this run has {found}. "
    "List at least two variants in the audit config's `variants` (e.g. the demo's finetuned and rag) and re-run "
    "`fairness-audit run <config>`."
)
MSG_NO_BUILD = (
    "{run_dir}: cannot rebuild the models for live re-scoring: {problem}. "
    "Re-run the audit with " + RUN_HINT + " so that `build_variants` records its model folders."
)
MSG_PROTOBUF = (
    "protobuf was imported with its {impl!r} implementation before PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION was set; "
    "witwidget's generated code needs the 'python' one. Restart the kernel and run the first cell first "
    "(or start the server with `make notebook`, which sets it)."
)


class _NotebookMessage:
    """Render as the message alone in IPython (no traceback)."""

    def _render_traceback_(self) -> list[str]:
        return [f"{type(self).__name__}: {self}"]


class WitInputError(_NotebookMessage, DataError):
    """A run directory cannot be shown in the What-If Tool."""


class RunNotFoundError(WitInputError):
    """No run directory to open."""


class ExportMissingError(WitInputError):
    """The run has no (complete) ``export_wit`` stage."""


class NotEnoughVariantsError(WitInputError):
    """Compare mode needs two variants."""


class PredictorsUnavailableError(_NotebookMessage, ModelError):
    """The run's models cannot be rebuilt for live re-scoring."""
