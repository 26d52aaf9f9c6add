"""The model cache: built models and indexes, keyed by what they were built from.

An entry is a folder ``<root>/<kind>-<key>/`` where ``key`` hashes the base
model's hash, the training data fingerprint and the hyperparameters. It is
built in a temporary folder next to it and renamed into place once complete
(with an ``_entry.json`` written last), so a killed build never leaves an
entry that looks finished. A file lock keeps two processes from building the
same entry at once.

``_entry.json`` records the SHA-256 of every file of the entry, hashed when it
was built. Every hit is verified against them first (bytes read again, nothing
missing, nothing added, no links): a damaged entry (an edited weight file,
replaced knowledge-base embeddings, a dropped-in file) is logged with the
files' names, removed and built again. An entry without recorded hashes (built
by an older version) is rebuilt too. :func:`entry_problems` is the check;
:func:`verify_entry` raises for loaders outside the build.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from pipelines.core.artifacts import atomic_write_text, dump_json, file_sha256, to_jsonable
from pipelines.core.safety import StorageError, first_lines, remove_tree, walk_tree
from pipelines.errors import ModelError

__all__ = ["ModelCache", "CacheEntry", "cache_key", "entry_problems", "verify_entry", "ENTRY_FILE"]

ENTRY_FILE = "_entry.json"
LOG = logging.getLogger("pipelines")
CACHE = "model cache"


def _file_hashes(folder: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every file of a freshly built entry (bytes read, no memo)."""
    files, odd = walk_tree(folder)
    if odd:
        raise StorageError(f"{odd[0]}: the build left a link or special file in the model cache; only regular "
                           "files can be verified later.")
    return {f.relative_to(folder).as_posix(): file_sha256(f, memo=False) for f in files if f != folder / ENTRY_FILE}


def entry_problems(path: Path) -> list[str]:
    """What is wrong with a model-cache entry against the hashes in its ``_entry.json`` (empty: nothing).

    Every file is hashed again (no memo); a missing, added or changed file, a link, or an
    ``_entry.json`` without recorded hashes is a problem, named by its path.
    """
    path = Path(path)
    if path.is_symlink():
        return [f"{path}: a link, not a folder of the cache"]
    entry_file = path / ENTRY_FILE
    try:
        recorded = json.loads(entry_file.read_text(encoding="utf-8")).get("files")
    except (OSError, ValueError, AttributeError) as exc:
        return [f"{entry_file}: unreadable ({type(exc).__name__}: {exc})"]
    if not isinstance(recorded, dict):
        return [f"{entry_file}: records no file hashes (built by an older version)"]
    files, odd = walk_tree(path)
    problems = [f"{p}: a link or special file" for p in odd]
    present = {f.relative_to(path).as_posix(): f for f in files if f != entry_file}
    problems += [f"{path / rel}: missing" for rel in sorted(set(recorded) - set(present))]
    problems += [f"{f}: not part of the entry when it was built" for rel, f in present.items() if rel not in recorded]
    problems += [f"{f}: SHA-256 differs from the one recorded when it was built" for rel, f in present.items()
                 if rel in recorded and file_sha256(f, memo=False) != recorded[rel]]
    return problems


def verify_entry(path: Path, *, what: str) -> None:
    """Raise :class:`ModelError` when ``path`` is a model-cache entry (it holds ``_entry.json``) that is damaged."""
    path = Path(path)
    if not (path / ENTRY_FILE).is_file():
        return
    problems = entry_problems(path)
    if problems:
        raise ModelError(f"{what}: the model-cache entry {path} is damaged ({first_lines(problems)}); it was not "
                         "used. Run the audit again: the build_variants stage rebuilds it.")


def cache_key(**parts: Any) -> str:
    """A short stable hash of the keyword arguments (JSON, sorted keys)."""
    blob = json.dumps(to_jsonable(parts), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


@dataclass(frozen=True)
class CacheEntry:
    path: Path
    hit: bool
    meta: dict[str, Any]
    seconds: float


class ModelCache:
    """Folders of built models under ``root`` (``ctx.cache_dir / "models"``)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.builds = 0  # how many entries this instance built (tests check cache hits with it)

    def path(self, kind: str, key: str) -> Path:
        return self.root / f"{kind}-{key}"

    def lookup(self, kind: str, key: str) -> dict[str, Any] | None:
        """The entry's ``_entry.json`` as it stands (not verified; :meth:`get_or_build` verifies)."""
        entry = self.path(kind, key) / ENTRY_FILE
        if entry.is_file():
            return json.loads(entry.read_text(encoding="utf-8"))
        return None

    def get_or_build(
        self, kind: str, key: str, build: Callable[[Path], dict[str, Any] | None], *, describe: dict[str, Any]
    ) -> CacheEntry:
        """Return the entry, building it with ``build(tmp_dir) -> meta`` when missing."""
        from filelock import FileLock

        self.root.mkdir(parents=True, exist_ok=True)
        if self.root.is_symlink():
            raise StorageError(f"{self.root}: the model cache folder is a link; refusing to write through it. "
                               "Replace it with a folder, or choose another --cache-dir.")
        final = self.path(kind, key)
        lock_path = self.root / f".{kind}-{key}.lock"
        tmp = self.root / f".tmp-{kind}-{key}-{os.getpid()}"
        if lock_path.is_symlink():  # a planted link: opening it would truncate its target
            lock_path.unlink()
        t0 = time.perf_counter()
        with FileLock(str(lock_path)):
            if os.path.lexists(final):
                problems = entry_problems(final) if (final / ENTRY_FILE).is_file() or final.is_symlink() else []
                if (final / ENTRY_FILE).is_file() and not problems:
                    meta = json.loads((final / ENTRY_FILE).read_text(encoding="utf-8"))
                    return CacheEntry(final, True, meta, time.perf_counter() - t0)
                if problems:
                    LOG.warning("model cache: %s is damaged and will be rebuilt: %s", final, first_lines(problems))
                remove_tree(final, self.root, what=CACHE)  # damaged, or an incomplete leftover without _entry.json
            remove_tree(tmp, self.root, what=CACHE)
            tmp.mkdir(parents=True)
            try:
                built = build(tmp) or {}
                meta = {"kind": kind, "key": key, "inputs": describe, "built": built,
                        "build_seconds": round(time.perf_counter() - t0, 3), "files": _file_hashes(tmp)}
                atomic_write_text(tmp / ENTRY_FILE, dump_json(meta))
                os.replace(tmp, final)
            except BaseException:
                remove_tree(tmp, self.root, what=CACHE)
                raise
            self.builds += 1
            meta = json.loads((final / ENTRY_FILE).read_text(encoding="utf-8"))
            return CacheEntry(final, False, meta, time.perf_counter() - t0)
