"""Batch inference on Apache Beam with ``RunInference``, one model handler per variant.

Any :class:`pipelines.variants.Predictor` can run on Beam: the handler
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
    texts: Sequence[Any],
    *,
    factory: Callable[[], Any],
    pipeline_args: Sequence[str],
    workdir: Path,
    batch_size: int = 64,
):
    """Score ``texts`` with ``RunInference`` on the runner named in ``pipeline_args``.

    An element of ``texts`` is a text, or a ``(text, retrieval_query)`` pair (see
    :class:`pipelines.beam._handler.PredictorModelHandler`). The texts go to the
    workers, and the results come back, as JSON lines files in a fresh folder (the
    only way to reach a multi-process or remote runner's workers); the results are
    read back into a DataFrame in the order of ``example_ids``: columns
    ``example_id``, ``score``, ``truncated`` and the predictor's extras. The folder
    is under ``--temp_location`` when the options set one (a bucket every remote
    worker can read and write, e.g. ``gs://...``), otherwise under the local
    ``workdir``; it is deleted once the results are read.
    """
    import uuid

    import apache_beam as beam
    import pandas as pd
    from apache_beam.io.filesystems import FileSystems
    from apache_beam.ml.inference.base import RunInference

    from pipelines.beam.pipeline import beam_pipeline, temp_location
    from pipelines.core.artifacts import to_jsonable
    from pipelines.errors import StageError

    ids = [str(e) for e in example_ids]
    if len(ids) != len(texts):
        raise ValueError(f"score_on_beam: {len(ids)} example ids but {len(texts)} texts.")
    if len(set(ids)) != len(ids):
        raise ValueError("score_on_beam: example ids must be unique.")
    if not ids:
        return pd.DataFrame({"example_id": pd.Series(dtype=str), "score": pd.Series(dtype=float),
                             "truncated": pd.Series(dtype=bool)})
    base = temp_location(pipeline_args) or str(workdir)
    out_dir = FileSystems.join(base, f"run-inference-{uuid.uuid4().hex[:12]}")
    if FileSystems.get_scheme(out_dir) in (None, "file"):
        Path(out_dir).mkdir(parents=True, exist_ok=True)
    prefix = FileSystems.join(out_dir, "scores")
    # Fixed-size batches of texts of similar length, as the in-process predictors do:
    # Beam's adaptive batching starts small and a batch of mixed lengths pads to its
    # longest text (2,000 RedditBias comments, the benchmark's MiniLM classifier, in-process:
    # 9.1 s with adaptive batches in arrival order, 5.8 s like this, 4.9 s for a direct call).
    # Runners may reorder elements; the results are keyed by id.
    handler = predictor_model_handler(factory, min_batch_size=batch_size, max_batch_size=batch_size)
    by_length = sorted(range(len(ids)), key=lambda i: len(texts[i] if isinstance(texts[i], str) else texts[i][0]))
    # The texts go to the workers as JSON-lines files next to the results, not inside the
    # pipeline graph (beam.Create): a graph holding millions of texts is too large to submit.
    # Consecutive runs of the length-sorted order, one file each (at most 1,000 files): files
    # are what a runner hands to different workers, and each holds texts of similar length.
    n_files = min(1000, -(-len(ids) // batch_size))
    for k in range(n_files):
        chunk = by_length[k * len(ids) // n_files:(k + 1) * len(ids) // n_files]
        with FileSystems.create(FileSystems.join(out_dir, f"inputs-{k:05d}.jsonl")) as fh:
            fh.write("".join(json.dumps([ids[i], texts[i]], ensure_ascii=False) + "\n" for i in chunk).encode("utf-8"))
    inputs = FileSystems.join(out_dir, "inputs-*.jsonl")

    def _row(kv):
        key, result = kv
        return json.dumps(to_jsonable({"example_id": key, **result.inference}))

    with beam_pipeline(pipeline_args, what="RunInference") as pipeline:
        _ = (
            pipeline
            | "Examples" >> beam.io.ReadFromText(inputs)
            | "Parse" >> beam.Map(_element)
            | "Score" >> RunInference(handler)
            | "ToJson" >> beam.Map(_row)
            | "Write" >> beam.io.WriteToText(prefix, file_name_suffix=".jsonl")
        )
    rows = []
    shards = sorted(m.path for m in FileSystems.match([prefix + "*.jsonl"])[0].metadata_list)
    for shard in shards:
        with FileSystems.open(shard) as fh:
            rows.extend(json.loads(line) for line in fh.read().decode("utf-8").splitlines() if line)
    frame = pd.DataFrame(rows)
    order = {eid: i for i, eid in enumerate(ids)}
    got = set(frame["example_id"]) if len(frame) else set()
    if len(frame) != len(order) or got != set(order):
        raise StageError(f"Beam inference wrote {len(frame)} result rows to {out_dir} for {len(order)} examples "
                         f"({len(set(order) - got)} missing); expected one row per example.")
    FileSystems.delete([out_dir])
    return frame.sort_values("example_id", key=lambda s: s.map(order)).reset_index(drop=True)


def _element(line: str) -> tuple[str, Any]:
    """``[id, text]`` or ``[id, [text, retrieval query]]`` from the inputs file, as the handler takes it."""
    key, value = json.loads(line)
    return key, value if isinstance(value, str) else tuple(value)
