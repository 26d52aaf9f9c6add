"""Config section for the sliced fairness evaluation (owned by the evaluation work)."""

from __future__ import annotations

from pipelines._configbase import Section

__all__ = ["EvaluationConfig"]


class EvaluationConfig(Section):
    """Placeholder until the evaluation is built."""

    sensitive_features: tuple[str, ...] = ()
