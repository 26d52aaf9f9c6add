"""The model variants: a fine-tuned classifier and a RAG variant behind one predictor interface.

Importing this package is cheap (pydantic only). The predictors and stages
import torch and transformers lazily; reach them through their modules or
the attributes below, which import on first use.

* :class:`FinetunedPredictor` (``pipelines.variants.finetuned``)
* :class:`RagPredictor` (``pipelines.variants.rag``)
* ``BUILD_STAGE`` / ``PREDICT_STAGE`` (``pipelines.variants.stage``)
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from pipelines.variants.config import VariantsConfig

__all__ = ["VariantsConfig", "Predictor", "Predictions", "FinetunedPredictor", "RagPredictor",
           "ModelCache", "BUILD_STAGE", "PREDICT_STAGE", "build_variants_stage", "predict_stage"]

_LAZY = {
    "Predictor": "pipelines.variants._base",
    "Predictions": "pipelines.variants._base",
    "FinetunedPredictor": "pipelines.variants.finetuned",
    "RagPredictor": "pipelines.variants.rag",
    "ModelCache": "pipelines.variants.cache",
    "BUILD_STAGE": "pipelines.variants.stage",
    "PREDICT_STAGE": "pipelines.variants.stage",
    "build_variants_stage": "pipelines.variants.stage",
    "predict_stage": "pipelines.variants.stage",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pipelines.variants' has no attribute {name!r}")
