"""Vectorized, seeded, stratified bootstrap as resample-weight matrices.

A bootstrap resample of ``n`` rows is represented by a row of integer weights
(how often each row was drawn). Rows are drawn with replacement *within each
stratum*, so every stratum keeps its size. Resamples come in chunks of
``(b, n)`` float64 matrices so that memory stays bounded; every statistic is
then a weighted sum (a matrix product or a cumulative sum), computed for the
whole chunk at once. There is no Python loop over resamples.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

__all__ = ["resample_weights", "percentile_ci", "chunk_size", "CHUNK_ELEMENTS"]

#: Elements per weight chunk (b * n): 2e6 float32 = 8 MB per temporary array.
CHUNK_ELEMENTS = 2_000_000


def chunk_size(n_rows: int, *, chunk_elements: int = CHUNK_ELEMENTS) -> int:
    """Resamples per chunk for ``n_rows`` rows (a function of ``n_rows`` only, for reproducibility)."""
    return max(1, min(512, chunk_elements // max(1, n_rows)))


def resample_weights(
    strata: np.ndarray, *, n_resamples: int, seed: int | np.random.SeedSequence, chunk_elements: int = CHUNK_ELEMENTS,
    dtype: type = np.float32,
) -> Iterator[np.ndarray]:
    """Yield ``(b, n)`` weight matrices of a stratified bootstrap, ``n_resamples`` rows in total.

    Parameters
    ----------
    strata
        Integer stratum code of each row (shape ``(n,)``). Each stratum is resampled
        with replacement to its own size.
    n_resamples
        Total number of resamples over all chunks.
    seed
        Seed of the generator; the same seed, strata and ``n_resamples`` give the same weights.
    dtype
        Of the yielded matrices. The counts are small integers, exact in float32, which
        halves the memory traffic of everything downstream.

    Examples
    --------
    >>> import numpy as np
    >>> w = np.vstack(list(resample_weights(np.array([0, 0, 1, 1, 1]), n_resamples=3, seed=0)))
    >>> w.shape, w[:, :2].sum(axis=1).tolist(), w[:, 2:].sum(axis=1).tolist()
    ((3, 5), [2.0, 2.0, 2.0], [3.0, 3.0, 3.0])
    """
    strata = np.asarray(strata)
    n = strata.shape[0]
    if n == 0 or n_resamples <= 0:
        return
    rng = np.random.default_rng(seed)
    order = np.argsort(strata, kind="stable")
    sorted_codes = strata[order]
    starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])
    sizes = np.diff(np.r_[starts, n])
    identity = bool(np.array_equal(order, np.arange(n)))  # rows already grouped by stratum
    b_max = chunk_size(n, chunk_elements=chunk_elements)
    done = 0
    while done < n_resamples:
        b = min(b_max, n_resamples - done)
        out = np.empty((b, n), dtype=dtype)
        for a, z in zip(starts.tolist(), sizes.tolist()):  # loop over strata, never over resamples
            drawn = rng.integers(0, z, size=(b, z))  # exact uniform draws within the stratum
            drawn += (np.arange(b, dtype=np.int64) * z)[:, None]
            counts = np.bincount(drawn.ravel(), minlength=b * z).reshape(b, z)
            if identity:
                out[:, a:a + z] = counts
            else:
                out[:, order[a:a + z]] = counts
        yield out
        done += b


def percentile_ci(samples: np.ndarray, *, level: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Percentile CI over axis 0, ignoring NaN resamples.

    Returns ``(low, high, valid_share)``; low/high are NaN where fewer than half of the
    resamples are defined (the CI would describe a different population).
    """
    samples = np.asarray(samples, dtype=np.float64)
    alpha = (1.0 - level) / 2.0
    valid = np.isfinite(samples)
    valid_share = valid.mean(axis=0) if samples.shape[0] else np.zeros(samples.shape[1:])
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            low = np.nanquantile(samples, alpha, axis=0)
            high = np.nanquantile(samples, 1.0 - alpha, axis=0)
    bad = valid_share < 0.5
    low = np.where(bad, np.nan, low)
    high = np.where(bad, np.nan, high)
    return low, high, valid_share
