"""A finished audit exits with its verdict whatever the history database does; killed runs are found,
marked `interrupted` and cleaned up by the next run; the history and trends list finished runs only."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from pipelines.core.history import format_history, list_runs
from tests.reliability.conftest import one_error, spawn_cli, tree_hashes, warnings_of


@pytest.mark.parametrize("damage", ["garbage", "folder", "truncated"])
def test_finished_audit_exits_with_its_verdict_whatever_the_history_db(sandbox, cli, damage):
    cfg = sandbox.write_config()
    sandbox.out.mkdir(exist_ok=True)
    if damage == "garbage":
        sandbox.history.write_bytes(b"this is not a database" * 100)
    elif damage == "folder":
        sandbox.history.mkdir()
    else:  # a real database cut short
        assert cli("run", cfg, "--run-id", "r0", "--no-progress", "-q")[0] == 1
        for suffix in ("-wal", "-shm"):
            sandbox.history.with_name(sandbox.history.name + suffix).unlink(missing_ok=True)
        data = sandbox.history.read_bytes()
        sandbox.history.write_bytes(data[:100] + b"\xff" * (len(data) - 100))
    before = sandbox.history.read_bytes() if sandbox.history.is_file() else None
    sandbox.start()
    code, out, err = cli("run", cfg, "--run-id", "r1", "--no-progress", "-q")
    assert code == 1, err  # FAIL, not 2
    assert "verdict FAIL" in out and "report:" in out
    (warning,) = [w for w in warnings_of(err) if "history" in w]
    assert str(sandbox.history) in warning and "\n" not in warning
    assert not [line for line in err.splitlines() if line.startswith("error:")]
    manifest = json.loads((sandbox.run_dir("r1") / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["verdict"] == "fail"
    assert (sandbox.run_dir("r1") / "report" / "report.html").is_file()
    if before is not None:
        assert sandbox.history.read_bytes() == before  # nothing lost: the damaged file is left for inspection
    sandbox.assert_untouched()


def _wait_for(path, proc, timeout=60.0):
    t0 = time.monotonic()
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() - t0 < timeout, f"{path} did not appear"
        time.sleep(0.05)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_killed_run_is_marked_interrupted_and_cleaned_up_by_the_next(sandbox, cli):
    cfg = sandbox.write_config()
    assert cli("run", cfg, "--run-id", "before", "--no-progress", "-q")[0] == 1
    hold = sandbox.ctl / "hold.flag"
    proc = spawn_cli("run", cfg, "--run-id", "killed", "--no-progress", "-q", env={"RELIABILITY_HOLD": str(hold)})
    _wait_for(hold, proc)
    killed = sandbox.run_dir("killed")
    assert json.loads((killed / "manifest.json").read_text())["status"] == "running"
    assert list(killed.glob(".tmp-hold-*")) and (killed / ".reserve").exists()
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    hold.unlink()

    # leftovers in the shared cache: one of a dead process (removed), one of a live process (kept)
    stage_root = sandbox.cache / "stages" / "load_data"
    dead = stage_root / f".tmp-0123abcd-{_dead_pid()}"
    live_proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    live = sandbox.cache / "models" / f".tmp-kb-0123abcd-{live_proc.pid}"
    for folder in (dead, live):
        folder.mkdir(parents=True)
        (folder / "half.bin").write_bytes(b"\0" * 100)
    sandbox.start()
    try:
        code, _, err = cli("run", cfg, "--run-id", "after", "--no-progress", "-q")
        assert code == 1, err
        assert any("killed" in w and "interrupted" in w for w in warnings_of(err)), err
        manifest = json.loads((killed / "manifest.json").read_text())
        assert manifest["status"] == "interrupted" and "found by run 'after'" in manifest["error"]
        assert not list(killed.glob(".tmp-*")) and not (killed / ".reserve").exists()
        assert not dead.exists() and live.is_dir()
    finally:
        live_proc.kill()
        live_proc.wait()
    rows = list_runs(sandbox.runs, "rel")
    assert [r["run_id"] for r in rows] == ["after", "before"]
    summary = json.loads((sandbox.run_dir("after") / "report" / "summary.json").read_text())
    assert "killed" not in json.dumps(summary.get("trend"))
    text = format_history("rel", rows)
    assert "killed" not in text
    sandbox.assert_untouched()


def test_history_from_run_folders_lists_finished_runs_only(sandbox, cli):
    cfg = sandbox.write_config()
    assert cli("run", cfg, "--run-id", "done", "--no-progress", "-q")[0] == 1
    sandbox.history.unlink()
    for name, status in (("stuck", "running"), ("gone", "interrupted")):
        folder = sandbox.run_dir(name)
        folder.mkdir()
        (folder / "manifest.json").write_text(json.dumps({"audit": "rel", "run_id": name, "status": status,
                                                          "started_at": "2999-01-01T00:00:00+00:00"}))
    code, out, err = cli("history", cfg)
    assert code == 0, err
    assert "done" in out and "stuck" not in out and "gone" not in out


def test_terminated_run_is_marked_failed_with_one_line(sandbox):
    cfg = sandbox.write_config()
    hold = sandbox.ctl / "hold.flag"
    proc = spawn_cli("run", cfg, "--run-id", "term", "--no-progress", "-q", env={"RELIABILITY_HOLD": str(hold)})
    _wait_for(hold, proc)
    sandbox.start()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    one_error(err, "interrupted")
    manifest = json.loads((sandbox.run_dir("term") / "manifest.json").read_text())
    assert manifest["status"] == "failed" and "terminated by signal" in manifest["error"]
    assert not list(sandbox.run_dir("term").glob(".tmp-*")) and not (sandbox.run_dir("term") / ".reserve").exists()
    assert [r["status"] for r in list_runs(sandbox.runs, "rel")] == ["failed"]
    sandbox.assert_untouched()


def test_two_runs_of_one_audit_at_once(sandbox, cli):
    """The second is refused by the lock (one line, exit 2) and touches neither the first run nor the history."""
    cfg = sandbox.write_config()
    hold = sandbox.ctl / "hold.flag"
    first = spawn_cli("run", cfg, "--run-id", "first", "--no-progress", "-q", env={"RELIABILITY_HOLD": str(hold)})
    _wait_for(hold, first)
    sandbox.start()
    running = tree_hashes(sandbox.run_dir("first"))
    code, _, err = cli("run", cfg, "--run-id", "second", "--no-progress", "-q")
    assert code == 2
    one_error(err, ".run.lock", "another run of audit 'rel' is in progress", "--wait")
    assert not sandbox.run_dir("second").exists() and not sandbox.history.exists()
    assert tree_hashes(sandbox.run_dir("first")) == running
    hold.with_name(hold.name + ".go").write_text("go")
    _, err_first = first.communicate(timeout=120)
    assert first.returncode == 1, err_first
    assert [r["run_id"] for r in list_runs(sandbox.runs, "rel")] == ["first"]
    sandbox.assert_untouched()


CONCURRENT = """
import sys, time
from pathlib import Path
import pandas as pd
from pipelines.config import load_config
from pipelines.core.runner import Stage, run_audit

def make(ctx):
    return {"table": pd.DataFrame({"x": list(range(200_000))}), "info": {"n": 200_000}}

go = Path(sys.argv[2])
while not go.exists():
    time.sleep(0.01)
result = run_audit(load_config(sys.argv[1]), [Stage(name="make", fn=make, config_sections=("data",))],
                   run_id="r", started_at="t", show_progress=False)
print(result.manifest["stages"]["make"]["cache_hit"])
"""


def test_two_audits_sharing_a_cache_at_once(sandbox):
    """Two audits, one stage-cache key, released at the same instant: both finish, nothing half-stored stays,
    and the entry verifies."""
    from pipelines.core.stagecache import verify_stage_folder
    from tests.conftest import REPO

    configs = [sandbox.write_config(name=name, file=f"{name}.yaml") for name in ("one", "two")]
    go = sandbox.ctl / "go"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    sandbox.start()
    procs = [subprocess.Popen([sys.executable, "-c", CONCURRENT, str(cfg), str(go)], cwd=REPO, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for cfg in configs]
    time.sleep(1.0)
    go.write_text("go")
    results = [p.communicate(timeout=120) + (p.returncode,) for p in procs]
    assert [r[2] for r in results] == [0, 0], [r[1][-2000:] for r in results]
    (entry,) = [e for e in (sandbox.cache / "stages" / "make").iterdir()]  # one entry, no .tmp- leftovers
    index = json.loads((entry / "_stage.json").read_text())
    assert verify_stage_folder(entry, key=index["cache_key"]) == []
    for name in ("one", "two"):
        manifest = json.loads((sandbox.run_dir("r", name) / "manifest.json").read_text())
        assert manifest["status"] == "complete"
        assert manifest["stages"]["make"]["outputs"] == {k: v["sha256"] for k, v in index["artifacts"].items()}
    sandbox.assert_untouched()
