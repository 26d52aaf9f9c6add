"""Check that every pinned package can be found before the long install starts.

``make venv`` runs this with the new virtual environment's Python, so the check sees the same
pip, the same pip configuration (pip.conf files, ``PIP_*`` variables) and the same interpreter
and platform tags as the install that follows. Each pin of the requirement files is looked up
with pip's own package finder (index pages and ``--find-links`` folders only: nothing is
downloaded), with a short timeout and no retries, torch first, so that a missing or
unreachable source stops ``make`` within seconds instead of after minutes of installing.

When a pin cannot be found, one line on stderr names the file, the pin, where pip looked
(and which of those places could not be reached) and what to set; the exit code is 1.

Usage::

    python requirements/preflight.py [--timeout S] [--local-versions-only] FILE... [-- PIP_OPTIONS...]
    python requirements/preflight.py --configured-find-links

``PIP_OPTIONS`` are passed to pip as they are given to ``pip install`` (for example
``--find-links DIR`` or ``--extra-index-url URL`` for torch's CPU wheel). The second form
prints the ``find-links`` that pip's own configuration sets (the ``PIP_FIND_LINKS``
variable first, then the ``install`` and ``global`` sections of the pip configuration
files), which the Makefile uses as the default of ``TORCH_FIND_LINKS``.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

#: Pins that need a non-default source. Their hint names the Makefile variables to set.
TORCH_HINT = (
    "set TORCH_FIND_LINKS=<folder or page holding the wheel> or "
    "TORCH_INDEX_URL=<index serving it> (PyTorch's CPU wheels: https://download.pytorch.org/whl/cpu), "
    "e.g. `make venv TORCH_FIND_LINKS=~/wheels` (README: Supported platforms and set-up)"
)
OTHER_HINT = (
    "point pip at an index or folder that has it (PIP_INDEX_URL, PIP_EXTRA_INDEX_URL or "
    "PIP_FIND_LINKS, or the same keys in pip.conf)"
)
_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*==\s*([^\s;#]+)\s*(?:#.*)?$")
_ERROR_LOGGERS = ("pip._internal.index.collector",)


class Pin(NamedTuple):
    """One ``name==version`` line of a requirement file."""

    name: str
    version: str
    path: str
    line: int


class Missing(NamedTuple):
    """A pin for which pip's finder returned no installable file."""

    pin: Pin
    other_versions: tuple[str, ...]


def read_pins(path: str) -> list[Pin]:
    """Read the ``name==version`` pins of a fully pinned requirement file.

    Comment lines, blank lines and option lines (``-r``, ``--find-links`` ...) are skipped.
    Any other line is an error, since the lock must be fully pinned.

    Examples
    --------
    >>> import tempfile, os
    >>> f = tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False)
    >>> _ = f.write("# header\\nnumpy==1.26.4\\n    # via pandas\\ntorch==2.13.0+cpu\\n"); f.close()
    >>> [(p.name, p.version, p.line) for p in read_pins(f.name)]
    [('numpy', '1.26.4', 2), ('torch', '2.13.0+cpu', 4)]
    >>> os.unlink(f.name)
    """
    pins = []
    for number, raw in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        text = raw.strip()
        if not text or text.startswith("#") or text.startswith("-"):
            continue
        match = _PIN.match(raw)
        if match is None:
            raise ValueError(f"{path} line {number}: expected a pin `name==version`, found {text!r}")
        pins.append(Pin(match.group(1), match.group(3), path, number))
    return pins


def configured_find_links() -> list[str]:
    """The ``find-links`` entries of pip's own configuration, in pip's order of precedence.

    Read from ``python -m pip config list`` (pip's public interface), so ``PIP_CONFIG_FILE``
    and the ``PIP_FIND_LINKS`` variable are honoured as pip honours them. An empty value
    (``PIP_FIND_LINKS=``) means none.
    """
    # pip lets the environment variable override every file, and PIP_CONFIG_FILE=/dev/null
    # load none: answer those two cases without starting pip.
    if "PIP_FIND_LINKS" in os.environ:
        return os.environ["PIP_FIND_LINKS"].split()
    if os.environ.get("PIP_CONFIG_FILE") == os.devnull:
        return []
    done = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=False
    )
    values: dict[str, str] = {}
    for line in done.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.endswith(".find-links"):
            values[key.rsplit(".", 1)[0]] = value.strip().strip("'\"")
    for section in (":env:", "install", "global"):
        if section in values:
            return values[section].split()
    return []


def _describe_failure(reason: str) -> str | None:
    """Shorten pip's reason for a failed page fetch; None when the source answered (e.g. a 404)."""
    lowered = reason.lower()
    if "timed out" in lowered or "timeout" in lowered:
        return "timed out"
    if "name or service not known" in lowered or "nameresolution" in lowered or "failed to resolve" in lowered:
        return "host not found"
    if "connection error" in lowered or "max retries" in lowered or "refused" in lowered:
        return "unreachable"
    if "ssl" in lowered or "certificate" in lowered:
        return "TLS error"
    return None


class _FetchFailures(logging.Handler):
    """Collects the pages pip's link collector could not fetch: {url: short reason}."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.failed: dict[str, str] = {}

    def emit(self, record: logging.LogRecord) -> None:
        if not str(record.msg).startswith("Could not fetch URL") or len(record.args or ()) < 2:
            return
        short = _describe_failure(str(record.args[1]))
        if short is not None:
            self.failed[str(record.args[0])] = short


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _find_with_pip_internals(pins: list[Pin], pip_options: list[str], timeout: float):
    """Look every pin up with pip's PackageFinder; returns (missing, places, failures, tag).

    pip's finder is not a public API. Any import or attribute error is raised as
    ``RuntimeError`` so that the caller falls back to ``pip install --dry-run``.
    """
    try:
        from pip._internal.commands import create_command
        from pip._internal.utils.misc import redact_auth_from_url
        from pip._vendor.packaging.specifiers import SpecifierSet
        from pip._vendor.packaging.version import Version
    except ImportError as exc:  # pragma: no cover - depends on pip's layout
        raise RuntimeError(f"pip's finder is not importable: {exc}") from exc

    failures = _FetchFailures()
    # pip's own warnings (e.g. about find-links folders it skips) are not ours to print.
    quiet = logging.getLogger("pip")
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    for name in _ERROR_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(logging.DEBUG)
        logger.addHandler(failures)
        logger.propagate = False

    try:
        command = create_command("install")
        options, _ = command.parse_args(
            ["--no-deps", "--retries", "0", "--timeout", f"{timeout:g}", *pip_options]
        )
        with command.main_context():
            session = command.get_default_session(options)
            finder = command._build_package_finder(options=options, session=session)
            scope = finder.search_scope
            places = [redact_auth_from_url(u) for u in (*scope.find_links, *scope.index_urls)]
            target = finder.target_python
            tags = target.get_sorted_tags() if hasattr(target, "get_sorted_tags") else target.get_tags()
            # Name the most specific platform tag (manylinux_2_36_x86_64 rather than linux_x86_64).
            tag = str(next((t for t in tags if t.platform.startswith("manylinux")), tags[0]))

            def lookup(pin: Pin) -> Missing | None:
                found = finder.find_best_candidate(pin.name, SpecifierSet(f"=={pin.version}"))
                if found.best_candidate is not None:
                    return None
                versions = sorted({c.version for c in finder.find_all_candidates(pin.name)}, reverse=True)
                same = [v for v in versions if v.base_version == Version(pin.version).base_version]
                return Missing(pin, tuple(str(v) for v in (same or versions)[:3]))

            # Pins with a local version label (torch's +cpu) are the likely misses: alone and
            # first, so that a missing torch is reported in seconds.
            first = [p for p in pins if "+" in p.version]
            rest = [p for p in pins if "+" not in p.version]
            missing = [m for m in map(lookup, first) if m is not None]
            if not missing:
                with ThreadPoolExecutor(max_workers=8) as pool:
                    missing = [m for m in pool.map(lookup, rest) if m is not None]
    except (AttributeError, TypeError) as exc:  # pragma: no cover - depends on pip's internals
        raise RuntimeError(f"pip's finder API changed: {exc}") from exc
    finally:
        for name in _ERROR_LOGGERS:
            logging.getLogger(name).removeHandler(failures)
    return missing, places, failures.failed, tag


def _find_with_dry_run(paths: list[str], pins: list[Pin], pip_options: list[str], timeout: float):
    """Fallback: ``pip install --dry-run --no-deps`` (slower: it fetches each package's metadata)."""
    command = [
        sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--ignore-installed",
        "--quiet", "--retries", "0", "--timeout", f"{timeout:g}", *pip_options,
    ]
    for path in paths:
        command += ["-r", path]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode == 0:
        return [], [], {}, "this Python"
    match = re.search(r"No matching distribution found for ([^\s]+)", done.stderr)
    by_requirement = {f"{p.name}=={p.version}".lower(): p for p in pins}
    pin = by_requirement.get(match.group(1).lower()) if match else None
    if pin is None:
        last = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit code {done.returncode}"
        raise RuntimeError(f"pip install --dry-run failed: {last}")
    return [Missing(pin, ())], ["pip's configured sources", *pip_options], {}, "this Python"


def format_missing(missing: list[Missing], places: list[str], failed: dict[str, str], tag: str) -> str:
    """The one-line error for the first missing pin (and how many others are missing).

    Examples
    --------
    >>> pin = Pin("torch", "2.13.0+cpu", "requirements/lock.txt", 858)
    >>> line = format_missing([Missing(pin, ("2.13.0",))],
    ...                       ["https://download.pytorch.org/whl/cpu", "https://pypi.org/simple"],
    ...                       {"https://download.pytorch.org/whl/cpu/torch/": "host not found"},
    ...                       "cp311-cp311-manylinux_2_35_x86_64")
    >>> "torch==2.13.0+cpu" in line and "download.pytorch.org/whl/cpu (host not found)" in line
    True
    >>> "TORCH_FIND_LINKS" in line and "\\n" not in line
    True
    """
    first = missing[0]
    pin = first.pin
    looked = []
    for place in places:
        base = place.rstrip("/")
        reasons = {r for url, r in failed.items() if url.startswith(base + "/") or url.rstrip("/") == base}
        looked.append(f"{place} ({', '.join(sorted(reasons))})" if reasons else place)
    where = ", ".join(looked) if looked else "no index or folder (pip has none configured)"
    found = f"; found there only {', '.join(first.other_versions)}" if first.other_versions else ""
    more = ""
    if len(missing) > 1:
        names = ", ".join(f"{m.pin.name}=={m.pin.version}" for m in missing[1:4])
        more = f" (and {len(missing) - 1} more: {names}{', ...' if len(missing) > 4 else ''})"
    hint = TORCH_HINT if _canonical(pin.name) == "torch" else OTHER_HINT
    return (
        f"error: {pin.path} line {pin.line}: {pin.name}=={pin.version} has no file for {tag}"
        f"{more} at: {where}{found}; {hint}"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the check; return 0 when every pin was found, 1 when one is missing, 2 on bad input."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", help="fully pinned requirement files")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per request (default 10)")
    parser.add_argument("--configured-find-links", action="store_true",
                        help="print the find-links of pip's configuration and exit")
    parser.add_argument("--local-versions-only", action="store_true",
                        help="check only pins with a local version label (torch's +cpu), which no "
                             "public index serves: a check of seconds, run before anything else")
    argv = list(sys.argv[1:] if argv is None else argv)
    pip_options: list[str] = []
    if "--" in argv:
        split = argv.index("--")
        argv, pip_options = argv[:split], argv[split + 1:]
    args = parser.parse_args(argv)

    if args.configured_find_links:
        print(" ".join(configured_find_links()))
        return 0
    if not args.files:
        parser.error("give at least one requirement file")
    try:
        pins = [pin for path in args.files for pin in read_pins(path)]
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    if args.local_versions_only:
        pins = [pin for pin in pins if "+" in pin.version]
    started = time.monotonic()
    try:
        missing, places, failed, tag = _find_with_pip_internals(pins, pip_options, args.timeout)
    except RuntimeError as exc:
        print(f"preflight: {exc}; falling back to pip install --dry-run", file=sys.stderr)
        missing, places, failed, tag = _find_with_dry_run(args.files, pins, pip_options, args.timeout)
    if missing:
        print(format_missing(missing, places, failed, tag), file=sys.stderr)
        return 1
    print(f"preflight: all {len(pins)} pinned packages found for {tag} "
          f"({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
