"""The run history of each audit: one SQLite file next to the runs folder.

For the demo (``output.runs_dir: reports/runs``) the database is
``reports/history.sqlite``; in general it is ``<runs_root>/../history.sqlite``
where ``<runs_root>`` is the configured ``output.runs_dir`` (the folder that
holds one sub-folder per audit). One row per run::

    runs(audit, run_id, started_at, finished_at, status, verdict,
         key_metrics JSON, run_dir, summary_path, recorded_at)

with ``(audit, run_id)`` as the primary key, so recording the same run twice
updates its row instead of adding another.

Writes are safe for several processes at once: the database is in WAL mode,
every connection waits up to ``BUSY_TIMEOUT_S`` for a lock, and each write is a
single ``BEGIN IMMEDIATE`` transaction (an upsert).

This module imports only the standard library (and the project's artifacts and run-folder layout).

Examples
--------
>>> import tempfile, pathlib
>>> root = pathlib.Path(tempfile.mkdtemp()) / "runs"
>>> db = history_db_path(root)
>>> record_run(db, audit="demo", run_id="r1", started_at="2026-01-01T00:00:00+00:00",
...            status="complete", verdict="pass", key_metrics={"finetuned": {"accuracy": 0.8}})
>>> [r["run_id"] for r in list_runs(root, "demo")]
['r1']
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

from pipelines.core.artifacts import to_jsonable
from pipelines.core.rundir import FINISHED, MANIFEST, RunDir, audit_dir, history_db_path

__all__ = [
    "KEY_METRICS",
    "history_db_path",
    "record_run",
    "list_runs",
    "format_history",
    "row_from_run_dir",
    "runs_from_run_dirs",
    "format_trend",
]

BUSY_TIMEOUT_S = 60.0
SCHEMA_VERSION = 1

#: Key metrics kept per variant in the history, in display order, with short column labels.
KEY_METRICS: tuple[tuple[str, str], ...] = (
    ("accuracy", "acc"),
    ("roc_auc", "auc"),
    ("worst_group_gap", "gap"),
    ("flip_rate", "flip"),
    ("latency_ms_per_example", "ms/ex"),
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    audit        TEXT NOT NULL,
    run_id       TEXT NOT NULL,
    started_at   TEXT,
    finished_at  TEXT,
    status       TEXT NOT NULL,
    verdict      TEXT,
    key_metrics  TEXT NOT NULL DEFAULT '{}',
    run_dir      TEXT,
    summary_path TEXT,
    recorded_at  TEXT,
    PRIMARY KEY (audit, run_id)
);
CREATE INDEX IF NOT EXISTS runs_by_time ON runs (audit, started_at);
"""

MSG_BAD_DB = ("{path}: not a run-history database ({error}). Move it away: the next run creates a new one, "
              "and `fairness-audit history` lists the runs from their folders until then.")
MSG_DB_BUSY = ("{path}: the run-history database stayed locked by another process for more than {seconds:g} s "
               "({error}). Expected the lock to be released; find the process holding it (e.g. `fuser {path}`) "
               "and run again. The file itself is not damaged.")


MSG_DB_STORAGE = ("{path}: the run-history database could not be written ({error}); {advice}. The run folders "
                  "keep everything: `fairness-audit history` lists them until the database works again.")
_STORAGE_ADVICE = (("full", "the disk is full: free space there"),
                   ("disk i/o", "the disk reported an input/output error: check it"),
                   ("readonly", "the database or its folder is read-only: make them writable"),
                   ("read-only", "the database or its folder is read-only: make them writable"),
                   ("unable to open", "the file cannot be opened: check that its folder exists and is writable, "
                                      "and that the path is not a folder"))


def _db_error(db_path: Path, exc: BaseException):
    """The AuditError for a history database that SQLite (or the OS) refused: busy, storage, or not a database."""
    from pipelines.errors import AuditError

    text = " ".join(str(exc).split())
    if isinstance(exc, sqlite3.OperationalError) and "locked" in text:
        return AuditError(MSG_DB_BUSY.format(path=db_path, seconds=BUSY_TIMEOUT_S, error=text))
    if isinstance(exc, OSError):
        from pipelines.core.safety import os_error_message

        return AuditError(os_error_message(exc, db_path))
    for needle, advice in _STORAGE_ADVICE:
        if needle in text.lower():
            return AuditError(MSG_DB_STORAGE.format(path=db_path, error=text, advice=advice))
    return AuditError(MSG_BAD_DB.format(path=db_path, error=text))


def _connect(db_path: Path) -> sqlite3.Connection:
    db_path.parent.mkdir(parents=True, exist_ok=True)
    # isolation_level=None: we issue BEGIN/COMMIT ourselves.
    conn = sqlite3.connect(str(db_path), timeout=BUSY_TIMEOUT_S, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    return conn


def _use_wal(conn: sqlite3.Connection) -> None:
    """Put the database in WAL mode (it stays so: WAL is recorded in the file).

    WAL lets readers (`fairness-audit history`) run while a run records itself. Switching
    needs a moment without other connections, and SQLite answers "database is locked" at
    once, without waiting for the busy timeout, while another process is creating or
    switching the same new file (two runs recording their first rows together). So the
    switch is retried until ``BUSY_TIMEOUT_S``; a database already in WAL mode is left alone.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _ensure_schema(conn: sqlite3.Connection) -> None:
    _use_wal(conn)
    conn.execute("BEGIN IMMEDIATE")
    try:
        for stmt in (s.strip() for s in _SCHEMA.split(";")):
            if stmt:
                conn.execute(stmt)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def record_run(
    db_path: str | Path,
    *,
    audit: str,
    run_id: str,
    started_at: str | None,
    status: str,
    verdict: str | None,
    key_metrics: Mapping[str, Mapping[str, Any]] | None = None,
    finished_at: str | None = None,
    run_dir: str | Path | None = None,
    summary_path: str | Path | None = None,
    recorded_at: str | None = None,
) -> None:
    """Insert or update the row of one run (an upsert in one transaction).

    Parameters
    ----------
    db_path
        The history database (created with its table when missing).
    audit, run_id
        The row's key.
    started_at, finished_at
        ISO-8601 timestamps (UTC).
    status
        The manifest's status: ``complete``, ``failed`` or ``running``.
    verdict
        ``pass``, ``fail``, ``insufficient_evidence`` or ``None`` (no verdict, e.g. a failed run).
    key_metrics
        ``{variant: {metric: value}}``, stored as JSON (see :data:`KEY_METRICS`).
    """
    db_path = Path(db_path)
    metrics_json = json.dumps(to_jsonable(dict(key_metrics or {})), sort_keys=True, allow_nan=False)
    try:
        conn = _connect(db_path)
    except (sqlite3.Error, OSError) as exc:
        raise _db_error(db_path, exc) from exc
    try:
        _ensure_schema(conn)
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                """
                INSERT INTO runs (audit, run_id, started_at, finished_at, status, verdict, key_metrics,
                                  run_dir, summary_path, recorded_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (audit, run_id) DO UPDATE SET
                    started_at = excluded.started_at, finished_at = excluded.finished_at,
                    status = excluded.status, verdict = excluded.verdict,
                    key_metrics = excluded.key_metrics, run_dir = excluded.run_dir,
                    summary_path = excluded.summary_path, recorded_at = excluded.recorded_at
                """,
                (audit, run_id, started_at, finished_at, status, verdict, metrics_json,
                 None if run_dir is None else str(run_dir),
                 None if summary_path is None else str(summary_path), recorded_at),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    except sqlite3.DatabaseError as exc:
        raise _db_error(db_path, exc) from exc
    finally:
        conn.close()


def _row_dict(row: sqlite3.Row) -> dict[str, Any]:
    out = {k: row[k] for k in row.keys()}
    try:
        out["key_metrics"] = json.loads(out.get("key_metrics") or "{}")
    except json.JSONDecodeError:
        out["key_metrics"] = {}
    return out


def list_runs(runs_root: str | Path, audit: str, limit: int | None = 20) -> list[dict[str, Any]]:
    """The latest finished runs of ``audit`` (``complete`` or ``failed``), newest first.

    Runs still ``running``, or ``interrupted`` (killed), are not listed.
    Reads ``<runs_root>/../history.sqlite``. When that database does not exist
    (history never recorded, or deleted), the rows are rebuilt read-only from the
    run folders under ``<runs_root>/<audit>/`` (their ``manifest.json`` and
    ``report/summary.json``).

    Each row is a dict with ``audit``, ``run_id``, ``started_at``, ``finished_at``,
    ``status``, ``verdict``, ``key_metrics`` (``{variant: {metric: value}}``),
    ``run_dir`` and ``summary_path``.
    """
    runs_root = Path(runs_root)
    db_path = history_db_path(runs_root)
    if not db_path.is_file():
        rows = [r for r in runs_from_run_dirs(audit_dir(runs_root, audit)) if r["status"] in FINISHED]
        rows.sort(key=lambda r: (r.get("started_at") or "", r["run_id"]), reverse=True)
        return rows[:limit] if limit else rows
    try:
        conn = _connect(db_path)
    except (sqlite3.Error, OSError) as exc:
        raise _db_error(db_path, exc) from exc
    try:
        sql = (f"SELECT * FROM runs WHERE audit = ? AND status IN ({', '.join('?' * len(FINISHED))}) "
               "ORDER BY started_at DESC, run_id DESC")
        params: tuple[Any, ...] = (audit, *FINISHED)
        if limit:
            sql += " LIMIT ?"
            params += (int(limit),)
        try:
            return [_row_dict(r) for r in conn.execute(sql, params)]
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []
            raise
    except sqlite3.DatabaseError as exc:
        raise _db_error(db_path, exc) from exc
    finally:
        conn.close()


def row_from_run_dir(run_dir: str | Path) -> dict[str, Any] | None:
    """The history row of one run folder, from its ``manifest.json`` and ``report/summary.json``.

    None when the folder has no readable manifest. A run that did not finish (``failed``,
    or still ``running``) has no verdict.
    """
    run = RunDir(Path(run_dir))
    try:
        manifest = json.loads(run.manifest.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    summary_path = run.report / "summary.json"
    key_metrics: dict[str, Any] = {}
    if summary_path.is_file():
        try:
            key_metrics = json.loads(summary_path.read_text(encoding="utf-8")).get("key_metrics") or {}
        except (OSError, json.JSONDecodeError):
            key_metrics = {}
    complete = manifest.get("status") == "complete"
    return {
        "audit": manifest.get("audit") or run.audit,
        "run_id": manifest.get("run_id") or run.run_id,
        "started_at": manifest.get("started_at"),
        "finished_at": manifest.get("finished_at"),
        "status": manifest.get("status") or "unknown",
        "verdict": manifest.get("verdict") if complete else None,
        "key_metrics": key_metrics,
        "run_dir": str(run.path.resolve()),
        "summary_path": str(summary_path.resolve()) if summary_path.is_file() else None,
    }


def runs_from_run_dirs(audit_dir: str | Path) -> list[dict[str, Any]]:
    """History rows rebuilt from the run folders of one audit."""
    audit_dir = Path(audit_dir)
    if not audit_dir.is_dir():
        return []
    rows = (row_from_run_dir(p.parent) for p in sorted(audit_dir.glob(f"*/{MANIFEST}")))
    return [r for r in rows if r is not None]


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.0f}"
    return _printable(str(value))


def _printable(text: str) -> str:
    """One table cell: control characters (a newline in an old run id) shown escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _variants(runs: Iterable[Mapping[str, Any]]) -> list[str]:
    seen: list[str] = []
    for run in runs:
        for name in (run.get("key_metrics") or {}):
            if name not in seen:
                seen.append(name)
    return seen


def format_history(audit: str, runs: list[Mapping[str, Any]]) -> str:
    """A plain-text (ASCII) table of runs, newest first, then the trend of each key metric.

    ``runs`` is what :func:`list_runs` returns (newest first).
    """
    if not runs:
        return f"audit {audit!r}: no runs recorded yet."
    variants = _variants(runs)
    header = ["run_id", "started_at", "status", "verdict"]
    for v in variants:
        header += [f"{v}:{label}" for _, label in KEY_METRICS]
    table = [header]
    for run in runs:
        row = [_fmt(run.get(k)) for k in ("run_id", "started_at", "status", "verdict")]
        metrics = run.get("key_metrics") or {}
        for v in variants:
            row += [_fmt((metrics.get(v) or {}).get(key)) for key, _ in KEY_METRICS]
        table.append(row)
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines = [f"audit {audit!r}: {len(runs)} run(s), newest first"]
    for r in table:
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip())
    trend = format_trend(runs)
    if trend:
        lines += ["", "trend (oldest -> newest):", *trend]
    return "\n".join(lines)


def format_trend(runs: list[Mapping[str, Any]]) -> list[str]:
    """One line per variant and key metric with at least two values: the series and its change.

    Only ``complete`` runs count (a failed or killed run has no numbers to trend).
    """
    ordered = [r for r in reversed(runs) if r.get("status", "complete") == "complete"]  # oldest first
    lines = []
    for v in _variants(ordered):
        for key, _ in KEY_METRICS:
            series = [((r.get("key_metrics") or {}).get(v) or {}).get(key) for r in ordered]
            values = [x for x in series if isinstance(x, (int, float))]
            if len(values) < 2:
                continue
            delta = values[-1] - values[0]
            direction = "up" if delta > 0 else "down" if delta < 0 else "flat"
            lines.append(f"  {v} {key}: {' -> '.join(_fmt(x) for x in series)}  ({direction} {delta:+.3f})")
    return lines
