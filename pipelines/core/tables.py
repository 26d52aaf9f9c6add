"""Reading raw tabular files (CSV, Parquet, JSONL, TFRecord of tf.train.Example) with errors that name the file."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import pandas as pd

from pipelines.config import did_you_mean
from pipelines.errors import DataError

__all__ = ["read_table", "require_columns", "columns_of", "sniff_format", "check_encoding", "iter_tfrecord_examples",
           "shard_columns", "check_text_values", "csv_options", "file_has_nul"]

MSG_MISSING_FILE = "{path}: data file not found."
MSG_NOT_A_FILE = ("{path}: a {kind}, not a data file; expected a regular CSV/Parquet/JSONL/TFRecord file "
                  "(pipes and devices are never read: they could block or never end).")
MSG_EMPTY = "{path}: data file is empty (expected a header and at least one row)."
MSG_ENCODING = (
    "{path}: not valid {encoding} (byte 0x{byte:02x} at offset {offset}). "
    "Expected {encoding}; set `{field}` to read it with another encoding (e.g. 'cp1252')."
)
MSG_MISSING_COLUMN = "{path}: column {column!r} ({role}) not found.{hint} Columns found: {found}."
MSG_UNREADABLE = "{path}: could not read as {fmt}: {error}"
MSG_FORMAT = ("{path}: cannot tell the format from the suffix {suffix!r}; set `data.file.format` to csv, parquet, "
              "jsonl or tfrecord.")
MSG_TFRECORD = ("{path}: record {record}: feature {feature!r} has {n} values; expected one (a text, label, id or "
                "sensitive column holds a single value per example).")
MSG_TFRECORD_BYTES = ("{path}: record {record}: feature {feature!r} is not valid {encoding} (byte 0x{byte:02x} at "
                      "offset {offset}). Set `{field}` to read it with another encoding.")
MSG_TFRECORD_TYPE = ("{path}: record {record}: feature {feature!r} must hold text (a bytes_list), because it is the "
                     "text column. Got {kind} {value!r} instead; write the texts as bytes features.")
MSG_TEXT_TYPE = ("{path}: column {column!r} must hold text (strings), because it is the text column. Got "
                 "{type} {value!r} in row {row} (counting data rows from 1){more}.")
TFRECORD_SUFFIXES = (".tfrecord", ".tfrecords", ".tfrec", ".tfrecord.gz", ".tfrecords.gz", ".tfrec.gz")


def sniff_format(path: Path, declared: str | None) -> str:
    if declared:
        return declared
    suffix = path.suffix.lower()
    if path.name.lower().endswith(TFRECORD_SUFFIXES):
        return "tfrecord"
    if suffix in (".csv", ".tsv", ".txt"):
        return "csv"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if path.exists() and not path.is_file():  # a folder, pipe or device: say so, not "unknown suffix"
        _check_file(path)
    raise DataError(MSG_FORMAT.format(path=path, suffix=suffix))


def check_encoding(path: Path, *, encoding: str, encoding_fallback: str | None,
                   encoding_field: str = "data.file.encoding_fallback", block_size: int = 1 << 20) -> str:
    """The encoding that decodes all of ``path``, checked block by block (never the whole file
    in memory): ``encoding``, else ``encoding_fallback``; a DataError when neither does."""
    import codecs

    for candidate in (encoding, encoding_fallback):
        if candidate is None:
            continue
        decoder = codecs.getincrementaldecoder(candidate)()
        fed = 0
        try:
            with open(path, "rb") as fh:
                for block in iter(lambda: fh.read(block_size), b""):
                    fed += len(block)
                    decoder.decode(block)
                decoder.decode(b"", final=True)
            return candidate
        except UnicodeDecodeError as exc:
            error = MSG_ENCODING.format(path=path, encoding=candidate, byte=exc.object[exc.start],
                                        offset=fed - len(exc.object) + exc.start, field=encoding_field)
    raise DataError(error)


def _decode_bytes(raw: bytes, *, encoding: str, encoding_fallback: str | None,
                  error: Callable[[str, UnicodeDecodeError], str]) -> tuple[str, str]:
    """``(text, encoding used)``: ``raw`` decoded with ``encoding``, else ``encoding_fallback``.
    When neither decodes it, a DataError with ``error(encoding, exc)`` of the last one tried."""
    for candidate in (encoding, encoding_fallback):
        if candidate is None:
            continue
        try:
            return raw.decode(candidate), candidate
        except UnicodeDecodeError as exc:
            failure = exc
            message = error(candidate, exc)
    raise DataError(message) from failure


def _file_encoding_error(path: Path, field: str) -> Callable[[str, UnicodeDecodeError], str]:
    """The message for bytes of ``path`` that do not decode (offsets count from the start of the file)."""
    return lambda encoding, exc: MSG_ENCODING.format(path=path, encoding=encoding, byte=exc.object[exc.start],
                                                     offset=exc.start, field=field)


def _check_file(path: Path) -> None:
    if not path.is_file():
        if path.exists():
            kind = "folder" if path.is_dir() else "pipe" if path.is_fifo() else "device or socket"
            raise DataError(MSG_NOT_A_FILE.format(path=path, kind=kind))
        raise DataError(MSG_MISSING_FILE.format(path=path))
    if path.stat().st_size == 0:
        raise DataError(MSG_EMPTY.format(path=path))


def iter_tfrecord_examples(
    path: Path | str,
    *,
    columns: list[str] | None = None,
    encoding: str = "utf-8",
    encoding_fallback: str | None = None,
    encoding_field: str = "data.file.encoding_fallback",
    used: set[str] | None = None,
    seen: set[str] | None = None,
    text_columns: Sequence[str] = (),
):
    """Yield one dict per ``tf.train.Example`` record of a TFRecord file (``.gz``: GZIP).

    Only ``columns`` are decoded (all features when None). A feature with one value
    becomes a scalar (bytes are decoded as text), an absent or empty one None; a
    decoded column with several values is a DataError naming the file, record and
    feature, and so is a feature of ``text_columns`` that holds numbers (an int64 or
    float list) rather than bytes. The file is streamed, never read whole. ``used``
    collects the text encodings that were needed, ``seen`` every feature name met.
    """
    import tensorflow as tf

    path = str(path)
    used = set() if used is None else used
    compression = "GZIP" if path.lower().endswith(".gz") else ""
    wanted = None if columns is None else set(columns)
    record = 0
    try:
        for raw in tf.data.TFRecordDataset(path, compression_type=compression).as_numpy_iterator():
            example = tf.train.Example.FromString(raw)
            out = {}
            for name, feature in example.features.feature.items():
                if seen is not None:
                    seen.add(name)
                if wanted is not None and name not in wanted:
                    continue
                kind = feature.WhichOneof("kind")
                values = list(getattr(feature, kind).value) if kind else []
                if len(values) > 1:
                    raise DataError(MSG_TFRECORD.format(path=path, record=record, feature=name, n=len(values)))
                value = values[0] if values else None
                if name in text_columns and kind in ("int64_list", "float_list") and values:
                    raise DataError(MSG_TFRECORD_TYPE.format(path=path, record=record, feature=name, kind=kind,
                                                             value=value))
                if isinstance(value, bytes):
                    value, decoded_with = _decode_bytes(
                        value, encoding=encoding, encoding_fallback=encoding_fallback,
                        error=lambda enc, exc: MSG_TFRECORD_BYTES.format(
                            path=path, record=record, feature=name, encoding=enc, byte=exc.object[exc.start],
                            offset=exc.start, field=encoding_field))
                    used.add(decoded_with)
                out[name] = value
            yield out
            record += 1
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError, ValueError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(MSG_UNREADABLE.format(path=path, fmt="TFRecord of tf.train.Example",
                                              error=f"record {record}: {str(exc).strip().splitlines()[0]}")) from exc


def read_table(
    path: Path,
    *,
    fmt: str | None = None,
    encoding: str = "utf-8",
    encoding_fallback: str | None = None,
    encoding_field: str = "data.file.encoding_fallback",
    columns: list[str] | None = None,
    text_columns: Sequence[str] = (),
) -> tuple[pd.DataFrame, str]:
    """Read a file into a DataFrame of strings (CSV) or native types (JSONL, Parquet, TFRecord).

    Returns the frame and the encoding actually used. ``columns`` limits what a
    TFRecord file decodes (other formats read every column). Each of ``text_columns``
    that the file has must hold strings (or be empty): a number there is a DataError
    naming the file, the column and the first row (record) that holds one.
    """
    path = Path(path)
    _check_file(path)
    fmt = sniff_format(path, fmt)
    if fmt == "tfrecord":
        used: set[str] = set()
        seen: set[str] = set()
        frame = pd.DataFrame(list(iter_tfrecord_examples(path, columns=columns, encoding=encoding,
                                                         encoding_fallback=encoding_fallback,
                                                         encoding_field=encoding_field, used=used, seen=seen,
                                                         text_columns=text_columns)))
        if frame.empty:
            raise DataError(MSG_EMPTY.format(path=path))
        frame.attrs["columns_found"] = sorted(seen)  # every feature, not only those decoded: see columns_of
        return frame, (encoding_fallback if encoding_fallback in used else encoding) if used else "binary"
    if fmt == "parquet":
        try:
            frame = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises many types
            raise DataError(MSG_UNREADABLE.format(path=path, fmt="parquet", error=exc)) from exc
        if frame.empty:
            raise DataError(MSG_EMPTY.format(path=path))
        check_text_values(frame, path, text_columns)
        return frame, "binary"
    text, used = _decode_bytes(path.read_bytes(), encoding=encoding, encoding_fallback=encoding_fallback,
                               error=_file_encoding_error(path, encoding_field))
    if not text.strip():
        raise DataError(MSG_EMPTY.format(path=path))
    import io

    try:
        if fmt == "csv":
            frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, **csv_options("\x00" in text))
        else:
            frame = pd.read_json(io.StringIO(text), lines=True, dtype=False)
    except Exception as exc:
        raise DataError(MSG_UNREADABLE.format(path=path, fmt=fmt, error=str(exc).strip())) from exc
    if frame.empty:
        raise DataError(MSG_EMPTY.format(path=path))
    check_text_values(frame, path, text_columns)
    return frame, used


def csv_options(has_nul: bool) -> dict:
    """``pd.read_csv`` options that keep every character: pandas' C parser cuts a field at a NUL byte, so a file
    holding one is read by the Python parser, with the csv module's field limit (131,072 characters) lifted."""
    if not has_nul:
        return {}
    import csv
    import sys

    csv.field_size_limit(sys.maxsize)
    return {"engine": "python"}


def file_has_nul(path: Path, *, block_size: int = 1 << 20) -> bool:
    """Whether a file holds a NUL byte (read block by block)."""
    with open(path, "rb") as fh:
        return any(b"\x00" in block for block in iter(lambda: fh.read(block_size), b""))


def check_text_values(frame: pd.DataFrame, path: Path | str, text_columns: Sequence[str], *,
                      first_row: int = 0) -> None:
    """Raise unless every non-missing value of each of ``text_columns`` (those ``frame`` has) is a string.

    ``first_row`` is the row number of the frame's first row in its file (for chunked reads).
    """
    for column in text_columns:
        if column not in frame.columns:
            continue
        values = frame[column]
        if values.dtype == object:
            bad = values.map(lambda v: not (v is None or isinstance(v, str) or (isinstance(v, float) and v != v)))
        else:  # a numeric or boolean column: every present value is wrong
            bad = values.notna()
        if bad.any():
            pos = int(bad.to_numpy().argmax())
            value = values.iloc[pos]
            n = int(bad.sum())
            raise DataError(MSG_TEXT_TYPE.format(path=path, column=column, type=type(value).__name__, value=value,
                                                 row=first_row + pos + 1,
                                                 more=f" ({n} such rows)" if n > 1 else ""))


def shard_columns(path: Path, *, fmt: str, encoding: str = "utf-8", encoding_fallback: str | None = None) -> list[str]:
    """The column names of a data file, from its header only (Parquet schema, CSV header
    line, first JSONL record, features of the first TFRecord example)."""
    import io
    import json

    path = Path(path)
    _check_file(path)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            return list(pq.read_schema(path).names)
        except Exception as exc:
            raise DataError(MSG_UNREADABLE.format(path=path, fmt="parquet", error=exc)) from exc
    if fmt == "tfrecord":
        seen: set[str] = set()
        for _ in iter_tfrecord_examples(path, columns=[], seen=seen):
            break
        return sorted(seen)
    with open(path, "rb") as fh:
        first = fh.readline()
    line, _ = _decode_bytes(first, encoding=encoding, encoding_fallback=encoding_fallback,
                            error=_file_encoding_error(path, "data.file.encoding_fallback"))
    try:
        if fmt == "csv":
            return [str(c) for c in pd.read_csv(io.StringIO(line), nrows=0).columns]
        return [str(c) for c in json.loads(line)]
    except Exception as exc:
        raise DataError(MSG_UNREADABLE.format(path=path, fmt=fmt, error=str(exc).strip())) from exc


def columns_of(frame: pd.DataFrame) -> list:
    """The columns a file read by :func:`read_table` has (for TFRecord: every feature met, decoded or not)."""
    return list(frame.attrs.get("columns_found") or frame.columns)


def require_columns(columns: Sequence, path: Path | str, roles: dict[str, str]) -> None:
    """Raise if any ``{column: role}`` is not among a file's ``columns``, suggesting the closest name."""
    present = list(columns)
    found = [str(c) for c in present]
    for column, role in roles.items():
        if column not in present:
            raise DataError(
                MSG_MISSING_COLUMN.format(
                    path=path, column=column, role=role, hint=did_you_mean(column, found),
                    found=", ".join(found) or "none",
                )
            )
