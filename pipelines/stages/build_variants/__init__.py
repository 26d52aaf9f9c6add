"""build_variants: fine-tune, convert and index what each variant needs, into the model cache."""

from pipelines.stages.build_variants.spec import SPEC

__all__ = ["SPEC"]
