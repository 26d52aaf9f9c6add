"""Normalize raw rows into the audit table, counting every removed row by reason."""

from __future__ import annotations

import functools
import re
import sys
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from pipelines.errors import DataError

__all__ = ["Removal", "normalize_labels", "add_derived_features", "drop_invalid_texts", "normalized_text",
           "drop_duplicate_texts", "NORMALIZATION"]

REASON_LABEL_MISSING = "label_missing"
REASON_LABEL_OUT_OF_DOMAIN = "label_out_of_domain"
REASON_TEXT_MISSING = "text_missing"
REASON_TEXT_TOO_SHORT = "text_too_short"
REASON_DUPLICATE = "duplicate_text_in_group"
REASON_DUPLICATE_ACROSS = "duplicate_text_across_groups"

#: What "the same text" means for deduplication and for the leakage check between splits.
NORMALIZATION = ("Unicode NFKC, case-folded, punctuation, control characters and separators replaced by a space, "
                 "whitespace collapsed (a text that is nothing but punctuation is kept as it is)")

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


def drop_invalid_texts(frame: pd.DataFrame, *, removal: Removal, min_chars: int) -> pd.DataFrame:
    """Remove empty and too-short texts (counted); texts are stripped of surrounding whitespace."""
    text = frame["text"].fillna("").astype(str).str.strip()
    frame = frame.assign(text=text)
    empty = text == ""
    removal.reasons[REASON_TEXT_MISSING] += int(empty.sum())
    short = ~empty & (text.str.len() < min_chars)
    removal.reasons[REASON_TEXT_TOO_SHORT] += int(short.sum())
    return frame[~(empty | short)]


@functools.lru_cache(maxsize=1)
def _separators() -> re.Pattern[str]:
    """Every punctuation (P*), separator (Z*), control (Cc) and format (Cf) code point, as one class."""
    ranges: list[list[int]] = []
    for code in range(sys.maxunicode + 1):
        cat = unicodedata.category(chr(code))
        if cat[0] in "PZ" or cat in ("Cc", "Cf"):
            if ranges and ranges[-1][1] == code - 1:
                ranges[-1][1] = code
            else:
                ranges.append([code, code])
    body = "".join(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges)
    return re.compile(f"[{body}]+")


def normalized_text(text: str) -> str:
    """The form under which two texts count as the same (see :data:`NORMALIZATION`).

    >>> normalized_text("  Women are  STRONG!! ") == normalized_text("women are strong")
    True
    >>> normalized_text("!!!")
    '!!!'
    """
    folded = unicodedata.normalize("NFKC", str(text)).casefold()
    out = " ".join(_separators().sub(" ", folded).split())
    return out or " ".join(folded.split())


def drop_duplicate_texts(frame: pd.DataFrame, *, removals: Mapping[str, Removal],
                         group_columns: Sequence[str]) -> tuple[pd.DataFrame, dict[str, int]]:
    """Keep one row per normalized text, across every group and file: the smallest ``example_id``.

    Each removed row is counted in the :class:`Removal` of its ``source_file``: as
    ``duplicate_text_in_group`` when the kept row has the same values of ``group_columns``,
    else ``duplicate_text_across_groups``. Deduplicating before the split is what keeps the
    same text out of two splits.

    Returns
    -------
    frame, details
        The kept rows (in their original order) and ``{"label_conflicts": n}``: removed rows whose
        label differs from the kept row's.
    """
    if frame.empty:
        return frame, {"label_conflicts": 0}
    frame = frame.reset_index(drop=True)
    key = frame["text"].map(normalized_text)
    order = np.lexsort((frame["example_id"].astype(str).to_numpy(), key.to_numpy()))
    okey = key.iloc[order]
    dup = okey.duplicated(keep="first").to_numpy()
    keeper = dict(zip(okey[~dup], okey.index[~dup]))  # normalized text -> row kept
    dup_index = okey.index[dup]
    conflicts = 0
    for idx in dup_index:
        kept = keeper[key[idx]]
        same_group = all(str(frame.at[idx, c]) == str(frame.at[kept, c]) for c in group_columns)
        reason = REASON_DUPLICATE if same_group else REASON_DUPLICATE_ACROSS
        removals[str(frame.at[idx, "source_file"])].reasons[reason] += 1
        conflicts += int(frame.at[idx, "label"] != frame.at[kept, "label"])
    return frame.drop(index=dup_index), {"label_conflicts": conflicts}


def add_derived_features(frame: pd.DataFrame) -> pd.DataFrame:
    """Length features that matter for text models: characters and whitespace tokens."""
    text = frame["text"].astype(str)
    return frame.assign(
        n_chars=text.str.len().astype("int64"),
        n_tokens=text.str.split().str.len().fillna(0).astype("int64"),
    )
