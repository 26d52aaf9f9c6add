"""The stage runner: runs the stage graph of one audit into a run directory.

A stage is a small spec (its inputs, the config sections it reads, a version)
plus a function. The function gets a :class:`StageContext` and its input
artifacts as keyword arguments and returns ``{artifact name: value}``. It
never reads paths, the clock or the environment by itself.

The runner does all I/O:

* each stage's artifacts go to ``<run-dir>/<stage>/``, written into a
  temporary folder and renamed into place, with an ``_stage.json`` index
  (the layout is :mod:`pipelines.core.rundir`'s); a stage must return exactly
  the outputs its spec declares;
* a content-addressed stage cache (``<cache_dir>/stages/<stage>/<key>/``)
  keyed by the stage's version, its config sections and the hashes of its
  inputs; a stage whose key is cached is not recomputed, but copied into the
  run and verified against its recorded hashes (:mod:`pipelines.core.stagecache`).
  This is also how a re-run after a crash resumes;
* ``manifest.json`` records the config hash, data fingerprint, package
  versions, seed, and per-stage timings, cache hits and output hashes. Its
  ``status`` is ``complete`` only once every stage has finished.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from pipelines import __version__
from pipelines.config import AuditConfig
from pipelines.core.artifacts import atomic_write_text, dump_json, hash_bytes, read_artifact, write_artifact
from pipelines.core.manifest import Manifest, initial_manifest, now_iso, package_versions, recover_interrupted
from pipelines.core.console import progress_stream, progress_wanted, stage_event
from pipelines.core.rundir import LOCK_FILE, STAGE_INDEX, CacheDir, RunDir
from pipelines.core.safety import RunRefused, StorageError, check_run_id, confine, os_error_message, storage_error
from pipelines.core.stagecache import clean_cache_leftovers, store_in_cache, take_from_cache
from pipelines.errors import AuditError, LockError, StageError

__all__ = ["Stage", "StageContext", "RunResult", "RunRefused", "run_audit", "load_stage_outputs", "read_stage_index",
           "package_versions"]

LOG = logging.getLogger("pipelines")
RUNS, CACHE = "runs folder", "cache folder"



@dataclass(frozen=True)
class StageContext:
    """Everything a stage may use besides its inputs; handed over by the runner."""

    config: AuditConfig
    run_id: str
    scratch_dir: Path
    cache_dir: Path
    log: logging.Logger
    show_progress: bool = True
    input_hashes: Mapping[str, str] = field(default_factory=dict)

    @property
    def seed(self) -> int:
        return self.config.seed

    def progress(self, iterable: Iterable[Any] | None = None, *, desc: str, total: int | None = None, unit: str = "it"):
        """A tqdm progress bar on the terminal (silent when progress is off or the terminal is a file or a pipe:
        :func:`~pipelines.core.console.progress_wanted`); it disappears when done."""
        from tqdm.auto import tqdm

        return tqdm(iterable, desc=desc, total=total, unit=unit,
                    disable=not (self.show_progress and progress_wanted()), file=progress_stream(),
                    dynamic_ncols=True, mininterval=1.0, leave=False)


@dataclass(frozen=True)
class Stage:
    """A stage spec.

    Parameters
    ----------
    name
        Folder name under the run directory.
    fn
        ``fn(ctx, **inputs) -> dict[str, value]``.
    outputs
        The artifact names ``fn`` returns (all of them, always). ``None`` leaves them
        unchecked (ad-hoc stages in tests); every stage of :mod:`pipelines.graph` declares them.
    inputs
        ``{parameter name: "upstream_stage.artifact"}``.
    config_sections
        Root config sections the stage reads; they key the cache.
    version
        Bump when the stage's code changes its outputs, to invalidate the cache.
    enabled
        Whether the stage runs for a config (stages after a disabled one that
        need its outputs are skipped too).
    cache
        Whether outputs may be reused across runs.
    """

    name: str
    fn: Callable[..., Mapping[str, Any]]
    outputs: tuple[str, ...] | None = None
    inputs: Mapping[str, str] = field(default_factory=dict)
    config_sections: tuple[str, ...] = ()
    version: str = "1"
    enabled: Callable[[AuditConfig], bool] = lambda cfg: True
    cache: bool = True
    optional_inputs: tuple[str, ...] = ()
    external_inputs: Callable[[AuditConfig], Mapping[str, str]] | None = None
    """Fingerprints of files the stage reads from outside the run (data files, model
    folders, the curated schema), ``{name: sha256}``; they key the cache, so that
    editing such a file invalidates the cached outputs."""
    optional_outputs: tuple[str, ...] = ()
    """Outputs the stage returns only for some configs (e.g. split shards on the Beam path)."""
    config_values: Callable[[AuditConfig], Mapping[str, Any]] | None = None
    """Values derived from other config sections that the stage reads (they key the cache too)."""
    verify_cached: Callable[[AuditConfig, Mapping[str, Any]], list[str]] | None = None
    """Checks a stage-cache hit beyond its artifacts' own hashes (e.g. the model-cache folders its
    outputs name): ``(config, outputs) -> problems``; any problem makes the hit a miss."""
    preflight: Callable[[AuditConfig], Sequence[AuditError]] | None = None
    """Checks that need no compute (files exist, headers, label values, model folders): returns the
    problems found, each an AuditError with its message (``fairness-audit validate`` lists them all)."""

    def check_outputs(self, result: Mapping[str, Any]) -> None:
        """Raise unless ``result`` has every declared output and nothing undeclared."""
        if self.outputs is None:
            return
        got = set(result)
        missing = sorted(set(self.outputs) - got)
        extra = sorted(got - set(self.outputs) - set(self.optional_outputs))
        if missing or extra:
            raise StageError(f"stage `{self.name}` must return the outputs {sorted(self.outputs)}"
                             f"{' (and optionally ' + str(sorted(self.optional_outputs)) + ')' if self.optional_outputs else ''}. "
                             f"Missing {missing}, undeclared {extra}.")


@dataclass
class RunResult:
    run_id: str
    run_dir: Path
    manifest: dict[str, Any]
    outputs: dict[str, dict[str, Any]]

    @property
    def verdict(self) -> str | None:
        return self.manifest.get("verdict")


def _cache_key(stage: Stage, config: AuditConfig, input_hashes: Mapping[str, str]) -> str:
    derived = json.dumps(stage.config_values(config), sort_keys=True, default=str) if stage.config_values else ""
    parts = [
        stage.name,
        stage.version,
        __version__,
        config.section_hash("seed", *stage.config_sections),
        derived,
        *(f"{k}={v}" for k, v in sorted(input_hashes.items())),
    ]
    return hash_bytes("\n".join(parts).encode())[:32]


def read_stage_index(stage_dir: Path) -> dict[str, Any]:
    """The ``_stage.json`` of a finished stage folder."""
    index_path = stage_dir / STAGE_INDEX
    if not index_path.is_file():
        raise StageError(f"{stage_dir}: no {STAGE_INDEX}; the stage did not finish.")
    return json.loads(index_path.read_text(encoding="utf-8"))


def load_stage_outputs(stage_dir: Path, names: Sequence[str] | None = None) -> dict[str, Any]:
    """Read every artifact of a finished stage folder (or only those of ``names`` it has)."""
    index = read_stage_index(stage_dir)
    return {name: read_artifact(stage_dir, entry) for name, entry in index["artifacts"].items()
            if names is None or name in names}


def run_audit(
    config: AuditConfig,
    stages: list[Stage],
    *,
    run_id: str,
    started_at: str,
    show_progress: bool = True,
    lock_timeout: float = 0.0,
    data_fingerprint: Callable[[dict[str, dict[str, Any]]], str | None] | None = None,
    finalize: Callable[[dict[str, dict[str, Any]]], dict[str, Any]] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> RunResult:
    """Run ``stages`` in order for ``config`` into ``<runs_dir>/<audit>/<run_id>/``.

    ``lock_timeout`` is how long to wait for another run of the same audit
    (0: fail at once with :class:`LockError`). ``finalize`` may add keys
    (such as the verdict) to the manifest once every stage has finished.

    Before anything is written, the run is refused (:class:`~pipelines.core.safety.RunRefused`,
    nothing written, nothing to record) when ``run_id`` is not a slug, when the run folder
    exists in any form, or when the runs or cache folder is unusable (a link out of it, a
    read-only or full disk). Every later error marks the manifest ``failed`` and is raised as
    an :class:`AuditError` (OS errors as a one-line :class:`~pipelines.core.safety.StorageError`).
    """
    from filelock import FileLock, Timeout

    check_run_id(run_id)
    runs_root = config.runs_dir.parent
    cache = CacheDir(config.cache_dir)
    audit_dir = _prepare_folders(config, runs_root, cache)
    run = RunDir(audit_dir / run_id)
    _refuse_existing(run)
    lock = FileLock(str(audit_dir / LOCK_FILE))
    try:
        lock.acquire(timeout=lock_timeout)
    except Timeout as exc:
        raise LockError(
            f"{audit_dir / LOCK_FILE}: another run of audit {config.audit.name!r} is in progress "
            f"(waited {lock_timeout:g} s). Retry later or pass --wait SECONDS."
        ) from exc
    except OSError as exc:
        raise RunRefused(os_error_message(exc, audit_dir / LOCK_FILE)) from exc
    try:
        _refuse_existing(run)  # another process may have made it while we waited for the lock
        try:
            recover_interrupted(audit_dir, runs_root, found_by=run_id)
            clean_cache_leftovers(cache)
        except OSError as exc:
            raise RunRefused(os_error_message(exc)) from exc
        return _run_locked(config, stages, run=run, runs_root=runs_root, cache=cache, started_at=started_at,
                           show_progress=show_progress, data_fingerprint=data_fingerprint, finalize=finalize,
                           clock=clock)
    finally:
        lock.release()


def _prepare_folders(config: AuditConfig, runs_root: Path, cache: CacheDir) -> Path:
    """Make the audit's runs folder and the cache root; refuse links that lead out of either."""
    try:
        runs_root.mkdir(parents=True, exist_ok=True)
        audit_dir = confine(config.runs_dir, runs_root, what=RUNS, flag="--runs-dir")
        lock = confine(config.runs_dir / LOCK_FILE, runs_root, what=RUNS, flag="--runs-dir")
        if (config.runs_dir / LOCK_FILE).is_symlink():  # opening it would truncate its target
            raise StorageError(f"{config.runs_dir / LOCK_FILE}: a link (to {lock}), not the audit's lock file; "
                               "remove it and run again.")
        config.runs_dir.mkdir(exist_ok=True)
        cache.root.mkdir(parents=True, exist_ok=True)
        stage_roots = sorted(cache.stages.iterdir()) if cache.stages.is_dir() else []
        for path in (cache.stages, cache.models, *stage_roots):
            confine(path, cache.root, what=CACHE, flag="--cache-dir")
    except StorageError as exc:
        raise RunRefused(str(exc)) from exc
    except OSError as exc:
        raise RunRefused(os_error_message(exc)) from exc
    return audit_dir


def _refuse_existing(run: RunDir) -> None:
    if os.path.lexists(run.path):
        kind = "link" if run.path.is_symlink() else "folder" if run.path.is_dir() else "file"
        raise RunRefused(f"{run.path}: a {kind} named like run {run.run_id!r} already exists; nothing was run and "
                         "nothing was changed. Pick another --run-id.")


def _run_locked(config, stages, *, run: RunDir, runs_root: Path, cache: CacheDir, started_at, show_progress,
                data_fingerprint, finalize, clock) -> RunResult:
    run_id = run.run_id
    try:
        run.path.mkdir()
        manifest = Manifest(run, initial_manifest(config, run_id=run_id, started_at=started_at,
                                                  stage_order=[stage.name for stage in stages]))
    except OSError as exc:  # nothing ran: leave nothing behind, record nothing
        shutil.rmtree(run.path, ignore_errors=True)
        raise RunRefused(os_error_message(exc)) from exc
    outputs: dict[str, dict[str, Any]] = {}
    hashes: dict[str, dict[str, str]] = {}
    skipped: set[str] = set()
    # a stage that needs an upstream stage missing from the graph is skipped like a disabled one
    names = {stage.name for stage in stages}
    skipped.update({ref.split(".", 1)[0] for stage in stages for ref in stage.inputs.values()} - names)
    try:
        for stage in stages:
            needed = {ref.split(".", 1)[0] for p, ref in stage.inputs.items() if p not in stage.optional_inputs}
            if not stage.enabled(config) or needed & skipped:
                skipped.add(stage.name)
                manifest.data["stages"][stage.name] = {"status": "skipped"}
                manifest.save()
                stage_event(stage.name, "skipped")
                continue
            kwargs, input_hashes = _inputs_of(stage, config, outputs, hashes, skipped)
            key = _cache_key(stage, config, input_hashes)
            t0 = clock()
            stage_dir = run.stage(stage.name)
            cached = cache.stage(stage.name, key)
            hit = damaged = False
            if stage.cache and os.path.lexists(cached):
                hit = take_from_cache(cached, run.stage_tmp(stage.name), key=key, stage=stage.name,
                                      cache_root=cache.root, verify=_extra_check(stage, config))
                damaged = not hit
            stage_event(stage.name, "cached" if hit else "running")
            if hit:
                os.replace(run.stage_tmp(stage.name), stage_dir)
            else:
                _execute(stage, config, kwargs, input_hashes, run_id=run_id, run=run, cache_root=cache.root,
                         key=key, show_progress=show_progress)
                warning = store_in_cache(stage_dir, cache, stage=stage.name, key=key) if stage.cache else None
                if warning:
                    LOG.warning("%s", warning)
            index = read_stage_index(stage_dir)
            outputs[stage.name] = {n: read_artifact(stage_dir, e) for n, e in index["artifacts"].items()}
            hashes[stage.name] = {n: e["sha256"] for n, e in index["artifacts"].items()}
            manifest.data["stages"][stage.name] = {
                "status": "complete",
                "cache_hit": bool(hit),
                "cache_key": key,
                "seconds": round(clock() - t0, 3),
                "compute_seconds": index.get("seconds"),
                "inputs": input_hashes,
                "outputs": hashes[stage.name],
                **({"cache_damaged": True} if damaged else {}),
            }
            if data_fingerprint is not None and manifest.data["data_fingerprint"] is None:
                manifest.data["data_fingerprint"] = data_fingerprint(outputs)
            manifest.save()
            stage_event(stage.name, "cached" if hit else "done", manifest.data["stages"][stage.name]["seconds"])
        if finalize is not None:
            manifest.data.update(finalize(outputs))
        manifest.data["status"] = "complete"
        manifest.data["finished_at"] = now_iso()
        manifest.finish()
    except BaseException as exc:
        error = storage_error(exc) if isinstance(exc, OSError) else exc
        manifest.data["status"] = "failed"
        manifest.data["error"] = f"{type(error).__name__}: {error}"
        manifest.data["finished_at"] = now_iso()
        try:
            manifest.finish()
        except OSError as save_exc:  # pragma: no cover - a disk that refuses even an in-place write
            LOG.error("could not record the failure in %s: %s", manifest.path, os_error_message(save_exc))
        if error is not exc:
            raise error from exc
        raise
    return RunResult(run_id=run_id, run_dir=run.path, manifest=manifest.data, outputs=outputs)


def _extra_check(stage: Stage, config: AuditConfig) -> Callable[[Path], list[str]] | None:
    if stage.verify_cached is None:
        return None
    return lambda folder: stage.verify_cached(config, load_stage_outputs(folder))


def _inputs_of(stage: Stage, config: AuditConfig, outputs, hashes, skipped) -> tuple[dict[str, Any], dict[str, str]]:
    """The stage's keyword arguments and the hashes that key its cache entry."""
    kwargs: dict[str, Any] = {}
    input_hashes: dict[str, str] = {}
    for param, ref in stage.inputs.items():
        up_stage, _, art = ref.partition(".")
        if art == "*" and up_stage in outputs:
            # every artifact of the upstream stage, as a dict
            kwargs[param] = dict(outputs[up_stage])
            for name, digest in sorted(hashes[up_stage].items()):
                input_hashes[f"{param}.{name}"] = digest
            continue
        if up_stage in skipped or art not in outputs.get(up_stage, {}):
            if param in stage.optional_inputs:
                kwargs[param] = None
                continue
            raise StageError(f"stage `{stage.name}`: input `{ref}` was not produced by an earlier stage.")
        kwargs[param] = outputs[up_stage][art]
        input_hashes[param] = hashes[up_stage][art]
    if stage.external_inputs is not None:
        for name, digest in sorted(stage.external_inputs(config).items()):
            input_hashes[f"external:{name}"] = digest
    return kwargs, input_hashes


def _execute(stage, config, kwargs, input_hashes, *, run_id, run: RunDir, cache_root, key, show_progress) -> None:
    tmp_dir = run.stage_tmp(stage.name)
    stage_dir = run.stage(stage.name)
    scratch = tmp_dir / ".scratch"
    scratch.mkdir(parents=True)
    ctx = StageContext(
        config=config,
        run_id=run_id,
        scratch_dir=scratch,
        cache_dir=cache_root,
        log=LOG.getChild(stage.name),
        show_progress=show_progress,
        input_hashes=dict(input_hashes),
    )
    t0 = time.perf_counter()
    try:
        result = stage.fn(ctx, **kwargs)
        if not isinstance(result, Mapping):
            raise StageError(f"stage `{stage.name}` must return a mapping of artifacts. Got {type(result).__name__}.")
        stage.check_outputs(result)
        index = {"stage": stage.name, "version": stage.version, "cache_key": key,
                 "seconds": round(time.perf_counter() - t0, 3), "artifacts": {}}
        for name, value in result.items():
            index["artifacts"][name] = write_artifact(tmp_dir, name, value)
        shutil.rmtree(scratch, ignore_errors=True)
        atomic_write_text(tmp_dir / STAGE_INDEX, dump_json(index))
        os.replace(tmp_dir, stage_dir)
    except BaseException as exc:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        if isinstance(exc, AuditError) or not isinstance(exc, Exception):
            raise
        if isinstance(exc, OSError):
            raise storage_error(exc, prefix=f"stage `{stage.name}`: ") from exc
        raise StageError(f"stage `{stage.name}` failed: {type(exc).__name__}: {exc}") from exc
