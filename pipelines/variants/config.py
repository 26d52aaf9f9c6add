"""Config section for the model variants (owned by the model-variants work)."""

from __future__ import annotations

from pipelines._configbase import Section

__all__ = ["VariantsConfig"]


class VariantsConfig(Section):
    """Placeholder until the variants are built: no variants, nothing to predict."""

    enabled: bool = False
