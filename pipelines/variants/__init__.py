"""The model variants: a fine-tuned classifier and a RAG variant behind one predictor interface.

Importing this package is cheap (pydantic only). The predictors and stages
import torch and transformers lazily; reach them through their modules or
the attributes below, which import on first use.

* :class:`FinetunedPredictor` (``pipelines.variants.finetuned``)
* :class:`RagPredictor` (``pipelines.variants.rag``)
* ``BUILD_STAGE`` / ``PREDICT_STAGE`` (``pipelines.variants.stage``)
"""

from __future__ import annotations

from pipelines._lazy import lazy_exports
from pipelines.variants.config import VariantsConfig

__all__ = ["VariantsConfig", "Predictor", "Predictions", "FinetunedPredictor", "RagPredictor",
           "ModelCache", "BUILD_STAGE", "PREDICT_STAGE", "build_variants_stage", "predict_stage"]

_HOME = {
    "Predictor": "_base",
    "Predictions": "_base",
    "FinetunedPredictor": "finetuned",
    "RagPredictor": "rag",
    "ModelCache": "cache",
    "BUILD_STAGE": "stage",
    "PREDICT_STAGE": "stage",
    "build_variants_stage": "stage",
    "predict_stage": "stage",
}

__getattr__, __dir__ = lazy_exports(__name__, _HOME, __all__)
