"""Finding and reading run directories (the layout is :mod:`pipelines.core.rundir`'s)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

from pipelines.core.rundir import MANIFEST, STAGE_INDEX
from pipelines.explore._errors import MSG_NO_RUNS, MSG_NOT_A_RUN, RunNotFoundError

__all__ = ["latest_run", "resolve_run_dir", "read_manifest", "finished_stages", "read_stage", "default_runs_dir",
           "RUN_DIR_ENV"]

RUN_DIR_ENV = "FAIRNESS_AUDIT_RUN_DIR"
REPO = Path(__file__).resolve().parents[2]


def default_runs_dir(audit: str = "demo") -> Path:
    """``<runs_dir>/<audit>`` of the demo config (``reports/runs/demo`` in the repository)."""
    from pipelines.config import DEMO_CONFIG, load_config

    cfg = load_config(DEMO_CONFIG)
    return cfg.runs_dir.parent / audit


def _manifest_or_none(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def latest_run(runs_dir: str | os.PathLike[str] | None = None, *, audit: str = "demo") -> Path:
    """The most recent complete run under ``runs_dir`` (default: the demo audit's runs).

    Runs are ordered by the manifest's ``started_at``, then by folder name; runs
    whose manifest status is not ``complete`` (running, failed) are passed over.

    Raises
    ------
    RunNotFoundError
        When there is no complete run, with the command that produces one.

    Examples
    --------
    >>> from pipelines.explore import latest_run
    >>> latest_run("reports/runs/demo")  # doctest: +SKIP
    PosixPath('reports/runs/demo/20261127T180000Z-1a2b3c4d')
    """
    root = Path(runs_dir) if runs_dir is not None else default_runs_dir(audit)
    candidates = []
    if root.is_dir():
        for child in root.iterdir():
            if not child.is_dir() or child.name.startswith("."):
                continue
            manifest = _manifest_or_none(child)
            if manifest is not None and manifest.get("status") == "complete":
                candidates.append((str(manifest.get("started_at") or ""), child.name, child))
    if not candidates:
        raise RunNotFoundError(MSG_NO_RUNS.format(audit=audit, root=root))
    return max(candidates)[2]


def resolve_run_dir(run_dir: str | os.PathLike[str] | None = None, *, audit: str = "demo") -> Path:
    """``run_dir`` if given, else ``$FAIRNESS_AUDIT_RUN_DIR``, else :func:`latest_run`; checked to be a run.

    A relative ``run_dir`` that does not exist from the working directory is tried
    from the repository root (notebooks run in ``notebooks/``).
    """
    if run_dir is None or str(run_dir) == "":
        env = os.environ.get(RUN_DIR_ENV)
        run_dir = env if env else latest_run(audit=audit)
    path = Path(run_dir).expanduser()
    if not path.is_absolute() and not path.exists():
        # notebooks run in notebooks/; let "reports/runs/demo/<id>" mean the repository's folder too
        in_repo = REPO / path
        if in_repo.exists():
            path = in_repo
    read_manifest(path)
    return path


def read_manifest(run_dir: Path) -> dict[str, Any]:
    """The run's ``manifest.json``; :class:`RunNotFoundError` when it is not a run directory."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunNotFoundError(MSG_NOT_A_RUN.format(path=run_dir, problem="no such directory"))
    manifest = _manifest_or_none(run_dir)
    if manifest is None:
        raise RunNotFoundError(MSG_NOT_A_RUN.format(path=run_dir, problem=f"{MANIFEST} is missing or unreadable"))
    return manifest


def finished_stages(run_dir: Path) -> list[str]:
    """Names of the stage folders of ``run_dir`` that finished (have a ``_stage.json``), sorted."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    return sorted(p.name for p in run_dir.iterdir() if (p / STAGE_INDEX).is_file())


def read_stage(run_dir: Path, stage: str, *, artifacts: Sequence[str] | None = None) -> dict[str, Any] | None:
    """The artifacts of a finished stage of the run (all, or only the named ones), or None
    when the stage did not run."""
    from pipelines.core.runner import load_stage_outputs

    folder = Path(run_dir) / stage
    if not (folder / STAGE_INDEX).is_file():
        return None
    return load_stage_outputs(folder, artifacts)
