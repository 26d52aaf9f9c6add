"""Prefix trees over token ids (pipelines.variants._prefix_tree): structure, and the same logits as whole prompts."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from pipelines.variants._prefix_tree import chunks, radix_tree, run_tree

SEQS = [[1, 2, 3, 4], [1, 2, 3, 5], [1, 2, 6], [7], [1, 2, 3, 4]]


def _segments(seqs, nodes):
    """``{(start, end, tuple(tokens)), ...}`` and, per sequence, the node it ends at."""
    seg = {(n.start, n.end, tuple(seqs[n.members[0]][n.start : n.end])) for n in nodes}
    end_of = {}
    for i, n in enumerate(nodes):
        for m in n.ends:
            assert m not in end_of
            end_of[m] = i
    return seg, end_of


def _path(nodes, i):
    out = []
    while i >= 0:
        out.append(i)
        i = nodes[i].parent
    return out[::-1]


def _check_paths(seqs, members, nodes):
    """Every sequence is the concatenation of the segments on the path to the node it ends at."""
    _, end_of = _segments(seqs, nodes)
    assert sorted(end_of) == sorted(members)
    for m, i in end_of.items():
        path = _path(nodes, i)
        assert [nodes[j].depth for j in path] == list(range(len(path)))
        tokens = [t for j in path for t in seqs[m][nodes[j].start : nodes[j].end]]
        assert tokens == list(seqs[m])
        assert nodes[path[0]].start == 0 and all(nodes[a].end == nodes[b].start for a, b in zip(path, path[1:]))
        assert all(m in nodes[j].members for j in path)
        for a, b in zip(path, path[1:]):
            assert b in nodes[a].children


def test_radix_tree_of_a_hand_built_set():
    nodes = radix_tree(SEQS, range(len(SEQS)))
    seg, end_of = _segments(SEQS, nodes)
    assert seg == {(0, 2, (1, 2)), (2, 3, (3,)), (3, 4, (4,)), (3, 4, (5,)), (2, 3, (6,)), (0, 1, (7,))}
    assert end_of[0] == end_of[4]  # identical sequences end at one node
    assert sum(n.end - n.start for n in nodes) == 7  # of 14 tokens in all
    _check_paths(SEQS, range(len(SEQS)), nodes)


def test_short_shared_stretches_are_merged_into_their_children():
    # [1, 2] is shared three ways (saves 2 * 2 = 4 tokens), [3] two ways (saves 1): both under min_saved = 5
    nodes = radix_tree(SEQS, range(len(SEQS)), min_saved=5)
    seg, _ = _segments(SEQS, nodes)
    assert seg == {(0, 4, (1, 2, 3, 4)), (0, 4, (1, 2, 3, 5)), (0, 3, (1, 2, 6)), (0, 1, (7,))}
    assert all(n.parent == -1 and n.depth == 0 for n in nodes)
    # at min_saved = 2 the three-way [1, 2] stays and the two-way [3] goes
    seg, _ = _segments(SEQS, radix_tree(SEQS, range(len(SEQS)), min_saved=2))
    assert seg == {(0, 2, (1, 2)), (2, 4, (3, 4)), (2, 4, (3, 5)), (2, 3, (6,)), (0, 1, (7,))}


@pytest.mark.parametrize("min_saved", [0, 3, 1000])
def test_random_sets_reconstruct_and_share_every_common_prefix(min_saved):
    rng = random.Random(min_saved)
    for _ in range(30):
        seqs = [[rng.randrange(4) for _ in range(rng.randrange(1, 9))] for _ in range(rng.randrange(1, 25))]
        members = [i for i in range(len(seqs)) if rng.random() < 0.8] or [0]
        nodes = radix_tree(seqs, members, min_saved=min_saved)
        _check_paths(seqs, members, nodes)
        assert all(n.end > n.start for n in nodes)
        tokens = sum(n.end - n.start for n in nodes)
        if min_saved == 0:  # one node token per distinct prefix
            assert tokens == len({tuple(seqs[m][:j]) for m in members for j in range(1, len(seqs[m]) + 1)})
        if min_saved == 1000:  # shared only up to where another sequence ends (that node runs anyway)
            distinct = {tuple(seqs[m]) for m in members}
            assert tokens == sum(len(s) - max([len(p) for p in distinct if len(p) < len(s) and s[: len(p)] == p],
                                              default=0) for s in distinct)


def test_chunks_sort_sequences_so_that_neighbours_share():
    parts = chunks(SEQS, 2)
    assert parts == [[0, 4], [1, 2], [3]]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_running_the_tree_gives_the_logits_of_whole_prompts(tiny_lm_dir, dtype):
    from transformers import AutoModelForCausalLM

    from pipelines.variants._llama import PackedLlama

    model = AutoModelForCausalLM.from_pretrained(tiny_lm_dir, torch_dtype=torch.float32).eval()
    packed = PackedLlama(model, matmul_dtype=getattr(torch, dtype))
    rng = random.Random(7)
    docs = [[rng.randrange(8, 40) for _ in range(rng.randrange(3, 12))] for _ in range(4)]
    seqs = [[t for d in rng.sample(docs, 2) for t in d] + [rng.randrange(8, 40) for _ in range(rng.randrange(1, 6))]
            for _ in range(23)]
    seqs.append(list(seqs[0]))  # a duplicate
    root_ids = [2, 4, 9, 3]
    answer = [5, 6]
    with torch.inference_mode():
        root = packed.forward([root_ids], keep=[len(root_ids)], token_ids=answer)[1][0]
        want = packed.forward([root_ids + s for s in seqs], token_ids=answer)[0].double().numpy()
        with_model = torch.stack([model(input_ids=torch.tensor([root_ids + s])).logits[0, -1, answer] for s in seqs])

        def forward(rows, past, keep):
            return packed.forward(rows, past=past, keep=keep, token_ids=answer)

        for min_saved, budget in ((0, 10_000), (0, 7), (6, 40)):
            got = np.full((len(seqs), 2), np.nan)
            seconds = np.zeros(len(seqs))
            parts = chunks(seqs, 9)
            together = any(0 in p and len(seqs) - 1 in p for p in parts)
            for members in parts:
                nodes = radix_tree(seqs, members, min_saved=min_saved)
                if min_saved == 0:
                    assert sum(n.end - n.start for n in nodes) < sum(len(seqs[m]) for m in members)
                run_tree(seqs, nodes, root=root, forward=forward, token_budget=budget, logits_out=got,
                         seconds_out=seconds)
            tol = 1e-5 if dtype == "float32" else 0.1
            assert np.abs(got - want).max() < tol * max(1.0, np.abs(want).max())
            assert np.abs(got - with_model.double().numpy()).max() < (1e-4 if dtype == "float32" else 0.5)
            assert seconds.sum() > 0 and (seconds[len(seqs) - 1] == 0) == together  # a duplicate rides along
