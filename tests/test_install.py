"""Installability outside our own machines (issue #19).

- The set-up files name no path that only our machines have.
- ``make venv`` takes torch's CPU wheel from TORCH_FIND_LINKS or else TORCH_INDEX_URL.
- ``requirements/preflight.py`` stops with one line when a pin cannot be found.
- The lock has a file for every supported platform of the README, and lacks exactly the
  packages the README names for the others (offline, from requirements/platforms.json; the
  tag sets are computed here with ``packaging.tags``, independently of the generator).
"""

from __future__ import annotations

import functools
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from packaging.tags import compatible_tags, cpython_tags, mac_platforms
from packaging.utils import canonicalize_name, parse_wheel_filename

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "requirements" / "lock.txt"
CARRIERS = REPO / "requirements" / "carriers.txt"
PLATFORMS_JSON = REPO / "requirements" / "platforms.json"
PREFLIGHT = REPO / "requirements" / "preflight.py"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"

# Absolute paths the set-up files may name: they exist on every Linux machine.
ALLOWED_PATHS = {"/bin/bash", "/dev/null", "/usr/bin/env"}
# Paths of our machines, besides whatever this machine's pip configuration points at.
OUR_MACHINE_PATHS = ("/opt/wheels", "/opt/pypi", "/etc/xdg/pip", "/work/", "/root/", "file:///opt")
_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/~$)}-])/(?:[\w.+-]+/?)+")
PLACEHOLDER = "/path/to/"


def _pins(*paths: Path) -> list[str]:
    pins = []
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            line = line.split("#", 1)[0].strip()
            if line and not line.startswith("-"):
                name, version = line.split("==")
                pins.append(f"{canonicalize_name(name)}=={version}")
    return pins


def absolute_paths(text: str) -> set[str]:
    """Absolute file-system paths in a Makefile/YAML/shell text (URLs and $(VAR)/x excluded)."""
    paths = {match.group(0).rstrip("/.") for match in _ABSOLUTE_PATH.finditer(text)}
    return {path for path in paths if not path.startswith(PLACEHOLDER)}


@functools.lru_cache(maxsize=None)
def machine_paths() -> frozenset[str]:
    """Our machines' paths: a fixed list plus what this machine's pip configuration points at."""
    paths = set(OUR_MACHINE_PATHS)
    done = subprocess.run([sys.executable, "-m", "pip", "config", "list"],
                          capture_output=True, text=True, check=False, timeout=60)
    for line in done.stdout.splitlines():
        _, _, value = line.partition("=")
        for item in value.strip().strip("'\"").split():
            item = item.removeprefix("file://")
            if item.startswith("/") and item not in ALLOWED_PATHS and not item.startswith("/etc/ssl"):
                paths.add(item)
    return frozenset(paths)


def test_absolute_path_finder_sees_a_find_links_folder():
    text = 'pip install --find-links /opt/wheels -r x\nSHELL := /bin/bash\n$(BIN)/python 2>/dev/null\n' \
           'url https://download.pytorch.org/whl/cpu, ~/wheels, requirements/lock.txt, PYTHON=/path/to/python3.11'
    assert absolute_paths(text) == {"/opt/wheels", "/bin/bash", "/dev/null"}


@pytest.mark.parametrize("name", ["Makefile", "environment.yml", ".ci/run"])
def test_setup_files_name_no_machine_specific_path(name):
    text = (REPO / name).read_text(encoding="utf-8")
    unexpected = absolute_paths(text) - ALLOWED_PATHS
    assert not unexpected, f"{name} names absolute paths {sorted(unexpected)}; only {sorted(ALLOWED_PATHS)} may appear"
    named = [p for p in machine_paths() if p in text]
    assert not named, f"{name} names paths of our machines: {named}"


def test_readme_names_no_path_of_our_machines():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    named = sorted(p for p in machine_paths() if p in text)
    assert not named, f"README.md names paths of our machines: {named}"


def test_environment_yml_installs_the_lock_with_the_cpu_index():
    import yaml

    env = yaml.safe_load((REPO / "environment.yml").read_text(encoding="utf-8"))
    assert "python=3.11" in env["dependencies"]
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pip_section == [f"--extra-index-url {CPU_INDEX}", "-r requirements/lock.txt", "-e ."]


# ---- the Makefile's choice of torch source ----------------------------------------------

def _dry_run_install_line(env_overrides: dict[str, str | None], *make_args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("TORCH_FIND_LINKS", "TORCH_INDEX_URL", "MAKEFLAGS")}
    for key, value in env_overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    done = subprocess.run(["make", "-n", "-B", "venv", "VENV=.venv-dry-run", *make_args], cwd=REPO, env=env,
                          capture_output=True, text=True, check=True, timeout=60)
    lines = [line for line in done.stdout.splitlines() if "pip install -q --no-deps" in line and "lock.txt" in line]
    preflight = [line for line in done.stdout.splitlines() if "preflight.py" in line]
    assert len(lines) == 1 and len(preflight) == 2, done.stdout
    # The checks and the install must look in the same places.
    install_options = lines[0].split("--no-deps", 1)[1].split("-r requirements/lock.txt")[0].split()
    for check in preflight:
        assert check.split(" -- ", 1)[1].split(">")[0].split() == install_options, done.stdout
    return lines[0]


@pytest.mark.skipif(subprocess.run(["make", "--version"], capture_output=True).returncode != 0,
                    reason="GNU make is not installed")
def test_makefile_takes_torch_from_the_folder_or_else_the_cpu_index():
    no_pip_config = {"PIP_CONFIG_FILE": os.devnull, "PIP_FIND_LINKS": None}
    line = _dry_run_install_line(no_pip_config, "TORCH_FIND_LINKS=/srv/wheels")
    assert "--find-links /srv/wheels" in line and "--extra-index-url" not in line

    line = _dry_run_install_line(no_pip_config, "TORCH_FIND_LINKS=")
    assert f"--extra-index-url {CPU_INDEX}" in line and "--find-links" not in line

    line = _dry_run_install_line(no_pip_config, "TORCH_FIND_LINKS=", "TORCH_INDEX_URL=https://mirror.example/cpu")
    assert "--extra-index-url https://mirror.example/cpu" in line

    # Default: the find-links pip is configured with, else the CPU index.
    line = _dry_run_install_line({"PIP_CONFIG_FILE": os.devnull, "PIP_FIND_LINKS": "/srv/a /srv/b"})
    assert "--find-links /srv/a --find-links /srv/b" in line and "--extra-index-url" not in line
    line = _dry_run_install_line(no_pip_config)
    assert f"--extra-index-url {CPU_INDEX}" in line


# ---- preflight --------------------------------------------------------------------------

def _preflight(tmp_path: Path, lock_lines: list[str], wheels: list[str], *pip_options: str):
    folder = tmp_path / "wheels"
    folder.mkdir(exist_ok=True)
    for name in wheels:  # the finder only reads file names
        (folder / name).write_bytes(b"")
    lock = tmp_path / "lock.txt"
    lock.write_text("# a lock\n" + "\n".join(lock_lines) + "\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(PREFLIGHT), str(lock), "--", *pip_options, "--find-links", str(folder)],
        capture_output=True, text=True, env=env, timeout=120, check=False)
    return done, time.monotonic() - started, lock, folder


def test_preflight_passes_when_every_pin_is_found(tmp_path):
    done, _, _, _ = _preflight(tmp_path, ["torch==2.13.0+cpu", "six==1.16.0"],
                               ["torch-2.13.0+cpu-py3-none-any.whl", "six-1.16.0-py2.py3-none-any.whl"],
                               "--no-index")
    assert done.returncode == 0, done.stderr
    assert "all 2 pinned packages found" in done.stdout


def test_preflight_names_torch_where_it_looked_and_what_to_set_in_one_line(tmp_path):
    done, _, lock, folder = _preflight(tmp_path, ["six==1.16.0", "torch==2.13.0+cpu"],
                                       ["six-1.16.0-py2.py3-none-any.whl", "torch-2.13.0-py3-none-any.whl"],
                                       "--no-index")
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    line = lines[0]
    assert line.startswith(f"error: {lock} line 3: torch==2.13.0+cpu ")
    assert str(folder) in line  # where it looked
    assert "found there only 2.13.0" in line  # the CUDA-less plain version is not the pin
    assert "TORCH_FIND_LINKS=" in line and "TORCH_INDEX_URL=" in line


def test_preflight_lists_every_missing_pin_and_the_index_variables(tmp_path):
    done, _, _, _ = _preflight(tmp_path, ["aaa==1.0", "bbb==2.0", "ccc==3.0"],
                               ["bbb-2.0-py3-none-any.whl"], "--no-index")
    assert done.returncode == 1
    (line,) = done.stderr.strip().splitlines()
    assert "aaa==1.0" in line and "(and 1 more: ccc==3.0)" in line and "bbb" not in line
    assert "PIP_INDEX_URL" in line and "TORCH_FIND_LINKS" not in line


def test_preflight_stops_at_once_on_an_unreachable_index(tmp_path):
    with socket.socket() as sock:  # a port nobody listens on: the connection is refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    index = f"http://127.0.0.1:{port}/simple"
    done, seconds, _, _ = _preflight(tmp_path, ["six==1.16.0", "torch==2.13.0+cpu"],
                                     ["six-1.16.0-py2.py3-none-any.whl"], "--index-url", index)
    assert done.returncode == 1
    (line,) = done.stderr.strip().splitlines()
    assert f"{index} (unreachable)" in line and "torch==2.13.0+cpu" in line
    assert seconds < 30


# ---- platforms: the lock's files per documented platform --------------------------------

def manylinux(arch: str, glibc_minor: int) -> list[str]:
    """Platform tags a glibc 2.<minor> Linux on ``arch`` accepts, most specific first (PEP 600)."""
    legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
    platforms = []
    for minor in range(glibc_minor, 4, -1):
        platforms.append(f"manylinux_2_{minor}_{arch}")
        if minor in legacy:
            platforms.append(f"{legacy[minor]}_{arch}")
    return platforms + [f"linux_{arch}"]


def py311_tags(platforms: list[str]) -> set:
    return {*cpython_tags((3, 11), abis=["cp311"], platforms=platforms),
            *compatible_tags((3, 11), "cp311", platforms=platforms)}


# The README's rows: the supported one, and for each other row the packages that rule it out.
SUPPORTED = {"Linux x86_64, glibc >= 2.28": manylinux("x86_64", 28)}
UNSUPPORTED = {
    "Linux x86_64, glibc < 2.28": (manylinux("x86_64", 27), {"torch"}),
    "Linux aarch64": (manylinux("aarch64", 40), {"tensorflow-data-validation", "tfx-bsl"}),
    "macOS arm64": (list(mac_platforms((15, 0), "arm64")), {"tensorflow-data-validation", "tfx-bsl"}),
    "macOS x86_64": (list(mac_platforms((15, 0), "x86_64")), {"torch"}),
    "Windows x86_64": (["win_amd64"], {"tensorflow-data-validation", "tfx-bsl", "tensorflow-io-gcs-filesystem"}),
}
# Pins with no wheel at all (source archives only): the README names each of them.
SOURCE_ONLY = {"crcmod", "dill", "docopt", "google-apitools", "hdfs", "pyfarmhash", "rouge-score"}


@pytest.fixture(scope="module")
def document() -> dict:
    return json.loads(PLATFORMS_JSON.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def recorded(document) -> dict[str, list[str]]:
    return {pin: entry["files"] for pin, entry in document["pins"].items()}


def missing_on(recorded: dict[str, list[str]], platforms: list[str]) -> tuple[set[str], set[str]]:
    """(names with no installable file, names installable only from a source archive)."""
    tags = py311_tags(platforms)
    missing, source_only = set(), set()
    for pin, files in recorded.items():
        name = pin.split("==")[0]
        wheels = [f for f in files if f.endswith(".whl")]
        if any(parse_wheel_filename(f)[3] & tags for f in wheels):
            continue
        if any(f.endswith((".tar.gz", ".zip")) for f in files):
            source_only.add(name)
        else:
            missing.add(name)
    return missing, source_only


def test_platforms_json_records_exactly_the_pins_of_the_lock(recorded):
    pins = _pins(LOCK, CARRIERS)
    assert len(pins) > 200
    assert sorted(recorded) == sorted(pins), (
        "requirements/platforms.json is stale: run `make lock` (or python requirements/platforms.py). "
        f"Only in the lock: {sorted(set(pins) - set(recorded))[:5]}; "
        f"only in platforms.json: {sorted(set(recorded) - set(pins))[:5]}")


@pytest.mark.parametrize("platform", sorted(SUPPORTED))
def test_every_pin_installs_on_the_supported_platform(recorded, platform):
    missing, source_only = missing_on(recorded, SUPPORTED[platform])
    assert not missing, f"{platform}: no file of the locked version for {sorted(missing)}"
    assert source_only == SOURCE_ONLY, f"{platform}: pins built from source changed: {sorted(source_only)}"


@pytest.mark.parametrize("platform", sorted(UNSUPPORTED))
def test_unsupported_platforms_lack_the_packages_the_readme_names(document, recorded, platform):
    platforms, blockers = UNSUPPORTED[platform]
    missing, _ = missing_on(recorded, platforms)
    assert blockers <= missing, f"{platform}: README names {sorted(blockers)}, but only {sorted(missing)} are missing"
    # A pin recorded from a --find-links folder alone (torch: PyTorch's index is out of our
    # reach) lists only that folder's files, so it may look missing where the index has more.
    partial = {pin.split("==")[0] for pin, entry in document["pins"].items()
               if entry["sources"] == ["find-links folder"]}
    unexplained = missing - blockers - partial
    assert not unexplained, f"{platform}: also missing {sorted(unexplained)}, which README does not name"


def test_glibc_floor_is_torchs_manylinux_2_28(recorded):
    torch_files = next(files for pin, files in recorded.items() if pin.startswith("torch=="))
    assert torch_files == ["torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"]
    assert missing_on(recorded, manylinux("x86_64", 28))[0] == set()
    assert missing_on(recorded, manylinux("x86_64", 27))[0] == {"torch"}


def test_readme_documents_the_platforms_and_the_set_up():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    match = re.search(r"^## Supported platforms and set-up\n(.*?)(?=^## )", text, re.S | re.M)
    assert match, "README.md has no '## Supported platforms and set-up' section"
    section = match.group(1)
    for needed in ("glibc >= 2.28", "x86_64", "aarch64", "arm64", "Windows", "CPython 3.11",
                   "TORCH_FIND_LINKS", "TORCH_INDEX_URL", CPU_INDEX, "conda env create -f environment.yml",
                   "pip install --no-deps -r requirements/carriers.txt", "--python-platform"):
        assert needed in section, f"README 'Supported platforms and set-up' does not mention {needed!r}"
    for name in SOURCE_ONLY | {blocker for _, blockers in UNSUPPORTED.values() for blocker in blockers}:
        assert f"`{name}`" in section, f"README 'Supported platforms and set-up' does not name `{name}`"


# ---- networked (skipped unless selected with -m network) --------------------------------

def _network_selected(config) -> bool:
    expression = config.getoption("markexpr") or ""
    return re.search(r"(?<!not )\bnetwork\b", expression) is not None


@pytest.mark.network
def test_recorded_files_are_still_on_the_index(request, recorded):
    if not _network_selected(request.config):
        pytest.skip("needs the package index; run with -m network")
    sys.path.insert(0, str(REPO / "requirements"))
    try:
        import platforms
    finally:
        sys.path.pop(0)
    document = json.loads(PLATFORMS_JSON.read_text(encoding="utf-8"))
    from_index = [pin for pin, entry in document["pins"].items() if document["index"] in entry["sources"]]
    live = platforms.collect(from_index, document["index"])
    gone = {pin: sorted(set(recorded[pin]) - set(live[pin]["files"])) for pin in from_index}
    gone = {pin: files for pin, files in gone.items() if files}
    assert not gone, f"files recorded in requirements/platforms.json are no longer on {document['index']}: {gone}"
