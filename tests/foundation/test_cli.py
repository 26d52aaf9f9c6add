"""The CLI: fast help, lazy heavy imports, exit codes, and one-line errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO, file_source

PY = sys.executable


def _cli(*args, cwd=REPO, timeout=300):
    return subprocess.run([PY, "-m", "pipelines", *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout)


def test_help_is_fast_and_imports_nothing_heavy():
    code = ("import sys, time; t=time.perf_counter(); from pipelines.cli import main; import pipelines.config; "
            "heavy=[m for m in ('tensorflow','tensorflow_data_validation','torch','transformers','apache_beam','pandas') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([PY, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "[]"
    t0 = time.perf_counter()
    res = _cli("--help")
    elapsed = time.perf_counter() - t0
    assert res.returncode == 0 and "run" in res.stdout and "exit codes" in res.stdout
    assert elapsed < 1.0, f"--help took {elapsed:.2f}s"


def test_validate_ok_and_bad(write_config):
    res = _cli("validate", "pipelines/configs/demo.yaml")
    assert res.returncode == 0 and "OK" in res.stdout
    bad = write_config({"audit": {"name": "x"}, "daata": {}})
    res = _cli("validate", bad)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1
    assert str(bad) in lines[0] and "unknown key `daata`" in lines[0] and "Did you mean 'data'?" in lines[0]


@pytest.mark.parametrize(
    "content, words",
    [
        ("id,coment,y,grp\n1,hi,0,a\n2,yo,1,b\n", ["column 'comment'", "Did you mean 'coment'?"]),
        ("", ["empty"]),
        ("id,comment,y,grp\n1,caf\xe9,0,a\n2,x,1,b\n".encode("latin-1"), ["not valid utf-8", "0xe9"]),
        ("id,comment,y,grp\n1,hi,0,a\n2,yo,7,b\n", ["'y'", "'7' x1"]),
        ("id,comment,y,grp\n1,hi,0,a\n2,yo,1,a\n", ["'grp'", "two distinct values"]),
    ],
)
def test_bad_data_exits_2_with_one_line_and_no_complete_run(tmp_path, write_config, content, words):
    data = tmp_path / "data.csv"
    data.write_bytes(content if isinstance(content, bytes) else content.encode())
    cfg = write_config({"audit": {"name": "bad"}, "data": file_source(data), "validation": {"schema": None}})
    res = _cli("run", cfg, "--no-progress", "-q")
    assert res.returncode == 2, res.stderr
    lines = [l for l in res.stderr.strip().splitlines() if l.startswith("error:")]
    assert len(lines) == 1, res.stderr
    assert "data.csv" in lines[0]
    for word in words:
        assert word in lines[0]
    for manifest in (tmp_path / "runs").rglob("manifest.json"):
        assert json.loads(manifest.read_text())["status"] != "complete"
    assert not list((tmp_path / "runs").rglob("_stage.json"))


def test_history_names_what_it_read(tmp_path):
    from pipelines.core.history import record_run

    runs = tmp_path / "reports" / "runs"
    res = _cli("history", "nope", "--runs-dir", runs)
    assert res.returncode == 0
    assert "no runs recorded yet" in res.stdout
    # no database yet: it says so, and names the folder it listed instead
    assert f"no history database at {tmp_path / 'reports' / 'history.sqlite'}" in res.stdout
    assert str(runs / "nope") in res.stdout
    record_run(tmp_path / "reports" / "history.sqlite", audit="other", run_id="r1", started_at="2026-01-01T00:00:00+00:00",
               status="complete", verdict="pass", key_metrics={})
    res = _cli("history", "nope", "--runs-dir", runs)
    assert "no runs recorded yet" in res.stdout
    assert f"read from {tmp_path / 'reports' / 'history.sqlite'}" in res.stdout
    res = _cli("history", "nope", "--runs-dir", runs, "--json")
    assert json.loads(res.stdout) == [] and "history.sqlite" in res.stderr  # stdout stays pure JSON
