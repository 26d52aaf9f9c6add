"""Bounded configs: bombs, deep nesting, huge or odd files are one-line ConfigErrors, fast, before any run."""

from __future__ import annotations

import os
import time

import pytest
import yaml

from pipelines.config import load_config
from pipelines.config.audit import MAX_CONFIG_BYTES, MAX_YAML_NODES
from pipelines.errors import ConfigError
from tests.reliability.conftest import one_error


def _bomb(levels: int, width: int, *, leaf: str = '"lol"') -> list[str]:
    lines = [f"l0: &l0 [{', '.join([leaf] * width)}]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]")
    return lines


def test_billion_laughs_is_one_line_in_under_a_second(sandbox, cli):
    path = sandbox.cfg_dir / "bomb.yaml"
    path.write_text("audit: {name: bomb}\n" + "\n".join(_bomb(9, 10)) + "\n", encoding="utf-8")
    assert path.stat().st_size < 600  # ~10^9 values from a few hundred bytes
    sandbox.start()
    t0 = time.perf_counter()
    code, _, err = cli("validate", path)
    elapsed = time.perf_counter() - t0
    assert code == 2
    one_error(err, str(path), f"more than {MAX_YAML_NODES:,} values", "aliases")
    assert elapsed < 1.0, f"{elapsed:.2f} s"
    sandbox.assert_untouched()


def test_a_seven_level_bomb_inside_a_valid_section_fails_too(sandbox, cli):
    """10^7 values under a key the config accepts (`evaluation.counterfactual.term_pairs`)."""
    cfg = sandbox.write_config()
    text = cfg.read_text(encoding="utf-8")
    pairs = "\n".join(f"      g{line[1:]}" for line in _bomb(7, 10, leaf='["he", "she"]'))
    text = text.replace("  counterfactual:\n    enabled: false\n",
                        f"  counterfactual:\n    enabled: false\n    term_pairs:\n{pairs}\n")
    assert "term_pairs" in text and yaml.compose(text) is not None  # well-formed YAML
    path = sandbox.cfg_dir / "bomb7.yaml"
    path.write_text(text, encoding="utf-8")
    sandbox.start()
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match="more than 100,000 values"):
        load_config(path)
    assert time.perf_counter() - t0 < 1.0
    code, _, err = cli("run", path, "--no-progress", "-q")
    assert code == 2
    one_error(err, "aliases")
    assert not sandbox.runs.exists()
    sandbox.assert_untouched()


def test_a_small_alias_is_still_fine(sandbox):
    """Anchors and aliases are legal YAML: only expansion past the limit is refused."""
    cfg = sandbox.write_config()
    text = cfg.read_text(encoding="utf-8").replace("text_column: comment", "text_column: &col comment")
    text = text.replace("id_column: id", "id_column: id\n      # the same column, by alias\n")
    cfg.write_text(text + "report: {title: *col}\n", encoding="utf-8")
    assert load_config(cfg).report.title == "comment"


@pytest.mark.parametrize(
    "body, words",
    [
        pytest.param("a: &a [1, *a]\n", ["refers to a node that contains it", "line 2"], id="recursive-alias"),
        pytest.param("deep: " + "[" * 3000 + "]" * 3000 + "\n", ["nests deeper than 50 levels"], id="deep-flow"),
        pytest.param("".join(f"{'  ' * i}k{i}:\n" for i in range(200)) + "  " * 200 + "x: 1\n",
                     ["nests deeper than 50 levels"], id="deep-block"),
        pytest.param("audit: [unclosed\n", ["not valid YAML"], id="syntax"),
        pytest.param("- just\n- a list\n", ["must be a YAML mapping"], id="not-a-mapping"),
        pytest.param("audit: {name: ../../etc}\n", ["audit.name", "slug"], id="hostile-audit-name"),
        pytest.param('audit: {name: "demo\\n"}\n', ["audit.name", "slug"], id="audit-name-trailing-newline"),
        pytest.param("audit: !!python/object/apply:os.system ['touch pwned']\n", ["not valid YAML"],
                     id="python-tag"),
    ],
)
def test_malformed_config_is_one_line(sandbox, cli, body, words):
    path = sandbox.cfg_dir / "bad.yaml"
    path.write_text(("audit: {name: x}\n" if not body.startswith(("audit", "-")) else "") + body, encoding="utf-8")
    sandbox.start()
    t0 = time.perf_counter()
    code, _, err = cli("run", path, "--no-progress", "-q")
    assert code == 2
    one_error(err, str(path), *words)
    assert time.perf_counter() - t0 < 2.0
    assert not sandbox.runs.exists() and not (sandbox.cwd / "pwned").exists()
    sandbox.assert_untouched()


def test_oversized_config_is_refused_without_reading_it_all(sandbox, cli):
    path = sandbox.cfg_dir / "huge.yaml"
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("audit: {name: huge}\n# " + "x" * (3 * MAX_CONFIG_BYTES) + "\n")
    sandbox.start()
    code, _, err = cli("validate", path)
    assert code == 2
    one_error(err, str(path), f"at most {MAX_CONFIG_BYTES:,}")
    sandbox.assert_untouched()


@pytest.mark.parametrize("kind", ["folder", "fifo", "device", "not-utf8"])
def test_config_that_is_not_a_text_file_is_one_line(sandbox, cli, kind):
    path = sandbox.cfg_dir / "odd.yaml"
    if kind == "folder":
        path.mkdir()
        words = ["not a regular file"]
    elif kind == "fifo":
        os.mkfifo(path)  # reading it would block forever
        words = ["not a regular file"]
    elif kind == "device":
        path = "/dev/zero"  # reading it would never end
        words = ["not a regular file"]
    else:
        path.write_bytes("audit: {name: caf\xe9}\n".encode("latin-1"))
        words = ["not UTF-8"]
    sandbox.start()
    code, _, err = cli("validate", path)
    assert code == 2
    one_error(err, str(path), *words)
    sandbox.assert_untouched()


def test_yaml_is_parsed_safely(sandbox):
    """The bounded loader is a SafeLoader: no Python objects from tags."""
    from pipelines.config.audit import _BoundedLoader

    assert issubclass(_BoundedLoader, yaml.SafeLoader)
