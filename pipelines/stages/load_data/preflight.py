"""What ``fairness-audit validate`` checks about the data before anything runs (no model, no TFDV).

Every data file exists and is not empty; each shard's header has the configured columns (text,
label, sensitive features, id, ``data.split.group_by``, columns the variants read); the text
column holds text where the file says its type (Parquet schema, the first JSONL record, the first
TFRecord example); the label column holds only the configured labels (unless
``drop_unlabelled``); each sensitive column has at least two values. CSV, Parquet and JSONL label
and sensitive columns are read whole (one column at a time, cheaply); a TFRecord file is read for
its first :data:`TFRECORD_RECORDS` records.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from pipelines.config import AuditConfig, RedditBiasSource
from pipelines.errors import AuditError, DataError

__all__ = ["data_preflight", "TFRECORD_RECORDS"]

TFRECORD_RECORDS = 10_000
MSG_LABELS = ("{path}: column {column!r} must hold labels in {expected} (data.file.positive_labels / "
              "negative_labels). Found {found}{where}. Map them, or set `data.file.drop_unlabelled: true` to "
              "remove and count them.")
MSG_ONE_VALUE = ("{path}: sensitive feature {column!r} must have at least two distinct values to compare groups. "
                 "Found only {found!r}{where}.")
MSG_TEXT_TYPE = ("{path}: column {column!r} (data.file.text_column) must hold text. The file declares it as "
                 "{found}.")


def _columns(path: Path, *, fmt: str, wanted: list[str], src) -> dict[str, list[Any]]:
    """The values of ``wanted`` columns of one file (TFRecord: its first records)."""
    import pandas as pd

    from pipelines.core.tables import check_encoding, iter_tfrecord_examples

    if fmt == "parquet":
        return {c: v.tolist() for c, v in pd.read_parquet(path, columns=wanted).items()}
    if fmt == "tfrecord":
        out: dict[str, list[Any]] = {c: [] for c in wanted}
        for i, rec in enumerate(iter_tfrecord_examples(path, columns=wanted, encoding=src.encoding,
                                                       encoding_fallback=src.encoding_fallback,
                                                       text_columns=(src.text_column,))):
            if i >= TFRECORD_RECORDS:
                break
            for c in wanted:
                out[c].append(rec.get(c))
        return out
    encoding = check_encoding(path, encoding=src.encoding, encoding_fallback=src.encoding_fallback)
    if fmt == "csv":
        frame = pd.read_csv(path, usecols=wanted, dtype=str, keep_default_na=False, encoding=encoding)
    else:
        frame = pd.read_json(path, lines=True, dtype=False, encoding=encoding)[wanted]
    return {c: v.tolist() for c, v in frame.items()}


def _text_type_problem(path: Path, *, fmt: str, src) -> AuditError | None:
    """A text column the file itself types as numbers (Parquet schema, first JSONL record)."""
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        field = pq.read_schema(path).field(src.text_column)
        if not (pa.types.is_string(field.type) or pa.types.is_large_string(field.type)
                or pa.types.is_dictionary(field.type) or pa.types.is_null(field.type)):
            return DataError(MSG_TEXT_TYPE.format(path=path, column=src.text_column, found=field.type))
    return None


def _file_problems(cfg: AuditConfig) -> list[AuditError]:
    from pipelines.core.tables import require_columns, shard_columns, sniff_format
    from pipelines.stages.load_data.normalize import _canon
    from pipelines.stages.load_data.sources import column_roles, expand_shards

    src = cfg.data.file
    problems: list[AuditError] = []
    shards = expand_shards(cfg.resolve(src.path))
    roles = column_roles(src, group_by=cfg.data.split.group_by)
    for col in cfg.passthrough_columns:
        roles.setdefault(col, "scores of a `predictions` variant (variants[*].column)")
    expected = {_canon(v) for v in (*src.positive_labels, *src.negative_labels)}
    values: dict[str, Counter] = {c: Counter() for c in src.sensitive_columns}
    tfrecord = False
    for shard in shards:
        try:
            fmt = sniff_format(shard, src.format)
            tfrecord = tfrecord or fmt == "tfrecord"
            require_columns(shard_columns(shard, fmt=fmt, encoding=src.encoding,
                                          encoding_fallback=src.encoding_fallback), shard, roles)
            typed = _text_type_problem(shard, fmt=fmt, src=src)
            if typed is not None:
                problems.append(typed)
                continue
            wanted = list(dict.fromkeys([src.label_column, *src.sensitive_columns, src.text_column]))
            cols = _columns(shard, fmt=fmt, wanted=wanted, src=src)
        except AuditError as exc:
            problems.append(exc)
            continue
        except (ValueError, KeyError, OSError) as exc:
            problems.append(DataError(f"{shard}: could not read the columns {roles and list(roles)} as "
                                      f"{src.format or 'its suffix says'}: {type(exc).__name__}: {exc}"))
            continue
        where = f" (first {TFRECORD_RECORDS} records)" if fmt == "tfrecord" else ""
        labels = Counter(_canon(v) or "<empty>" for v in cols[src.label_column])
        bad = {k: n for k, n in labels.items() if k not in expected}
        if bad and not src.drop_unlabelled:
            found = ", ".join(f"{k!r} x{n}" for k, n in sorted(bad.items(), key=lambda kv: -kv[1])[:5])
            problems.append(DataError(MSG_LABELS.format(path=shard, column=src.label_column,
                                                        expected=sorted(expected), found=found, where=where)))
        texts = [t for t in cols[src.text_column] if t is not None and not (isinstance(t, float) and t != t)]
        numbers = [t for t in texts if not isinstance(t, str)]
        if numbers:
            problems.append(DataError(f"{shard}: column {src.text_column!r} (data.file.text_column) must hold text. "
                                      f"Found {len(numbers)} non-text value(s), e.g. {numbers[0]!r}{where}."))
        for c in src.sensitive_columns:
            values[c].update(str(v).strip() for v in cols[c] if v is not None and str(v).strip())
    for c, seen in values.items():
        if len(seen) == 1 and not problems:
            problems.append(DataError(MSG_ONE_VALUE.format(path=cfg.resolve(src.path), column=c, found=next(iter(seen)),
                                                           where=" in the records read" if tfrecord else "")))
    return problems


def data_preflight(cfg: AuditConfig) -> list[AuditError]:
    """Problems with the configured data that can be found without running the audit (see the module)."""
    if cfg.data.source == "redditbias":
        from pipelines.stages.load_data.sources import REDDITBIAS_FILES

        src = cfg.data.redditbias or RedditBiasSource()
        try:
            root = cfg.resolve(src.root)
        except AuditError as exc:
            return [exc]
        return [DataError(f"{root / 'data' / REDDITBIAS_FILES[g][1]}: RedditBias file of group {g!r} not found "
                          f"(data.redditbias.root is {src.root!r}).")
                for g in src.groups if not (root / "data" / REDDITBIAS_FILES[g][1]).is_file()]
    try:
        return _file_problems(cfg)
    except AuditError as exc:
        return [exc]
