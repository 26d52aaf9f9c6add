"""Scoring the audit texts and both modes of their counterfactual twins in one pass (:class:`.rag.RagPredictor`).

See :meth:`.rag.RagPredictor.predict_with_twins`. One pass, so that the
packed engine's prefix trees (:mod:`._prefix_tree`) share documents between
originals and twins.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np

from pipelines.errors import ModelError
from pipelines.variants._base import Predictions, Progress, check_scores, check_texts, no_progress

__all__ = ["predict_with_twins"]


def predict_with_twins(predictor: Any, texts: Sequence[str], twin_texts: Sequence[str], twin_rows: Sequence[int], *,
                       progress: Progress = no_progress) -> tuple[Predictions, Predictions, Predictions,
                                                                   dict[str, Any]]:
    """The texts and both modes of their counterfactual twins, scored in one pass by ``predictor``.

    ``twin_texts[j]`` is a twin of ``texts[twin_rows[j]]``. Its ``query_only``
    score uses its original's documents (a follower: it continues the
    original's keys and values at the query); its ``full`` score uses its
    own retrieval. A full twin whose retrieval equals its original's has its
    query_only prompt and is not scored again; the others are scored in the
    same pass as the originals, so that prompts that begin with the same
    documents run them once. Returns ``(predictions, query_only, full,
    info)``; ``info``: ``audit_seconds``, ``twin_seconds`` (the twins'
    retrieval and the tokens only they need), ``query_only_seconds`` and
    ``full_reused`` (full twins that took their query_only score).
    """
    t_start = time.perf_counter()
    texts = check_texts(texts, where=f"variant `{predictor.name}` input")
    twin_texts = check_texts(twin_texts, where=f"variant `{predictor.name}` twins")
    rows = np.asarray(twin_rows, dtype=np.int64).reshape(-1)
    if len(rows) != len(twin_texts) or (len(rows) and (rows.min() < 0 or rows.max() >= len(texts))):
        raise ModelError(f"variant `{predictor.name}`: {len(twin_texts)} twins with {len(rows)} original rows; "
                         f"expected one row each, within 0..{len(texts) - 1}.")
    if not texts:
        empty = Predictions(np.zeros(0), np.zeros(0, dtype=bool))
        return predictor.predict(texts), empty, empty, {"audit_seconds": 0.0, "twin_seconds": 0.0,
                                                        "query_only_seconds": 0.0, "full_reused": 0}
    idx, sims, cut_embed = predictor.retrieve(texts, progress=progress)
    followers: list[list[str]] = [[] for _ in texts]
    slot: list[tuple[int, int]] = []
    for j, r in enumerate(rows.tolist()):
        slot.append((r, len(followers[r])))
        followers[r].append(twin_texts[j])
    t_twins = time.perf_counter()
    if twin_texts:
        idx_full, _, cut_full = predictor.retrieve(twin_texts, progress=progress)
    else:
        idx_full, cut_full = np.zeros((0, idx.shape[1]), dtype=idx.dtype), np.zeros(0, dtype=bool)
    same = (idx_full == idx[rows]).all(axis=1)
    changed = np.flatnonzero(~same)
    t_twins = time.perf_counter() - t_twins
    n = len(texts)
    queries = list(texts) + [twin_texts[i] for i in changed]
    seconds = np.zeros(len(queries))
    logits, cut_prompt, f_logits, f_cuts, f_seconds = predictor.scorer.answer_logits_with_followers(
        queries, predictor._docs(idx) + predictor._docs(idx_full[changed]), followers=followers + [[] for _ in changed],
        progress=progress, desc=f"{predictor.name}: scoring (+ twins)", seconds_out=seconds)
    scores = predictor.scorer._to_scores(logits)
    pred = Predictions(scores=check_scores(scores[:n], variant=predictor.name, where=f"{n} texts"),
                       truncated=cut_embed | cut_prompt[:n], extras=predictor._extras(idx, sims))
    f_scores = [predictor.scorer._to_scores(x) for x in f_logits]
    s_q = np.array([f_scores[r][k] for r, k in slot], dtype=np.float64)
    cut_q = np.array([f_cuts[r][k] for r, k in slot], dtype=bool)
    s_q = check_scores(s_q, variant=predictor.name, where="twins (query_only)") if len(s_q) else s_q
    s_full = s_q.copy()
    s_full[changed] = scores[n:]
    full = Predictions(check_scores(s_full, variant=predictor.name, where="twins (full)") if len(s_full) else s_full,
                       cut_full | cut_q)
    twin_seconds = t_twins + f_seconds + float(seconds[n:].sum())
    info = {"audit_seconds": time.perf_counter() - t_start - twin_seconds, "twin_seconds": twin_seconds,
            "query_only_seconds": f_seconds, "full_reused": int(same.sum())}
    return pred, Predictions(s_q, cut_q), full, info
