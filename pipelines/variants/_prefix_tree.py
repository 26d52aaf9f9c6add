"""Prompts that begin alike are computed once up to where they differ: a radix tree over token ids.

The RAG scorer's prompts are ``shared prefix + documents + query``. Comments that
retrieve the same first document(s), and the ``query_only`` twins that share all
of their original's documents, begin with the same tokens; a causal LM's keys and
values at a position depend only on the tokens up to it, so those tokens need
running once. :func:`radix_tree` builds the tree of a chunk of sequences
(sorted, so that chunks keep neighbours together) and :func:`run_tree` runs it
level by level: each node's tokens continue its parent's keys and values, many
nodes packed into one forward call. Measured on the whole eval split (3,437
comments, 2,981 twins whose retrieval changed, k = 3 of 3,000 documents): 39% of
the document tokens are shared, the prompt tokens to run fall 1.42x.

The cost of each forward call is charged to the nodes in it by their token
counts, and a node's cost to the first sequence (in input order) that passes
through it, so that callers can still say what the later sequences (twins) cost
on top of the earlier ones.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

__all__ = ["Node", "radix_tree", "run_tree", "chunks"]


@dataclass
class Node:
    """Tokens ``seq[start:end]`` of every sequence in ``members``, continuing node ``parent`` (-1: the root cache)."""

    start: int
    end: int
    parent: int
    members: list[int]
    ends: list[int] = field(default_factory=list)  # members whose sequence ends here
    children: list[int] = field(default_factory=list)
    depth: int = 0


def radix_tree(seqs: Sequence[Sequence[int]], members: Sequence[int], *, min_saved: int = 0) -> list[Node]:
    """The radix tree of ``seqs[m]`` for ``m`` in ``members``; every node holds at least one token.

    Sequences must be non-empty. Identical sequences end at the same node. A
    node that no sequence ends at and whose tokens would be saved fewer than
    ``min_saved`` times over (``(children - 1) * tokens``) is merged into its
    children: each extra row of a forward call costs about as much as a few
    dozen tokens, so a short shared stretch is cheaper to run twice.
    """
    nodes: list[Node] = []
    # (members sharing seq[:start], start, parent node, depth)
    todo: list[tuple[list[int], int, int, int]] = [(list(members), 0, -1, 0)]
    while todo:
        group, start, parent, depth = todo.pop()
        # split by the token at `start` (every member is longer than `start` here)
        by_token: dict[int, list[int]] = {}
        for m in group:
            by_token.setdefault(int(seqs[m][start]), []).append(m)
        for sub in by_token.values():
            end = start + 1
            while True:
                if any(len(seqs[m]) == end for m in sub):
                    break
                t = seqs[sub[0]][end]
                if any(seqs[m][end] != t for m in sub):
                    break
                end += 1
            node = Node(start=start, end=end, parent=parent, members=sub, depth=depth,
                        ends=[m for m in sub if len(seqs[m]) == end])
            nodes.append(node)
            me = len(nodes) - 1
            if parent >= 0:
                nodes[parent].children.append(me)
            rest = [m for m in sub if len(seqs[m]) > end]
            if rest:
                todo.append((rest, end, me, depth + 1))
    return _merged(nodes, min_saved) if min_saved > 0 else nodes


def _merged(nodes: list[Node], min_saved: int) -> list[Node]:
    """``nodes`` with the nodes that save too little merged into their children (see :func:`radix_tree`)."""
    gone = [False] * len(nodes)
    for i, node in enumerate(nodes):  # parents come before their children
        if node.ends or (len(node.children) - 1) * (node.end - node.start) >= min_saved:
            continue
        gone[i] = True
        for c in node.children:
            nodes[c].start, nodes[c].parent = node.start, node.parent
        if node.parent >= 0:
            siblings = nodes[node.parent].children
            siblings[siblings.index(i):siblings.index(i) + 1] = node.children
    new_index = {}
    kept = []
    for i, node in enumerate(nodes):
        if not gone[i]:
            new_index[i] = len(kept)
            kept.append(node)
    for node in kept:
        node.parent = new_index[node.parent] if node.parent >= 0 else -1
        node.children = [new_index[c] for c in node.children]
        node.depth = kept[node.parent].depth + 1 if node.parent >= 0 else 0
    return kept


def chunks(seqs: Sequence[Sequence[int]], size: int) -> list[list[int]]:
    """Sequence indices sorted by their tokens, cut into chunks of ``size`` (one tree each)."""
    order = sorted(range(len(seqs)), key=lambda i: list(seqs[i]))
    return [order[i : i + size] for i in range(0, len(order), size)]


def run_tree(seqs: Sequence[Sequence[int]], nodes: list[Node], *, root: Any,
             forward: Callable[..., tuple[Any, list[Any]]], token_budget: int,
             logits_out: Any, seconds_out: Any) -> None:
    """Run ``nodes`` level by level; write each sequence's last-token logits and its charged seconds.

    ``forward(rows, past=, keep=)`` is :meth:`._llama.PackedLlama.forward` with the
    token ids to score bound; ``root`` is the cache every top node continues (or
    None). Nodes of one level go into calls of at most ``token_budget`` tokens (at
    least one node each). A node's cache lives until its children have run.
    """
    caches: dict[int, Any] = {}
    levels: dict[int, list[int]] = {}
    for i, node in enumerate(nodes):
        levels.setdefault(node.depth, []).append(i)
    for depth in sorted(levels):
        level = sorted(levels[depth], key=lambda i: nodes[i].end - nodes[i].start)
        batch: list[int] = []
        used = 0
        for pos, i in enumerate(level):
            batch.append(i)
            used += nodes[i].end - nodes[i].start
            if used < token_budget and pos + 1 < len(level):
                continue
            past = [caches[nodes[j].parent] if nodes[j].parent >= 0 else root for j in batch]
            keep = [nodes[j].end + (root.length if root is not None else 0) if nodes[j].children else None
                    for j in batch]
            rows = [list(seqs[nodes[j].members[0]][nodes[j].start : nodes[j].end]) for j in batch]
            t0 = time.perf_counter()
            logits, new = forward(rows, past=past, keep=keep)
            spent = time.perf_counter() - t0
            logits = logits.double().numpy()
            for r, j in enumerate(batch):
                node = nodes[j]
                seconds_out[min(node.members)] += spent * len(rows[r]) / used
                for m in node.ends:
                    logits_out[m] = logits[r]
                if node.children:
                    caches[j] = new[r]
            batch, used = [], 0
        for i in levels.get(depth - 1, []):  # their children (this level) have run
            caches.pop(i, None)
