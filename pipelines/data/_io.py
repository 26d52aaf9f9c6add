"""Reading raw tabular files (CSV, Parquet, JSONL) with errors that name the file."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipelines._configbase import did_you_mean
from pipelines.errors import DataError

__all__ = ["read_table", "require_columns", "sniff_format", "check_encoding"]

MSG_MISSING_FILE = "{path}: data file not found."
MSG_EMPTY = "{path}: data file is empty (expected a header and at least one row)."
MSG_ENCODING = (
    "{path}: not valid {encoding} (byte 0x{byte:02x} at offset {offset}). "
    "Expected {encoding}; set `{field}` to read it with another encoding (e.g. 'cp1252')."
)
MSG_MISSING_COLUMN = "{path}: column {column!r} ({role}) not found.{hint} Columns found: {found}."
MSG_UNREADABLE = "{path}: could not read as {fmt}: {error}"
MSG_FORMAT = "{path}: cannot tell the format from the suffix {suffix!r}; set `data.file.format` to csv, parquet or jsonl."


def sniff_format(path: Path, declared: str | None) -> str:
    if declared:
        return declared
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv", ".txt"):
        return "csv"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
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


def read_table(
    path: Path,
    *,
    fmt: str | None = None,
    encoding: str = "utf-8",
    encoding_fallback: str | None = None,
    encoding_field: str = "data.file.encoding_fallback",
) -> tuple[pd.DataFrame, str]:
    """Read a file into a DataFrame of strings (CSV/JSONL) or native types (Parquet).

    Returns the frame and the encoding actually used.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(MSG_MISSING_FILE.format(path=path))
    if path.stat().st_size == 0:
        raise DataError(MSG_EMPTY.format(path=path))
    fmt = sniff_format(path, fmt)
    if fmt == "parquet":
        try:
            frame = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises many types
            raise DataError(MSG_UNREADABLE.format(path=path, fmt="parquet", error=exc)) from exc
        if frame.empty:
            raise DataError(MSG_EMPTY.format(path=path))
        return frame, "binary"
    raw = path.read_bytes()
    used = encoding
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        if not encoding_fallback:
            raise DataError(
                MSG_ENCODING.format(path=path, encoding=encoding, byte=raw[exc.start], offset=exc.start,
                                    field=encoding_field)
            ) from exc
        try:
            text = raw.decode(encoding_fallback)
        except UnicodeDecodeError as exc2:
            raise DataError(
                MSG_ENCODING.format(path=path, encoding=encoding_fallback, byte=raw[exc2.start],
                                    offset=exc2.start, field=encoding_field)
            ) from exc2
        used = encoding_fallback
    if not text.strip():
        raise DataError(MSG_EMPTY.format(path=path))
    import io

    try:
        if fmt == "csv":
            frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
        else:
            frame = pd.read_json(io.StringIO(text), lines=True, dtype=False)
    except Exception as exc:
        raise DataError(MSG_UNREADABLE.format(path=path, fmt=fmt, error=str(exc).strip())) from exc
    if frame.empty:
        raise DataError(MSG_EMPTY.format(path=path))
    return frame, used


def require_columns(frame: pd.DataFrame, path: Path | str, roles: dict[str, str]) -> None:
    """Raise if any ``{column: role}`` is missing, suggesting the closest column name."""
    found = [str(c) for c in frame.columns]
    for column, role in roles.items():
        if column not in frame.columns:
            raise DataError(
                MSG_MISSING_COLUMN.format(
                    path=path, column=column, role=role, hint=did_you_mean(column, found),
                    found=", ".join(found) or "none",
                )
            )
