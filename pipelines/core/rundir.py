"""The one module that knows the layout of run folders, the cache and the history.

::

    <runs_root>/                      output.runs_dir (reports/runs)
        <audit>/
            .run.lock                 one run of an audit at a time
            <run-id>/
                manifest.json         status, config, hashes, timings, verdict
                run.log               the run's log, library messages included
                <stage>/              one folder per stage
                    _stage.json       the stage's artifact index (written last)
                    <artifact>.parquet|json|pb|txt, <artifact>/
                report/               report.html, summary.json (after the run)
                .tmp-<stage>-<pid>/   a stage being written (renamed when complete)
                .reserve              space kept while the run runs, so that a full disk can
                                      still record the run as failed (removed at the end)
    <runs_root>/../history.sqlite     one row per finished run of every audit
    <cache_dir>/                      output.cache_dir (reports/cache)
        stages/<stage>/<key>/         a finished stage folder, keyed by its inputs
        stages/<stage>/.tmp-<key>-<pid>/   one being stored
        models/<kind>-<key>/          built models and indexes (their files' hashes in _entry.json)
        models/.tmp-<kind>-<key>-<pid>/    one being built

Nothing is written outside ``<runs_root>``, the history database beside it and
``<cache_dir>`` (see :mod:`pipelines.core.safety`).

Everything else asks this module for a path, so that file names live in one place.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "MANIFEST",
    "STAGE_INDEX",
    "REPORT_DIR",
    "RUN_LOG",
    "LOCK_FILE",
    "HISTORY_DB",
    "TMP_PREFIX",
    "RESERVE_FILE",
    "FINISHED",
    "RunDir",
    "CacheDir",
    "history_db_path",
    "audit_dir",
]

MANIFEST = "manifest.json"
STAGE_INDEX = "_stage.json"
REPORT_DIR = "report"
RUN_LOG = "run.log"
LOCK_FILE = ".run.lock"
HISTORY_DB = "history.sqlite"
TMP_PREFIX = ".tmp-"
RESERVE_FILE = ".reserve"
#: Manifest statuses of runs that ended (``running`` and ``interrupted`` runs did not).
FINISHED = ("complete", "failed")


def audit_dir(runs_root: Path, audit: str) -> Path:
    """``<runs_root>/<audit>``: the folder holding every run of one audit."""
    return Path(runs_root) / audit


def history_db_path(runs_root: Path) -> Path:
    """``<runs_root>/../history.sqlite``: the run history of every audit under ``runs_root``."""
    return Path(runs_root).resolve().parent / HISTORY_DB


@dataclass(frozen=True)
class RunDir:
    """The folder of one run: ``<runs_root>/<audit>/<run-id>``."""

    path: Path

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def audit(self) -> str:
        return self.path.parent.name

    @property
    def runs_root(self) -> Path:
        return self.path.parent.parent

    @property
    def manifest(self) -> Path:
        return self.path / MANIFEST

    @property
    def log(self) -> Path:
        return self.path / RUN_LOG

    @property
    def report(self) -> Path:
        return self.path / REPORT_DIR

    def stage(self, name: str) -> Path:
        return self.path / name

    def stage_index(self, name: str) -> Path:
        return self.path / name / STAGE_INDEX

    def stage_tmp(self, name: str) -> Path:
        """Where a stage is written before it is renamed into place."""
        return self.path / f"{TMP_PREFIX}{name}-{os.getpid()}"

    @property
    def reserve(self) -> Path:
        return self.path / RESERVE_FILE

    def leftovers(self) -> list[Path]:
        """Temporary folders left by killed processes."""
        return sorted(p for p in self.path.glob(f"{TMP_PREFIX}*") if p.is_dir()) if self.path.is_dir() else []


@dataclass(frozen=True)
class CacheDir:
    """The shared cache: finished stage folders and built models."""

    root: Path

    def stage(self, name: str, key: str) -> Path:
        return self.root / "stages" / name / key

    def stage_root(self, name: str) -> Path:
        return self.root / "stages" / name

    def stage_tmp(self, name: str, key: str) -> Path:
        return self.root / "stages" / name / f"{TMP_PREFIX}{key}-{os.getpid()}"

    @property
    def stages(self) -> Path:
        return self.root / "stages"

    @property
    def models(self) -> Path:
        return self.root / "models"

    def leftovers(self) -> list[Path]:
        """Temporary folders of stage-cache stores and model builds (``.tmp-...-<pid>``)."""
        found = [*self.stages.glob(f"*/{TMP_PREFIX}*"), *self.models.glob(f"{TMP_PREFIX}*")]
        return sorted(p for p in found if p.is_dir() and not p.is_symlink())
