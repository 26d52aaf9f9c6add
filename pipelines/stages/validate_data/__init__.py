"""validate_data: TFDV statistics per split and per identity slice, schema validation, drift and skew."""

from pipelines.stages.validate_data.spec import SPEC

__all__ = ["SPEC"]
