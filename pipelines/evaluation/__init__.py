"""Sliced fairness evaluation: per-group metrics, disparities, bias AUCs, counterfactual
twins, retrieval exposure, a paired variant comparison and gates, all with seeded,
vectorized, group-stratified bootstrap CIs. Works on predictions only (no torch/TF).

The public names are loaded lazily (PEP 562): the root config imports
``pipelines.evaluation.config`` at CLI start-up, which must not pull in pandas.
The stage specs live in :mod:`pipelines.evaluation.stage`.
"""

from __future__ import annotations

from pipelines._lazy import lazy_exports

__all__ = [
    "EvaluationConfig",
    "BootstrapConfig",
    "BiasAucConfig",
    "CounterfactualConfig",
    "GateRule",
    "SlicedSettings",
    "sliced_evaluation",
    "disparity_arrays",
    "evaluate_fairness",
    "validate_predictions",
    "evaluate_gates",
    "judge",
    "verdict",
    "resample_weights",
    "percentile_ci",
    "TermPair",
    "TermSwapper",
    "derive_group_terms",
    "make_twins",
    "read_opposites",
]

_HOME = {
    "EvaluationConfig": "config",
    "BootstrapConfig": "config",
    "BiasAucConfig": "config",
    "CounterfactualConfig": "config",
    "GateRule": "config",
    "SlicedSettings": "_sliced",
    "sliced_evaluation": "_sliced",
    "disparity_arrays": "_sliced",
    "evaluate_fairness": "_evaluate",
    "validate_predictions": "_evaluate",
    "evaluate_gates": "_gates",
    "judge": "_gates",
    "verdict": "_gates",
    "resample_weights": "_bootstrap",
    "percentile_ci": "_bootstrap",
    "TermPair": "counterfactual",
    "TermSwapper": "counterfactual",
    "derive_group_terms": "counterfactual",
    "make_twins": "counterfactual",
    "read_opposites": "counterfactual",
}


__getattr__, __dir__ = lazy_exports(__name__, _HOME, __all__)
