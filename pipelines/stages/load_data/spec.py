"""The ``load_data`` stage spec: no inputs; the data files are external inputs."""

from pipelines.core.runner import Stage
from pipelines.stages.load_data.preflight import data_preflight
from pipelines.stages.load_data.run import load_data
from pipelines.stages.load_data.summary import source_fingerprints

__all__ = ["SPEC"]

SPEC = Stage(
    name="load_data",
    fn=load_data,
    outputs=("train", "validation", "eval", "audit_sample", "removed_rows", "data_summary"),
    optional_outputs=("examples", "splits"),  # every row in memory / split shards on the Beam path
    config_sections=("data", "beam"),
    config_values=lambda cfg: {"passthrough_columns": list(cfg.passthrough_columns)},
    version="3",
    external_inputs=source_fingerprints,
    preflight=data_preflight,
)
