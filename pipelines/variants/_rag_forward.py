"""The generator's forward passes for :class:`~pipelines.variants.rag.RagScorer`: answer logits of prompts.

Two runtimes give the same logits up to float rounding (bf16 within the
tolerances tested in ``tests/variants/test_fast_paths.py``):

* :func:`hf_answer_logits`: the transformers modules, prompts batched by length
  with right padding, the shared prefix's KV cache copied into each batch;
* :func:`packed_answer_logits`: :class:`._llama.PackedLlama`, prompts packed
  without padding, the prefix's keys and values shared by reference.

Both take the scorer (its tokenizer, prompt parts and answer token ids) and
return ``(logits [n, 2], query cut [n], follower logits, follower cuts,
seconds spent on followers)``; given ``seconds_out`` [n], they add each
example's share of the seconds spent on the examples (by token counts, and for
shared tokens: the first example that needs them). ``followers[i]`` are queries that share
``doc_lists[i]`` (``query_only`` twins): they reuse the KV cache of prompt
``i`` up to the end of its document part, so only their query part runs.
"""

from __future__ import annotations

import copy
import time
from typing import Any, Sequence

import numpy as np

from pipelines.variants._base import Progress
from pipelines.variants.finetuned import _pad_id, length_batches, pad_batch

__all__ = ["hf_answer_logits", "packed_answer_logits"]


def _prepared(scorer: Any, queries: Sequence[str], doc_lists: Sequence[Sequence[tuple[str, Any]]],
              followers: Sequence[Sequence[str]] | None):
    parts = [scorer.parts(q, d) for q, d in zip(queries, doc_lists)]
    doc_ids = [scorer._ids(p[0]) for p in parts]
    query_ids = [scorer._ids(p[1]) for p in parts]
    cuts = np.asarray([p[2] for p in parts], dtype=bool)
    f_logits = [np.zeros((len(f), 2)) for f in followers] if followers is not None else []
    f_cuts = [np.zeros(len(f), dtype=bool) for f in followers] if followers is not None else []
    batches = length_batches([len(a) + len(b) for a, b in zip(doc_ids, query_ids)], scorer.batch_size)
    return doc_ids, query_ids, cuts, f_logits, f_cuts, batches


def _follower_rows(scorer: Any, idx: Sequence[int], followers: Sequence[Sequence[str]],
                   doc_lists: Sequence[Sequence[tuple[str, Any]]]):
    """``(owner [(batch row, example)], follower query-part ids, follower prompt parts)`` of one batch."""
    owner, f_rows, f_parts = [], [], []
    for b, i in enumerate(idx):
        for f in followers[i]:
            part = scorer.parts(f, doc_lists[i])
            owner.append((b, i))
            f_parts.append(part)
            f_rows.append(scorer._ids(part[1]))
    return owner, f_rows, f_parts


def _spread(idx, followers, logits_f, f_parts, f_logits, f_cuts) -> None:
    pos = 0
    for i in idx:
        m = len(followers[i])
        if m:
            f_logits[i] = logits_f[pos : pos + m]
            f_cuts[i] = np.asarray([p[2] for p in f_parts[pos : pos + m]], dtype=bool)
            pos += m


def _charge(seconds_out: np.ndarray | None, idx: Sequence[int], rows: Sequence[Sequence[int]], spent: float) -> None:
    """Charge a batch's seconds to its examples by their token counts."""
    if seconds_out is not None:
        total = sum(len(r) for r in rows) or 1
        for i, r in zip(idx, rows):
            seconds_out[i] += spent * len(r) / total


def _hf_prefix_cache(scorer: Any):
    import torch

    if scorer._prefix_kv is None:
        model, _ = scorer._load()
        base = getattr(model, model.base_model_prefix)
        with torch.inference_mode():
            out = base(input_ids=torch.tensor([scorer._prefix_ids]), use_cache=True)
        scorer._prefix_kv = out.cache if hasattr(out, "cache") else out.past_key_values
    return scorer._prefix_kv


def _select_cache(cache: Any, rows: Any, length: int) -> Any:
    """A new cache with batch rows ``rows`` (repeats allowed) of ``cache``, cut to the first ``length`` positions."""
    from transformers import DynamicCache

    new = DynamicCache()
    for layer_idx, layer in enumerate(cache.layers):
        new.update(layer.keys[rows, :, :length, :], layer.values[rows, :, :length, :], layer_idx)
    return new


def hf_answer_logits(scorer: Any, queries: Sequence[str], doc_lists: Sequence[Sequence[tuple[str, Any]]], *,
                     followers: Sequence[Sequence[str]] | None, progress: Progress, desc: str,
                     seconds_out: np.ndarray | None = None):
    """Answer logits on the transformers modules (right padding; the reference path)."""
    import torch

    model, tok = scorer._load()
    doc_ids, query_ids, cuts, f_logits, f_cuts, batches = _prepared(scorer, queries, doc_lists, followers)
    out = np.zeros((len(doc_ids), 2), dtype=np.float64)
    f_seconds = 0.0
    pad = _pad_id(tok)
    base = getattr(model, model.base_model_prefix)
    head = model.get_output_embeddings()
    answer = torch.tensor(scorer.answer_ids)
    n_prefix = len(scorer._prefix_ids)
    use_prefix = scorer.prefix_cache and n_prefix > 0

    def forward(rows, cache, cached_mask, position_start=None):
        input_ids, mask = pad_batch(rows, pad, side="right")
        kwargs: dict[str, Any] = {"use_cache": followers is not None}
        if cache is not None:
            mask = torch.cat([cached_mask.to(mask.dtype), mask], dim=1)
            kwargs.update(cache=cache, use_cache=True)
        if position_start is not None:
            kwargs["position_ids"] = position_start.unsqueeze(1) + torch.arange(input_ids.shape[1]).unsqueeze(0)
        res = base(input_ids=input_ids, attention_mask=mask, **kwargs)
        h = res.last_hidden_state[torch.arange(len(rows)), torch.tensor([len(r) - 1 for r in rows])]
        return head(h)[:, answer].double().numpy(), getattr(res, "cache", None)

    with torch.inference_mode():
        for idx in progress(batches, desc=desc, total=len(batches), unit="batch"):
            t_batch = time.perf_counter()
            rows = [([] if use_prefix else list(scorer._prefix_ids)) + doc_ids[i] + query_ids[i] for i in idx]
            cache = None
            if use_prefix:
                cache = copy.deepcopy(_hf_prefix_cache(scorer))
                cache.batch_repeat_interleave(len(idx))
            logits, cache = forward(rows, cache, torch.ones((len(idx), n_prefix if use_prefix else 0)))
            out[idx] = logits
            _charge(seconds_out, idx, rows, time.perf_counter() - t_batch)
            if followers is None or not any(followers[i] for i in idx):
                continue
            t0 = time.perf_counter()
            # One batch for every follower of this batch's rows: each reuses its row's cache up to the
            # end of the document part (prefix + documents); positions past that are masked out, and
            # the follower's query tokens continue at the row's own position.
            owner, f_rows, f_parts = _follower_rows(scorer, idx, followers, doc_lists)
            shared = torch.tensor([n_prefix + len(doc_ids[i]) for _, i in owner])
            width = int(shared.max())
            cached_mask = (torch.arange(width).unsqueeze(0) < shared.unsqueeze(1))
            f_cache = _select_cache(cache, torch.tensor([b for b, _ in owner]), width)
            logits_f, _ = forward(f_rows, f_cache, cached_mask, position_start=shared)
            _spread(idx, followers, logits_f, f_parts, f_logits, f_cuts)
            f_seconds += time.perf_counter() - t0
    return out, cuts, f_logits, f_cuts, f_seconds


def packed_answer_logits(scorer: Any, packed: Any, queries: Sequence[str],
                         doc_lists: Sequence[Sequence[tuple[str, Any]]], *,
                         followers: Sequence[Sequence[str]] | None, progress: Progress, desc: str,
                         seconds_out: np.ndarray | None = None):
    """Answer logits on :class:`._llama.PackedLlama` (same prompts, same token ids, no padding).

    Prompts that begin alike (documents retrieved by several comments, the
    documents a ``query_only`` twin shares with its original) run their common
    tokens once: :mod:`._prefix_tree`. ``scorer.share_prefixes = False`` runs
    each prompt whole, in batches of ``scorer.batch_size`` (the former path,
    kept for comparison).
    """
    import torch

    scorer._load()
    doc_ids, query_ids, cuts, f_logits, f_cuts, batches = _prepared(scorer, queries, doc_lists, followers)
    out = np.zeros((len(doc_ids), 2), dtype=np.float64)
    answer = list(scorer.answer_ids)
    n_prefix = len(scorer._prefix_ids)
    use_prefix = scorer.prefix_cache and n_prefix > 0
    with torch.inference_mode():
        if use_prefix and scorer._packed_prefix is None:
            scorer._packed_prefix = packed.forward([scorer._prefix_ids], keep=[n_prefix], token_ids=answer)[1][0]
        prefix = scorer._packed_prefix if use_prefix else None
        head = [] if use_prefix else list(scorer._prefix_ids)
        if scorer.share_prefixes:
            return _packed_tree(scorer, packed, head, prefix, doc_ids, query_ids, cuts, doc_lists, followers,
                                f_logits, f_cuts, progress=progress, desc=desc, seconds_out=seconds_out)
        f_seconds = 0.0
        for idx in progress(batches, desc=desc, total=len(batches), unit="batch"):
            rows = [head + doc_ids[i] + query_ids[i] for i in idx]
            # a row with followers keeps its keys and values up to the end of its document part
            keep = [n_prefix + len(doc_ids[i]) if followers is not None and followers[i] else None for i in idx]
            t_batch = time.perf_counter()
            logits, caches = packed.forward(rows, past=[prefix] * len(idx), keep=keep, token_ids=answer)
            out[idx] = logits.double().numpy()
            _charge(seconds_out, idx, rows, time.perf_counter() - t_batch)
            if followers is None or not any(followers[i] for i in idx):
                continue
            t0 = time.perf_counter()
            owner, f_rows, f_parts = _follower_rows(scorer, idx, followers, doc_lists)
            logits_f, _ = packed.forward(f_rows, past=[caches[b] for b, _ in owner], token_ids=answer)
            _spread(idx, followers, logits_f.double().numpy(), f_parts, f_logits, f_cuts)
            f_seconds += time.perf_counter() - t0
    return out, cuts, f_logits, f_cuts, f_seconds


#: Sequences per prefix tree (sorted first, so that neighbours share); bounds the keys and values held at once.
TREE_CHUNK = 64
#: Tokens per forward call of the prefix trees (what a batch of 8 whole prompts held).
TREE_TOKENS_PER_CALL = 1024
#: A shared stretch runs once only where that saves at least this many tokens (an extra row costs about as much).
TREE_MIN_SAVED = 24


def _packed_tree(scorer, packed, head, prefix, doc_ids, query_ids, cuts, doc_lists, followers, f_logits, f_cuts, *,
                 progress: Progress, desc: str, seconds_out: np.ndarray | None):
    """:func:`packed_answer_logits` over prefix trees: every prompt and follower prompt is one sequence."""
    from pipelines.variants._prefix_tree import chunks, radix_tree, run_tree

    n = len(doc_ids)
    examples = range(n)
    seqs = [head + doc_ids[i] + query_ids[i] for i in examples]
    if followers is not None:  # after the examples, in _follower_rows' order
        owner, f_rows, f_parts = _follower_rows(scorer, examples, followers, doc_lists)
        seqs += [head + doc_ids[i] + ids for (_, i), ids in zip(owner, f_rows)]
    logits = np.zeros((len(seqs), 2), dtype=np.float64)
    seconds = np.zeros(len(seqs), dtype=np.float64)
    answer = list(scorer.answer_ids)

    def forward(rows, past, keep):
        return packed.forward(rows, past=past, keep=keep, token_ids=answer)

    parts = chunks(seqs, TREE_CHUNK)
    for members in progress(parts, desc=desc, total=len(parts), unit="chunk"):
        run_tree(seqs, radix_tree(seqs, members, min_saved=TREE_MIN_SAVED), root=prefix, forward=forward,
                 token_budget=TREE_TOKENS_PER_CALL, logits_out=logits, seconds_out=seconds)
    if followers is not None:
        _spread(examples, followers, logits[n:], f_parts, f_logits, f_cuts)
    if seconds_out is not None:
        seconds_out += seconds[:n]
    return logits[:n], cuts, f_logits, f_cuts, float(seconds[n:].sum())
