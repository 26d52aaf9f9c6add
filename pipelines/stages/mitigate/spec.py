"""The ``mitigate`` stage spec: the audit sample, the deployed predictions and the validation scores in; the
mitigated twins' predictions, their evaluation beside the deployed variants and the trade-off sweep out."""

from pipelines.core.runner import Stage
from pipelines.fairness import RESULT_ARTIFACTS
from pipelines.stages.mitigate.run import MITIGATION_ARTIFACTS, mitigate

__all__ = ["SPEC"]

SPEC = Stage(
    name="mitigate",
    fn=mitigate,
    inputs={"audit_sample": "load_data.audit_sample", "validation": "load_data.validation",
            "predictions": "predict.predictions", "validation_predictions": "predict.validation_predictions",
            "data_summary": "load_data.data_summary"},
    optional_inputs=("validation", "data_summary"),
    outputs=(*RESULT_ARTIFACTS, *MITIGATION_ARTIFACTS),
    config_sections=("data", "evaluation", "mitigation"),
    config_values=lambda cfg: {"variant_order": list(cfg.variant_names())},
    version="2",
    enabled=lambda cfg: cfg.mitigation.enabled and bool(cfg.variants),
)
