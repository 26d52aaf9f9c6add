"""The audit config: every section as a frozen, typed pydantic model, validated once and up front.

This package imports nothing heavy (pydantic and PyYAML only): the CLI loads and
checks a config before any compute starts.

Examples
--------
>>> from pipelines.config import load_config, DEMO_CONFIG
>>> cfg = load_config(DEMO_CONFIG)
>>> cfg.audit.name, cfg.variant_names()
('demo', ('finetuned', 'rag'))
"""

from pipelines.config._base import Section, did_you_mean, format_validation_error
from pipelines.config.audit import (
    DEMO_CONFIG,
    AuditConfig,
    AuditSection,
    OutputConfig,
    ReportConfig,
    config_from_dict,
    load_config,
    resolve_resource,
)
from pipelines.config.beam import BEAM_RUNNERS, BeamConfig
from pipelines.config.data import REDDITBIAS_GROUPS, DataConfig, FileSource, RedditBiasSource, SplitConfig
from pipelines.config.evaluation import (
    BiasAucConfig,
    BootstrapConfig,
    CounterfactualConfig,
    EvaluationConfig,
    GateRule,
)
from pipelines.config.generation import GenerationConfig
from pipelines.config.validation import DriftThreshold, ValidationConfig
from pipelines.config.variants import (
    DEFAULT_VARIANTS,
    VARIANT_KINDS,
    CalibrationConfig,
    ClassifierVariant,
    FinetunedVariant,
    GeneratorConfig,
    KnowledgeBaseConfig,
    PredictionsVariant,
    RagVariant,
    RetrieverConfig,
    ScoringConfig,
    ThresholdConfig,
    TrainingConfig,
    VariantSpec,
)

__all__ = [
    "AuditConfig",
    "AuditSection",
    "BEAM_RUNNERS",
    "BeamConfig",
    "BiasAucConfig",
    "BootstrapConfig",
    "CalibrationConfig",
    "ClassifierVariant",
    "CounterfactualConfig",
    "DEFAULT_VARIANTS",
    "DEMO_CONFIG",
    "DataConfig",
    "DriftThreshold",
    "EvaluationConfig",
    "FileSource",
    "FinetunedVariant",
    "GateRule",
    "GenerationConfig",
    "GeneratorConfig",
    "KnowledgeBaseConfig",
    "OutputConfig",
    "PredictionsVariant",
    "REDDITBIAS_GROUPS",
    "RagVariant",
    "RedditBiasSource",
    "ReportConfig",
    "RetrieverConfig",
    "ScoringConfig",
    "Section",
    "SplitConfig",
    "ThresholdConfig",
    "TrainingConfig",
    "VARIANT_KINDS",
    "ValidationConfig",
    "VariantSpec",
    "config_from_dict",
    "did_you_mean",
    "format_validation_error",
    "load_config",
    "resolve_resource",
]
