"""Record which files the index holds for every pin of the lock: requirements/platforms.json.

``make lock`` runs this after regenerating the lock. For each ``name==version`` pin of
``requirements/lock.txt`` and ``requirements/carriers.txt`` it lists the distribution files
of that exact version that CPython 3.11 could install (wheels whose Python and ABI tags fit
CPython 3.11, and source archives), from the package index (the ``simple`` API, PEP 691 JSON
or PEP 503 HTML) and from the torch source the Makefile uses (``--find-links`` folders or an
``--extra-index-url``). Yanked files and files whose Requires-Python excludes 3.11 are left
out.

``tests/test_install.py`` reads the result offline: every pin must have a file for each
supported platform of the README, and the unsupported platforms must miss the packages the
README names. Nothing here decides what is supported; it only records what the index serves.

Usage::

    python requirements/platforms.py [--index-url URL] [-o FILE] [-- --find-links DIR | --extra-index-url URL]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import ssl
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

try:
    from packaging.specifiers import InvalidSpecifier, SpecifierSet
    from packaging.tags import compatible_tags, cpython_tags
    from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename
    from packaging.version import InvalidVersion, Version
except ImportError:  # a bare interpreter: pip's vendored copy is the same library
    from pip._vendor.packaging.specifiers import InvalidSpecifier, SpecifierSet
    from pip._vendor.packaging.tags import compatible_tags, cpython_tags
    from pip._vendor.packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename
    from pip._vendor.packaging.version import InvalidVersion, Version

HERE = Path(__file__).resolve().parent
LOCK_FILES = (HERE / "lock.txt", HERE / "carriers.txt")
DEFAULT_OUTPUT = HERE / "platforms.json"
DEFAULT_INDEX = "https://pypi.org/simple"
PYTHON = (3, 11)
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)\s*$")
_SDIST_SUFFIXES = (".tar.gz", ".zip")

#: (interpreter, abi) pairs of the wheels CPython 3.11 can install on some platform.
PY311_INTERPRETER_ABI = frozenset(
    (tag.interpreter, tag.abi)
    for tag in [*cpython_tags(PYTHON, abis=["cp311"], platforms=["any"]),
                *compatible_tags(PYTHON, "cp311", platforms=["any"])]
)


def read_pins(paths=LOCK_FILES) -> list[str]:
    """The ``name==version`` pins of the requirement files, in file order (comments skipped)."""
    pins = []
    for path in paths:
        for number, raw in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
            text = raw.strip()
            if not text or text.startswith(("#", "-")):
                continue
            match = _PIN.match(text)
            if match is None:
                raise ValueError(f"{path} line {number}: expected a pin `name==version`, found {text!r}")
            pins.append(f"{canonicalize_name(match.group(1))}=={match.group(2)}")
    return pins


def file_version(filename: str) -> tuple[str, Version] | None:
    """(canonical project name, version) of a wheel or source archive name; None for other files."""
    try:
        if filename.endswith(".whl"):
            name, version, _, _ = parse_wheel_filename(filename)
            return str(name), version
        if filename.endswith(_SDIST_SUFFIXES):
            name, version = parse_sdist_filename(filename)
            return str(name), version
    except (ValueError, InvalidVersion):
        return None
    return None


def fits_python(filename: str, requires_python: str | None) -> bool:
    """Whether CPython 3.11 could install this file on some platform."""
    if requires_python:
        try:
            if not SpecifierSet(requires_python).contains("3.11.0", prereleases=True):
                return False
        except InvalidSpecifier:
            pass
    if not filename.endswith(".whl"):
        return True
    _, _, _, tags = parse_wheel_filename(filename)
    return any((tag.interpreter, tag.abi) in PY311_INTERPRETER_ABI for tag in tags)


class _Anchors(HTMLParser):
    """PEP 503 page: [(filename, url, requires_python, yanked)]."""

    def __init__(self, base: str) -> None:
        super().__init__()
        self.base = base
        self.links: list[tuple[str, str | None, bool]] = []

    def handle_starttag(self, tag, attrs):
        if tag != "a":
            return
        attributes = dict(attrs)
        href = attributes.get("href")
        if href:
            url = urljoin(self.base, href)
            self.links.append((unquote(urlsplit(url).path.rsplit("/", 1)[-1]),
                               attributes.get("data-requires-python"),
                               "data-yanked" in attributes))


def _ssl_context() -> ssl.SSLContext:
    cafile = os.environ.get("PIP_CERT") or os.environ.get("SSL_CERT_FILE")
    return ssl.create_default_context(cafile=cafile) if cafile else ssl.create_default_context()


def index_files(index_url: str, project: str, timeout: float = 30) -> list[tuple[str, str | None, bool]]:
    """[(filename, requires_python, yanked)] of one project page of a simple index; [] on a 404."""
    url = f"{index_url.rstrip('/')}/{project}/"
    request = urllib.request.Request(url, headers={
        "Accept": "application/vnd.pypi.simple.v1+json, text/html;q=0.1"})
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=_ssl_context()) as response:
            body = response.read()
            kind = response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return []
        raise
    if "json" in kind:
        return [(f["filename"], f.get("requires-python"), bool(f.get("yanked")))
                for f in json.loads(body)["files"]]
    parser = _Anchors(url)
    parser.feed(body.decode("utf-8", "replace"))
    return parser.links


def collect(pins: list[str], index_url: str = DEFAULT_INDEX, find_links: tuple[str, ...] = (),
            extra_index_urls: tuple[str, ...] = ()) -> dict[str, dict]:
    """{pin: {"files": [...], "sources": [...]}} for every pin, from every source (like pip).

    ``sources`` names each index URL a file came from; a ``--find-links`` folder is named
    ``find-links folder`` (its path is a property of one machine, not of the lock).
    """
    folder_files = [(name, "find-links folder") for folder in find_links for name in os.listdir(folder)]

    def one(pin: str) -> tuple[str, dict]:
        project, version = pin.split("==")
        wanted = Version(version)
        found: dict[str, set[str]] = {}
        listings = [(index, index_files(index, project)) for index in (index_url, *extra_index_urls)]
        listings.append(("find-links folder", [(n, None, False) for n, _ in folder_files]))
        for source, files in listings:
            for filename, requires_python, yanked in files:
                parsed = file_version(filename)
                if yanked or parsed is None or parsed != (project, wanted):
                    continue
                if fits_python(filename, requires_python):
                    found.setdefault(filename, set()).add(source)
        return pin, {"files": sorted(found), "sources": sorted({s for v in found.values() for s in v})}

    with ThreadPoolExecutor(max_workers=8) as pool:
        return dict(pool.map(one, pins))


def main(argv: list[str] | None = None) -> int:
    """Write requirements/platforms.json (or ``-o FILE``); 1 when a pin has no file at all."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index-url", default=os.environ.get("PIP_INDEX_URL") or DEFAULT_INDEX)
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT)
    argv = list(sys.argv[1:] if argv is None else argv)
    torch_options: list[str] = []
    if "--" in argv:
        split = argv.index("--")
        argv, torch_options = argv[:split], argv[split + 1:]
    args = parser.parse_args(argv)
    find_links, extra = [], []
    options = iter(torch_options)
    for option in options:
        value = option.split("=", 1)[1] if "=" in option else next(options, "")
        if option.startswith("--find-links"):
            find_links.append(value)
        elif option.startswith("--extra-index-url"):
            extra.append(value)
        else:
            parser.error(f"unknown torch source option {option!r}: expected --find-links or --extra-index-url")

    pins = read_pins()
    files = collect(pins, args.index_url, tuple(find_links), tuple(extra))
    empty = [pin for pin, entry in files.items() if not entry["files"]]
    document = {
        "about": "Files of each locked version that CPython 3.11 can install, as listed by the "
                 "sources below when the lock was made. Written by requirements/platforms.py "
                 "(make lock); read by tests/test_install.py.",
        "python": "3.11",
        "index": args.index_url,
        "torch_source": " ".join(torch_options) if not find_links else "a --find-links folder",
        "pins": files,
    }
    args.output.write_text(json.dumps(document, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    total = sum(len(entry["files"]) for entry in files.values())
    print(f"wrote {args.output.name}: {len(pins)} pins, {total} files")
    if empty:
        print(f"error: no installable file found for {', '.join(empty)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
