"""The mitigate stage: what per-group thresholds would buy, for each variant (see ``docs/mitigation.md``).

For each variant (``mitigation.variants``; all by default):

1. fairlearn's ``ThresholdOptimizer`` is fitted on the variant's validation scores
   (``predict.validation_predictions``: the calibrated ``score``, the label and the group of
   ``mitigation.feature``), prefit, with ``mitigation.constraint`` and ``mitigation.objective``;
   validation groups that are too small are a warning or an error saying how many rows
   are needed (``mitigation.on_small_groups``). A variant whose thresholds cannot be
   fitted at all (a validation group with one label only, or an audit group missing from
   validation) is not mitigated: the reason is logged and kept in ``not_mitigated``, its
   twin's gates are ``not_evaluable`` with that reason, and the run goes on (the verdict is
   the deployed variants' by default; ``on_small_groups: error`` stops the run instead);
2. the rule is applied to the audit sample: the same scores as the deployed variant,
   decisions from fairlearn's ``predict`` with ``random_state`` = the audit's ``seed``,
   one draw per row in ``example_id`` order; the result is the twin ``<variant>+thresholds``;
3. the variant and its twin are evaluated together by the fairness library, exactly like
   the evaluate stage (same metrics, bootstrap intervals and gates; the comparison
   ``twin - variant`` is paired);
4. a tolerance sweep of deterministic per-group thresholds gives the trade-off between
   the objective and the constrained gap, with the deployed rule, one objective-optimal
   threshold for everyone, and fairlearn's exact rule (the chosen point).
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import pandas as pd

from pipelines.config.mitigation import TWIN_SUFFIX_MITIGATED
from pipelines.core.runner import StageContext
from pipelines.core.tables import require_columns
from pipelines.errors import DataError
from pipelines.fairness import NOT_EVALUABLE, FairnessResult
from pipelines.fairness.mitigation import (
    MITIGATION_CAVEAT,
    NOT_REEVALUATED_METRICS,
    evaluate_mitigation,
    fit_thresholds,
    mitigation_gates,
    point_estimates,
    point_on,
    sweep,
    validation_problems,
)

__all__ = ["mitigate", "MITIGATION_ARTIFACTS", "MITIGATED_COLUMNS", "TRADEOFF_COLUMNS"]

#: The stage's own artifacts (besides the FairnessResult's).
MITIGATION_ARTIFACTS = ("mitigation", "mitigated_predictions", "tradeoff")
MITIGATED_COLUMNS = ("variant", "source_variant", "example_id", "score", "predicted_label", "positive_probability")
TRADEOFF_COLUMNS = ("variant", "point", "kind", "tolerance", "feasible", "chosen", "validation_objective",
                    "validation_gap", "audit_accuracy", "audit_objective", "audit_gap", "thresholds")
DRAW_RULE = ("fairlearn ThresholdOptimizer.predict(random_state=seed): one uniform draw per audit row, rows in "
             "example_id order; positive_probability is each row's probability of a 1 (the draw-free view)")


def _table(df: pd.DataFrame | None, name: str, columns: tuple[str, ...]) -> pd.DataFrame:
    if df is None:
        raise DataError(f"input `{name}` is missing.")
    require_columns(df.columns, f"input `{name}`", {c: "needed by the mitigate stage" for c in columns})
    return df


def _aligned(predictions: pd.DataFrame, variant: str, ids: pd.Series) -> pd.DataFrame:
    part = predictions[predictions["variant"].astype(str) == variant].copy()
    part["example_id"] = part["example_id"].astype(str)
    part = part.drop_duplicates("example_id").set_index("example_id")
    missing = [e for e in ids if e not in part.index]
    if missing:
        raise DataError(f"input `predictions`: variant {variant!r} has no score for {len(missing)} audit example(s) "
                        f"(e.g. {missing[:3]}); expected every variant to score the whole audit sample.")
    return part.loc[list(ids)]


def mitigate(ctx: StageContext, *, audit_sample: pd.DataFrame, predictions: pd.DataFrame,
             validation_predictions: pd.DataFrame, validation: pd.DataFrame | None = None,
             data_summary: dict[str, Any] | None = None) -> dict[str, Any]:
    """Fit, apply and evaluate per-group thresholds for every configured variant; sweep the trade-off.

    ``data_summary`` (optional) names every group the data has, as the evaluate stage reads it:
    a group the audit sample lacks makes its gates ``not_evaluable`` here too.
    """
    t_start = time.perf_counter()
    cfg = ctx.config
    m, ev = cfg.mitigation, cfg.evaluation
    data_features = tuple(cfg.data.sensitive_features)
    feature = m.feature_for(ev.features(data_features))
    _table(audit_sample, "audit_sample", ("example_id", "label", feature))
    _table(predictions, "predictions", ("variant", "example_id", "score", "predicted_label"))
    _table(validation_predictions, "validation_predictions", ("variant", "example_id", "label", "score", feature))
    sample = audit_sample.assign(example_id=audit_sample["example_id"].astype(str))
    sample = sample.sort_values("example_id", kind="stable").reset_index(drop=True)
    groups = sample[feature].astype(str).to_numpy()
    split_groups = split_rows = None
    if validation is not None and feature in validation.columns:
        split_groups = validation[feature].astype(str).value_counts().to_dict()
        split_rows = int(len(validation))

    deployed_frames, twin_frames, pairs, sweep_rows = [], [], [], []
    per_variant: dict[str, Any] = {}
    not_mitigated: dict[str, list[str]] = {}
    seconds = {"fit": 0.0, "sweep": 0.0}
    for v in m.variants_for(cfg.variant_names()):
        t0 = time.perf_counter()
        twin = v + TWIN_SUFFIX_MITIGATED
        val = validation_predictions[validation_predictions["variant"].astype(str) == v]
        if val.empty:
            raise DataError(f"input `validation_predictions`: no validation scores for variant {v!r}; the thresholds "
                            "are fitted on them (is `data.split.validation_fraction` 0?).")
        val_y = val["label"].astype(np.int64).to_numpy()
        val_g = val[feature].astype(str).to_numpy()
        val_s = val["score"].astype(np.float64).to_numpy()
        errors, warns = validation_problems(
            groups=val_g, labels=val_y, feature=feature, min_group_size=ev.min_group_size,
            min_class_count=ev.min_class_count, split_groups=split_groups, split_rows=split_rows,
            where=f"mitigation of variant {v!r}", audit_groups=sorted(set(groups)))
        if m.on_small_groups == "error" and (errors or warns):
            raise DataError(" | ".join(errors + warns))
        for w in warns:
            ctx.log.warning("%s", w)
        validation_counts = {
            "rows": int(len(val)), "positives": int(val_y.sum()),
            "groups": {g: {"rows": int((val_g == g).sum()), "positives": int(val_y[val_g == g].sum())}
                       for g in sorted(set(val_g))}}
        if errors:  # no thresholds can be fitted for this variant: say so, and gate its twin as not evaluable
            for e in errors:
                ctx.log.warning("%s (variant %r is not mitigated; the run goes on)", e, v)
            not_mitigated[v] = errors
            per_variant[v] = {"twin": twin, "not_mitigated": errors, "validation": validation_counts,
                              "warnings": warns}
            seconds["fit"] += time.perf_counter() - t0
            continue
        policy = fit_thresholds(scores=val_s, labels=val_y, groups=val_g, constraint=m.constraint,
                                objective=m.objective, grid_size=m.grid_size)
        deployed = _aligned(predictions, v, sample["example_id"])
        scores = deployed["score"].astype(np.float64).to_numpy()
        labels = policy.predict(scores=scores, groups=groups, seed=ctx.seed)
        twin_frames.append(pd.DataFrame({
            "variant": twin, "source_variant": v, "example_id": sample["example_id"].to_numpy(), "score": scores,
            "predicted_label": labels, "positive_probability": policy.probability(scores=scores, groups=groups),
            feature: groups}))
        deployed_frames.append(pd.DataFrame({"variant": v, "example_id": sample["example_id"].to_numpy(),
                                             "score": scores,
                                             "predicted_label": deployed["predicted_label"].astype(np.int64)
                                             .to_numpy()}))
        pairs.append((v, twin))
        seconds["fit"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        points = _points(v, policy, val_s, val_y, val_g, deployed, scores, groups, labels, m)
        seconds["sweep"] += time.perf_counter() - t0
        for i, pt in enumerate(points):
            pt["variant"], pt["point"] = v, f"{v} #{i}"
        sweep_rows += points
        per_variant[v] = {
            "twin": twin,
            "policy": policy.describe(),
            "validation": validation_counts,
            "warnings": warns,
        }

    t0 = time.perf_counter()
    if pairs:
        both = pd.concat(deployed_frames + [f[["variant", "example_id", "score", "predicted_label"]]
                                            for f in twin_frames], ignore_index=True)
        features = ((data_summary or {}).get("splits", {}).get("all", {}).get("features")) or {}
        result = evaluate_mitigation(audit_sample=sample, predictions=both, pairs=pairs, config=ev,
                                     data_features=data_features, seed=ctx.seed,
                                     expected_groups={f: sorted(g) for f, g in features.items()})
    else:  # no variant could be mitigated: an empty result, the reasons in `not_mitigated`
        result = FairnessResult.from_records(
            records={}, variants=(), comparisons=(), settings={}, examples=int(len(sample)), groups={},
            notes=("no variant could be mitigated: see mitigation.json `not_mitigated`",),
            counterfactual_coverage=None)
    seconds["evaluate"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    tradeoff = _tradeoff_table(sweep_rows, y=sample["label"].astype(np.int64).to_numpy(), groups=groups, ctx=ctx)
    seconds["sweep"] += time.perf_counter() - t0
    seconds["total"] = time.perf_counter() - t_start
    skipped = [i for i, g in enumerate(ev.gates) if g.metric in NOT_REEVALUATED_METRICS]
    twins = {t for _, t in pairs}
    mitigation = {
        "settings": {"constraint": m.constraint, "objective": m.objective, "feature": feature,
                     "gap_metric": m.gap_metric, "objective_metric": m.objective_metric, "grid_size": m.grid_size,
                     "tolerances": list(m.tolerances), "seed": ctx.seed, "draws": DRAW_RULE,
                     "score": "the variant's calibrated score (predictions.score), the input of its deployed threshold",
                     "on_small_groups": m.on_small_groups},
        "verdict_on": m.verdict_on,
        "mitigated_variants": [v for v, _ in pairs],
        "variants": per_variant,
        "twin_gates": [{k: g[k] for k in ("gate", "gate_index", "variant", "metric", "feature", "group", "value",
                                          "ci_low", "ci_high", "status", "reason", "optional")}
                       for g in result.estimates("gate_results") if g["variant"] in twins]
        + [rec for v, why in not_mitigated.items() for rec in _unfitted_twin_gates(ev.gates, v, why)],
        "not_mitigated": not_mitigated,
        "skipped_gate_indices": skipped,
        "skipped_gates": [{"gate": ev.gates[i].label, "metric": ev.gates[i].metric,
                           "reason": "not re-evaluated: thresholds do not change retrieval, and a counterfactual "
                                     "twin's group (whose thresholds would apply) is not defined"} for i in skipped],
        "caveat": MITIGATION_CAVEAT,
        "seconds": {k: round(s, 3) for k, s in seconds.items()},
    }
    ctx.log.info("mitigation (%s, %s) of %d variant(s) in %.1f s", m.constraint, m.objective, len(pairs),
                 seconds["total"])
    return {**result.to_artifacts(), "mitigation": mitigation,
            "mitigated_predictions": pd.concat(twin_frames, ignore_index=True) if twin_frames
            else pd.DataFrame(columns=list(MITIGATED_COLUMNS)),
            "tradeoff": tradeoff}


def _unfitted_twin_gates(gates, variant: str, why: list[str]) -> list[dict[str, Any]]:
    """The twin gate results of a variant whose thresholds could not be fitted: each ``not_evaluable``, with why.

    Under ``mitigation.verdict_on: mitigated`` (or ``both``) they stand where the twin's
    gates would, so the verdict cannot pass on a mitigation that never ran.
    """
    rules, index, _ = mitigation_gates(gates, variant=variant, twin=variant + TWIN_SUFFIX_MITIGATED)
    reason = f"no per-group thresholds could be fitted for variant {variant!r}: " + " | ".join(why)
    return [{"gate": rule.label, "gate_index": i, "variant": variant + TWIN_SUFFIX_MITIGATED, "metric": rule.metric,
             "feature": rule.feature, "group": None, "value": None, "ci_low": None, "ci_high": None,
             "status": NOT_EVALUABLE, "reason": reason, "optional": bool(rule.optional)}
            for rule, i in zip(rules, index)]


def _points(v, policy, val_s, val_y, val_g, deployed, scores, groups, labels, m) -> list[dict[str, Any]]:
    """The deployed rule, fairlearn's rule (chosen) and the deterministic sweep, for one variant."""
    val_deployed = (val_s >= float(deployed["threshold"].iloc[0])).astype(np.int64) if "threshold" in deployed \
        else None
    out: list[dict[str, Any]] = []
    if val_deployed is not None:
        on = point_on(val_deployed, val_y, val_g, constraint=m.constraint, objective=m.objective)
        out.append({"kind": "deployed", "tolerance": None, "feasible": True, "chosen": False,
                    "thresholds": {g: float(deployed["threshold"].iloc[0]) for g in sorted(set(val_g))},
                    "validation_objective": on["objective"], "validation_gap": on["gap"],
                    "audit_labels": deployed["predicted_label"].astype(np.int64).to_numpy()})
    on = point_on(policy.probability(scores=val_s, groups=val_g), val_y, val_g, constraint=m.constraint,
                  objective=m.objective)
    out.append({"kind": "fairlearn", "tolerance": 0.0, "feasible": True, "chosen": True,
                "thresholds": {g: r["rule"] for g, r in policy.describe().items()},
                "validation_objective": on["objective"], "validation_gap": on["gap"], "audit_labels": labels})
    for pt in sweep(val_scores=val_s, val_labels=val_y, val_groups=val_g, audit_scores=scores, audit_groups=groups,
                    constraint=m.constraint, objective=m.objective, tolerances=m.tolerances):
        out.append({**pt, "chosen": False})
    return out


def _tradeoff_table(rows: list[dict[str, Any]], *, y: np.ndarray, groups: np.ndarray, ctx: StageContext
                    ) -> pd.DataFrame:
    """Every sweep point with its validation numbers and its audit-sample point estimates."""
    m = ctx.config.mitigation
    labels = {r["point"]: r["audit_labels"] for r in rows if r["audit_labels"] is not None}
    audit = point_estimates(labels=labels, y=y, groups=groups, disparity=m.gap_metric) if labels else {}
    out = []
    for r in rows:
        a = audit.get(r["point"], {})
        out.append({"variant": r["variant"], "point": r["point"], "kind": r["kind"], "tolerance": r["tolerance"],
                    "feasible": bool(r["feasible"]), "chosen": bool(r["chosen"]),
                    "validation_objective": r["validation_objective"], "validation_gap": r["validation_gap"],
                    "audit_accuracy": a.get("accuracy"), "audit_objective": a.get(m.objective_metric),
                    "audit_gap": a.get(m.gap_metric), "thresholds": _thresholds_json(r["thresholds"])})
    frame = pd.DataFrame(out, columns=list(TRADEOFF_COLUMNS))
    for c in ("tolerance", "validation_objective", "validation_gap", "audit_accuracy", "audit_objective",
              "audit_gap"):
        frame[c] = frame[c].astype(np.float64)
    for c in ("feasible", "chosen"):  # bool already, unless no variant could be mitigated (no rows)
        frame[c] = frame[c].astype(bool)
    return frame


def _thresholds_json(thresholds: dict[str, Any] | None) -> str | None:
    """Per-group thresholds as strict JSON (an infinite threshold selects everyone or no one)."""
    if not thresholds:
        return None
    def word(t: Any) -> Any:
        if isinstance(t, float) and np.isinf(t):
            return "no one" if t > 0 else "everyone"
        return t
    return json.dumps({str(g): word(t) for g, t in thresholds.items()}, sort_keys=True)
