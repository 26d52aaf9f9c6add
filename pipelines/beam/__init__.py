"""Apache Beam, in one adapter: pipelines built from ``cfg.beam`` and batch inference with RunInference.

Importing this package is cheap: Beam is imported inside the functions that build
pipelines. The stages' own Beam transforms live beside them
(``pipelines/stages/<stage>/beam.py``).
"""

from pipelines.beam.inference import predictor_model_handler, score_on_beam
from pipelines.beam.pipeline import (
    beam_pipeline,
    local_worker_processes,
    pipeline_args,
    pipeline_options,
    runner_name,
    temp_location,
)

__all__ = [
    "beam_pipeline",
    "local_worker_processes",
    "pipeline_args",
    "pipeline_options",
    "predictor_model_handler",
    "runner_name",
    "score_on_beam",
    "temp_location",
]
