"""load_data: read, normalize, split and summarize the audit dataset (in memory, or on Beam)."""

from pipelines.stages.load_data.spec import SPEC

__all__ = ["SPEC"]
