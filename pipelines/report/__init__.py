"""The report: a post-run step that reads a finished run once and renders it once.

After the runner has written the final manifest (status, verdict, timings), the CLI
calls :func:`post_run`, which

* renders ``report/report.html`` (one offline file) and ``report/summary.json``
  from the manifest and the stages' artifacts (:func:`write_report`), and
* records the run in the audit's history database (:func:`record_history`).

Nothing here changes the manifest or any stage's artifacts. Importing this package
is light (jinja2, markupsafe, pandas when a run is read; no TF or torch).
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

from pipelines.core.artifacts import atomic_write_text, dump_json
from pipelines.core.history import record_run, row_from_run_dir
from pipelines.core.rundir import RunDir, history_db_path
from pipelines.core.safety import confine, storage_error
from pipelines.errors import AuditError
from pipelines.report._inputs import RunInputs
from pipelines.report._model_card import MODEL_CARD_JSON, MODEL_CARD_MD, build_model_card, render_model_card
from pipelines.report._render import render_html
from pipelines.report._summary import SECTIONS, SUMMARY_VERSION, build_summary, key_metrics_of

__all__ = [
    "write_report",
    "record_history",
    "post_run",
    "RunInputs",
    "build_summary",
    "render_html",
    "key_metrics_of",
    "SECTIONS",
    "SUMMARY_VERSION",
    "build_model_card",
    "render_model_card",
    "REPORT_HTML",
    "SUMMARY_JSON",
    "MODEL_CARD_MD",
    "MODEL_CARD_JSON",
]

REPORT_HTML = "report.html"
SUMMARY_JSON = "summary.json"


def write_report(run_dir: str | Path, *, config: Any = None) -> Path | None:
    """Render a finished run's report; return the HTML path (None when the run is not ``complete``).

    Writes ``summary.json``, then the model card built from it (``model_card.json`` and
    ``model_card.md``), then ``report.html``, each atomically; the report folder is
    complete once ``report.html`` exists.
    """
    run = RunDir(Path(run_dir))
    row = row_from_run_dir(run.path)
    if row is None or row["status"] != "complete":
        return None
    inputs = RunInputs.load(run.path, config=config)
    summary = build_summary(inputs)
    html = render_html(summary)
    card = build_model_card(summary)
    card_md = render_model_card(card, summary)
    run.report.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run.report / SUMMARY_JSON, dump_json(summary))
    atomic_write_text(run.report / MODEL_CARD_JSON, dump_json(card))
    atomic_write_text(run.report / MODEL_CARD_MD, card_md)
    atomic_write_text(run.report / REPORT_HTML, html)
    return run.report / REPORT_HTML


def record_history(run_dir: str | Path, *, db_path: str | Path | None = None) -> Path | None:
    """Upsert the run's row into the history database; return the database path.

    Works for complete and failed runs (a failed run has no verdict). Returns None when
    the folder has no manifest or the run is still ``running``.
    """
    run = RunDir(Path(run_dir))
    row = row_from_run_dir(run.path)
    if row is None or row["status"] not in ("complete", "failed"):
        return None
    db = Path(db_path) if db_path is not None else history_db_path(run.runs_root)
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    record_run(db, audit=row["audit"], run_id=row["run_id"], started_at=row["started_at"],
               finished_at=row["finished_at"] or now, status=row["status"], verdict=row["verdict"],
               key_metrics=row["key_metrics"], run_dir=row["run_dir"], summary_path=row["summary_path"],
               recorded_at=now)
    return db


def post_run(run_dir: str | Path, *, config: Any = None, db_path: str | Path | None = None) -> dict[str, Any]:
    """After a run (complete or failed): :func:`write_report`, then :func:`record_history`.

    The history row is written even when the report fails; that error is raised after.
    The history is a convenience, never the verdict: when its database cannot be written
    (damaged, a folder, a full or read-only disk, a link out of the runs folder), the run
    stands and the reason is returned as a warning.

    Returns ``{"report": html path or None, "history": db path or None}``, plus ``"warnings": [str]``
    when there are any.
    """
    run = RunDir(Path(run_dir))
    out: dict[str, Any] = {"report": None, "history": None}
    if not run.manifest.is_file() or run.path.is_symlink():
        return out
    error: BaseException | None = None
    try:
        if os.path.lexists(run.report):
            confine(run.report, run.path, what="run folder")
        out["report"] = write_report(run.path, config=config)
    except OSError as exc:  # recorded below, raised after the history row is written
        error = storage_error(exc)
    except Exception as exc:  # noqa: BLE001 - idem
        error = exc
    try:
        db = Path(db_path) if db_path is not None else history_db_path(run.runs_root)
        if db_path is None and db.is_symlink():
            raise AuditError(f"{db}: the run-history database is a link; refusing to write through it. Replace it "
                             "with the database file (or remove it: the next run creates a new one).")
        out["history"] = record_history(run.path, db_path=db)
    except (AuditError, OSError) as exc:
        out.setdefault("warnings", []).append(f"the run was not recorded in the history: {exc}")
    if error is not None:
        raise error
    return out
