"""counterfactuals: each audited comment with its identity terms swapped, for counterfactual fairness."""

from pipelines.stages.counterfactuals.spec import SPEC

__all__ = ["SPEC"]
