"""Run history: the SQLite index, its listing and trend, concurrent writers, and three real
runner runs whose reports chart the trend."""

from __future__ import annotations

import json
import multiprocessing as mp
import sqlite3

import pytest
from bs4 import BeautifulSoup

from pipelines.core.history import format_history, history_db_path, list_runs, record_run
from pipelines.core.runner import Stage, run_audit
from pipelines.report import post_run
from tests.report.conftest import audit_config, make_artifacts, run_from_artifacts


def _record(db, run_id, started, acc, verdict="pass", **kw):
    record_run(db, audit="demo", run_id=run_id, started_at=started, status="complete", verdict=verdict,
               key_metrics={"finetuned": {"accuracy": acc, "worst_group_gap": 0.1}, "rag": {"accuracy": acc - 0.2}},
               **kw)


def test_three_runs_give_three_rows_and_a_trend(tmp_path):
    root = tmp_path / "reports" / "runs"
    db = history_db_path(root)
    assert db == tmp_path / "reports" / "history.sqlite"
    _record(db, "r1", "2026-01-01T00:00:00+00:00", 0.70)
    _record(db, "r2", "2026-01-02T00:00:00+00:00", 0.75, verdict="insufficient_evidence")
    _record(db, "r3", "2026-01-03T00:00:00+00:00", 0.80, verdict="fail")
    _record(db, "r1", "2026-01-01T00:00:00+00:00", 0.70)  # recording again updates, never duplicates
    record_run(db, audit="other", run_id="x", started_at="2026-01-04T00:00:00+00:00", status="complete",
               verdict="pass")
    runs = list_runs(root, "demo", limit=10)
    assert [r["run_id"] for r in runs] == ["r3", "r2", "r1"]  # newest first
    assert [r["verdict"] for r in runs] == ["fail", "insufficient_evidence", "pass"]
    assert runs[0]["key_metrics"]["finetuned"]["accuracy"] == pytest.approx(0.80)
    assert [r["run_id"] for r in list_runs(root, "demo", limit=2)] == ["r3", "r2"]
    text = format_history("demo", runs)
    lines = text.splitlines()
    assert lines[0] == "audit 'demo': 3 run(s), newest first"
    assert lines[2].split()[:4] == ["r3", "2026-01-03T00:00:00+00:00", "complete", "fail"]
    assert "finetuned accuracy: 0.700 -> 0.750 -> 0.800  (up +0.100)" in text
    assert "rag accuracy: 0.500 -> 0.550 -> 0.600  (up +0.100)" in text
    assert "finetuned worst_group_gap: 0.100 -> 0.100 -> 0.100  (flat +0.000)" in text
    text.encode("ascii")  # cron mails and C locales
    assert format_history("nope", []) == "audit 'nope': no runs recorded yet."
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 4


def _writer(db, prefix, n):
    for i in range(n):
        record_run(db, audit="demo", run_id=f"{prefix}-{i:03d}", started_at=f"2026-01-01T00:00:{i:02d}+00:00",
                   status="complete", verdict="pass", key_metrics={"v": {"accuracy": i / n}})


def test_two_processes_write_the_history_at_once(tmp_path):
    db = tmp_path / "history.sqlite"
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(db, p, 40)) for p in ("a", "b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    rows = list_runs(tmp_path / "runs", "demo", limit=None)
    assert len(rows) == 80 and len({r["run_id"] for r in rows}) == 80


def test_processes_creating_the_database_together_all_record(tmp_path):
    # SQLite answers "database is locked" at once (no busy wait) to a connection switching a
    # file to WAL while another creates it; before the retry, ~2% of such rounds lost a run.
    ctx = mp.get_context("fork")
    for k in range(25):
        db = tmp_path / f"history-{k}.sqlite"
        procs = [ctx.Process(target=_writer, args=(db, p, 1)) for p in "abcdef"]
        for p in procs:
            p.start()
        for p in procs:
            p.join(120)
        assert [p.exitcode for p in procs] == [0] * 6, f"round {k}"


def test_history_rebuilt_from_run_folders_when_the_database_is_missing(tmp_path):
    run = tmp_path / "runs" / "demo" / "r1"
    (run / "report").mkdir(parents=True)
    (run / "manifest.json").write_text(json.dumps({"audit": "demo", "run_id": "r1", "status": "complete",
                                                   "started_at": "2026-01-01T00:00:00+00:00", "verdict": "fail"}))
    (run / "report" / "summary.json").write_text(json.dumps({"key_metrics": {"finetuned": {"accuracy": 0.5}}}))
    rows = list_runs(tmp_path / "runs", "demo")
    assert [(r["run_id"], r["verdict"]) for r in rows] == [("r1", "fail")]
    assert rows[0]["key_metrics"]["finetuned"]["accuracy"] == 0.5
    assert not history_db_path(tmp_path / "runs").exists()  # listing never creates the database


def test_a_corrupt_database_is_one_clear_error(tmp_path):
    from pipelines.errors import AuditError

    db = history_db_path(tmp_path / "runs")
    db.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(AuditError, match=r"history\.sqlite: not a run-history database.*Move it away"):
        list_runs(tmp_path / "runs", "demo")
    with pytest.raises(AuditError, match=r"history\.sqlite: not a run-history database"):
        record_run(db, audit="demo", run_id="r", started_at=None, status="complete", verdict="pass")


# -- three runs through the real runner --------------------------------------------------


def _run(cfg, run_id, started, quality):
    return run_from_artifacts(cfg, make_artifacts(cfg, quality=quality), run_id=run_id, started_at=started)


def test_three_runner_runs_chart_their_trend(tmp_path):
    cfg = audit_config(tmp_path, name="trend", resamples=20)
    qualities = [{"finetuned": 0.6, "rag": 0.5}, {"finetuned": 0.75, "rag": 0.55}, {"finetuned": 0.9, "rag": 0.6}]
    results = [_run(cfg, f"run{i}", f"2026-02-0{i + 1}T00:00:00+00:00", q) for i, q in enumerate(qualities)]
    manifests = [json.loads((r / "manifest.json").read_text()) for r in results]
    runs = list_runs(cfg.runs_dir.parent, "trend")
    assert [r["run_id"] for r in runs] == ["run2", "run1", "run0"]
    assert all(r["status"] == "complete" for r in runs)
    for r, res, manifest in zip(runs, reversed(results), reversed(manifests)):
        summary = json.loads((res / "report" / "summary.json").read_text())
        assert r["verdict"] == summary["verdict"]["overall"] == manifest["verdict"]
        assert r["key_metrics"] == summary["key_metrics"]
    accs = [r["key_metrics"]["finetuned"]["accuracy"] for r in reversed(runs)]
    assert accs[0] < accs[2]
    text = format_history("trend", runs)
    assert "finetuned accuracy: " + " -> ".join(f"{a:.3f}" for a in accs) in text

    last = results[-1]
    summary = json.loads((last / "report" / "summary.json").read_text())
    assert [t["run_id"] for t in summary["trend"]] == ["run0", "run1", "run2"]
    assert summary["trend"][-1]["current"] is True
    soup = BeautifulSoup((last / "report" / "report.html").read_text(), "html.parser")
    charts = soup.select("#trend-charts svg")
    assert len(charts) >= 3
    acc_chart = next(c for c in charts if c.find("title").get_text() == "Accuracy")
    assert len(acc_chart.select("circle.trend-point")) == 6  # 3 runs x 2 variants
    assert len(acc_chart.select("path.trend-line")) == 2
    assert [tr["data-run"] for tr in soup.select("#trend-table tbody tr")] == ["run0", "run1", "run2"]
    # display order survives summary.json's sorted keys
    heads = [th.get_text(strip=True) for th in soup.select("table.representation thead th")]
    assert [h.split(":")[0] for h in heads[1::2]] == ["all", "train", "validation", "eval"]
    # provenance from the finished manifest
    manifest = json.loads((last / "manifest.json").read_text())
    assert summary["provenance"]["started_at"] == manifest["started_at"] == "2026-02-03T00:00:00+00:00"
    assert summary["provenance"]["finished_at"] == manifest["finished_at"]
    # stages in run order (the manifest records it), with the manifest's timings
    assert [st["stage"] for st in summary["provenance"]["stages"]] == manifest["stage_order"] == [
        "load_data", "validate_data", "counterfactuals", "build_variants", "predict", "evaluate"]
    assert {st["stage"]: st["seconds"] for st in summary["provenance"]["stages"]} == {
        k: v["seconds"] for k, v in manifest["stages"].items()}
    assert soup.select("#stages tbody tr")
    # the report is rendered once, after the run: it changes neither the manifest nor any stage folder
    assert "report" not in manifest["stages"] and not (last / "report" / "_stage.json").exists()
    # the first run had no trend yet
    first = json.loads((results[0] / "report" / "summary.json").read_text())
    assert len(first["trend"]) == 1 and "trend" in {m["section"] for m in first["missing"]}


def test_failed_run_is_recorded_without_a_verdict(tmp_path):
    cfg = audit_config(tmp_path, name="broken")

    def boom(ctx):
        raise RuntimeError("kaboom")

    from pipelines.errors import StageError

    with pytest.raises(StageError):
        run_audit(cfg, [Stage(name="load_data", fn=boom, cache=False)], run_id="bad",
                  started_at="2026-03-01T00:00:00+00:00", show_progress=False)
    out = post_run(cfg.runs_dir / "bad")
    assert out["report"] is None
    rows = list_runs(cfg.runs_dir.parent, "broken")
    assert [(r["run_id"], r["status"], r["verdict"]) for r in rows] == [("bad", "failed", None)]
    assert post_run(cfg.runs_dir / "never-ran") == {"report": None, "history": None}
    running = cfg.runs_dir / "running"
    running.mkdir()
    (running / "manifest.json").write_text(json.dumps({"audit": "broken", "run_id": "running", "status": "running"}))
    assert post_run(running) == {"report": None, "history": None}
    assert [r["run_id"] for r in list_runs(cfg.runs_dir.parent, "broken")] == ["bad"]


def test_the_report_shows_the_verdict_of_the_finished_manifest(tmp_path):
    """A verdict decided after the stages (blocking TFDV anomalies) reaches the page, its words and the history."""
    cfg = audit_config(tmp_path, name="blocked", gates=[{"metric": "accuracy", "bound": 0.0, "direction": "min"}],
                       extra={"validation": {"block_on_anomalies": True}})
    arts = make_artifacts(cfg)
    arts["validation"]["validation_summary"]["block_on_anomalies"] = True  # and the fixture's data is not blessed
    run_dir = run_from_artifacts(cfg, arts, run_id="b1", started_at="2026-04-01T00:00:00+00:00")
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["verdict"] == "fail"
    assert any("block_on_anomalies" in r for r in manifest["verdict_reasons"])
    summary = json.loads((run_dir / "report" / "summary.json").read_text())
    assert summary["verdict"]["overall"] == "fail" and summary["verdict"]["reasons"] == manifest["verdict_reasons"]
    assert "block_on_anomalies" in summary["verdict"]["plain_words"]
    soup = BeautifulSoup((run_dir / "report" / "report.html").read_text(), "html.parser")
    assert soup.select_one("#verdict-badge")["data-verdict"] == "fail"
    assert [r["verdict"] for r in list_runs(cfg.runs_dir.parent, "blocked")] == ["fail"]
    post_run(run_dir, config=cfg)  # idempotent
    again = json.loads((run_dir / "report" / "summary.json").read_text())
    assert again == summary
    assert len(list_runs(cfg.runs_dir.parent, "blocked")) == 1


def test_a_database_locked_too_long_is_called_busy_not_broken(tmp_path, monkeypatch):
    import pipelines.core.history as history
    from pipelines.errors import AuditError

    db = tmp_path / "history.sqlite"
    _writer(db, "a", 1)
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process holding the write lock
    monkeypatch.setattr(history, "BUSY_TIMEOUT_S", 0.2)
    try:
        with pytest.raises(AuditError) as err:
            _writer(db, "b", 1)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    message = str(err.value)
    assert "stayed locked by another process for more than 0.2 s" in message and "history.sqlite" in message
    assert "not a run-history database" not in message and "Move it away" not in message
    _writer(db, "b", 1)  # once the lock is released the same file works
    assert len(list_runs(tmp_path / "runs", "demo", limit=None)) == 2
