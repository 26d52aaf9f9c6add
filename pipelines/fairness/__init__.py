"""The fairness metric library: sliced metrics with intervals, disparities, bias AUCs,
counterfactual flips, retrieval exposure, paired comparisons and gates.

It works on predictions only (no torch, no TensorFlow) and without the runner:
:func:`evaluate_fairness` takes tables and returns one :class:`FairnessResult`.
Per-group point estimates come from fairlearn's ``MetricFrame``. Intervals and gate
decisions have known error rates (:mod:`pipelines.fairness.intervals`,
``docs/statistics.md``): exact binomial for rates, pairwise score tests for gaps,
DeLong for AUCs, and a seeded, stratified, vectorized bootstrap for the rest.

Examples
--------
>>> import pandas as pd
>>> from pipelines.config import EvaluationConfig
>>> sample = pd.DataFrame({"example_id": [str(i) for i in range(8)], "label": [0, 1] * 4,
...                        "group": ["a"] * 4 + ["b"] * 4})
>>> preds = pd.DataFrame({"variant": "m", "example_id": sample["example_id"],
...                       "score": [0.2, 0.9, 0.4, 0.7, 0.6, 0.8, 0.1, 0.3],
...                       "predicted_label": [0, 1, 0, 1, 1, 1, 0, 0]})
>>> result = evaluate_fairness(audit_sample=sample, predictions=preds, seed=0, data_features=["group"],
...                            config=EvaluationConfig(min_group_size=1, min_class_count=1))
>>> result.estimate("group_metrics", variant="m", feature="group", group="b", metric="accuracy")["value"]
0.5
"""

from pipelines.fairness._bootstrap import percentile_ci, resample_weights
from pipelines.fairness._evaluate import evaluate_fairness
from pipelines.fairness._frame import ece, metric_frame
from pipelines.fairness._gates import evaluate_gates
from pipelines.fairness._inputs import validate_predictions
from pipelines.fairness._sliced import SlicedSettings, disparity_arrays, sliced_evaluation
from pipelines.fairness.counterfactual import (
    TWIN_SUFFIX,
    TermPair,
    TermSwapper,
    derive_group_terms,
    make_twins,
    read_opposites,
    redditbias_term_pairs,
)
from pipelines.fairness.result import (
    FAIL,
    GATE_STATUSES,
    INSUFFICIENT,
    NOT_EVALUABLE,
    PASS,
    RESULT_ARTIFACTS,
    FairnessResult,
    counted,
    describe_gate,
    verdict,
)

__all__ = [
    "FAIL",
    "FairnessResult",
    "GATE_STATUSES",
    "INSUFFICIENT",
    "NOT_EVALUABLE",
    "PASS",
    "RESULT_ARTIFACTS",
    "SlicedSettings",
    "TWIN_SUFFIX",
    "TermPair",
    "TermSwapper",
    "derive_group_terms",
    "disparity_arrays",
    "ece",
    "evaluate_fairness",
    "counted",
    "describe_gate",
    "evaluate_gates",
    "make_twins",
    "metric_frame",
    "percentile_ci",
    "read_opposites",
    "redditbias_term_pairs",
    "resample_weights",
    "sliced_evaluation",
    "validate_predictions",
    "verdict",
]
