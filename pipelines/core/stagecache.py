"""The stage cache: finished stage folders reused across runs, verified before every use.

An entry ``<cache>/stages/<stage>/<key>/`` is a copy of a finished stage folder: its
artifacts and ``_stage.json``, which records each artifact's SHA-256. A hit is copied
into the run's temporary stage folder, and the copy is verified (every byte hashed
again, without the per-process memo, every file accounted for, no links) before it is
renamed into place. So the run holds bytes that match the recorded hashes, and no later
change to the cache can reach it. A damaged entry is reported (a warning naming the
file), removed, and the stage runs again.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Callable

from pipelines.core.artifacts import hash_path
from pipelines.core.rundir import STAGE_INDEX, CacheDir
from pipelines.core.safety import (
    StorageError,
    confine,
    copy_tree,
    first_lines,
    os_error_message,
    pid_alive,
    remove_tree,
    tmp_owner_pid,
    walk_tree,
)
from pipelines.errors import AuditError

__all__ = ["verify_stage_folder", "take_from_cache", "store_in_cache", "clean_cache_leftovers"]

LOG = logging.getLogger("pipelines")
CACHE = "cache folder"


def verify_stage_folder(folder: Path, *, key: str) -> list[str]:
    """What is wrong with a stage folder against its own ``_stage.json`` (empty when nothing is).

    Checks that the index names ``key``, that every artifact exists with the recorded SHA-256
    (bytes read again, no memo), and that the folder holds nothing else: no other file, no link.
    """
    folder = Path(folder)
    index_path = folder / STAGE_INDEX
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
        artifacts = index["artifacts"]
        if not isinstance(artifacts, dict):
            raise TypeError("`artifacts` is not a mapping")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return [f"{index_path}: not a readable stage index ({type(exc).__name__}: {exc})"]
    problems: list[str] = []
    if index.get("cache_key") != key:
        problems.append(f"{index_path}: records cache key {index.get('cache_key')!r}, expected {key!r}")
    files, odd = walk_tree(folder)
    problems += [f"{p}: a link or special file, not an artifact" for p in odd]
    known = {STAGE_INDEX}
    for name, entry in artifacts.items():
        file_name = str((entry or {}).get("file", "")) if isinstance(entry, dict) else ""
        if not file_name or Path(file_name).name != file_name or file_name in (".", ".."):
            problems.append(f"{index_path}: artifact {name!r} names the file {file_name!r}, not a plain name")
            continue
        known.add(file_name)
        target = folder / file_name
        if not target.exists() or target.is_symlink():
            problems.append(f"{target}: missing")
            continue
        digest = hash_path(target, memo=False)
        if digest != entry.get("sha256"):
            problems.append(f"{target}: SHA-256 {digest[:16]}... differs from the recorded "
                            f"{str(entry.get('sha256'))[:16]}...")
    problems += [f"{f}: not one of the stage's artifacts" for f in files
                 if f.relative_to(folder).parts[0] not in known]
    return problems


def take_from_cache(cached: Path, dest: Path, *, key: str, stage: str, cache_root: Path,
                    verify: Callable[[Path], list[str]] | None = None) -> bool:
    """Copy a cache entry to ``dest`` (a fresh temporary folder of the run) and verify the copy.

    ``verify(dest)`` may add problems of its own (the stage spec's ``verify_cached``). Returns
    True when ``dest`` holds a verified copy. A damaged entry gives a warning naming the files,
    is removed from the cache, and False is returned (``dest`` removed too).
    """
    if cached.is_symlink():
        problems = [f"{cached}: a link (to {os.readlink(cached)}), not a folder of the cache"]
    else:
        confine(cached, cache_root, what=CACHE, flag="--cache-dir")
        try:
            copy_tree(cached, dest)
            problems = verify_stage_folder(dest, key=key)
            if not problems and verify is not None:
                try:
                    problems = verify(dest)
                except (AuditError, ValueError, KeyError, TypeError) as exc:
                    problems = [f"{dest}: its outputs could not be checked ({type(exc).__name__}: {exc})"]
        except StorageError as exc:  # a link inside the entry
            problems = [str(exc)]
        except FileNotFoundError as exc:  # the entry vanished while being copied (another run removed it)
            problems = [f"{exc.filename}: vanished while being read"]
    if not problems:
        return True
    problems = [p.replace(str(dest), str(cached)) for p in problems]  # name the cache's files, not the copy's
    LOG.warning("stage %s: the cached outputs in %s are damaged and will be rebuilt: %s", stage, cached,
                first_lines(problems))
    if dest.exists():
        shutil.rmtree(dest)
    remove_tree(cached, cache_root, what=CACHE)
    return False


def store_in_cache(stage_dir: Path, cache: CacheDir, *, stage: str, key: str) -> str | None:
    """Copy a finished stage folder into the cache; a problem is returned as a one-line warning.

    The cache is only a shortcut: a full or read-only cache disk leaves the run going, uncached.
    An entry that another run stored meanwhile is kept.
    """
    cached = cache.stage(stage, key)
    tmp = cache.stage_tmp(stage, key)
    try:
        confine(tmp, cache.root, what=CACHE, flag="--cache-dir")
        remove_tree(tmp, cache.root, what=CACHE)
        tmp.parent.mkdir(parents=True, exist_ok=True)
        copy_tree(stage_dir, tmp)
        if os.path.lexists(cached):
            remove_tree(tmp, cache.root, what=CACHE)
            return None
        os.replace(tmp, cached)
        return None
    except OSError as exc:
        try:
            remove_tree(tmp, cache.root, what=CACHE)
        except (OSError, StorageError):
            pass
        return f"stage {stage} was not cached: {os_error_message(exc)}"


def clean_cache_leftovers(cache: CacheDir) -> list[Path]:
    """Remove the temporary folders (``.tmp-...-<pid>``) of processes that no longer run; return them.

    The cache is shared between audits, so a folder whose process still runs is left alone.
    """
    removed: list[Path] = []
    if not cache.root.is_dir():
        return removed
    for path in cache.leftovers():
        pid = tmp_owner_pid(path.name)
        if pid is None or pid == os.getpid() or pid_alive(pid):
            continue
        try:
            remove_tree(path, cache.root, what=CACHE)
            removed.append(path)
        except (OSError, StorageError) as exc:
            LOG.warning("could not remove the leftover %s: %s", path, exc)
    return removed
