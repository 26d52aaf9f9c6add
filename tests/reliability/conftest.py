"""Fixtures of the reliability tests: a sandbox with bait outside the run and cache folders, tiny audits,
and the CLI run in-process or in a subprocess, with helpers that check one-line errors.

Every test works in ``tmp_path``::

    cfg/      the audit config and its data (read-only to the tool)
    outside/  bait: folders named like run-folder parts, a file, a database; never to change
    cwd/      the working directory of the command
    out/      runs/, cache/ and history.sqlite: the only place the tool may write
    ctl/      the tests' own flag files (not watched)

:meth:`Sandbox.assert_untouched` compares a snapshot (paths, sizes, hashes, modes) of everything but
``out/`` with the one taken at the start, and checks that ``out/`` holds nothing but those three.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.conftest import REPO

PY = sys.executable


def snapshot(root: Path, *, skip: tuple[Path, ...] = ()) -> dict[str, tuple]:
    """``{relative path: (kind, size, sha256, mode)}`` of a tree, links not followed, ``skip`` folders left out."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        dirnames[:] = [d for d in dirnames if base / d not in skip]
        for name in [*dirnames, *filenames]:
            p = base / name
            st = p.lstat()
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = ("link", os.readlink(p))
            elif p.is_dir():
                out[rel] = ("dir", st.st_mode)
            elif not p.is_file():  # a pipe or device: never read it
                out[rel] = ("special", st.st_mode)
            else:
                out[rel] = ("file", st.st_size, hashlib.sha256(p.read_bytes()).hexdigest(), st.st_mode)
    return out


def tree_hashes(root: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of the regular files under ``root``."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


class Sandbox:
    def __init__(self, root: Path):
        self.root = root
        self.cfg_dir = root / "cfg"
        self.outside = root / "outside"
        self.cwd = root / "cwd"
        self.out = root / "out"
        self.runs = self.out / "runs"
        self.cache = self.out / "cache"
        self.history = self.out / "history.sqlite"
        self.ctl = root / "ctl"
        for d in (self.cfg_dir, self.outside / "report", self.outside / "history", self.cwd, self.out, self.ctl):
            d.mkdir(parents=True, exist_ok=True)
        (self.outside / "report" / "keep.html").write_text("<p>not the tool's</p>")
        (self.outside / "history" / "keep.txt").write_text("precious")
        (self.outside / "precious.txt").write_text("do not touch")
        self._before: dict[str, tuple] | None = None

    def start(self) -> None:
        """Take the snapshot that :meth:`assert_untouched` compares with."""
        self._before = snapshot(self.root, skip=(self.out, self.ctl))

    def assert_untouched(self) -> None:
        assert self._before is not None, "call sandbox.start() after writing the inputs"
        after = snapshot(self.root, skip=(self.out, self.ctl))
        changed = sorted(k for k in set(self._before) | set(after) if self._before.get(k) != after.get(k))
        assert not changed, f"written or deleted outside the run and cache folders: {changed[:10]}"
        allowed = {"runs", "cache", "history.sqlite", "history.sqlite-wal", "history.sqlite-shm",
                   "history.sqlite-journal"}
        extra = sorted(p.name for p in self.out.iterdir()) if self.out.exists() else []
        assert set(extra) <= allowed, f"unexpected files beside the runs folder: {extra}"

    def write_data(self, rows: int = 25, *, shift: float = 0.4) -> Path:
        """2 groups x 2 labels x ``rows`` comments with a logged score column ``s`` (knows the label a bit)."""
        rng = np.random.default_rng(0)
        data = [{"id": f"{g}{y}{i}", "comment": f"comment {g} {y} number {i}", "y": y, "grp": g,
                 "s": float(np.clip(0.5 + (shift if y else -shift) * 0.5 + rng.normal(0, 0.25), 0, 1))}
                for g in ("a", "b") for y in (0, 1) for i in range(rows)]
        path = self.cfg_dir / "data.csv"
        pd.DataFrame(data).to_csv(path, index=False)
        return path

    def write_config(self, *, name: str = "rel", gate_bound: float = 0.99, variants: list | None = None,
                     extra: dict | None = None, file: str = "audit.yaml") -> Path:
        """A tiny audit: the data file, a ``predictions`` variant (no model), one accuracy gate.

        ``gate_bound`` 0.99 gives FAIL, 0.0 gives PASS.
        """
        if not (self.cfg_dir / "data.csv").exists():
            self.write_data()
        cfg = {
            "audit": {"name": name},
            "data": {"source": "file", "file": {"path": "data.csv", "text_column": "comment", "label_column": "y",
                                                "id_column": "id", "sensitive_columns": ["grp"]},
                     "split": {"eval_fraction": 0.5, "validation_fraction": 0.0}},
            "validation": {"schema": None},
            "variants": variants if variants is not None else [
                {"name": "prod", "kind": "predictions", "column": "s", "calibration": {"method": "none"},
                 "threshold": {"method": "fixed", "value": 0.5}}],
            "evaluation": {"bootstrap": {"resamples": 20}, "min_group_size": 2, "min_class_count": 1,
                           "counterfactual": {"enabled": False},
                           "gates": [{"metric": "accuracy", "bound": gate_bound, "direction": "min"}]},
            "output": {"runs_dir": str(self.runs), "cache_dir": str(self.cache)},
        }
        for key, value in (extra or {}).items():
            cfg[key] = value
        path = self.cfg_dir / file
        path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
        return path

    def run_dir(self, run_id: str, audit: str = "rel") -> Path:
        return self.runs / audit / run_id


@pytest.fixture
def sandbox(tmp_path, monkeypatch) -> Sandbox:
    box = Sandbox(tmp_path)
    monkeypatch.chdir(box.cwd)
    return box


@pytest.fixture
def cli(capsys, monkeypatch):
    """``cli(*args) -> (exit code, stdout, stderr)``: the real CLI in this process, over the fast stages."""
    import pipelines.graph as graph
    from pipelines.cli import main
    from tests.reliability._fastcli import FAST_STAGES

    monkeypatch.setattr(graph, "STAGES", FAST_STAGES)

    def _run(*args: str | Path) -> tuple[int, str, str]:
        import logging

        # what the real CLI's logging.basicConfig does (pytest's own handlers make it a no-op here)
        handler = logging.StreamHandler(sys.stderr)
        handler.setLevel(logging.WARNING)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger = logging.getLogger("pipelines")
        capsys.readouterr()
        logger.addHandler(handler)
        try:
            code = main([str(a) for a in args])
        finally:
            logger.removeHandler(handler)
        out, err = capsys.readouterr()
        return code, out, err

    return _run


def subprocess_cli(*args, env: dict | None = None, stdin: str | None = None, timeout: float = 120,
                   fast: bool = True) -> subprocess.CompletedProcess:
    """The CLI in a fresh process (over the fast stages unless ``fast=False``)."""
    module = "tests.reliability._fastcli" if fast else "pipelines"
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([PY, "-m", module, *map(str, args)], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env=full_env, input=stdin)


def spawn_cli(*args, env: dict | None = None) -> subprocess.Popen:
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.Popen([PY, "-m", "tests.reliability._fastcli", *map(str, args)], cwd=REPO, env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def one_error(err: str, *words: str) -> str:
    """The single ``error:`` line of stderr (no traceback, no internal error), holding every word."""
    assert "Traceback" not in err and "internal error" not in err, err[-3000:]
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err[-3000:]
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def warnings_of(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("warning:") or " WARNING " in line]
