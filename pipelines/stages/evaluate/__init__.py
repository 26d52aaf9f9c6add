"""evaluate: sliced fairness metrics with intervals, disparities, bias AUCs, counterfactuals and gates."""

from pipelines.stages.evaluate.spec import SPEC

__all__ = ["SPEC"]
