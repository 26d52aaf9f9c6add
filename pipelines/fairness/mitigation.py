"""Mitigation by per-group thresholds: fairlearn's ``ThresholdOptimizer`` on a model's own scores.

:func:`fit_thresholds` fits fairlearn's ``ThresholdOptimizer`` (``prefit=True``) on a
variant's validation scores, with the score itself as the prefit estimator's output,
so the post-processed rule is a function of (score, group) only: per group, "predict
1 when ``score > t0``" with probability ``p0`` and "``score > t1``" with probability
``p1`` (and, for equalized odds, a constant coin with probability ``p_ignore``).
:class:`ThresholdPolicy` holds that rule; :meth:`ThresholdPolicy.predict` applies it
through fairlearn's own ``predict`` with a seeded ``random_state`` (reproducible), and
:meth:`ThresholdPolicy.probability` gives each row's probability of a 1 (the
draw-free view). :func:`evaluate_mitigation` evaluates the deployed variant and its
mitigated twin together with :func:`pipelines.fairness.evaluate_fairness`, so the
twin gets the same metrics, intervals and gates, and ``twin - deployed`` is a paired
comparison on the same bootstrap resamples.

Examples
--------
>>> import numpy as np
>>> scores = np.array([0.1, 0.4, 0.6, 0.9, 0.2, 0.5, 0.7, 0.8])
>>> labels = np.array([0, 0, 1, 1, 0, 1, 0, 1])
>>> groups = np.array(["a"] * 4 + ["b"] * 4)
>>> policy = fit_thresholds(scores=scores, labels=labels, groups=groups, constraint="demographic_parity",
...                         objective="accuracy")
>>> {g: r["rule"] for g, r in policy.describe().items()}
{'a': 'score > 0.5000 (p=1.000)', 'b': 'score > 0.7500 (p=0.500); score > 0.3500 (p=0.500)'}
>>> policy.probability(scores=scores, groups=groups).tolist()  # group b: 0.5 and 0.7 get a coin
[0.0, 0.0, 1.0, 1.0, 0.0, 0.5, 0.5, 1.0]
>>> policy.predict(scores=scores, groups=groups, seed=0).tolist()
[0, 0, 1, 1, 0, 0, 1, 1]
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from pipelines.config.evaluation import COUNTERFACTUAL_METRICS, EXPOSURE_METRICS, EvaluationConfig, GateRule
from pipelines.config.mitigation import OBJECTIVES
from pipelines.fairness import FairnessResult, counted, disparity_arrays, evaluate_fairness, verdict
from pipelines.fairness._tradeoff import point_on, sweep

__all__ = [
    "MITIGATION_CAVEAT",
    "ThresholdPolicy",
    "fit_thresholds",
    "validation_problems",
    "mitigation_gates",
    "evaluate_mitigation",
    "merge_results",
    "point_estimates",
    "sweep",
    "point_on",
    "mitigated_gate_records",
    "NOT_REEVALUATED_METRICS",
]

#: Gate metrics that the mitigation does not re-evaluate: thresholds do not change what a retriever
#: shows, and a counterfactual twin's group (whose thresholds apply to it) is not defined.
NOT_REEVALUATED_METRICS: frozenset[str] = frozenset(
    COUNTERFACTUAL_METRICS + EXPOSURE_METRICS
    + ("flip_rate_difference", "same_group_share_difference", "stereotype_share_difference"))

#: What every report of per-group thresholds must say (the report and docs/mitigation.md show it).
MITIGATION_CAVEAT = (
    "Per-group thresholds need each example's group at prediction time: the deployed system would have to "
    "collect, store and use the sensitive attribute to decide. Deciding differently by a protected attribute can "
    "be unlawful disparate treatment in some jurisdictions and domains (for example employment, credit and "
    "housing), even when it narrows a gap, and processing such data needs a legal basis (e.g. special-category "
    "data under the GDPR). In practice the attribute is often missing, self-reported or inferred, and inferring "
    "it adds its own errors and harms; fairlearn's rule also randomizes, so two examples with the same score "
    "and group can get different decisions; and thresholds fitted on a small validation sample may not carry "
    "over to new data. Read these numbers as what the gap is made of and what closing it would cost, not as a "
    "ready fix: get legal and domain review before deploying group-specific thresholds."
)

MSG_DEGENERATE = (
    "{where}: group {group!r} of `{feature}` has {positives} positive and {negatives} negative label(s) in the "
    "validation sample; fairlearn's ThresholdOptimizer needs both in every group. {advice}"
)
MSG_SMALL = (
    "{where}: group {group!r} of `{feature}` has {rows} validation row(s) ({positives} positive, {negatives} "
    "negative), fewer than {what}: its thresholds rest on too few examples. {advice}"
)
MSG_UNSEEN = (
    "{where}: group(s) {groups} of `{feature}` are in the audit sample but not in the validation sample, so "
    "they have no thresholds. {advice}"
)


class _ScoreColumn:
    """A prefit "estimator" whose prediction is its input's one column: the model's own score."""

    def __sklearn_is_fitted__(self) -> bool:  # prefit: there is nothing to fit
        return True

    def fit(self, X: Any, y: Any = None) -> "_ScoreColumn":
        return self

    def predict(self, X: Any) -> np.ndarray:
        return np.asarray(X, dtype=np.float64).reshape(len(X), -1)[:, 0]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {}


#: Probabilities below this print as 0.000: the readable rule leaves such branches out (the numbers keep them).
_SHOWN = 0.0005


def _rule_text(p0: float, op0: Any, p1: float, op1: Any) -> str:
    def one(op: Any) -> str:
        t = float(op.threshold)
        if math.isinf(t):
            return "everyone" if (t < 0) == (op.operator == ">") else "no one"
        return f"score {op.operator} {t:.4f}"

    parts = [f"{one(op)} (p={p:.3f})" for p, op in ((p0, op0), (p1, op1)) if p >= _SHOWN]
    return "; ".join(parts) if parts else "no one"


@dataclass(frozen=True)
class ThresholdPolicy:
    """A fitted per-group threshold rule (fairlearn's ``ThresholdOptimizer``, prefit on scores)."""

    constraint: str
    objective: str
    optimizer: Any

    @property
    def rules(self) -> dict[str, Any]:
        """fairlearn's per-group interpolation: ``p0``, ``operation0``, ``p1``, ``operation1`` (and
        ``p_ignore``, ``prediction_constant`` for equalized odds)."""
        return dict(self.optimizer.interpolated_thresholder_.interpolation_dict)

    def describe(self) -> dict[str, dict[str, Any]]:
        """The rule per group as JSON-ready numbers, plus a readable ``rule``."""
        out = {}
        for g, r in self.rules.items():
            out[str(g)] = {
                "p0": float(r.p0), "operator0": r.operation0.operator, "threshold0": float(r.operation0.threshold),
                "p1": float(r.p1), "operator1": r.operation1.operator, "threshold1": float(r.operation1.threshold),
                "p_ignore": float(r.get("p_ignore", 0.0)),
                "prediction_constant": float(r["prediction_constant"]) if "prediction_constant" in r else None,
                "rule": _rule_text(float(r.p0), r.operation0, float(r.p1), r.operation1)
                + (f"; overridden with p={float(r.p_ignore):.3f} by a coin with P(1)={float(r.prediction_constant):.3f}"
                   if float(r.get("p_ignore", 0.0)) >= _SHOWN else ""),
            }
        return out

    def probability(self, *, scores: np.ndarray, groups: np.ndarray) -> np.ndarray:
        """Each row's probability of a 1 under the rule (fairlearn's formula; 0 for a group without a rule)."""
        s = np.asarray(scores, dtype=np.float64)
        g = np.asarray(groups).astype(str)
        out = np.zeros(len(s))
        for name, r in self.rules.items():
            mask = g == str(name)
            p = r.p0 * r.operation0(s[mask]) + r.p1 * r.operation1(s[mask])
            if "p_ignore" in r:
                p = r.p_ignore * r.prediction_constant + (1 - r.p_ignore) * p
            out[mask] = p
        return out

    def predict(self, *, scores: np.ndarray, groups: np.ndarray, seed: int) -> np.ndarray:
        """0/1 decisions through fairlearn's ``predict`` with ``random_state=seed``: one uniform draw per row,
        in the order given (callers sort rows by ``example_id`` first)."""
        X = np.asarray(scores, dtype=np.float64).reshape(-1, 1)
        return np.asarray(self.optimizer.predict(X, sensitive_features=np.asarray(groups).astype(str),
                                                 random_state=int(seed)), dtype=np.int64)


def fit_thresholds(*, scores: np.ndarray, labels: np.ndarray, groups: np.ndarray, constraint: str, objective: str,
                   grid_size: int = 1000) -> ThresholdPolicy:
    """Fit fairlearn's ``ThresholdOptimizer`` on scores (prefit; the score is the estimator's output).

    Parameters
    ----------
    scores, labels, groups
        One entry per validation row: the variant's score, the 0/1 label, the group.
    constraint
        A fairlearn constraint, e.g. ``equalized_odds`` or ``demographic_parity``.
    objective
        ``accuracy`` or ``balanced_accuracy``.
    grid_size
        fairlearn's ``grid_size``.

    Raises
    ------
    ValueError
        From fairlearn, e.g. for a group with only one label (callers check first:
        :func:`validation_problems`).
    """
    import warnings

    from fairlearn.postprocessing import ThresholdOptimizer

    X = np.asarray(scores, dtype=np.float64).reshape(-1, 1)
    optimizer = ThresholdOptimizer(estimator=_ScoreColumn(), constraints=constraint,
                                   objective=OBJECTIVES[objective][0], grid_size=grid_size, prefit=True,
                                   predict_method="predict")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        optimizer.fit(X, np.asarray(labels, dtype=np.int64), sensitive_features=np.asarray(groups).astype(str))
    return ThresholdPolicy(constraint=constraint, objective=objective, optimizer=optimizer)


def validation_problems(*, groups: Sequence[Any], labels: Sequence[int], feature: str, min_group_size: int,
                        min_class_count: int, split_groups: Mapping[str, int] | None, where: str,
                        split_rows: int | None, audit_groups: Sequence[Any] = ()) -> tuple[list[str], list[str]]:
    """Check the validation sample's groups before fitting: ``(errors, warnings)``, each message saying how
    many validation rows would be needed.

    A group with one label only, or an audit group missing from validation, is an error
    (no thresholds can be fitted); a group smaller than ``min_group_size`` or with fewer
    than ``min_class_count`` positives or negatives is a warning.
    """
    frame = pd.DataFrame({"g": np.asarray(groups).astype(str), "y": np.asarray(labels, dtype=np.int64)})
    counts = frame.groupby("g")["y"].agg(["size", "sum"])
    n = len(frame)
    advice = _rows_needed(counts, n, min_group_size=min_group_size, min_class_count=min_class_count,
                          split_groups=split_groups, split_rows=split_rows)
    errors, warns = [], []
    for g, row in counts.iterrows():
        rows, pos = int(row["size"]), int(row["sum"])
        neg = rows - pos
        kw = dict(where=where, group=g, feature=feature, rows=rows, positives=pos, negatives=neg, advice=advice)
        if pos == 0 or neg == 0:
            errors.append(MSG_DEGENERATE.format(**kw))
        elif rows < min_group_size:
            warns.append(MSG_SMALL.format(what=f"`evaluation.min_group_size` ({min_group_size})", **kw))
        elif min(pos, neg) < min_class_count:
            warns.append(MSG_SMALL.format(what=f"`evaluation.min_class_count` ({min_class_count}) of each label",
                                          **kw))
    unseen = sorted({str(g) for g in audit_groups} - set(counts.index))
    if unseen:
        errors.append(MSG_UNSEEN.format(where=where, groups=", ".join(map(repr, unseen)), feature=feature,
                                        advice=advice))
    return errors, warns


def _rows_needed(counts: pd.DataFrame, n: int, *, min_group_size: int, min_class_count: int,
                 split_groups: Mapping[str, int] | None, split_rows: int | None) -> str:
    """How many validation rows would give every group ``min_group_size`` rows and ``min_class_count`` of each
    label, assuming the sample keeps the groups' shares (it is stratified by label, not group)."""
    if n == 0:
        return "The validation sample is empty: set `data.split.validation_fraction` above 0."
    need = []
    for g, row in counts.iterrows():
        rows, pos = int(row["size"]), int(row["sum"])
        share = (split_groups[g] / split_rows) if split_groups and split_rows and g in split_groups else rows / n
        need.append(min_group_size / share)
        for k in (pos, rows - pos):
            if k > 0:
                need.append(min_class_count * n / k)
    needed = int(math.ceil(max(need)))
    text = f"About {needed} validation rows would be needed (`scoring.max_validation_rows`; the sample has {n})"
    if split_rows is not None and needed > split_rows:
        text += (f", more than the validation split's {split_rows} rows: raise `data.split.validation_fraction` "
                 "as well")
    return text + "."


def mitigation_gates(gates: Sequence[GateRule], *, variant: str, twin: str
                     ) -> tuple[tuple[GateRule, ...], list[int], list[int]]:
    """The evaluation's gates for a variant and its twin: ``(rules, their indices in gates, indices of gates
    not re-evaluated)``.

    A gate naming the variant applies to the twin too; gates on other variants are left
    out; counterfactual and retrieval gates are not re-evaluated
    (:data:`NOT_REEVALUATED_METRICS`).
    """
    kept, index, skipped = [], [], []
    for i, g in enumerate(gates):
        if g.variants and variant not in g.variants:
            continue
        if g.metric in NOT_REEVALUATED_METRICS:
            skipped.append(i)
            continue
        kept.append(g.model_copy(update={"variants": (variant, twin)}) if g.variants else g)
        index.append(i)
    return tuple(kept), index, skipped


def evaluate_mitigation(*, audit_sample: pd.DataFrame, predictions: pd.DataFrame, pairs: Sequence[tuple[str, str]],
                        config: EvaluationConfig, data_features: Sequence[str], seed: int,
                        expected_groups: Mapping[str, Sequence[str]] | None = None) -> FairnessResult:
    """Evaluate each deployed variant with its mitigated twin, exactly as the evaluate stage does.

    One :func:`~pipelines.fairness.evaluate_fairness` call per ``(variant, twin)`` pair,
    with ``baseline`` set to the variant (so the comparison is ``twin - variant``), the
    gates of :func:`mitigation_gates` and the evaluate stage's ``expected_groups`` (a
    group the data has but the audit sample lacks makes its gates ``not_evaluable``); the
    results are merged with :func:`merge_results`.
    """
    results = []
    for variant, twin in pairs:
        gates, index, _ = mitigation_gates(config.gates, variant=variant, twin=twin)
        cfg = config.model_copy(update={"baseline": variant, "gates": gates})
        rows = predictions[predictions["variant"].astype(str).isin([variant, twin])]
        result = evaluate_fairness(audit_sample=audit_sample, predictions=rows, config=cfg,
                                   data_features=data_features, seed=seed, variant_order=[variant, twin],
                                   expected_groups=expected_groups)
        # gate_index as in `evaluation.gates` (the evaluate stage's numbering), not in the filtered list
        table = result.gate_results.copy()
        table["gate_index"] = [index[int(i)] for i in table["gate_index"]]
        results.append(dataclasses.replace(result, gate_results=table))
    return merge_results(results)


def point_estimates(*, labels: Mapping[str, np.ndarray], y: np.ndarray, groups: np.ndarray, disparity: str
                    ) -> dict[str, dict[str, float | None]]:
    """Overall accuracy, balanced accuracy and one disparity per rule: point estimates for the trade-off sweep.

    The evaluation's own definitions, vectorized over many rules: a rate takes part in a
    disparity in every group where it has a trial (the selection rate in every group,
    TPR/FNR where the group has positives, FPR where it has negatives; the evaluation
    gives such rates exact intervals at any size), and the disparity is the library's
    :func:`~pipelines.fairness.disparity_arrays` (max - min over those groups). The
    mitigate stage's tests check that the deployed and the chosen rule get the evaluation's
    values.
    """
    names = list(labels)
    P = np.stack([np.asarray(labels[k], dtype=np.float64) for k in names])  # (rules, rows)
    y = np.asarray(y, dtype=np.float64)
    g = np.asarray(groups).astype(str)
    values: dict[str, list[np.ndarray]] = {m: [] for m in ("selection_rate", "tpr", "fpr", "fnr")}
    for name in sorted(set(g)):
        m = g == name
        n, pos = float(m.sum()), float(y[m].sum())
        neg = n - pos
        tp, fp = P[:, m] @ y[m], P[:, m] @ (1 - y[m])
        nan = np.full(len(names), np.nan)
        with np.errstate(divide="ignore", invalid="ignore"):
            values["selection_rate"].append((tp + fp) / n)
            values["tpr"].append(nan if pos == 0 else tp / pos)
            values["fnr"].append(nan if pos == 0 else 1 - tp / pos)
            values["fpr"].append(nan if neg == 0 else fp / neg)
    pos, neg = float(y.sum()), float((1 - y).sum())
    tp, fp = P @ y, P @ (1 - y)
    overall = {"selection_rate": (tp + fp) / len(y), "tpr": tp / pos, "fpr": fp / neg, "fnr": 1 - tp / pos}
    gaps = disparity_arrays({k: np.stack(v, axis=1) for k, v in values.items()}, overall)[disparity]
    accuracy = (tp + (neg - fp)) / len(y)
    balanced = 0.5 * tp / pos + 0.5 * (neg - fp) / neg
    return {k: {"accuracy": float(accuracy[i]), "balanced_accuracy": float(balanced[i]),
                disparity: float(gaps[i]) if np.isfinite(gaps[i]) else None} for i, k in enumerate(names)}


def merge_results(results: Sequence[FairnessResult]) -> FairnessResult:
    """One :class:`FairnessResult` from several evaluations of the same sample (tables stacked, variants and
    comparisons concatenated, notes de-duplicated, the verdict over every gate)."""
    if not results:
        raise ValueError("merge_results needs at least one FairnessResult.")
    first = results[0]
    update: dict[str, Any] = {}
    for f in dataclasses.fields(first):
        value = getattr(first, f.name)
        if isinstance(value, pd.DataFrame):
            parts = [getattr(r, f.name) for r in results]
            non_empty = [p for p in parts if not p.empty]
            update[f.name] = pd.concat(non_empty, ignore_index=True) if non_empty else value
        elif isinstance(value, tuple):
            update[f.name] = tuple(dict.fromkeys(x for r in results for x in getattr(r, f.name)))
    merged = dataclasses.replace(first, **update)
    gates = merged.gate_results.astype(object).where(merged.gate_results.notna(), None).to_dict("records")
    return dataclasses.replace(merged, verdict=verdict(counted(gates)))


def mitigated_gate_records(mitigation: Mapping[str, Any], deployed_gates: Sequence[Mapping[str, Any]]
                           ) -> list[Mapping[str, Any]]:
    """The gate results a run's verdict rests on, per ``mitigation["verdict_on"]``.

    ``deployed``: the deployed variants' gates; ``mitigated``: the twins' gates, plus the
    deployed gates that mitigation does not re-evaluate and those of variants left out of
    ``mitigation.variants``; ``both``: all of them. A variant whose thresholds could not be
    fitted (``not_mitigated``) has ``not_evaluable`` twin gates, which stand in for its
    deployed gates under ``mitigated``. Callers combine them with
    :func:`~pipelines.fairness.verdict` over :func:`~pipelines.fairness.counted`.
    """
    deployed = list(deployed_gates)
    on = mitigation.get("verdict_on", "deployed")
    twins = list(mitigation.get("twin_gates") or [])
    if on == "both":
        return deployed + twins
    if on == "mitigated":  # a variant that could not be mitigated has not-evaluable twin gates instead
        mitigated = set(mitigation.get("mitigated_variants") or []) | set(mitigation.get("not_mitigated") or {})
        skipped = {int(i) for i in mitigation.get("skipped_gate_indices") or []}
        kept = [g for g in deployed if g["variant"] not in mitigated or int(g["gate_index"]) in skipped]
        return twins + kept
    return deployed
