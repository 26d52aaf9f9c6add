"""TFDV statistics on Beam straight from the split shards the Beam data pass wrote, and the shards' texts
for the leakage check (read in batches, kept as hashes)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

__all__ = ["statistics_from_shards", "text_set_from_shards"]


def _to_tfdv_batches(table, columns: Sequence[str]):
    """pyarrow Table -> RecordBatches of one-value lists per cell, as TFDV expects."""
    from pipelines.stages.validate_data.stats import arrow_batches

    return arrow_batches(table, columns)


def statistics_from_shards(split_dir: Path, split: str, *, columns: Sequence[str], sensitive: Sequence[str],
                           pipeline_args: Sequence[str], workdir: Path):
    """TFDV statistics of one split straight from its Parquet shards, sliced by each sensitive feature."""
    import apache_beam as beam

    from pipelines.stages.validate_data.stats import run_statistics

    def source(p):
        return (p
                | "Read" >> beam.io.ReadFromParquetBatched(str(Path(split_dir) / f"{split}*.parquet"),
                                                           columns=list(columns))
                | "ToTFDV" >> beam.FlatMap(_to_tfdv_batches, columns=list(columns)))

    return run_statistics(source, sensitive=sensitive, pipeline_args=pipeline_args, workdir=workdir, name=split)


def text_set_from_shards(split_dir: Path, split: str, *, batch_rows: int = 50_000):
    """The ids and texts of one split's shards as a :class:`~pipelines.stages.validate_data.leakage.TextSet`
    (hashes, ids and short snippets: the texts themselves are not kept)."""
    import pyarrow.parquet as pq

    from pipelines.stages.validate_data.leakage import TextSet

    parts = []
    for shard in sorted(Path(split_dir).glob(f"{split}*.parquet")):
        for batch in pq.ParquetFile(shard).iter_batches(batch_size=batch_rows, columns=["example_id", "text"]):
            parts.append(TextSet(split, batch.column(0).to_pylist(), batch.column(1).to_pylist()))
    return TextSet.concat(split, parts)
