"""The one I/O layer for stage artifacts.

A stage returns a mapping ``{name: value}``; the kind of each artifact follows
from the value's type:

===================  ==================  ===============================
value                file                read back as
===================  ==================  ===============================
``pd.DataFrame``     ``<name>.parquet``  ``pd.DataFrame``
``dict`` / ``list``  ``<name>.json``     ``dict`` / ``list``
protobuf message     ``<name>.pb``       the same message class
``str``              ``<name>.txt``      ``str``
``pathlib.Path``     ``<name>/``         ``Path`` (a directory or file the
                     (moved in)          stage built under its scratch dir)
===================  ==================  ===============================

All writes go to a temporary name first and are renamed into place, so a
killed process never leaves a file that looks complete.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Sequence

from pipelines.errors import DataError, StageError

__all__ = [
    "hash_files",
    "file_sha256",
    "hash_table",
    "write_artifact",
    "read_artifact",
    "atomic_write_text",
    "atomic_write_bytes",
    "to_jsonable",
    "dump_json",
    "hash_path",
    "hash_bytes",
]


def hash_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def hash_path(path: Path, *, memo: bool = True) -> str:
    """SHA-256 of a file, or of a directory's relative paths and file contents.

    ``memo=False`` reads every byte again (see :func:`file_sha256`): what verifying a cache needs.
    """
    path = Path(path)
    if path.is_dir():
        digest = hashlib.sha256()
        for child in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(str(child.relative_to(path)).encode())
            digest.update(b"\0")
            digest.update(file_sha256(child, memo=memo).encode())
        return digest.hexdigest()
    return hashlib.sha256(file_sha256(path, memo=memo).encode()).hexdigest()


_HASH_MEMO: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path, *, memo: bool = True) -> str:
    """SHA-256 of one file's bytes, memoized per process by (path, size, mtime).

    The memo trusts that a file whose size and mtime did not change kept its bytes, which an
    edit that restores the mtime defeats; ``memo=False`` hashes the bytes (and refreshes the memo).
    """
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if not memo or key not in _HASH_MEMO:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        _HASH_MEMO[key] = h.hexdigest()
    return _HASH_MEMO[key]


def hash_files(paths: list[Path], *, root: Path | None = None) -> str:
    """One SHA-256 over the names (relative to ``root``, else base names) and contents of ``paths``."""
    digest = hashlib.sha256()
    for p in sorted(paths, key=lambda q: str(q)):
        name = str(Path(p).relative_to(root)) if root is not None else Path(p).name
        digest.update(name.encode() + b"\0" + file_sha256(p).encode() + b"\n")
    return digest.hexdigest()


def hash_table(frame: Any, columns: Sequence[str]) -> str:
    """SHA-256 of ``columns`` of a DataFrame, row by row as text (row order matters)."""
    digest = hashlib.sha256()
    for row in frame[list(columns)].astype(str).itertuples(index=False):
        digest.update("\x1f".join(row).encode("utf-8"))
        digest.update(b"\x1e")
    return digest.hexdigest()


def to_jsonable(value: Any) -> Any:
    """Convert numpy scalars and arrays, tuples, Paths and NaN into strict JSON values."""
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy is a hard dependency
        np = None  # type: ignore[assignment]
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if np is not None:
        if isinstance(value, np.ndarray):
            return [to_jsonable(v) for v in value.tolist()]
        if isinstance(value, np.generic):
            value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def dump_json(value: Any) -> str:
    return json.dumps(to_jsonable(value), indent=2, sort_keys=True, allow_nan=False) + "\n"


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_read_umask()  # read once, at import: os.umask() is process-wide


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it into place.

    The file gets the permissions an ordinary ``open`` would give (not ``mkstemp``'s 0600). An
    OSError names ``path`` (pyarrow's and ``write``'s own errors carry no file name).
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), _FILE_MODE)
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename is None:
            exc.filename = str(path)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_artifact(directory: Path, name: str, value: Any) -> dict[str, Any]:
    """Write one artifact into ``directory``; return its index entry."""
    import pandas as pd  # local: keeps `import pipelines.core.artifacts` cheap

    if isinstance(value, pd.DataFrame):
        target = directory / f"{name}.parquet"
        tmp = directory / f".{name}.parquet.tmp"
        try:
            value.to_parquet(tmp, index=False)
            os.replace(tmp, target)
        except OSError as exc:  # pyarrow's errors name no file
            tmp.unlink(missing_ok=True)
            if exc.filename is None:
                exc.filename = str(target)
            raise
        entry = {"kind": "table", "file": target.name, "rows": int(len(value))}
    elif isinstance(value, (dict, list)):
        target = directory / f"{name}.json"
        atomic_write_text(target, dump_json(value))
        entry = {"kind": "json", "file": target.name}
    elif hasattr(value, "SerializeToString") and hasattr(value, "DESCRIPTOR"):
        target = directory / f"{name}.pb"
        atomic_write_bytes(target, value.SerializeToString(deterministic=True))
        cls = type(value)
        entry = {"kind": "proto", "file": target.name, "type": f"{cls.__module__}.{cls.__qualname__}"}
    elif isinstance(value, str):
        target = directory / f"{name}.txt"
        atomic_write_text(target, value)
        entry = {"kind": "text", "file": target.name}
    elif isinstance(value, Path):
        if not value.exists():
            raise StageError(f"artifact `{name}`: the stage returned the path {value}, which does not exist.")
        if Path(directory).resolve() not in value.resolve().parents or value.is_symlink():
            # the path is moved into the run: only what the stage built under ctx.scratch_dir may go
            raise StageError(f"artifact `{name}`: the stage returned the path {value}, which is not under its "
                             f"scratch folder {directory}; build directory artifacts under ctx.scratch_dir.")
        target = directory / (name + ("" if value.is_dir() else value.suffix))
        shutil.move(str(value), str(target))
        entry = {"kind": "dir" if target.is_dir() else "file", "file": target.name}
    else:
        raise StageError(
            f"artifact `{name}` must be a DataFrame, dict, list, protobuf message, str or Path. "
            f"Got {type(value).__name__} instead."
        )
    entry["sha256"] = hash_path(target)
    return entry


def read_artifact(directory: Path, entry: dict[str, Any]) -> Any:
    """Read one artifact back, given its index entry."""
    path = directory / entry["file"]
    kind = entry["kind"]
    try:
        if kind == "table":
            import pandas as pd

            return pd.read_parquet(path)
        if kind == "json":
            return json.loads(path.read_text(encoding="utf-8"))
        if kind == "proto":
            module_name, _, cls_name = entry["type"].rpartition(".")
            cls = getattr(importlib.import_module(module_name), cls_name)
            msg = cls()
            msg.ParseFromString(path.read_bytes())
            return msg
        if kind == "text":
            return path.read_text(encoding="utf-8")
        if kind in ("dir", "file"):
            return path
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: could not read {kind} artifact: {exc}") from exc
    raise DataError(f"{path}: unknown artifact kind {kind!r} in the stage index.")
