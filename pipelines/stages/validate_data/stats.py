"""TFDV statistics from Arrow record batches, through TFDV's Beam API, sliced per sensitive feature.

No text ever goes through a CSV: a DataFrame (the in-memory path) or Parquet shards (the
Beam data path) become Arrow record batches of one-value lists, the form TFDV's
``GenerateStatistics`` expects, so newlines, quotes, NUL, right-to-left text, emoji and
texts of any length pass unchanged. ``generate_statistics_from_dataframe`` is not used
because it silently ignores slice functions.

The only file written is the statistics proto, into a folder the caller owns (the stage's
scratch folder); it is read back and deleted. Beam's own temporary files for that sink
live beside it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Callable, Sequence

__all__ = ["OVERALL_SLICE", "frame_batches", "arrow_batches", "statistics_options", "run_statistics",
           "generate_split_statistics", "slice_names"]

OVERALL_SLICE = "All Examples"
BATCH_ROWS = 1000


def _quiet_tf() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _as_list_array(values: Any, offsets: Any) -> Any:
    """One-value lists of ``values``, a null cell a null (missing) list; strings as binary, integers as
    int64 and floats as float32, the types TFDV's own decoders produce."""
    import pyarrow as pa

    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        values = values.cast(pa.binary())
    elif pa.types.is_boolean(values.type) or pa.types.is_integer(values.type):
        values = values.cast(pa.int64())
    elif pa.types.is_floating(values.type):
        values = values.cast(pa.float32())
    if not values.null_count:
        return pa.ListArray.from_arrays(offsets, values)
    import numpy as np

    present = values.is_valid()
    counts = np.asarray(present.to_numpy(zero_copy_only=False), dtype=np.int32)
    dense = pa.array(np.concatenate([[0], np.cumsum(counts)]).astype(np.int32))
    # a null list backed by no value: TFDV counts it as missing, never as a value
    return pa.ListArray.from_arrays(dense, values.filter(present), mask=pa.compute.invert(present))


def arrow_batches(table: Any, columns: Sequence[str]) -> list[Any]:
    """A pyarrow Table -> RecordBatches (of at most ``BATCH_ROWS`` rows) of one-value lists per cell."""
    import numpy as np
    import pyarrow as pa

    out = []
    for start in range(0, max(table.num_rows, 1), BATCH_ROWS):
        part = table.slice(start, BATCH_ROWS)
        if part.num_rows == 0:
            break
        offsets = pa.array(np.arange(part.num_rows + 1, dtype=np.int32))
        arrays = [_as_list_array(part.column(col).combine_chunks(), offsets) for col in columns]
        out.append(pa.RecordBatch.from_arrays(arrays, list(columns)))
    return out


def frame_batches(frame: Any, columns: Sequence[str]) -> list[Any]:
    """A DataFrame's ``columns`` as TFDV record batches (text columns as bytes, numbers as numbers)."""
    import pandas as pd
    import pyarrow as pa

    arrays = {}
    for col in columns:
        series = frame[col]
        if pd.api.types.is_bool_dtype(series) or pd.api.types.is_integer_dtype(series):
            arrays[col] = pa.array(series.astype("Int64"), type=pa.int64())
        elif pd.api.types.is_float_dtype(series):
            arrays[col] = pa.array(series, type=pa.float64(), from_pandas=True)
        else:
            arrays[col] = pa.array([None if v is None or (isinstance(v, float) and v != v) else str(v)
                                    for v in series], type=pa.string())
    return arrow_batches(pa.table(arrays), columns)


def statistics_options(sensitive: Sequence[str]) -> Any:
    """TFDV options: one feature-value slicer per sensitive feature (a single slicer over several
    features would slice by their cross), and the 50 most frequent values per feature."""
    import tensorflow_data_validation as tfdv
    from tensorflow_data_validation.utils import slicing_util

    return tfdv.StatsOptions(
        experimental_slice_functions=[slicing_util.get_feature_value_slicer(features={f: None}) for f in sensitive],
        num_top_values=50,
    )


def slice_names(stats: Any) -> list[str]:
    return [ds.name for ds in stats.datasets]


def run_statistics(source: Callable[[Any], Any], *, sensitive: Sequence[str], pipeline_args: Sequence[str],
                   workdir: Path, name: str) -> Any:
    """Run ``source(pipeline) -> PCollection of record batches`` through ``tfdv.GenerateStatistics``.

    The statistics are written to ``workdir`` (its own sub-folder, removed afterwards) and returned as
    a ``DatasetFeatureStatisticsList`` whose datasets are sorted by name (TFDV's order changes from run
    to run).
    """
    _quiet_tf()
    import tensorflow_data_validation as tfdv
    from tensorflow_metadata.proto.v0 import statistics_pb2

    from pipelines.beam import beam_pipeline

    out_dir = Path(workdir) / f"stats-{name}"
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    out = out_dir / "statistics.pb"
    try:
        with beam_pipeline(pipeline_args, what=f"TFDV statistics of split {name!r}") as p:
            _ = (source(p)
                 | "Stats" >> tfdv.GenerateStatistics(statistics_options(sensitive))
                 | "Write" >> tfdv.WriteStatisticsToBinaryFile(str(out)))
        stats = statistics_pb2.DatasetFeatureStatisticsList()
        stats.ParseFromString(out.read_bytes())
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    ordered = statistics_pb2.DatasetFeatureStatisticsList()
    for ds in sorted(stats.datasets, key=lambda d: d.name):
        ordered.datasets.add().CopyFrom(ds)
    return ordered


def generate_split_statistics(frame: Any, *, name: str, sensitive: Sequence[str], workdir: Path,
                              pipeline_args: Sequence[str] | None = None, columns: Sequence[str] | None = None):
    """Statistics for one split, overall and per value of each sensitive feature.

    Parameters
    ----------
    frame
        The split (a DataFrame); ``columns`` (default: every column) are described.
    name
        The split's name (messages and the scratch sub-folder).
    sensitive
        The features to slice by (one slice per value of each).
    workdir
        A folder the caller owns (the stage's scratch folder); nothing is left in it.

    Returns
    -------
    DatasetFeatureStatisticsList
        ``All Examples`` and one dataset per ``<feature>_<value>``, sorted by name.
    """
    import apache_beam as beam

    columns = list(columns) if columns is not None else list(frame.columns)
    batches = frame_batches(frame, columns)
    return run_statistics(lambda p: p | "Batches" >> beam.Create(batches, reshuffle=False), sensitive=sensitive,
                          pipeline_args=list(pipeline_args or []), workdir=workdir, name=name)
