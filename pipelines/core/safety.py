"""Guards for everything the audit writes: run ids, confined paths, copies, OS errors, disk reserve.

The runner and the model cache write only inside two folders, the runs folder
(``output.runs_dir``; the history database sits beside it) and the cache folder
(``output.cache_dir``). Every path they write or delete goes through
:func:`confine` first: it is resolved (links followed) and must lie inside its
root, so a link planted in either folder cannot make the tool write, or delete,
anywhere else.

Every :class:`OSError` the tool meets (a full disk, a read-only folder, a
permission refused) becomes one line naming the path and what to do
(:func:`os_error_message`).

This module imports only the standard library and :mod:`pipelines.errors`.

Examples
--------
>>> check_run_id("20260101T000000Z-ab12cd34")
'20260101T000000Z-ab12cd34'
>>> check_run_id("../x")
Traceback (most recent call last):
...
pipelines.core.safety.RunRefused: --run-id '../x' must be a slug: ...
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from pathlib import Path
from typing import Iterable

from pipelines.errors import AuditError

__all__ = [
    "RUN_ID_PATTERN",
    "RunRefused",
    "StorageError",
    "check_run_id",
    "confine",
    "remove_tree",
    "copy_tree",
    "walk_tree",
    "os_error_message",
    "storage_error",
    "pid_alive",
    "tmp_owner_pid",
    "first_lines",
]

#: A run id: like an audit name, but case and '.' allowed (no '..', no '/', at most 128 characters).
RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")  # used with fullmatch: `$` would allow a final "\n"

MSG_RUN_ID = ("--run-id {run_id!r} must be a slug: a letter or digit, then up to 127 letters, digits, '.', '_' "
              "or '-' (no '/', no '..'), e.g. 2026-01-31-nightly.")
MSG_OUTSIDE = ("{path}: resolves to {resolved}, outside the {what} {root}; refusing to write or delete there. "
               "Remove the link (or the file in the way), or choose another {flag}.")

#: What to do about an OSError, by errno.
ADVICE: dict[int, str] = {
    errno.ENOSPC: "the disk is full: free space there, or point --runs-dir/--cache-dir at a disk with room, "
                  "and run again",
    errno.EDQUOT: "the disk quota is exhausted: free space, or point --runs-dir/--cache-dir elsewhere",
    errno.EACCES: "permission denied: make the folder writable for this user, or choose another "
                  "--runs-dir/--cache-dir",
    errno.EPERM: "operation not permitted: make the folder writable for this user, or choose another "
                 "--runs-dir/--cache-dir",
    errno.EROFS: "the file system is read-only: choose a writable --runs-dir/--cache-dir",
    errno.ENOENT: "it does not exist: check the path (and that its disk is mounted)",
    errno.ENOTDIR: "a file is in the way where a folder is expected: move it aside",
    errno.EISDIR: "a folder is in the way where a file is expected: move it aside",
    errno.EEXIST: "something is already in the way: move it aside",
    errno.EMFILE: "too many open files: raise the limit (ulimit -n) and run again",
    errno.ENFILE: "too many open files on the system: close some programs and run again",
    errno.EIO: "input/output error: check the disk (dmesg) and run again",
    errno.ELOOP: "too many levels of links: remove the link loop",
    errno.ENAMETOOLONG: "the path is too long: choose a shorter --runs-dir/--cache-dir",
}
_DEFAULT_ADVICE = "check the path, its permissions and its disk, and run again"
# OSErrors from pyarrow and SQLite carry no errno; recognise them by their text.
_BY_TEXT = (("no space left", errno.ENOSPC), ("disk is full", errno.ENOSPC), ("quota", errno.EDQUOT),
            ("permission denied", errno.EACCES), ("read-only", errno.EROFS), ("readonly", errno.EROFS))


class RunRefused(AuditError):
    """A run refused before it started (bad run id, existing run folder, unusable runs folder).

    Nothing was written and nothing is recorded in the history.
    """


class StorageError(AuditError):
    """An operating-system error on a path of the run or the cache, as one line with what to do."""


def check_run_id(run_id: str) -> str:
    """Return ``run_id`` when it is a slug (:data:`RUN_ID_PATTERN`, no ``..``); raise :class:`RunRefused` otherwise."""
    if not isinstance(run_id, str) or not RUN_ID_PATTERN.fullmatch(run_id) or ".." in run_id:
        raise RunRefused(MSG_RUN_ID.format(run_id=run_id))
    return run_id


def confine(path: str | Path, root: str | Path, *, what: str, flag: str = "folder") -> Path:
    """``path`` resolved (links followed); raise :class:`StorageError` unless it lies inside ``root`` (resolved).

    ``path`` may not exist yet (its existing part is resolved). ``what`` names the root in the
    message ("runs folder", "cache folder"), ``flag`` the option that chooses it.
    """
    resolved_root = Path(root).resolve()
    resolved = Path(path).resolve()
    if resolved != resolved_root and resolved_root not in resolved.parents:
        raise StorageError(MSG_OUTSIDE.format(path=path, resolved=resolved, what=what, root=resolved_root, flag=flag))
    return resolved


def remove_tree(path: str | Path, root: str | Path, *, what: str) -> None:
    """Delete a file or folder that lies inside ``root``; a link is removed, never followed.

    Missing paths are ignored. A path whose parent resolves outside ``root`` raises
    :class:`StorageError` and nothing is deleted.
    """
    path = Path(path)
    if not os.path.lexists(path):
        return
    confine(path.parent, root, what=what)
    if path.is_symlink() or not path.is_dir():
        path.unlink()
    else:
        shutil.rmtree(path)


def walk_tree(root: str | Path) -> tuple[list[Path], list[Path]]:
    """Regular files under ``root`` (sorted) and every link or special file found (never followed)."""
    files: list[Path] = []
    odd: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(dirpath)
        for name in dirnames:
            if (base / name).is_symlink():
                odd.append(base / name)
        for name in filenames:
            p = base / name
            if p.is_symlink() or not p.is_file():
                odd.append(p)
            else:
                files.append(p)
    return sorted(files), sorted(odd)


_FICLONE = 0x40049409  # linux/fs.h: share the source's blocks (btrfs, XFS); ext4 and tmpfs refuse


def _copy_file(src: Path, dst: Path) -> None:
    with open(src, "rb") as fin, open(dst, "xb") as fout:
        try:
            import fcntl

            fcntl.ioctl(fout.fileno(), _FICLONE, fin.fileno())
            return
        except (ImportError, OSError):
            pass
        shutil.copyfileobj(fin, fout, 1 << 20)


def copy_tree(src: str | Path, dst: str | Path) -> None:
    """Copy a folder of regular files (a reflink where the file system can, else a byte copy).

    Unlike hard links, the copy shares nothing that a later change to ``src`` could alter.
    Links and special files are refused (:class:`StorageError`); an OSError names its path.
    """
    src, dst = Path(src), Path(dst)
    files, odd = walk_tree(src)
    if odd:
        raise StorageError(f"{odd[0]}: a link or special file inside {src}; only regular files are copied. "
                           "Remove it and run again.")
    dst.mkdir(parents=True)
    for dirpath, dirnames, _ in os.walk(src):
        for name in dirnames:
            (dst / Path(dirpath).relative_to(src) / name).mkdir()
    for f in files:
        target = dst / f.relative_to(src)
        try:
            _copy_file(f, target)
        except OSError as exc:
            if exc.filename is None:
                exc.filename = str(target)
            raise


def _errno_of(exc: BaseException) -> int | None:
    code = getattr(exc, "errno", None)
    if isinstance(code, int) and code:
        return code
    text = str(exc).lower()
    for needle, value in _BY_TEXT:
        if needle in text:
            return value
    return None


def os_error_message(exc: BaseException, path: str | Path | None = None) -> str:
    """One line for an OS error: the path, what went wrong (with the errno name) and what to do.

    >>> import errno
    >>> os_error_message(OSError(errno.ENOSPC, "No space left on device", "/r/x.parquet"))
    '/r/x.parquet: No space left on device (ENOSPC); the disk is full: free space there, ...'
    """
    code = _errno_of(exc)
    where = path if path is not None else (getattr(exc, "filename", None) or "(path unknown)")
    what = getattr(exc, "strerror", None) or (os.strerror(code) if code else None) or str(exc) or type(exc).__name__
    what = " ".join(str(what).split())[:200]
    name = errno.errorcode.get(code, "") if code else ""
    advice = ADVICE.get(code, _DEFAULT_ADVICE) if code else _DEFAULT_ADVICE
    return f"{where}: {what}{f' ({name})' if name else ''}; {advice}."


def storage_error(exc: BaseException, path: str | Path | None = None, *, prefix: str = "") -> StorageError:
    """The :class:`StorageError` for ``exc`` (see :func:`os_error_message`)."""
    return StorageError(prefix + os_error_message(exc, path))


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def tmp_owner_pid(name: str) -> int | None:
    """The process id at the end of a temporary folder's name (``.tmp-<...>-<pid>``), if any."""
    tail = name.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else None


def first_lines(items: Iterable[str], n: int = 3) -> str:
    """``a; b; c (and 4 more)``: a short, one-line list."""
    items = list(items)
    more = f" (and {len(items) - n} more)" if len(items) > n else ""
    return "; ".join(items[:n]) + more
