"""The whole fairness evaluation as one pure function over tables (no I/O, no clock)."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from pipelines.config.evaluation import EvaluationConfig
from pipelines.fairness._calibrate import assign_intervals
from pipelines.fairness._gates import evaluate_gates
from pipelines.fairness._gen_evaluate import generation_records
from pipelines.fairness._inputs import validate_predictions
from pipelines.fairness._sliced import SlicedSettings, sliced_evaluation
from pipelines.fairness._twins import counterfactual_coverage, counterfactual_records, exposure_records
from pipelines.fairness.result import FairnessResult

__all__ = ["evaluate_fairness"]


def evaluate_fairness(*, audit_sample: pd.DataFrame, predictions: pd.DataFrame, config: EvaluationConfig,
                      data_features: Sequence[str], seed: int, twins: pd.DataFrame | None = None,
                      twin_predictions: pd.DataFrame | None = None, retrievals: pd.DataFrame | None = None,
                      variant_order: Sequence[str] | None = None,
                      expected_groups: Mapping[str, Sequence[str]] | None = None,
                      answer_pairs: pd.DataFrame | None = None, open_answers: pd.DataFrame | None = None,
                      generation: Mapping[str, Any] | None = None) -> FairnessResult:
    """Evaluate every variant's predictions on the audit sample.

    Parameters
    ----------
    audit_sample
        ``example_id``, ``label`` and the sensitive features of the audited rows.
    predictions
        ``variant``, ``example_id``, ``score``, ``predicted_label``: every variant scores
        every row of ``audit_sample``.
    config
        The ``evaluation`` section (features, sizes, bootstrap, gates, baseline).
    data_features
        The data's sensitive features (the evaluation slices by all of them unless
        ``config.sensitive_features`` picks some).
    seed
        Seeds the bootstrap.
    twins, twin_predictions, retrievals
        Counterfactual twins with their scores, and the documents a retrieving variant
        was shown (optional).
    variant_order
        Variants in config order (the order of the tables and of the comparisons).
    expected_groups
        Per sensitive feature, the groups the data has (e.g. in any split): a group absent
        from the audit sample is listed in the gate results as ``not_evaluable`` instead of
        being silently missing.
    answer_pairs, open_answers
        The ``generate`` stage's per-answer tables (optional): generation metrics per
        variant, condition and group (``docs/generation.md``).
    generation
        Settings of the generation metrics: ``min_group_size`` (default: the evaluation's),
        and ``not_evaluable`` (metric -> why no variant has it, for the gate results).

    Returns
    -------
    FairnessResult
        The tidy tables, gate results and verdict; see :mod:`pipelines.fairness.result`.
    """
    features = config.features(tuple(data_features))
    found = validate_predictions(audit_sample=audit_sample, predictions=predictions, features=features)
    order = [v for v in (variant_order or ()) if v in found]
    variants = order + [v for v in found if v not in order]
    comparisons = config.comparisons(variants)
    bs = config.bootstrap
    settings = SlicedSettings(features=features, intersections=config.intersections,
                              min_group_size=config.min_group_size, min_class_count=config.min_class_count,
                              ece_bins=config.ece_bins, resamples=bs.resamples, level=config.level, seed=seed,
                              bias_auc=config.bias_auc)
    sample = audit_sample.copy()
    sample["example_id"] = sample["example_id"].astype(str)
    sample = sample.sort_values("example_id", kind="stable").reset_index(drop=True)
    preds = predictions.astype({"variant": str, "example_id": str})
    scores, labels = {}, {}
    for v in variants:
        p = preds[preds["variant"] == v].set_index("example_id").loc[sample["example_id"]]
        scores[v] = p["score"].to_numpy(dtype=np.float64)
        labels[v] = p["predicted_label"].to_numpy().astype(np.int64)
    sliced = sliced_evaluation(y=sample["label"].to_numpy().astype(np.int64), scores=scores, preds=labels,
                               sensitive=sample[list(features)], settings=settings, comparisons=comparisons)
    cf_records: list[dict[str, Any]] = []
    cf_compared: list[dict[str, Any]] = []
    if twin_predictions is not None:
        cf_records, cf_compared = counterfactual_records(predictions=preds, twin_predictions=twin_predictions,
                                                         sample=sample, settings=settings, comparisons=comparisons)
    exposure: list[dict[str, Any]] = []
    if retrievals is not None:
        exposure = exposure_records(retrievals=retrievals, sample=sample, feature=features[0], settings=settings)
    gen_settings = {"min_group_size": int((generation or {}).get("min_group_size") or config.min_group_size),
                    "not_evaluable": dict((generation or {}).get("not_evaluable") or {})}
    if answer_pairs is None and open_answers is None:
        gen_settings["not_evaluable"].setdefault("*", "no answers were generated in this run (`generation.enabled` "
                                                      "is false, or the generate stage did not run)")
    gen_records = generation_records(answer_pairs=answer_pairs, open_answers=open_answers, settings=settings,
                                     min_group_size=gen_settings["min_group_size"])
    level, method = config.level, config.proportion_method
    assign_intervals(sliced["group_metrics"] + sliced["bias_auc"] + sliced["disparities"], level=level,
                     proportion_method=method)
    assign_intervals(cf_records, level=level, proportion_method=method)
    assign_intervals(exposure, level=level, proportion_method=method)
    assign_intervals(gen_records, level=level, proportion_method=method)
    assign_intervals(sliced["comparison"] + cf_compared, level=level, proportion_method=method, analytic=False)
    evaluated = {"features": sliced["features"], "intersections": config.intersections,
                 "min_group_size": config.min_group_size, "min_class_count": config.min_class_count,
                 "ece_bins": config.ece_bins, "level": level, "multiplicity": config.multiplicity,
                 "proportion_method": method,
                 "bootstrap": {"resamples": bs.resamples, "seed": seed, "stratified_by": list(features),
                               "interval": "bias-corrected (BC) percentile, for metrics without an exact or "
                                           "analytic method"},
                 "bias_auc": config.bias_auc.model_dump(mode="json"),
                 "generation": gen_settings}
    gate_results = evaluate_gates(
        config.gates,
        records={"group_metrics": sliced["group_metrics"], "bias_auc": sliced["bias_auc"],
                 "disparities": sliced["disparities"], "counterfactual": cf_records, "exposure": exposure,
                 "generation": gen_records},
        variants=variants, features=sliced["features"], settings=evaluated, level=level,
        multiplicity=config.multiplicity, proportion_method=method,
        expected_groups=_expected(expected_groups, sample, sliced["features"]))
    return FairnessResult.from_records(
        records={"group_metrics": sliced["group_metrics"] + sliced["bias_auc"], "disparities": sliced["disparities"],
                 "comparison": sliced["comparison"] + cf_compared, "counterfactual_metrics": cf_records,
                 "exposure_metrics": exposure, "generation_metrics": gen_records, "gate_results": gate_results},
        variants=tuple(variants), comparisons=tuple(comparisons), settings=evaluated,
        examples=int(sliced["n"]), groups=_with_absent(sliced["groups"], expected_groups),
        notes=tuple(sliced["notes"]),
        counterfactual_coverage=counterfactual_coverage(sample, twins, config, data_features))


def _expected(expected: Mapping[str, Sequence[str]] | None, sample: pd.DataFrame,
              features: Sequence[str]) -> dict[str, list[str]]:
    out = {f: sorted(map(str, sample[f].unique())) for f in features if f in sample.columns}
    for f, groups in (expected or {}).items():
        if f in out:
            out[f] = sorted(set(out[f]) | set(map(str, groups)))
    return out


def _with_absent(groups: Mapping[str, Mapping[str, int]],
                 expected: Mapping[str, Sequence[str]] | None) -> dict[str, dict[str, int]]:
    """Group sizes in the audit sample, with 0 for the data's groups that the sample lacks."""
    out = {f: dict(g) for f, g in groups.items()}
    for f, names in (expected or {}).items():
        if f in out:
            for name in names:
                out[f].setdefault(str(name), 0)
    return out
