"""The predict stage on Beam: one ``RunInference`` pass per variant over every text it scores."""

from __future__ import annotations

import functools
import time
from typing import Any

import numpy as np
import pandas as pd

from pipelines.core.runner import StageContext
from pipelines.variants import (
    Predictions,
    ScoreSets,
    ScoringRequest,
    TwinScores,
    VariantKind,
    check_scores,
    load_predictor,
    rate,
)

__all__ = ["score_on_beam"]

#: Element tags: the audit sample, twins in each mode, the validation sample.
_AUDIT, _VALIDATION = "a", "v"
_MODE_TAGS = {"full": "t", "query_only": "q"}


def _from_rows(frame: pd.DataFrame) -> Predictions:
    extras = [c for c in frame.columns if c not in ("example_id", "score", "truncated")]
    return Predictions(scores=frame["score"].to_numpy(dtype=np.float64), truncated=frame["truncated"].to_numpy(bool),
                       extras={k: frame[k].tolist() for k in extras})


def score_on_beam(ctx: StageContext, kind: VariantKind, built: dict[str, Any],
                  request: ScoringRequest) -> tuple[ScoreSets, dict[str, Any]]:
    """Score audit, twins and validation in one ``RunInference`` pass on the configured runner.

    Each worker builds the predictor once (:func:`pipelines.variants.load_predictor` from
    the build entry). ``query_only`` twins are sent as ``(twin text, original text)`` pairs:
    scored with the original's retrieved documents.
    """
    from pipelines import beam

    texts, twin_texts, val_texts = request.audit_texts, request.twin_texts, request.validation_texts
    elements: list[tuple[str, Any]] = [(f"{_AUDIT}{i}", t) for i, t in enumerate(texts)]
    for mode in kind.twin_modes:
        tag = _MODE_TAGS[mode]
        if mode == "query_only":
            elements += [(f"{tag}{j}", (t, texts[r])) for j, (t, r) in enumerate(zip(twin_texts, request.twin_rows))]
        else:
            elements += [(f"{tag}{j}", t) for j, t in enumerate(twin_texts)]
    elements += [(f"{_VALIDATION}{i}", t) for i, t in enumerate(val_texts)]
    args = beam.pipeline_args(ctx.config.beam)
    workers = beam.local_worker_processes(args)
    # the local processes share this machine's cores: split the torch threads between them
    threads = max(1, ctx.config.scoring.num_threads // workers)
    factory = functools.partial(load_predictor, kind.spec, built, num_threads=threads, index=kind.index)
    ctx.log.info("%s: scoring %d texts with RunInference (%s)", kind.name, len(elements), " ".join(args))
    t0 = time.perf_counter()
    frame = beam.score_on_beam([k for k, _ in elements], [e for _, e in elements], factory=factory,
                               pipeline_args=args, workdir=ctx.scratch_dir / f"beam-{kind.name}",
                               batch_size=kind.batch_size)
    seconds = time.perf_counter() - t0
    part = frame["example_id"].str[0]

    def take(tag: str, where: str) -> Predictions:
        pred = _from_rows(frame[part == tag])
        pred.scores = check_scores(pred.scores, variant=kind.name, where=where)
        return pred

    twins = {mode: TwinScores(np.arange(len(twin_texts)), take(_MODE_TAGS[mode], f"twins ({mode})"))
             for mode in kind.twin_modes}

    def share(n: int) -> dict[str, Any]:
        # One pass scores everything: its seconds apportioned by count (so the rate is the pass's).
        return rate(n, seconds * n / len(elements))

    sets = ScoreSets(
        audit=take(_AUDIT, "the audit sample"), twins=twins, validation=take(_VALIDATION, "validation"),
        timing={"audit": share(len(texts)), "twins": share(len(twin_texts) * len(kind.twin_modes)),
                "validation": share(len(val_texts))},
        batch_size=kind.batch_size)
    rate_all = len(elements) / seconds if seconds > 0 else None
    info = {"pipeline_args": args, "elements": len(elements), "seconds": round(seconds, 3),
            "threads_per_worker": threads, "examples_per_s": round(rate_all, 2) if rate_all else None,
            "note": "one RunInference pass over audit, twins and validation, model loads and runner start-up "
                    "included; per-set seconds are apportioned by count"}
    return sets, info
