"""Links planted in the runs or cache folder cannot make the tool write, or delete, outside them."""

from __future__ import annotations

import json

import pytest

from tests.reliability.conftest import one_error, tree_hashes, warnings_of


def test_audit_folder_linked_outside_is_refused(sandbox, cli):
    cfg = sandbox.write_config()
    sandbox.runs.mkdir(parents=True)
    (sandbox.runs / "rel").symlink_to(sandbox.outside, target_is_directory=True)
    sandbox.start()
    code, _, err = cli("run", cfg, "--run-id", "r1", "--no-progress", "-q")
    assert code == 2
    one_error(err, str(sandbox.runs / "rel"), "outside the runs folder", "Remove the link")
    sandbox.assert_untouched()
    assert not sandbox.history.exists()


@pytest.mark.parametrize("part", ["stages", "models", "stages/load_data"])
def test_cache_folder_linked_outside_is_refused(sandbox, cli, part):
    cfg = sandbox.write_config()
    link = sandbox.cache / part
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(sandbox.outside, target_is_directory=True)
    sandbox.start()
    code, _, err = cli("run", cfg, "--run-id", "r1", "--no-progress", "-q")
    assert code == 2
    one_error(err, str(link), "outside the cache folder", "--cache-dir")
    assert not sandbox.run_dir("r1").exists() and not sandbox.history.exists()
    sandbox.assert_untouched()


def test_cache_entry_linked_outside_is_replaced_not_followed(sandbox, cli):
    """A stage-cache entry that is a link (to a folder holding a forged stage) is damage: unlinked and rebuilt."""
    cfg = sandbox.write_config()
    assert cli("run", cfg, "--run-id", "r1", "--no-progress", "-q")[0] == 1
    entry = next((sandbox.cache / "stages" / "evaluate").iterdir())
    forged = sandbox.outside / "forged"
    import shutil

    shutil.copytree(entry, forged)
    shutil.rmtree(entry)
    entry.symlink_to(forged, target_is_directory=True)
    sandbox.start()
    code, _, err = cli("run", cfg, "--run-id", "r2", "--no-progress")
    assert code == 1, err
    assert any("is damaged" in w or "damaged" in w for w in warnings_of(err)), err[-2000:]
    assert entry.is_dir() and not entry.is_symlink()
    manifest = json.loads((sandbox.run_dir("r2") / "manifest.json").read_text())
    assert manifest["stages"]["evaluate"]["cache_damaged"] is True
    sandbox.assert_untouched()  # the forged folder outside is still there, unchanged


def test_run_lock_and_history_links_are_not_written_through(sandbox, cli):
    """A planted `.run.lock` link pointing outside is refused; a `history.sqlite` link is not written through."""
    cfg = sandbox.write_config()
    (sandbox.runs / "rel").mkdir(parents=True)
    (sandbox.runs / "rel" / ".run.lock").symlink_to(sandbox.outside / "precious.txt")
    sandbox.start()
    code, _, err = cli("run", cfg, "--run-id", "r1", "--no-progress", "-q")
    assert code == 2
    one_error(err, ".run.lock", "outside the runs folder")
    sandbox.assert_untouched()

    (sandbox.runs / "rel" / ".run.lock").unlink()
    sandbox.history.symlink_to(sandbox.outside / "precious.txt")
    sandbox.start()
    code, _, err = cli("run", cfg, "--run-id", "r2", "--no-progress", "-q")
    assert code == 1, err  # the verdict stands; the history is only a convenience
    assert any("history.sqlite" in w and "link" in w for w in warnings_of(err)), err
    assert sandbox.history.is_symlink()
    sandbox.assert_untouched()


def test_runs_folder_that_is_a_file_is_one_line(sandbox, cli):
    cfg = sandbox.write_config()
    sandbox.runs.parent.mkdir(parents=True, exist_ok=True)
    sandbox.runs.write_text("not a folder")
    sandbox.start()
    code, _, err = cli("run", cfg, "--run-id", "r1", "--no-progress", "-q")
    assert code == 2
    one_error(err, str(sandbox.runs), "(ENOTDIR)" if "ENOTDIR" in err else "(EEXIST)")
    assert sandbox.runs.read_text() == "not a folder"
    sandbox.assert_untouched()


def test_completed_run_does_not_change_when_the_cache_is_damaged(sandbox, cli):
    """Run folders hold copies: truncating every cached file leaves the completed run's bytes as they were."""
    cfg = sandbox.write_config()
    assert cli("run", cfg, "--run-id", "r1", "--no-progress", "-q")[0] == 1
    run = sandbox.run_dir("r1")
    before = tree_hashes(run)
    manifest = json.loads((run / "manifest.json").read_text())
    for f in (sandbox.cache / "stages").rglob("*"):
        if f.is_file():
            with open(f, "r+b") as fh:
                fh.truncate(max(0, f.stat().st_size // 2))
    assert tree_hashes(run) == before
    for stage, entry in manifest["stages"].items():  # and the run still matches its own manifest
        for name, digest in (entry.get("outputs") or {}).items():
            from pipelines.core.artifacts import hash_path

            index = json.loads((run / stage / "_stage.json").read_text())
            assert hash_path(run / stage / index["artifacts"][name]["file"], memo=False) == digest
