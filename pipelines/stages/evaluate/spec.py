"""The ``evaluate`` stage spec: the audit sample and every variant's predictions in; the fairness result out."""

from pipelines.core.runner import Stage
from pipelines.fairness import RESULT_ARTIFACTS
from pipelines.stages.evaluate.run import evaluate

__all__ = ["SPEC"]

SPEC = Stage(
    name="evaluate",
    fn=evaluate,
    inputs={
        "audit_sample": "load_data.audit_sample",
        "twins": "counterfactuals.twins",
        "predictions": "predict.predictions",
        "twin_predictions": "predict.twin_predictions",
        "retrievals": "predict.retrievals",
        "data_summary": "load_data.data_summary",
        "answer_pairs": "generate.answer_pairs",
        "open_answers": "generate.open_answers",
        "generation_summary": "generate.generation_summary",
    },
    optional_inputs=("twins", "twin_predictions", "retrievals", "data_summary", "answer_pairs", "open_answers",
                     "generation_summary"),
    outputs=RESULT_ARTIFACTS,
    config_sections=("data", "evaluation"),
    config_values=lambda cfg: {"variant_order": list(cfg.variant_names()),
                               "generation_min_group_size": cfg.generation.min_group_size},
    version="4",
)
