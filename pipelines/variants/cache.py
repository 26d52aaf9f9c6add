"""The model cache: built models and indexes, keyed by what they were built from.

An entry is a folder ``<root>/<kind>-<key>/`` where ``key`` hashes the base
model's hash, the training data fingerprint and the hyperparameters. It is
built in a temporary folder next to it and renamed into place once complete
(with an ``_entry.json`` written last), so a killed build never leaves an
entry that looks finished. A file lock keeps two processes from building the
same entry at once.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from pipelines.core.artifacts import atomic_write_text, dump_json, to_jsonable

__all__ = ["ModelCache", "CacheEntry", "cache_key", "ENTRY_FILE"]

ENTRY_FILE = "_entry.json"


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
        entry = self.path(kind, key) / ENTRY_FILE
        if entry.is_file():
            return json.loads(entry.read_text(encoding="utf-8"))
        return None

    def get_or_build(
        self, kind: str, key: str, build: Callable[[Path], dict[str, Any] | None], *, describe: dict[str, Any]
    ) -> CacheEntry:
        """Return the entry, building it with ``build(tmp_dir) -> meta`` when missing."""
        from filelock import FileLock

        final = self.path(kind, key)
        self.root.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        with FileLock(str(self.root / f".{kind}-{key}.lock")):
            meta = self.lookup(kind, key)
            if meta is not None:
                return CacheEntry(final, True, meta, time.perf_counter() - t0)
            tmp = self.root / f".tmp-{kind}-{key}-{os.getpid()}"
            if tmp.exists():
                shutil.rmtree(tmp)
            tmp.mkdir(parents=True)
            try:
                built = build(tmp) or {}
                meta = {"kind": kind, "key": key, "inputs": describe, "built": built,
                        "build_seconds": round(time.perf_counter() - t0, 3)}
                atomic_write_text(tmp / ENTRY_FILE, dump_json(meta))
                if final.exists():  # an incomplete leftover without _entry.json
                    shutil.rmtree(final)
                os.replace(tmp, final)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            self.builds += 1
            meta = json.loads((final / ENTRY_FILE).read_text(encoding="utf-8"))
            return CacheEntry(final, False, meta, time.perf_counter() - t0)
