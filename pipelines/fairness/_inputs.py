"""Checks of the evaluation's input tables against their contract (one error per problem, naming table and column)."""

from __future__ import annotations

from typing import Sequence

import pandas as pd

from pipelines.errors import DataError

__all__ = [
    "validate_predictions",
    "require",
    "check_probabilities",
    "check_binary",
    "PREDICTION_COLUMNS",
    "TWIN_PREDICTION_COLUMNS",
    "RETRIEVAL_COLUMNS",
    "MSG_MISSING_COLUMN",
    "MSG_NOT_COVERED",
    "MSG_UNKNOWN_IDS",
    "MSG_DUPLICATES",
    "MSG_SCORE_RANGE",
    "MSG_BINARY",
    "MSG_NO_VARIANTS",
]

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


def require(table: str, frame: pd.DataFrame, columns: Sequence[str]) -> None:
    for c in columns:
        if c not in frame.columns:
            raise DataError(MSG_MISSING_COLUMN.format(table=table, column=c, expected=list(columns),
                                                      found=list(map(str, frame.columns))))


def check_probabilities(table: str, frame: pd.DataFrame, column: str) -> None:
    s = pd.to_numeric(frame[column], errors="coerce")
    if s.isna().any() or (len(s) and (s.min() < 0 or s.max() > 1)):
        raise DataError(MSG_SCORE_RANGE.format(table=table, column=column, low=s.min(), high=s.max()))


def check_binary(table: str, frame: pd.DataFrame, column: str) -> None:
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
    require("audit_sample", audit_sample, ["example_id", "label", *features])
    check_binary("audit_sample", audit_sample, "label")
    require("predictions", predictions, PREDICTION_COLUMNS)
    if predictions.empty:
        raise DataError(MSG_NO_VARIANTS.format(table="predictions"))
    check_probabilities("predictions", predictions, "score")
    check_binary("predictions", predictions, "predicted_label")
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


