"""Full, read-only and forbidden folders: one line naming the path and what to do; a run that fails on a full
disk still says `failed` in its manifest. Small file systems are tmpfs mounts (root only; skipped otherwise)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.reliability.conftest import Sandbox, one_error, warnings_of


@contextmanager
def tmpfs(path: Path, *, size: str, read_only: bool = False):
    """A small tmpfs mounted at ``path`` (made if missing); the test is skipped where mounting is not allowed."""
    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={size},mode=0755" + (",ro" if read_only else "")
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root and mount rights): {res.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _wordy_data(sandbox: Sandbox) -> None:
    """Comments long enough that load_data's tables take ~1 MB (random words: parquet cannot shrink them)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    words = np.array([f"w{i}" for i in range(5000)])
    rows = [{"id": f"{g}{y}{i}", "comment": " ".join(rng.choice(words, 400)), "y": y, "grp": g,
             "s": float(rng.uniform())} for g in ("a", "b") for y in (0, 1) for i in range(25)]
    pd.DataFrame(rows).to_csv(sandbox.cfg_dir / "data.csv", index=False)


def test_full_runs_disk_fails_in_one_line_and_the_manifest_says_failed(sandbox, cli):
    _wordy_data(sandbox)
    cfg = sandbox.write_config()
    with tmpfs(sandbox.runs, size="600k"):
        sandbox.start()
        code, _, err = cli("run", cfg, "--run-id", "full", "--no-progress", "-q")
        assert code == 2
        line = one_error(err, "No space left on device", "(ENOSPC)", "free space", str(sandbox.run_dir("full")))
        assert len(line) < 600
        manifest = json.loads((sandbox.run_dir("full") / "manifest.json").read_text())
        assert manifest["status"] == "failed" and "ENOSPC" in manifest["error"]
        assert manifest["stages"] == {}  # load_data never finished
        assert not list(sandbox.run_dir("full").glob(".tmp-*")) and not (sandbox.run_dir("full") / ".reserve").exists()
        sandbox.assert_untouched()


def test_full_runs_disk_without_the_reserve_is_still_recorded_in_place(sandbox, cli, monkeypatch):
    """Even when the reserve is gone (taken by someone else), the failed manifest is written over the old one."""
    import pipelines.core.manifest as manifest_mod

    _wordy_data(sandbox)
    cfg = sandbox.write_config()
    monkeypatch.setattr(manifest_mod, "RESERVE_BYTES", 0)
    with tmpfs(sandbox.runs, size="400k"):
        filler = sandbox.runs / "filler.bin"  # inside the runs folder: the tool's own disk, filled by someone
        sandbox.start()
        real_save = manifest_mod.Manifest.save

        def save_then_fill(self):
            real_save(self)
            if not filler.exists():  # after the first manifest: leave no free block at all
                try:
                    with open(filler, "wb", buffering=0) as fh:
                        while True:
                            fh.write(b"\0" * 4096)
                except OSError:
                    pass

        monkeypatch.setattr(manifest_mod.Manifest, "save", save_then_fill)
        code, _, err = cli("run", cfg, "--run-id", "full", "--no-progress", "-q")
        assert code == 2
        one_error(err, "(ENOSPC)")
        manifest = json.loads((sandbox.run_dir("full") / "manifest.json").read_text())
        assert manifest["status"] == "failed" and manifest.get("finished_at")
        sandbox.assert_untouched()


def test_full_cache_disk_leaves_the_run_going_with_a_warning(sandbox, cli):
    cfg = sandbox.write_config()
    with tmpfs(sandbox.cache, size="40k"):
        sandbox.start()
        code, out, err = cli("run", cfg, "--run-id", "r1", "--no-progress", "-q")
        assert code == 1, err  # the verdict: the cache is only a shortcut
        cache_warnings = [w for w in warnings_of(err) if "was not cached" in w]
        assert cache_warnings and all("(ENOSPC)" in w and len(w) < 700 for w in cache_warnings), err
        assert not list((sandbox.cache / "stages").rglob(".tmp-*"))
        assert json.loads((sandbox.run_dir("r1") / "manifest.json").read_text())["status"] == "complete"
        sandbox.assert_untouched()


def test_read_only_runs_folder_is_one_line(sandbox, cli):
    cfg = sandbox.write_config()
    with tmpfs(sandbox.runs, size="1m", read_only=True):
        sandbox.start()
        code, _, err = cli("run", cfg, "--run-id", "r1", "--no-progress", "-q")
        assert code == 2
        one_error(err, str(sandbox.runs), "Read-only file system (EROFS)", "choose a writable --runs-dir")
        assert not sandbox.history.exists()
        sandbox.assert_untouched()


def test_read_only_cache_leaves_the_run_going_uncached(sandbox, cli):
    cfg = sandbox.write_config()
    with tmpfs(sandbox.cache, size="1m", read_only=True):
        sandbox.start()
        code, _, err = cli("run", cfg, "--run-id", "r1", "--no-progress", "-q")
        assert code == 1, err
        cache_warnings = [w for w in warnings_of(err) if "was not cached" in w]
        assert cache_warnings and all("(EROFS)" in w and "--cache-dir" in w for w in cache_warnings), err
        manifest = json.loads((sandbox.run_dir("r1") / "manifest.json").read_text())
        assert manifest["status"] == "complete" and not any(s.get("cache_hit") for s in manifest["stages"].values())
        sandbox.assert_untouched()


def test_permission_denied_is_one_line(tmp_path):
    """As an unprivileged user (root ignores permissions) on a runs folder it may not write."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv to run the command as another user")
    base = Path(tempfile.mkdtemp(prefix="reliability-perm-"))
    try:
        base.chmod(0o755)
        box = Sandbox(base)
        cfg = box.write_config()
        box.runs.mkdir(parents=True)
        for p in base.rglob("*"):
            p.chmod(0o755 if p.is_dir() else 0o644)
        box.start()
        env = {**os.environ, "PYTHONPATH": str(REPO), "HOME": str(box.ctl)}
        res = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m",
                              "tests.reliability._fastcli", "run", str(cfg), "--run-id", "r1", "--no-progress",
                              "-q"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        if "Permission denied" in res.stderr and "error:" not in res.stderr:
            pytest.skip(f"the unprivileged user cannot start Python here: {res.stderr[-300:]}")
        assert res.returncode == 2, res.stderr[-2000:]
        one_error(res.stderr, str(box.runs), "Permission denied (EACCES)", "make the folder writable")
        assert list(box.runs.iterdir()) == []
        box.assert_untouched()
    finally:
        shutil.rmtree(base, ignore_errors=True)
