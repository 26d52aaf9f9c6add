"""The ``build_variants`` stage spec: the train split in; each variant's build entry out."""

from pipelines.core.runner import Stage
from pipelines.stages.build_variants.run import build_variants, cached_models_problems, model_fingerprints

__all__ = ["SPEC"]

SPEC = Stage(
    name="build_variants",
    fn=build_variants,
    inputs={"train": "load_data.train"},
    outputs=("variants",),
    config_sections=("variants", "scoring", "data"),
    version="2",
    enabled=lambda cfg: bool(cfg.variants),
    external_inputs=model_fingerprints,
    # a stage-cache hit names model-cache folders: they must still match their recorded hashes
    verify_cached=cached_models_problems,
)
