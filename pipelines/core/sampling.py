"""Seeded, stratified sampling shared by the data stage and the model stages."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["largest_remainder", "stratified_rows", "label_sample"]


def largest_remainder(sizes: np.ndarray, total: int) -> np.ndarray:
    """Integer allocation of ``total`` proportional to ``sizes`` (Hamilton's method)."""
    sizes = np.asarray(sizes, dtype=float)
    if total <= 0 or sizes.sum() == 0:
        return np.zeros(len(sizes), dtype=int)
    exact = sizes / sizes.sum() * total
    base = np.floor(exact).astype(int)
    base = np.minimum(base, sizes.astype(int))
    left = total - base.sum()
    order = np.argsort(-(exact - base), kind="stable")
    for i in order:
        if left <= 0:
            break
        if base[i] < sizes[i]:
            base[i] += 1
            left -= 1
    return base


def stratified_rows(labels: np.ndarray, size: int | None, seed: int) -> np.ndarray:
    """Sorted positions of a label-stratified sample of ``size`` rows (all when None or too few)."""
    labels = np.asarray(labels)
    n = len(labels)
    if size is None or size >= n:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    picked = []
    classes = np.unique(labels)
    alloc = largest_remainder(np.array([(labels == c).sum() for c in classes]), size)
    for c, a in zip(classes, alloc):
        pos = np.flatnonzero(labels == c)
        picked.append(rng.choice(pos, size=min(a, len(pos)), replace=False))
    return np.sort(np.concatenate(picked))


def label_sample(table: Any, max_rows: int | None, seed: int) -> Any:
    """A seeded label-stratified sample of at most ``max_rows`` rows of a table with ``example_id`` and ``label``,
    independent of the input's row order."""
    table = table.sort_values("example_id").reset_index(drop=True)
    return table.iloc[stratified_rows(table["label"].to_numpy(), max_rows, seed)].reset_index(drop=True)
