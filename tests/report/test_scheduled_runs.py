"""Scheduled runs through the CLI in subprocesses: exit codes, the per-audit lock with two
runs at once, the history listing, and a run killed with SIGKILL that resumes to the same
numbers. Each run imports TFDV (the validate_data stage), so these take ~20 s per run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from pipelines.core.history import list_runs
from pipelines.fairness.result import INSUFFICIENT
from pipelines.graph import EXIT_CODES
from tests.conftest import REPO

PY = sys.executable
WIRED = [PY, "-m", "pipelines"]  # the real CLI


@pytest.fixture
def small_audit(tmp_path):
    rows = [{"id": f"{g}{y}{i}", "comment": f"<b>text</b> {g} {y} number {i} " + "w " * i, "y": y, "group": g}
            for g in ("a", "b") for y in (0, 1) for i in range(10)]
    pd.DataFrame(rows).to_csv(tmp_path / "data.csv", index=False)
    cfg = {"audit": {"name": "small"},
           "data": {"source": "file", "file": {"path": "data.csv", "text_column": "comment", "label_column": "y",
                                               "id_column": "id", "sensitive_columns": ["group"]}},
           "validation": {"schema": None},
           # the scheduling behaviour (lock, resume, history) is what is tested here; the model
           # stages are covered with tiny models in tests/variants and tests/explore
           "variants": [],
           "output": {"runs_dir": "reports/runs", "cache_dir": "reports/cache"}}
    path = tmp_path / "audit.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


# A finished run with no variants judged nothing: its verdict is insufficient_evidence, exit 3.
NOTHING_JUDGED = EXIT_CODES[INSUFFICIENT]


def _start(*args, cwd=REPO):
    return subprocess.Popen([*WIRED, "run", *map(str, args), "--no-progress", "-q"], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc, timeout=300):
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def _wait_for(path: Path, proc, timeout=120):
    t0 = time.monotonic()
    while not path.exists():
        assert proc.poll() is None, f"process ended early: {proc.communicate()}"
        assert time.monotonic() - t0 < timeout, f"{path} did not appear"
        time.sleep(0.1)


def _numbers(summary: dict) -> dict:
    """The parts of summary.json that are measurements (not ids, times or provenance)."""
    timing = ("seconds", "per_s", "latency")
    key_metrics = {v: {m: x for m, x in metrics.items() if not any(t in m for t in timing)}
                   for v, metrics in (summary.get("key_metrics") or {}).items()}
    out = {k: summary[k] for k in ("data", "variants", "comparisons", "examples")}
    return out | {"key_metrics": key_metrics, "verdict": summary["verdict"]["overall"]}


def test_two_runs_at_once_one_waits_or_is_refused_cleanly(small_audit, tmp_path):
    runs_root = tmp_path / "reports" / "runs"
    first = _start(small_audit, "--run-id", "first")
    _wait_for(runs_root / "small" / "first" / "manifest.json", first)  # `first` holds the lock now
    refused = _start(small_audit, "--run-id", "refused")
    waiting = _start(small_audit, "--run-id", "waiting", "--wait", "300")
    rc_refused, _, err_refused = _finish(refused)
    rc_first, out_first, err_first = _finish(first)
    rc_waiting, _, err_waiting = _finish(waiting)
    assert rc_first == NOTHING_JUDGED, err_first
    assert rc_waiting == NOTHING_JUDGED, err_waiting
    assert rc_refused == 2
    errors = [line for line in err_refused.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "another run of audit 'small' is in progress" in errors[0] and ".run.lock" in errors[0]
    assert not (runs_root / "small" / "refused").exists()
    assert "report.html" in out_first
    # history: the two finished runs, the refused one not at all
    rows = list_runs(runs_root, "small")
    assert sorted(r["run_id"] for r in rows) == ["first", "waiting"]
    assert all(r["status"] == "complete" and r["verdict"] == INSUFFICIENT for r in rows)
    # the run that waited charts the one it waited for
    summary = json.loads((runs_root / "small" / "waiting" / "report" / "summary.json").read_text())
    assert [t["run_id"] for t in summary["trend"]] == ["first", "waiting"]
    hist = subprocess.run([PY, "-m", "pipelines", "history", "small", "--runs-dir", str(runs_root)], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert hist.returncode == 0, hist.stderr
    assert hist.stdout.splitlines()[0] == "audit 'small': 2 run(s), newest first"
    assert "first" in hist.stdout and "waiting" in hist.stdout


def test_a_run_killed_mid_way_resumes_to_the_same_numbers(small_audit, tmp_path):
    runs_root = tmp_path / "reports" / "runs"
    killed = _start(small_audit, "--run-id", "killed")
    # load_data is done when its stage index exists: the process is now in validate_data (TFDV)
    _wait_for(runs_root / "small" / "killed" / "load_data" / "_stage.json", killed)
    time.sleep(1.0)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait(30)
    assert killed.returncode == -signal.SIGKILL
    manifest = json.loads((runs_root / "small" / "killed" / "manifest.json").read_text())
    assert manifest["status"] == "running" and "validate_data" not in manifest["stages"]

    resumed = _start(small_audit, "--run-id", "resumed")  # the lock died with the killed process
    rc, out, err = _finish(resumed)
    assert rc == NOTHING_JUDGED, err
    m_resumed = json.loads((runs_root / "small" / "resumed" / "manifest.json").read_text())
    assert m_resumed["stages"]["load_data"]["cache_hit"] is True
    assert m_resumed["status"] == "complete"
    assert (runs_root / "small" / "resumed" / "report" / "report.html").is_file()

    fresh_root = tmp_path / "fresh"
    clean = _start(small_audit, "--run-id", "clean", "--runs-dir", fresh_root / "runs", "--cache-dir",
                   fresh_root / "cache")
    rc, _, err = _finish(clean)
    assert rc == NOTHING_JUDGED, err
    a = json.loads((runs_root / "small" / "resumed" / "report" / "summary.json").read_text())
    b = json.loads((fresh_root / "runs" / "small" / "clean" / "report" / "summary.json").read_text())
    assert _numbers(a) == _numbers(b)
    assert a["data"]["rows"] == 40 and a["data"]["validation"] is not None
    assert a["provenance"]["data_fingerprint"] == b["provenance"]["data_fingerprint"]
    # the killed run never finished, so it is not in the history
    assert [r["run_id"] for r in list_runs(runs_root, "small")] == ["resumed"]
