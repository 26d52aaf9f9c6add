"""export_wit: the audited examples with every variant's scores, as tf.Examples for the What-If Tool."""

from pipelines.stages.export_wit.spec import SPEC

__all__ = ["SPEC"]
