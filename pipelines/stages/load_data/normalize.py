"""Normalize raw rows into the audit table, counting every removed row by reason."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from pipelines.errors import DataError

__all__ = ["Removal", "normalize_labels", "add_derived_features", "drop_invalid_texts"]

REASON_LABEL_MISSING = "label_missing"
REASON_LABEL_OUT_OF_DOMAIN = "label_out_of_domain"
REASON_TEXT_MISSING = "text_missing"
REASON_TEXT_TOO_SHORT = "text_too_short"
REASON_DUPLICATE = "duplicate_text_in_group"

MSG_LABEL_DOMAIN = (
    "{path}: column {column!r} must hold labels in {expected}. Got {found} in {count} row(s) "
    "(first at row {row}). Map them with `data.file.positive_labels`/`negative_labels`, "
    "or set `data.file.drop_unlabelled: true` to remove and count them."
)


@dataclass
class Removal:
    """Rows removed from one source file, by reason, plus the label values removed."""

    file: str
    rows_read: int = 0
    reasons: Counter = field(default_factory=Counter)
    removed_label_values: Counter = field(default_factory=Counter)

    def as_dict(self, kept: int) -> dict[str, Any]:
        return {
            "rows_read": self.rows_read,
            "kept": kept,
            "removed": dict(sorted(self.reasons.items())),
            "removed_label_values": dict(sorted(self.removed_label_values.items())),
        }


def _canon(value: Any) -> str:
    """Canonical string for a label value: 1, 1.0, '1' and ' 1 ' are the same label."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if number.is_integer() else text


def normalize_labels(
    raw: pd.Series,
    *,
    positive: Iterable[Any],
    negative: Iterable[Any],
    removal: Removal,
    column: str,
    path: Path | str,
    drop_unlabelled: bool,
) -> pd.Series:
    """Map raw labels to 1/0; unmapped values become <NA> (dropped and counted) or raise."""
    pos = {_canon(v) for v in positive}
    neg = {_canon(v) for v in negative}
    canon = raw.map(_canon)
    labels = pd.Series(pd.NA, index=raw.index, dtype="Int64")
    labels[canon.isin(pos)] = 1
    labels[canon.isin(neg)] = 0
    missing = canon == ""
    out_of_domain = labels.isna() & ~missing
    if not drop_unlabelled and (missing.any() or out_of_domain.any()):
        bad = canon[labels.isna()]
        values = Counter(v if v else "<empty>" for v in bad)
        first_row = int(bad.index[0]) + 2  # header is line 1 of a CSV
        raise DataError(
            MSG_LABEL_DOMAIN.format(
                path=path, column=column, expected=sorted(pos | neg),
                found=", ".join(f"{k!r} x{n}" for k, n in values.most_common(5)),
                count=int(labels.isna().sum()), row=first_row,
            )
        )
    removal.reasons[REASON_LABEL_MISSING] += int(missing.sum())
    removal.reasons[REASON_LABEL_OUT_OF_DOMAIN] += int(out_of_domain.sum())
    removal.removed_label_values.update(canon[out_of_domain].tolist())
    return labels


def drop_invalid_texts(frame: pd.DataFrame, *, removal: Removal, min_chars: int, dedupe_by: list[str]) -> pd.DataFrame:
    """Remove empty/short texts and exact duplicates within the same group (counted)."""
    text = frame["text"].fillna("").astype(str).str.strip()
    frame = frame.assign(text=text)
    empty = text == ""
    removal.reasons[REASON_TEXT_MISSING] += int(empty.sum())
    short = ~empty & (text.str.len() < min_chars)
    removal.reasons[REASON_TEXT_TOO_SHORT] += int(short.sum())
    frame = frame[~(empty | short)]
    dup = frame.duplicated(subset=["text", *dedupe_by], keep="first")
    removal.reasons[REASON_DUPLICATE] += int(dup.sum())
    return frame[~dup]


def add_derived_features(frame: pd.DataFrame) -> pd.DataFrame:
    """Length features that matter for text models: characters and whitespace tokens."""
    text = frame["text"].astype(str)
    return frame.assign(
        n_chars=text.str.len().astype("int64"),
        n_tokens=text.str.split().str.len().fillna(0).astype("int64"),
    )
