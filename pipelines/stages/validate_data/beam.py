"""TFDV statistics on Beam straight from the split shards the Beam data pass wrote."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

__all__ = ["statistics_from_shards"]


def _to_tfdv_batches(table, columns: Sequence[str]):
    """pyarrow Table -> RecordBatches of one-value lists per cell, as TFDV expects."""
    import numpy as np
    import pyarrow as pa

    n = table.num_rows
    offsets = pa.array(np.arange(n + 1, dtype=np.int32))
    arrays = []
    for col in columns:
        values = table.column(col).combine_chunks()
        if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
            values = values.cast(pa.binary())
        arrays.append(pa.ListArray.from_arrays(offsets, values))
    batch = pa.RecordBatch.from_arrays(arrays, list(columns))
    return [batch]


def statistics_from_shards(split_dir: Path, split: str, *, columns: Sequence[str], sensitive: Sequence[str],
                           pipeline_args: Sequence[str], workdir: Path):
    """TFDV statistics of one split straight from its Parquet shards, sliced by each sensitive feature."""
    import apache_beam as beam
    import tensorflow_data_validation as tfdv
    from tensorflow_data_validation.utils import slicing_util

    from pipelines.beam import beam_pipeline
    from tensorflow_metadata.proto.v0 import statistics_pb2

    options = tfdv.StatsOptions(
        experimental_slice_functions=[slicing_util.get_feature_value_slicer(features={f: None}) for f in sensitive],
        num_top_values=50,
    )
    out = Path(workdir) / f"stats-{split}.pb"
    with beam_pipeline(pipeline_args, what=f"TFDV statistics of split {split!r}") as p:
        _ = (p
             | "Read" >> beam.io.ReadFromParquetBatched(str(Path(split_dir) / f"{split}*.parquet"), columns=list(columns))
             | "ToTFDV" >> beam.FlatMap(_to_tfdv_batches, columns=list(columns))
             | "Stats" >> tfdv.GenerateStatistics(options)
             | "Write" >> tfdv.WriteStatisticsToBinaryFile(str(out)))
    stats = tfdv.load_stats_binary(str(out))
    ordered = statistics_pb2.DatasetFeatureStatisticsList()
    for ds in sorted(stats.datasets, key=lambda d: d.name):
        ordered.datasets.add().CopyFrom(ds)
    return ordered
