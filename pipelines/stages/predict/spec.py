"""The ``predict`` stage spec: the audit sample, its twins, the validation split and the built variants in;
every variant's predictions, thresholds and speed out."""

from pipelines.core.runner import Stage
from pipelines.stages.predict.run import predict, scoring_precisions

__all__ = ["SPEC"]

SPEC = Stage(
    name="predict",
    fn=predict,
    inputs={"audit_sample": "load_data.audit_sample", "twins": "counterfactuals.twins",
            "validation": "load_data.validation", "variants": "build_variants.variants"},
    optional_inputs=("twins",),
    outputs=("predictions", "twin_predictions", "retrievals", "thresholds", "performance", "validation_predictions"),
    # `beam` is not part of the key: the same inputs give the same predictions on any runner
    config_sections=("variants", "scoring", "data"),
    # "auto"/"bf16" resolve against this CPU: scores made in bf16 are not reused for an fp32 run
    config_values=scoring_precisions,
    version="6",
    enabled=lambda cfg: bool(cfg.variants),
)
