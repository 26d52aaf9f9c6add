"""Counterfactual flips and retrieval exposure: ratios of sums per group, with a cluster bootstrap."""

from __future__ import annotations

import zlib
from typing import Any, Sequence

import pandas as pd

from pipelines.errors import DataError
from pipelines.fairness._inputs import (
    MSG_DUPLICATES,
    MSG_UNKNOWN_IDS,
    RETRIEVAL_COLUMNS,
    TWIN_PREDICTION_COLUMNS,
    check_binary,
    check_probabilities,
    require,
)
from pipelines.fairness._ratios import grouped_ratios
from pipelines.fairness._sliced import SlicedSettings

__all__ = ["counterfactual_records", "exposure_records", "counterfactual_coverage", "seed_key"]


def seed_key(*parts: str) -> int:
    return zlib.crc32("/".join(parts).encode())


def counterfactual_records(*, predictions: pd.DataFrame, twin_predictions: pd.DataFrame, sample: pd.DataFrame,
                           settings: SlicedSettings, comparisons: Sequence[tuple[str, str]] = ()
                           ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Flip rate and mean |delta score| of twins vs originals, per variant, mode and group.

    For a variant with both ``full`` and ``query_only`` twins the paired difference
    ``full - query_only`` (same twins) is reported as mode ``full_minus_query_only``.

    Returns ``(records, comparison records)``: for each pair ``(a, b)`` of
    ``comparisons``, the paired difference ``a - b`` over the twins both variants
    scored in mode ``full`` (``kind`` ``"counterfactual"``, with ``a`` and ``b``).
    """
    require("twin_predictions", twin_predictions, TWIN_PREDICTION_COLUMNS)
    if twin_predictions.empty:
        return [], []
    check_probabilities("twin_predictions", twin_predictions, "score")
    check_binary("twin_predictions", twin_predictions, "predicted_label")
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
            settings=settings, seed_key=(seed_key("cf", variant, mode),), differences=("flip_rate",),
            proportions={"flip_rate": "binomial"}, variant=variant, mode=mode)
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
            settings=settings, seed_key=(seed_key("cfdiff", variant),), variant=variant,
            mode="full_minus_query_only")
    compared: list[dict[str, Any]] = []
    full = tp[tp["mode"] == "full"]
    cols = ["twin_id", "flip", "abs_delta"]
    for a, b in comparisons:
        paired = full[full["variant"] == a][cols + list(settings.features)].merge(
            full[full["variant"] == b][cols], on="twin_id", suffixes=("", "_b"))
        if paired.empty:
            continue
        compared += grouped_ratios(
            sensitive=paired,
            numerators={"flip_rate": (paired["flip"] - paired["flip_b"]).to_numpy(),
                        "mean_abs_delta": (paired["abs_delta"] - paired["abs_delta_b"]).to_numpy()},
            settings=settings, seed_key=(seed_key("cfcompare", a, b),), a=a, b=b, kind="counterfactual")
    return records, compared


def exposure_records(*, retrievals: pd.DataFrame, sample: pd.DataFrame, feature: str,
                     settings: SlicedSettings) -> list[dict[str, Any]]:
    """Per query group: share of retrieved documents about the same group, and share labelled 1.

    Ratios of sums over the retrieved documents of a group's queries (documents with a
    missing ``doc_group`` / ``doc_label`` are left out of that share); CIs resample
    whole queries, stratified by group.
    """
    require("retrievals", retrievals, RETRIEVAL_COLUMNS)
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
            settings=settings, seed_key=(seed_key("exposure", variant),),
            differences=("same_group_share", "stereotype_share"),
            proportions={"same_group_share": "clustered", "stereotype_share": "clustered"}, variant=variant)
    return records


def counterfactual_coverage(sample: pd.DataFrame, twins: pd.DataFrame | None, config: Any,
              data_features: Sequence[str]) -> dict[str, Any] | None:
    if twins is None:
        return None
    feature = config.counterfactual.feature_for(tuple(data_features))
    if feature not in sample.columns:
        return None
    require("twins", twins, ["twin_id", "example_id"])
    has_twin = sample["example_id"].isin(set(twins["example_id"].astype(str)))
    groups = {}
    for g, part in sample.groupby(sample[feature].astype(str), sort=True):
        n = int(len(part))
        k = int(has_twin[part.index].sum())
        groups[g] = {"examples": n, "twins": k, "coverage": k / n if n else 0.0}
    n = int(len(sample))
    return {"feature": feature, "examples": n, "twins": int(has_twin.sum()),
            "coverage": float(has_twin.mean()) if n else 0.0, "groups": groups}
