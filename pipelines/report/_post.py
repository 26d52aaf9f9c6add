"""Steps around a run that are not stages: read the history before, finalize and record after.

* :func:`previous_runs` (before the run): the earlier runs of the audit, for the
  ``history`` stage.
* :func:`finalize` (after ``run_audit`` returns): re-render ``report.html`` and
  ``summary.json`` with the facts only the finished ``manifest.json`` has (start
  time, final verdict and its reasons, stage timings and cache hits, Python and
  platform), atomically, and keep ``report/_stage.json`` and the manifest's
  hashes in step with the rewritten files.
* :func:`record_run_dir` (after any run that left a manifest, failed ones too):
  upsert the run's row into ``<runs_root>/../history.sqlite``.
* :func:`post_run`: both of the last two, the one call the CLI needs.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any, Mapping

from pipelines.artifacts import atomic_write_text, dump_json, hash_path
from pipelines.history import history_db_path, list_runs, record_run

__all__ = ["previous_runs", "finalize", "record_run_dir", "post_run", "TREND_RUNS"]

TREND_RUNS = 20
MANIFEST = "manifest.json"
REPORT_DIR = "report"
STAGE_INDEX = "_stage.json"

MSG_NO_MANIFEST = "{path}: no manifest.json; expected a run directory written by `fairness-audit run`."
MSG_BAD_JSON = "{path}: not valid JSON ({error}); expected the {what} written by the pipeline."


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _read_json(path: Path, what: str) -> dict[str, Any]:
    from pipelines.errors import DataError

    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(MSG_BAD_JSON.format(path=path, error=exc, what=what)) from exc


def previous_runs(config, *, limit: int = TREND_RUNS) -> list[dict[str, Any]]:
    """The latest recorded runs of ``config``'s audit (newest first), for :func:`history_stage`.

    An unreadable history database does not stop the audit: the report then has no trend,
    a warning is logged, and recording the run afterwards raises the error.
    """
    import logging

    from pipelines.errors import AuditError

    try:
        return list_runs(config.runs_dir.parent, config.audit.name, limit=limit)
    except AuditError as exc:
        logging.getLogger("pipelines.report").warning("run history unavailable, no trend in this report: %s", exc)
        return []


STAGE_ORDER = ("load_data", "validate_data", "counterfactuals", "build_variants", "predict", "evaluate",
               "export_wit", "history", "report")


def _stage_rank(name: str) -> tuple[int, str]:
    return (STAGE_ORDER.index(name) if name in STAGE_ORDER else len(STAGE_ORDER) - 2, name)


def _runs_root(run_dir: Path) -> Path:
    return run_dir.parent.parent  # <runs_root>/<audit>/<run_id>


def finalize(run_dir: str | Path, *, history_rows: list[Mapping[str, Any]] | None = None) -> Path | None:
    """Re-render the run's report from its finished manifest; return the HTML path.

    Returns ``None`` (and changes nothing) when the run has no report (the report
    stage did not run) or its manifest is not ``complete``. ``history_rows``
    defaults to the history database's rows of the audit, so a run that waited
    for another (``--wait``) still charts it.
    """
    from pipelines.errors import DataError
    from pipelines.report._render import render_html
    from pipelines.report._summary import trend_runs, verdict_section

    run_dir = Path(run_dir)
    manifest_path = run_dir / MANIFEST
    if not manifest_path.is_file():
        raise DataError(MSG_NO_MANIFEST.format(path=run_dir))
    manifest = _read_json(manifest_path, "run manifest")
    report_dir = run_dir / REPORT_DIR
    summary_path = report_dir / "summary.json"
    if manifest.get("status") != "complete" or not summary_path.is_file():
        return None
    summary = _read_json(summary_path, "report summary")

    prov = summary.setdefault("provenance", {})
    prov.update({
        "from_manifest": True,
        "started_at": manifest.get("started_at"),
        "status": manifest.get("status"),
        "python": manifest.get("python"),
        "platform": manifest.get("platform"),
        "packages": manifest.get("packages") or prov.get("packages") or {},
        "config_hash": manifest.get("config_hash") or prov.get("config_hash"),
        "data_fingerprint": manifest.get("data_fingerprint") or prov.get("data_fingerprint"),
        # a list: summary.json sorts dict keys, and the stages read best in pipeline order
        "stages": [{"stage": name, "status": st.get("status"), "cache_hit": st.get("cache_hit"),
                    "seconds": st.get("seconds")}
                   for name, st in sorted((manifest.get("stages") or {}).items(), key=lambda kv: _stage_rank(kv[0]))],
    })
    verdict = summary.get("verdict") or {}
    if manifest.get("verdict") and (manifest["verdict"] != verdict.get("overall")
                                    or manifest.get("verdict_reasons") != verdict.get("reasons")):
        fresh = verdict_section(fairness=None, validation_summary=None, variant_names=list(verdict.get("by_variant") or {}),
                                gates=list(verdict.get("gates") or []), manifest=manifest)
        verdict.update(overall=fresh["overall"], reasons=fresh["reasons"], plain_words=fresh["plain_words"])
        summary["verdict"] = verdict
    if history_rows is None:
        history_rows = list_runs(_runs_root(run_dir), summary.get("audit") or manifest.get("audit"), limit=TREND_RUNS + 5)
    started = manifest.get("started_at") or ""
    earlier = [r for r in history_rows
               if r.get("run_id") != manifest.get("run_id") and (r.get("started_at") or "") <= started]
    summary["trend"] = trend_runs(earlier, run_id=manifest.get("run_id"), started_at=manifest.get("started_at"),
                                  verdict=verdict.get("overall"), key_metrics=summary.get("key_metrics") or {},
                                  limit=TREND_RUNS)
    summary["missing"] = [m for m in summary.get("missing") or [] if m.get("section") != "trend"]
    if len(summary["trend"]) < 2:
        summary["missing"].append({"section": "trend",
                                   "reason": "no earlier run of this audit is recorded: no trend yet."})
    summary["finalized"] = True

    html = render_html(summary)
    html_path = report_dir / "report.html"
    atomic_write_text(summary_path, dump_json(summary))
    atomic_write_text(html_path, html)
    hashes = {"report": hash_path(html_path), "summary": hash_path(summary_path)}
    index_path = report_dir / STAGE_INDEX
    if index_path.is_file():
        index = _read_json(index_path, "stage index")
        for name, digest in hashes.items():
            if name in index.get("artifacts", {}):
                index["artifacts"][name]["sha256"] = digest
        atomic_write_text(index_path, dump_json(index))
    stage_entry = (manifest.get("stages") or {}).get(REPORT_DIR)
    if isinstance(stage_entry, dict) and isinstance(stage_entry.get("outputs"), dict):
        stage_entry["outputs"].update({k: v for k, v in hashes.items() if k in stage_entry["outputs"]})
    manifest["report"] = {"html": f"{REPORT_DIR}/report.html", "summary": f"{REPORT_DIR}/summary.json",
                          "finalized": True, "sha256": hashes}
    atomic_write_text(manifest_path, dump_json(manifest))
    return html_path


def record_run_dir(run_dir: str | Path, *, db_path: str | Path | None = None) -> Path | None:
    """Upsert the run's row into the history database; return the database path.

    Works for complete and failed runs (a failed run is recorded with its status
    and no verdict). Returns ``None`` when there is no manifest (e.g. the run was
    refused because another run of the audit held the lock) or the manifest is
    still ``running``.
    """
    run_dir = Path(run_dir)
    manifest_path = run_dir / MANIFEST
    if not manifest_path.is_file():
        return None
    manifest = _read_json(manifest_path, "run manifest")
    if manifest.get("status") not in ("complete", "failed"):
        return None  # still running (another process owns it), or killed: no finished status to record
    summary_path = run_dir / REPORT_DIR / "summary.json"
    key_metrics: dict[str, Any] = {}
    if summary_path.is_file():
        summary = _read_json(summary_path, "report summary")
        key_metrics = summary.get("key_metrics") or {}
    complete = manifest.get("status") == "complete"
    db = Path(db_path) if db_path is not None else history_db_path(_runs_root(run_dir))
    now = _now()
    record_run(
        db,
        audit=manifest.get("audit") or run_dir.parent.name,
        run_id=manifest.get("run_id") or run_dir.name,
        started_at=manifest.get("started_at"),
        finished_at=manifest.get("finished_at") or now,
        status=manifest.get("status") or "unknown",
        verdict=(manifest.get("verdict") or "pass") if complete else None,
        key_metrics=key_metrics,
        run_dir=run_dir.resolve(),
        summary_path=summary_path.resolve() if summary_path.is_file() else None,
        recorded_at=now,
    )
    return db


def post_run(run_dir: str | Path, *, db_path: str | Path | None = None) -> dict[str, Any]:
    """After a run (complete or failed): :func:`finalize` the report, then :func:`record_run_dir`.

    The history row is written even when finalizing fails; the error is raised after.
    Returns ``{"report": html path or None, "history": db path or None}``.
    """
    run_dir = Path(run_dir)
    out: dict[str, Any] = {"report": None, "history": None}
    if not (run_dir / MANIFEST).is_file():
        return out
    error: BaseException | None = None
    try:
        out["report"] = finalize(run_dir)
    except Exception as exc:  # recorded below, raised after the history row is written
        error = exc
    out["history"] = record_run_dir(run_dir, db_path=db_path)
    if error is not None:
        raise error
    return out
