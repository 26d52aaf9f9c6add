"""The whole fairness evaluation as one pure function over tables (no I/O, no clock)."""

from __future__ import annotations

import zlib
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from pipelines.errors import DataError
from pipelines.evaluation._gates import evaluate_gates, verdict
from pipelines.evaluation._sliced import SlicedSettings, grouped_ratios, sliced_evaluation
from pipelines.evaluation.config import EvaluationConfig

__all__ = [
    "evaluate_fairness",
    "validate_predictions",
    "counterfactual_records",
    "exposure_records",
    "SCHEMA_VERSION",
    "MSG_MISSING_COLUMN",
    "MSG_NOT_COVERED",
    "MSG_UNKNOWN_IDS",
    "MSG_DUPLICATES",
    "MSG_SCORE_RANGE",
    "MSG_BINARY",
    "MSG_NO_VARIANTS",
]

SCHEMA_VERSION = 1

MSG_MISSING_COLUMN = "{table}: column {column!r} is missing; expected columns {expected}. Found {found}."
MSG_NOT_COVERED = (
    "{table}: variant {variant!r} has no prediction for {count} example(s) of audit_sample (e.g. {examples}); "
    "every variant must score exactly the audit sample."
)
MSG_UNKNOWN_IDS = "{table}: {count} example_id(s) are not in audit_sample (e.g. {examples})."
MSG_DUPLICATES = "{table}: {count} duplicate rows for the key ({key}) (e.g. {examples}); expected one row per key."
MSG_SCORE_RANGE = "{table}: column {column!r} must hold probabilities in [0, 1]. Found values from {low} to {high}."
MSG_BINARY = "{table}: column {column!r} must hold 0/1. Found values {found}."
MSG_NO_VARIANTS = "{table}: no rows; expected predictions of at least one variant."

PREDICTION_COLUMNS = ("variant", "example_id", "score", "predicted_label")
TWIN_PREDICTION_COLUMNS = ("variant", "mode", "twin_id", "example_id", "score", "predicted_label")
RETRIEVAL_COLUMNS = ("variant", "example_id", "doc_group", "doc_label")


def _require(table: str, frame: pd.DataFrame, columns: Sequence[str]) -> None:
    for c in columns:
        if c not in frame.columns:
            raise DataError(MSG_MISSING_COLUMN.format(table=table, column=c, expected=list(columns),
                                                      found=list(map(str, frame.columns))))


def _check_prob(table: str, frame: pd.DataFrame, column: str) -> None:
    s = pd.to_numeric(frame[column], errors="coerce")
    if s.isna().any() or (len(s) and (s.min() < 0 or s.max() > 1)):
        raise DataError(MSG_SCORE_RANGE.format(table=table, column=column, low=s.min(), high=s.max()))


def _check_binary(table: str, frame: pd.DataFrame, column: str) -> None:
    values = set(pd.unique(frame[column]))
    if not values <= {0, 1, True, False}:
        raise DataError(MSG_BINARY.format(table=table, column=column, found=sorted(map(repr, values))[:10]))


def validate_predictions(*, audit_sample: pd.DataFrame, predictions: pd.DataFrame, features: Sequence[str]) -> list[str]:
    """Check the inputs against the contract; return the variant names in order of appearance.

    Raises
    ------
    DataError
        Naming the table, the column, what was expected and what was found.
    """
    _require("audit_sample", audit_sample, ["example_id", "label", *features])
    _check_binary("audit_sample", audit_sample, "label")
    _require("predictions", predictions, PREDICTION_COLUMNS)
    if predictions.empty:
        raise DataError(MSG_NO_VARIANTS.format(table="predictions"))
    _check_prob("predictions", predictions, "score")
    _check_binary("predictions", predictions, "predicted_label")
    dup = predictions.duplicated(["variant", "example_id"], keep=False)
    if dup.any():
        ex = predictions.loc[dup, ["variant", "example_id"]].head(3).to_dict("records")
        raise DataError(MSG_DUPLICATES.format(table="predictions", count=int(dup.sum()), key="variant, example_id",
                                              examples=ex))
    ids = set(audit_sample["example_id"].astype(str))
    unknown = sorted(set(predictions["example_id"].astype(str)) - ids)
    if unknown:
        raise DataError(MSG_UNKNOWN_IDS.format(table="predictions", count=len(unknown), examples=unknown[:3]))
    variants = list(dict.fromkeys(predictions["variant"].astype(str)))
    for v in variants:
        have = set(predictions.loc[predictions["variant"].astype(str) == v, "example_id"].astype(str))
        missing = sorted(ids - have)
        if missing:
            raise DataError(MSG_NOT_COVERED.format(table="predictions", variant=v, count=len(missing),
                                                   examples=missing[:3]))
    return variants


def _seed_key(*parts: str) -> int:
    return zlib.crc32("/".join(parts).encode())


def counterfactual_records(*, predictions: pd.DataFrame, twin_predictions: pd.DataFrame, sample: pd.DataFrame,
                           settings: SlicedSettings, comparison: tuple[str, str] | None = None
                           ) -> list[dict[str, Any]]:
    """Flip rate and mean |delta score| of twins vs originals, per variant, mode and group.

    For a variant with both ``full`` and ``query_only`` twins the paired difference
    ``full - query_only`` (same twins) is reported as mode ``full_minus_query_only``.
    With ``comparison=(a, b)`` the paired difference ``a - b`` over the twins both
    variants scored in mode ``full`` is added with ``variant`` ``"a - b"`` and
    ``kind`` ``"counterfactual"``.
    """
    _require("twin_predictions", twin_predictions, TWIN_PREDICTION_COLUMNS)
    if twin_predictions.empty:
        return []
    _check_prob("twin_predictions", twin_predictions, "score")
    _check_binary("twin_predictions", twin_predictions, "predicted_label")
    dup = twin_predictions.duplicated(["variant", "mode", "twin_id"], keep=False)
    if dup.any():
        raise DataError(MSG_DUPLICATES.format(table="twin_predictions", count=int(dup.sum()),
                                              key="variant, mode, twin_id",
                                              examples=twin_predictions.loc[dup, "twin_id"].head(3).tolist()))
    orig = predictions[["variant", "example_id", "score", "predicted_label"]].rename(
        columns={"score": "orig_score", "predicted_label": "orig_label"})
    tp = twin_predictions.astype({"variant": str, "example_id": str}).merge(
        orig.astype({"variant": str, "example_id": str}), on=["variant", "example_id"], how="left")
    lost = tp["orig_score"].isna()
    if lost.any():
        raise DataError(MSG_UNKNOWN_IDS.format(table="twin_predictions (no matching row in predictions)",
                                               count=int(lost.sum()), examples=tp.loc[lost, "example_id"].head(3).tolist()))
    feats = sample[["example_id", *settings.features]].astype({"example_id": str})
    tp = tp.merge(feats, on="example_id", how="left")
    unknown = tp[settings.features[0]].isna()
    if unknown.any():
        raise DataError(MSG_UNKNOWN_IDS.format(table="twin_predictions", count=int(unknown.sum()),
                                               examples=tp.loc[unknown, "example_id"].head(3).tolist()))
    # a fixed row order, so that the bootstrap (and its CIs) does not depend on the input's order
    tp = tp.sort_values(["variant", "mode", "twin_id"], kind="stable").reset_index(drop=True)
    tp["flip"] = (tp["predicted_label"].astype(int) != tp["orig_label"].astype(int)).astype(float)
    tp["delta"] = tp["score"].astype(float) - tp["orig_score"].astype(float)
    tp["abs_delta"] = tp["delta"].abs()
    records: list[dict[str, Any]] = []
    for (variant, mode), part in tp.groupby(["variant", "mode"], sort=True):
        records += grouped_ratios(
            sensitive=part, numerators={"flip_rate": part["flip"].to_numpy(),
                                        "mean_abs_delta": part["abs_delta"].to_numpy(),
                                        "mean_delta": part["delta"].to_numpy()},
            settings=settings, seed_key=(_seed_key("cf", variant, mode),), differences=("flip_rate",),
            variant=variant, mode=mode)
    for variant, part in tp.groupby("variant", sort=True):
        modes = set(part["mode"])
        if not {"full", "query_only"} <= modes:
            continue
        cols = ["twin_id", "flip", "abs_delta"]
        paired = part[part["mode"] == "full"][cols + list(settings.features)].merge(
            part[part["mode"] == "query_only"][cols], on="twin_id", suffixes=("", "_q"))
        if paired.empty:
            continue
        records += grouped_ratios(
            sensitive=paired, numerators={"flip_rate": (paired["flip"] - paired["flip_q"]).to_numpy(),
                                          "mean_abs_delta": (paired["abs_delta"] - paired["abs_delta_q"]).to_numpy()},
            settings=settings, seed_key=(_seed_key("cfdiff", variant),), variant=variant,
            mode="full_minus_query_only")
    if comparison is not None:
        a, b = comparison
        full = tp[tp["mode"] == "full"]
        cols = ["twin_id", "flip", "abs_delta"]
        paired = full[full["variant"] == a][cols + list(settings.features)].merge(
            full[full["variant"] == b][cols], on="twin_id", suffixes=("", "_b"))
        if not paired.empty:
            records += grouped_ratios(
                sensitive=paired,
                numerators={"flip_rate": (paired["flip"] - paired["flip_b"]).to_numpy(),
                            "mean_abs_delta": (paired["abs_delta"] - paired["abs_delta_b"]).to_numpy()},
                settings=settings, seed_key=(_seed_key("cfcompare", a, b),), variant=f"{a} - {b}", mode="full",
                kind="counterfactual")
    return records


def exposure_records(*, retrievals: pd.DataFrame, sample: pd.DataFrame, feature: str,
                     settings: SlicedSettings) -> list[dict[str, Any]]:
    """Per query group: share of retrieved documents about the same group, and share labelled 1.

    Ratios of sums over the retrieved documents of a group's queries (documents with a
    missing ``doc_group`` / ``doc_label`` are left out of that share); CIs resample
    whole queries, stratified by group.
    """
    _require("retrievals", retrievals, RETRIEVAL_COLUMNS)
    if retrievals.empty:
        return []
    r = retrievals.astype({"variant": str, "example_id": str}).merge(
        sample[["example_id", *settings.features]].astype({"example_id": str}), on="example_id", how="left")
    unknown = r[feature].isna()
    if unknown.any():
        raise DataError(MSG_UNKNOWN_IDS.format(table="retrievals", count=int(unknown.sum()),
                                               examples=r.loc[unknown, "example_id"].head(3).tolist()))
    has_group = r["doc_group"].notna()
    r["has_group"] = has_group.astype(float)
    r["same"] = (has_group & (r["doc_group"].astype(str) == r[feature].astype(str))).astype(float)
    label = pd.to_numeric(r["doc_label"], errors="coerce")
    r["has_label"] = label.notna().astype(float)
    r["stereo"] = (label == 1).astype(float)
    r["docs"] = 1.0
    per_query = r.groupby(["variant", "example_id"], sort=True)[
        ["same", "has_group", "stereo", "has_label", "docs"]].sum().reset_index()
    per_query = per_query.merge(sample[["example_id", *settings.features]], on="example_id", how="left")
    records: list[dict[str, Any]] = []
    for variant, part in per_query.groupby("variant", sort=True):
        records += grouped_ratios(
            sensitive=part,
            numerators={"same_group_share": part["same"].to_numpy(), "stereotype_share": part["stereo"].to_numpy(),
                        "docs_per_query": part["docs"].to_numpy()},
            denominators={"same_group_share": part["has_group"].to_numpy(),
                          "stereotype_share": part["has_label"].to_numpy()},
            settings=settings, seed_key=(_seed_key("exposure", variant),),
            differences=("same_group_share", "stereotype_share"), variant=variant)
    return records


def _cell(rec: Mapping[str, Any]) -> dict[str, Any]:
    return {k: rec.get(k) for k in ("value", "ci_low", "ci_high", "n", "status")}


def _nest(records: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for r in records:
        node = out
        for k in keys[:-1]:
            node = node.setdefault(str(r[k]), {})
        node[str(r[keys[-1]])] = _cell(r)
    return out


def evaluate_fairness(*, audit_sample: pd.DataFrame, predictions: pd.DataFrame, config: EvaluationConfig,
                      data_features: Sequence[str], seed: int, twins: pd.DataFrame | None = None,
                      twin_predictions: pd.DataFrame | None = None, retrievals: pd.DataFrame | None = None,
                      variant_order: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the whole evaluation; return the ``fairness`` JSON and the tidy tables.

    Returns
    -------
    dict
        ``fairness`` (dict) and the tables ``group_metrics``, ``disparities``,
        ``comparison``, ``counterfactual_metrics``, ``exposure_metrics`` and
        ``gate_results`` (DataFrames). See ``docs/evaluation.md``.
    """
    features = config.features(tuple(data_features))
    found = validate_predictions(audit_sample=audit_sample, predictions=predictions, features=features)
    order = [v for v in (variant_order or ()) if v in found]
    variants = order + [v for v in found if v not in order]
    comparison = config.comparison
    if comparison is not None and not all(v in variants for v in comparison):
        comparison = None
    if comparison is None and len(variants) >= 2:
        comparison = (variants[0], variants[1])
    bs = config.bootstrap
    settings = SlicedSettings(features=features, intersections=config.intersections,
                              min_group_size=config.min_group_size, min_class_count=config.min_class_count,
                              ece_bins=config.ece_bins, resamples=bs.resamples, level=bs.level, seed=seed,
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
                               sensitive=sample[list(features)], settings=settings, comparison=comparison)
    cf_records: list[dict[str, Any]] = []
    cf_compare: list[dict[str, Any]] = []
    if twin_predictions is not None:
        cf_all = counterfactual_records(predictions=preds, twin_predictions=twin_predictions, sample=sample,
                                        settings=settings, comparison=comparison)
        cf_records = [r for r in cf_all if r.get("kind") != "counterfactual"]
        cf_compare = [{k: v for k, v in r.items() if k not in ("variant", "mode")} for r in cf_all
                      if r.get("kind") == "counterfactual"]
    exposure: list[dict[str, Any]] = []
    if retrievals is not None:
        exposure = exposure_records(retrievals=retrievals, sample=sample, feature=features[0], settings=settings)
    coverage = _coverage(sample, twins, config, data_features)
    gate_results = evaluate_gates(
        config.gates,
        records={"group_metrics": sliced["group_metrics"], "bias_auc": sliced["bias_auc"],
                 "disparities": sliced["disparities"], "counterfactual": cf_records, "exposure": exposure},
        variants=variants, features=sliced["features"])
    final = verdict(g["status"] for g in gate_results)

    per_variant: dict[str, Any] = {}
    for v in variants:
        gm = [r for r in sliced["group_metrics"] if r["variant"] == v]
        bias = [r for r in sliced["bias_auc"] if r["variant"] == v]
        disp = [r for r in sliced["disparities"] if r["variant"] == v]
        cf = [r for r in cf_records if r["variant"] == v]
        ex = [r for r in exposure if r["variant"] == v]
        own_gates = [g["status"] for g in gate_results if g["variant"] == v]
        per_variant[v] = {
            "verdict": verdict(own_gates) if own_gates else None,
            "metrics": _nest(gm, ["feature", "group", "metric"]),
            "disparities": _nest([r for r in disp if r["metric"] != "final_bias_score"], ["feature", "metric"]),
            "bias_auc": {
                f: {"groups": _nest([r for r in bias if r["feature"] == f], ["group", "metric"]),
                    "final_bias_score": next((_cell(r) for r in disp if r["feature"] == f
                                              and r["metric"] == "final_bias_score"), None)}
                for f in sliced["features"]
            },
            "counterfactual": {
                "groups": _nest([r for r in cf if r["group"] is not None], ["mode", "feature", "group", "metric"]),
                "disparities": _nest([r for r in cf if r["group"] is None], ["mode", "feature", "metric"]),
            } if cf else None,
            "exposure": {
                "groups": _nest([r for r in ex if r["group"] is not None], ["feature", "group", "metric"]),
                "disparities": _nest([r for r in ex if r["group"] is None], ["feature", "metric"]),
            } if ex else None,
        }
    comp = sliced["comparison"] + cf_compare
    fairness = {
        "schema_version": SCHEMA_VERSION,
        "settings": {
            "features": sliced["features"], "intersections": config.intersections,
            "min_group_size": config.min_group_size, "min_class_count": config.min_class_count,
            "ece_bins": config.ece_bins, "bootstrap": {"resamples": bs.resamples, "level": bs.level,
                                                        "seed": seed, "stratified_by": list(features)},
            "bias_auc": config.bias_auc.model_dump(mode="json"),
        },
        "examples": sliced["n"],
        "groups": sliced["groups"],
        "notes": sliced["notes"],
        "variants_evaluated": variants,
        "variants": per_variant,
        "comparison": None if comparison is None else {
            "a": comparison[0], "b": comparison[1], "difference": "a - b",
            "agreement_rate": _nest([r for r in comp if r["kind"] == "agreement"], ["feature", "group"]),
            "metrics": _nest([r for r in comp if r["kind"] == "metric"], ["feature", "group", "metric"]),
            "disparities": _nest([r for r in comp if r["kind"] == "disparity"], ["feature", "metric"]),
            "counterfactual": _nest([r for r in comp if r["kind"] == "counterfactual" and r["group"] is not None],
                                    ["feature", "group", "metric"]),
        },
        "counterfactual_coverage": coverage,
        "gates": gate_results,
        "verdict": final,
    }
    table_cols = ["variant", "feature", "group", "metric", "value", "ci_low", "ci_high", "n", "status"]
    return {
        "fairness": fairness,
        "group_metrics": pd.DataFrame(sliced["group_metrics"] + sliced["bias_auc"], columns=table_cols),
        "disparities": pd.DataFrame(sliced["disparities"], columns=table_cols),
        "comparison": pd.DataFrame([{**r, "a": comparison[0], "b": comparison[1]} for r in comp] if comparison else [],
                                   columns=["a", "b", "kind", *table_cols[1:]]),
        "counterfactual_metrics": pd.DataFrame(cf_records, columns=["variant", "mode", *table_cols[1:]]),
        "exposure_metrics": pd.DataFrame(exposure, columns=table_cols),
        "gate_results": pd.DataFrame(gate_results, columns=[
            "gate", "gate_index", "variant", "metric", "feature", "group", "mode", "bound", "direction", "value",
            "ci_low", "ci_high", "n", "status", "reason"]),
    }


def _coverage(sample: pd.DataFrame, twins: pd.DataFrame | None, config: EvaluationConfig,
              data_features: Sequence[str]) -> dict[str, Any] | None:
    if twins is None:
        return None
    feature = config.counterfactual.feature_for(tuple(data_features))
    if feature not in sample.columns:
        return None
    _require("twins", twins, ["twin_id", "example_id"])
    has_twin = sample["example_id"].isin(set(twins["example_id"].astype(str)))
    groups = {}
    for g, part in sample.groupby(sample[feature].astype(str), sort=True):
        n = int(len(part))
        k = int(has_twin[part.index].sum())
        groups[g] = {"examples": n, "twins": k, "coverage": k / n if n else 0.0}
    n = int(len(sample))
    return {"feature": feature, "examples": n, "twins": int(has_twin.sum()),
            "coverage": float(has_twin.mean()) if n else 0.0, "groups": groups}
