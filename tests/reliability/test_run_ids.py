"""Run ids are slugs, and an existing run is never touched: refused before any work, nothing recorded."""

from __future__ import annotations

import json
import sqlite3

import pytest

from pipelines.core.safety import RunRefused, check_run_id
from tests.reliability.conftest import one_error, tree_hashes

HOSTILE_IDS = [
    pytest.param("../../x", id="dotdot-escape"),
    pytest.param("..", id="dotdot"),
    pytest.param("a/b", id="nested"),
    pytest.param("a\nb", id="newline"),
    pytest.param("ok\n", id="trailing-newline"),  # `$` in a regex matches before a final newline
    pytest.param(".hidden", id="leading-dot"),
    pytest.param("", id="empty"),
    pytest.param("x" * 129, id="too-long"),
    pytest.param("a..b", id="inner-dotdot"),
    pytest.param("run id", id="space"),
]


@pytest.mark.parametrize("run_id", HOSTILE_IDS)
def test_hostile_run_id_is_refused_before_anything_is_written(sandbox, cli, run_id):
    cfg = sandbox.write_config()
    sandbox.start()
    code, out, err = cli("run", cfg, "--run-id", run_id, "--no-progress", "-q")
    assert code == 2
    one_error(err, "--run-id", repr(run_id), "must be a slug")
    assert not sandbox.runs.exists() and not sandbox.cache.exists() and not sandbox.history.exists()
    sandbox.assert_untouched()


def test_absolute_run_id_cannot_reach_a_folder_outside(sandbox, cli):
    """`--run-id /some/dir` used to write there and delete its report/ and history/ subfolders."""
    cfg = sandbox.write_config()
    sandbox.start()
    code, _, err = cli("run", cfg, "--run-id", sandbox.outside, "--no-progress", "-q")
    assert code == 2
    one_error(err, "--run-id", "must be a slug")
    assert (sandbox.outside / "report" / "keep.html").is_file() and (sandbox.outside / "history" / "keep.txt").is_file()
    sandbox.assert_untouched()


def test_run_audit_checks_the_run_id_itself(sandbox):
    from pipelines.config import load_config
    from pipelines.core.runner import run_audit

    cfg = load_config(sandbox.write_config())
    sandbox.start()
    with pytest.raises(RunRefused, match="must be a slug"):
        run_audit(cfg, [], run_id="../escape", started_at="t")
    assert check_run_id("2026-01-31.nightly_1") == "2026-01-31.nightly_1"
    sandbox.assert_untouched()


@pytest.mark.parametrize("kind", ["empty-folder", "file", "link-outside"])
def test_anything_named_like_the_run_is_refused_and_left_alone(sandbox, cli, kind):
    cfg = sandbox.write_config()
    target = sandbox.run_dir("taken")
    target.parent.mkdir(parents=True)
    if kind == "empty-folder":
        target.mkdir()
    elif kind == "file":
        target.write_text("someone's notes")
    else:
        target.symlink_to(sandbox.outside, target_is_directory=True)
    before = sorted(p.name for p in target.parent.iterdir())
    sandbox.start()
    code, _, err = cli("run", cfg, "--run-id", "taken", "--no-progress", "-q")
    assert code == 2
    one_error(err, str(target), "already exists", "Pick another --run-id")
    assert sorted(p.name for p in target.parent.iterdir()) == before  # no manifest, no stage folder, no lock left open
    assert not sandbox.history.exists() and not (sandbox.cache / "stages").exists()
    if kind == "link-outside":
        assert target.is_symlink()
    sandbox.assert_untouched()


def test_a_duplicate_run_id_changes_neither_the_run_nor_the_history(sandbox, cli):
    cfg = sandbox.write_config()
    code, _, err = cli("run", cfg, "--run-id", "first", "--no-progress", "-q")
    assert code == 1, err
    run = sandbox.run_dir("first")
    files = tree_hashes(run)
    with sqlite3.connect(sandbox.history) as conn:
        rows = conn.execute("SELECT * FROM runs").fetchall()
    db_bytes = sandbox.history.read_bytes()
    sandbox.start()
    code, _, err = cli("run", cfg, "--run-id", "first", "--no-progress", "-q")
    assert code == 2
    one_error(err, "already exists")
    assert tree_hashes(run) == files
    assert json.loads((run / "manifest.json").read_text())["status"] == "complete"
    with sqlite3.connect(sandbox.history) as conn:
        assert conn.execute("SELECT * FROM runs").fetchall() == rows
    assert sandbox.history.read_bytes() == db_bytes
    sandbox.assert_untouched()


@pytest.mark.parametrize("audit", ["../../outside", "a/b", "rel\n"])
def test_history_takes_an_audit_name_never_a_path(sandbox, cli, audit):
    """`history ../../outside` used to read run folders from outside the runs folder (and list them)."""
    import shutil

    cfg = sandbox.write_config()
    assert cli("run", cfg, "--run-id", "r1", "--no-progress", "-q")[0] == 1
    shutil.copytree(sandbox.run_dir("r1"), sandbox.outside / "bait-run")  # a finished run, outside the runs folder
    sandbox.history.unlink()  # `history` then rebuilds its rows from the run folders
    sandbox.start()
    code, out, err = cli("history", audit, "--runs-dir", sandbox.runs, "--json")
    assert code == 2 and "bait-run" not in out
    one_error(err, "history:", repr(audit), "neither an audit config file nor an audit name")
    sandbox.assert_untouched()
    code, out, _ = cli("history", "rel", "--runs-dir", sandbox.runs, "--json")
    assert code == 0 and [r["run_id"] for r in json.loads(out)] == ["r1"]
