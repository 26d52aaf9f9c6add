"""Model code: the variants audited side by side, behind one interface.

A variant is built once (:meth:`VariantKind.build`, into the model cache), turned into
a predictor (texts in, P(positive) out) and scored on the audit sample, the
counterfactual twins and the validation sample (:meth:`VariantKind.score`). The kinds
(``finetuned``, ``classifier``, ``rag``, ``predictions``) are a registry
(:data:`KINDS`); nothing outside this package knows what a kind does.

Importing this package is cheap: torch and transformers are imported inside the
functions that load models.
"""

from pipelines.variants._base import Predictions, Predictor, Progress, check_scores, check_texts, no_progress
from pipelines.variants._decision import Calibrator, choose_threshold, fit_calibrator
from pipelines.variants._hf import check_model_dir, model_identity, offline, set_threads
from pipelines.variants._precision import effective_precision
from pipelines.variants.cache import ModelCache, cache_key
from pipelines.variants.interface import BuildContext, ScoreSets, ScoringRequest, TwinScores, VariantKind, rate
from pipelines.variants.registry import KINDS, load_predictor, variant_kind

__all__ = [
    "BuildContext",
    "Calibrator",
    "KINDS",
    "ModelCache",
    "Predictions",
    "Predictor",
    "Progress",
    "ScoreSets",
    "ScoringRequest",
    "TwinScores",
    "VariantKind",
    "cache_key",
    "effective_precision",
    "check_model_dir",
    "check_scores",
    "check_texts",
    "choose_threshold",
    "fit_calibrator",
    "load_predictor",
    "model_identity",
    "no_progress",
    "offline",
    "rate",
    "set_threads",
    "variant_kind",
]
