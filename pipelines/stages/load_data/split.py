"""Deterministic stratified splitting and sampling."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipelines.core.sampling import largest_remainder

__all__ = ["assign_splits", "stratified_sample"]


def _strata(frame: pd.DataFrame, by: list[str]) -> list[np.ndarray]:
    """Row positions per stratum, strata and rows in a fixed order (sorted by key, then id)."""
    keyed = frame[by].astype(str).agg("\x1f".join, axis=1) if len(by) > 1 else frame[by[0]].astype(str)
    order = np.lexsort((frame["example_id"].astype(str).to_numpy(), keyed.to_numpy()))
    keys = keyed.to_numpy()[order]
    bounds = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1], True])
    return [order[bounds[i]:bounds[i + 1]] for i in range(len(bounds) - 1)]


def assign_splits(frame: pd.DataFrame, *, by: list[str], eval_fraction: float, validation_fraction: float,
                  seed: int, group_by: str | None = None) -> pd.Series:
    """Return a ``split`` column: 'train', 'validation' or 'eval', stratified by ``by``.

    With ``group_by``, the rows that share its value form one unit and go to one split
    together; units are stratified by the set of strata of their rows (a minimal pair
    labelled 1 and 0 in group g is a unit of stratum ``{g|0, g|1}``). A row without a key
    is a unit of its own. The result depends only on the rows' ids, keys and strata and
    the seed, not on row order.
    """
    rng = np.random.default_rng(seed)
    if group_by is None:
        split = np.full(len(frame), "train", dtype=object)
        for positions in _strata(frame, by):
            shuffled = positions[rng.permutation(len(positions))]
            n_eval, n_val = _counts(len(shuffled), eval_fraction, validation_fraction)
            split[shuffled[:n_eval]] = "eval"
            split[shuffled[n_eval:n_eval + n_val]] = "validation"
        return pd.Series(split, index=frame.index, name="split")
    ids = frame["example_id"].astype(str)
    raw = frame[group_by]
    keys = raw.astype(str).where(raw.notna(), "\x00row\x00" + ids)
    row_stratum = frame[by].astype(str).agg("\x1f".join, axis=1) if len(by) > 1 else frame[by[0]].astype(str)
    units = pd.DataFrame({"key": keys.to_numpy(), "stratum": row_stratum.to_numpy()})
    unit_stratum = units.groupby("key", sort=True)["stratum"].agg(lambda s: "\x1e".join(sorted(set(s))))
    table = pd.DataFrame({"example_id": unit_stratum.index.to_numpy(), "stratum": unit_stratum.to_numpy()})
    unit_split = np.full(len(table), "train", dtype=object)
    for positions in _strata(table, ["stratum"]):
        shuffled = positions[rng.permutation(len(positions))]
        n_eval, n_val = _counts(len(shuffled), eval_fraction, validation_fraction)
        unit_split[shuffled[:n_eval]] = "eval"
        unit_split[shuffled[n_eval:n_eval + n_val]] = "validation"
    by_key = dict(zip(table["example_id"], unit_split))
    return pd.Series([by_key[k] for k in keys], index=frame.index, name="split")


def _counts(n: int, eval_fraction: float, validation_fraction: float) -> tuple[int, int]:
    return int(round(n * eval_fraction)), int(round(n * validation_fraction))


def stratified_sample(frame: pd.DataFrame, *, by: list[str], size: int | None, seed: int) -> pd.DataFrame:
    """A stratified sample of ``size`` rows (proportional allocation); all rows if ``size`` is None."""
    if size is None or size >= len(frame):
        return frame.sort_values("example_id").reset_index(drop=True)
    strata = _strata(frame, by)
    counts = largest_remainder(np.array([len(s) for s in strata]), size)
    rng = np.random.default_rng(seed + 1)
    picked = [s[rng.permutation(len(s))[:k]] for s, k in zip(strata, counts)]
    rows = np.concatenate(picked) if picked else np.array([], dtype=int)
    return frame.iloc[rows].sort_values("example_id").reset_index(drop=True)
