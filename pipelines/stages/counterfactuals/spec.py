"""The ``counterfactuals`` stage spec: the audit sample in; its twins and their coverage out."""

from pipelines.core.runner import Stage
from pipelines.stages.counterfactuals.run import counterfactual_preflight, counterfactuals

__all__ = ["SPEC"]

SPEC = Stage(
    name="counterfactuals",
    fn=counterfactuals,
    inputs={"audit_sample": "load_data.audit_sample"},
    outputs=("twins", "counterfactual_coverage"),
    config_sections=("data", "evaluation"),
    version="2",
    enabled=lambda cfg: cfg.evaluation.counterfactual.enabled,
    preflight=counterfactual_preflight,
)
