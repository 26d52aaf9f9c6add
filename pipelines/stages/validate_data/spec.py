"""The ``validate_data`` stage spec: the splits in; statistics, schema, anomalies and their summary out."""

from pipelines.core.runner import Stage
from pipelines.stages.validate_data.run import leakage_settings, schema_fingerprint, validate_data, validation_preflight

__all__ = ["SPEC"]

SPEC = Stage(
    name="validate_data",
    fn=validate_data,
    inputs={"train": "load_data.train", "validation": "load_data.validation", "eval": "load_data.eval",
            "splits": "load_data.splits"},
    optional_inputs=("splits",),
    # statistics_<split> and anomalies_<split> for each split that has rows (and `serving` when configured)
    outputs=("schema", "validation_summary"),
    optional_outputs=tuple(f"{kind}_{split}" for kind in ("statistics", "anomalies")
                           for split in ("train", "validation", "eval", "serving")) + ("schema_inferred",),
    config_sections=("data", "validation", "beam"),
    config_values=leakage_settings,
    version="2",
    external_inputs=schema_fingerprint,
    preflight=validation_preflight,
)
