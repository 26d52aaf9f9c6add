"""Ratios of sums per group (counterfactual flips, retrieval exposure), with a cluster bootstrap of rows."""

from __future__ import annotations

import warnings
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from pipelines.fairness._binomial import effective_counts
from pipelines.fairness._frame import mean_by_group
from pipelines.fairness._metrics import STATUS_INSUFFICIENT, STATUS_OK, build_slicing, group_sums
from pipelines.fairness._sliced import SlicedSettings, boot_loop, make_record

__all__ = ["grouped_ratios"]


def grouped_ratios(*, sensitive: pd.DataFrame, numerators: Mapping[str, np.ndarray],
                   denominators: Mapping[str, np.ndarray] | None = None, settings: SlicedSettings,
                   seed_key: Iterable[int], min_count: int | None = None, differences: Iterable[str] = (),
                   proportions: Mapping[str, str] | None = None, **keys: Any) -> list[dict[str, Any]]:
    """Per-group ratio-of-sums estimates ``sum(num) / sum(den)`` with a cluster bootstrap of rows.

    ``denominators`` default to one per row (means). A group with fewer than
    ``min_count`` rows (default ``settings.min_group_size``) is insufficient data,
    except for the ``proportions`` (name -> ``"binomial"`` or ``"clustered"``): those are
    ``ok`` with any trial, and their records carry ``events`` and ``trials`` (for
    ``"clustered"`` ones, the Rao-Scott effective counts with each row as a cluster),
    from which exact intervals are computed. For each name in ``differences`` the
    max - min across eligible groups of each feature is added as metric
    ``<name>_difference`` (group None).
    """
    proportions = dict(proportions or {})
    s = settings
    min_count = s.min_group_size if min_count is None else min_count
    slicing, order = build_slicing(sensitive, features=s.features, intersections=s.intersections)
    names = list(numerators)
    n = slicing.n_rows
    den = denominators or {}
    X = np.column_stack(
        [np.asarray(numerators[m], dtype=np.float64)[order] for m in names]
        + [np.asarray(den.get(m, np.ones(n)), dtype=np.float64)[order] for m in names]
        + [np.ones(n)]
    )
    k = len(names)

    def compute(W: np.ndarray) -> dict[Any, np.ndarray]:
        sums = group_sums(W, X, slicing)
        with np.errstate(divide="ignore", invalid="ignore"):
            return {m: np.where(sums[..., k + i] > 0, sums[..., i] / sums[..., k + i], np.nan)
                    for i, m in enumerate(names)}

    point = compute(np.ones((1, n)))
    for m in names:
        if m not in den:  # a mean of per-row values: MetricFrame's per-group estimate
            point[m] = mean_by_group(np.asarray(numerators[m], dtype=np.float64)[order], slicing=slicing)
    psums = group_sums(np.ones((1, n)), X, slicing)[0]
    boot = boot_loop(compute, slicing.cells, resamples=s.resamples, seed=np.random.SeedSequence([s.seed, *seed_key]))
    rows = psums[:, -1]
    records = []
    for i, m in enumerate(names):
        trials = psums[:, k + i]
        ok = (trials > 0) if m in proportions else (rows >= min_count) & (trials > 0)
        counts = None
        if proportions.get(m) == "clustered":
            counts = _effective(X[:, i], X[:, k + i], slicing)
        elif m in proportions:
            counts = (psums[:, i], trials)
        for j, (feature, group) in enumerate(slicing.columns):
            rec = make_record(
                point=point[m][0, j], boot=None if boot is None else boot[m][:, j],
                status=STATUS_OK if ok[j] else STATUS_INSUFFICIENT, level=s.level,
                **keys, feature=feature, group=group, metric=m, n=int(rows[j]))
            if counts is not None:
                rec.update(events=float(counts[0][j]), trials=float(counts[1][j]))
            records.append(rec)
        if m in differences:
            for f in slicing.features:
                cols = slicing.feature_columns(f)
                okc = ok[cols]

                def spread(arr: np.ndarray) -> np.ndarray:
                    v = arr[:, cols][:, okc]
                    if v.shape[1] < 2:
                        return np.full(arr.shape[0], np.nan)
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", RuntimeWarning)
                        return np.nanmax(v, axis=1) - np.nanmin(v, axis=1)

                records.append(make_record(
                    point=spread(point[m])[0], boot=None if boot is None else spread(boot[m]),
                    status=STATUS_OK if okc.sum() >= 2 else STATUS_INSUFFICIENT, level=s.level,
                    **keys, feature=f, group=None, metric=f"{m}_difference", n=int(okc.sum())))
    return records


def _effective(successes: np.ndarray, sizes: np.ndarray, slicing) -> tuple[np.ndarray, np.ndarray]:
    """Rao-Scott effective (events, trials) per group column, each row a cluster (rows in cell order)."""
    events = np.zeros(len(slicing.columns))
    trials = np.zeros(len(slicing.columns))
    e, t = effective_counts(successes=successes, sizes=sizes, cluster_group=np.zeros(len(sizes), dtype=np.int64),
                            n_groups=1)
    events[0], trials[0] = e[0], t[0]
    for f in slicing.features:
        cols = slicing.feature_columns(f)
        e, t = effective_counts(successes=successes, sizes=sizes, cluster_group=slicing.codes[f],
                                n_groups=len(cols))
        events[cols], trials[cols] = e, t
    return events, trials
