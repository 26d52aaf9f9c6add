"""predict: every variant scores the audit sample, the twins and the validation sample."""

from pipelines.stages.predict.spec import SPEC

__all__ = ["SPEC"]
