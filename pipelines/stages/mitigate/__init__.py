"""mitigate: fairlearn's ThresholdOptimizer per variant, evaluated beside the deployed model, with a trade-off sweep."""

from pipelines.stages.mitigate.spec import SPEC

__all__ = ["SPEC"]
