"""Batch inference on Apache Beam with ``RunInference``, one model handler per variant.

Any :class:`pipelines.variants._base.Predictor` can run on Beam: the handler
gets a *factory* (a picklable callable that builds the predictor, e.g. the
predictor class with its keyword arguments) and each worker loads the model
once (``load_model``), then scores the batches Beam hands it. The runner and
its options come from the audit config's ``beam:`` section: the DirectRunner
locally, Flink, Spark or Dataflow at scale.

Beam and torch are imported inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Sequence

__all__ = ["predictor_model_handler", "score_on_beam"]


def predictor_model_handler(factory: Callable[[], Any], *, min_batch_size: int = 8, max_batch_size: int = 64):
    """A keyed Beam ``ModelHandler``: ``(example_id, text)`` in, ``(example_id, PredictionResult)`` out."""
    from apache_beam.ml.inference.base import KeyedModelHandler

    from pipelines.beam._handler import PredictorModelHandler

    return KeyedModelHandler(PredictorModelHandler(factory, min_batch_size=min_batch_size,
                                                   max_batch_size=max_batch_size))


def score_on_beam(
    example_ids: Sequence[str],
    texts: Sequence[str],
    *,
    factory: Callable[[], Any],
    pipeline_args: Sequence[str],
    workdir: Path,
    batch_size: int = 64,
):
    """Score ``texts`` with ``RunInference`` on the runner named in ``pipeline_args``.

    Results are written as JSON lines shards under ``workdir`` (the only way to get
    them back from a multi-process or remote runner) and read back into a
    DataFrame in the order of ``example_ids``.
    """
    import apache_beam as beam
    import pandas as pd
    from apache_beam.ml.inference.base import RunInference
    from apache_beam.options.pipeline_options import PipelineOptions

    from pipelines.artifacts import to_jsonable

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    prefix = str(workdir / "scores")
    handler = predictor_model_handler(factory, min_batch_size=min(8, batch_size), max_batch_size=batch_size)

    def _row(kv):
        key, result = kv
        return json.dumps(to_jsonable({"example_id": key, **result.inference}))

    with beam.Pipeline(options=PipelineOptions(list(pipeline_args))) as pipeline:
        _ = (
            pipeline
            | "Examples" >> beam.Create(list(zip(map(str, example_ids), texts)))
            | "Score" >> RunInference(handler)
            | "ToJson" >> beam.Map(_row)
            | "Write" >> beam.io.WriteToText(prefix, file_name_suffix=".jsonl")
        )
    rows = []
    for shard in sorted(workdir.glob("scores*.jsonl")):
        rows.extend(json.loads(line) for line in shard.read_text(encoding="utf-8").splitlines() if line)
    frame = pd.DataFrame(rows)
    order = {eid: i for i, eid in enumerate(map(str, example_ids))}
    if len(frame) != len(order) or set(frame["example_id"]) != set(order):
        from pipelines.errors import StageError

        raise StageError(f"Beam inference returned {len(frame)} rows for {len(order)} examples.")
    return frame.sort_values("example_id", key=lambda s: s.map(order)).reset_index(drop=True)
