"""Loaders for the two data sources: RedditBias (the demo) and a user's own file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipelines.core.artifacts import hash_path
from pipelines.core.tables import columns_of, read_table, require_columns
from pipelines.stages.load_data.normalize import (
    REASON_DUPLICATE,
    REASON_DUPLICATE_ACROSS,
    Removal,
    add_derived_features,
    drop_duplicate_texts,
    drop_invalid_texts,
    normalize_labels,
)
from pipelines.errors import DataError

__all__ = ["LoadedData", "load_redditbias", "load_file", "expand_shards", "column_roles", "split_key_column",
           "REDDITBIAS_FILES"]

# group -> (axis, file inside RedditBias/data)
REDDITBIAS_FILES: dict[str, tuple[str, str]] = {
    "women": ("gender", "gender/reddit_comments_gender_female_processed_phrase_annotated.csv"),
    "lgbtq": ("orientation", "orientation/reddit_comments_orientation_lgbtq_processed_phrase_annotated.csv"),
    "black": ("race", "race/reddit_comments_race_black_processed_phrase_annotated.csv"),
    "jewish": ("religion", "religion1/reddit_comments_religion1_jews_processed_phrase_annotated.csv"),
    "muslim": ("religion", "religion2/reddit_comments_religion2_muslims_processed_phrase_annotated.csv"),
}

MSG_SINGLE_VALUE = (
    "{path}: sensitive feature {column!r} must have at least two distinct values to compare groups. "
    "Found only {found!r}."
)


@dataclass
class LoadedData:
    table: pd.DataFrame
    removals: list[Removal]
    encodings: dict[str, str]
    fingerprints: dict[str, str]
    sensitive_features: tuple[str, ...]
    duplicates: dict[str, int] | None = None


def _dedupe(table: pd.DataFrame, removals: list[Removal], sensitive: tuple[str, ...]) -> tuple[pd.DataFrame, dict]:
    """One row per normalized text across all files and groups (see ``drop_duplicate_texts``)."""
    by_file = {r.file: r for r in removals}
    for removal in removals:  # both reasons appear in removed_rows.json, zero or not
        removal.reasons[REASON_DUPLICATE] += 0
        removal.reasons[REASON_DUPLICATE_ACROSS] += 0
    return drop_duplicate_texts(table, removals=by_file, group_columns=sensitive)


def load_redditbias(root: Path, *, groups: tuple[str, ...], encoding: str, encoding_fallback: str | None,
                    min_text_chars: int) -> LoadedData:
    """Read the annotated RedditBias comments of ``groups`` into one normalized table."""
    frames, removals, encodings, fingerprints = [], [], {}, {}
    for group in groups:
        axis, rel = REDDITBIAS_FILES[group]
        path = root / "data" / rel
        raw, used = read_table(path, fmt="csv", encoding=encoding, encoding_fallback=encoding_fallback,
                               encoding_field="data.redditbias.encoding_fallback")
        require_columns(raw.columns, path, {"comment": "text", "bias_sent": "label"})
        removal = Removal(file=str(Path("data") / rel), rows_read=len(raw))
        labels = normalize_labels(raw["bias_sent"], positive=(1,), negative=(0,), removal=removal,
                                  column="bias_sent", path=path, drop_unlabelled=True)
        frame = pd.DataFrame({
            "example_id": [f"{group}-{i:05d}" for i in raw.index],
            "text": raw["comment"],
            "label": labels,
            "group": group,
            "axis": axis,
            "source_file": removal.file,
        })
        frame = frame[frame["label"].notna()]
        frame = drop_invalid_texts(frame, removal=removal, min_chars=min_text_chars)
        frames.append(frame)
        removals.append(removal)
        encodings[removal.file] = used
        fingerprints[removal.file] = hash_path(path)
    table = pd.concat(frames, ignore_index=True)
    table["label"] = table["label"].astype("int64")
    table, duplicates = _dedupe(table, removals, ("group", "axis"))
    return LoadedData(add_derived_features(table), removals, encodings, fingerprints, ("group", "axis"), duplicates)


def expand_shards(path: Path) -> list[Path]:
    """``path`` itself, or the sorted files matching it when it is a glob (``part-*.csv``)."""
    text = str(path)
    if not any(ch in text for ch in "*?["):
        return [path]
    import glob

    found = sorted(Path(p) for p in glob.glob(text) if Path(p).is_file())
    if not found:
        raise DataError(f"{path}: no data files match this pattern (expected at least one shard).")
    return found


def split_key_column(source, group_by: str | None) -> str | None:
    """The column of the normalized table that ``data.split.group_by`` (a column of the user's file) becomes."""
    if group_by is None:
        return None
    renamed = {source.text_column: "text", source.label_column: "label"}
    if source.id_column:
        renamed[source.id_column] = "example_id"
    return renamed.get(group_by, group_by)


def load_file(path: Path, *, source, extra_columns: tuple[str, ...] = (), group_by: str | None = None,
              dedupe: bool = True) -> LoadedData:
    """Read a user's CSV/Parquet/JSONL/TFRecord file (or shards matching a glob) with the column names
    from ``data.file``; ``extra_columns`` (e.g. a ``predictions`` variant's score column) are kept as they are,
    and so is the ``group_by`` column that keeps rows together in one split. ``dedupe`` keeps one row per
    normalized text (off for a serving file, which is described, not split)."""
    shards = expand_shards(path)
    parts, encodings = [], {}
    roles = column_roles(source, group_by=group_by)
    for col in extra_columns:
        roles.setdefault(col, "scores of a `predictions` variant (variants[*].column)")
    for shard in shards:
        part, used = read_table(shard, fmt=source.format, encoding=source.encoding,
                                encoding_fallback=source.encoding_fallback, columns=list(roles),
                                text_columns=(source.text_column,))
        require_columns(columns_of(part), shard, roles)
        parts.append(part)
        encodings[shard.name] = used
    raw = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    used = encodings
    if len(shards) > 1:
        path = Path(str(path))
    raw = raw.reset_index(drop=True)
    removal = Removal(file=path.name, rows_read=len(raw))
    labels = normalize_labels(raw[source.label_column], positive=source.positive_labels,
                              negative=source.negative_labels, removal=removal,
                              column=source.label_column, path=path, drop_unlabelled=source.drop_unlabelled)
    if source.id_column:
        ids = raw[source.id_column].astype(str)
        dup = ids[ids.duplicated()]
        if len(dup):
            raise DataError(f"{path}: column {source.id_column!r} (id) must be unique. "
                            f"Found {len(dup)} duplicate(s), e.g. {dup.iloc[0]!r}.")
    else:
        ids = pd.Series([f"row-{i:07d}" for i in raw.index], index=raw.index)
    frame = pd.DataFrame({"example_id": ids, "text": raw[source.text_column].astype(str).where(raw[source.text_column].notna(), ""),
                          "label": labels})
    for col in source.sensitive_columns:
        values = raw[col].astype(str).str.strip()
        frame[col] = values.where(values != "", "<missing>")
    for col in extra_columns:
        if col not in frame.columns:
            frame[col] = raw[col]
    key = split_key_column(source, group_by)
    if key is not None and key not in frame.columns:
        values = raw[group_by].astype(str).str.strip()
        frame[key] = values.where(raw[group_by].notna() & (values != ""), None)
    frame["source_file"] = path.name
    frame = frame[frame["label"].notna()]
    frame = drop_invalid_texts(frame, removal=removal, min_chars=1)
    duplicates = None
    if dedupe:
        frame, duplicates = _dedupe(frame, [removal], tuple(source.sensitive_columns))
    for col in source.sensitive_columns:
        distinct = frame[col].unique()
        if len(distinct) < 2:
            raise DataError(MSG_SINGLE_VALUE.format(path=path, column=col, found=distinct[0] if len(distinct) else None))
    frame = frame.reset_index(drop=True)
    frame["label"] = frame["label"].astype("int64")
    return LoadedData(add_derived_features(frame), [removal], used, {p.name: hash_path(p) for p in shards},
                      tuple(source.sensitive_columns), duplicates)


def column_roles(source, *, group_by: str | None = None) -> dict[str, str]:
    """``{column of the user's file: its role}`` for every column the audit reads."""
    roles = {source.text_column: "text (data.file.text_column)", source.label_column: "label (data.file.label_column)"}
    for col in source.sensitive_columns:
        roles[col] = "sensitive feature (data.file.sensitive_columns)"
    if source.id_column:
        roles[source.id_column] = "id (data.file.id_column)"
    if group_by is not None:
        roles.setdefault(group_by, "split key (data.split.group_by)")
    return roles
