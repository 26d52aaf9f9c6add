"""generate: each generating variant answers counterfactual pairs and open-ended prompts (docs/generation.md)."""

from pipelines.stages.generate.spec import SPEC

__all__ = ["SPEC"]
