"""Generation metrics per group as functions of bootstrap resample weights.

:func:`pair_statistic`, :func:`sentiment_statistic` and :func:`helm_statistic` return a
:class:`GroupStatistic`: called with a ``(b, n)`` matrix of row weights (how often each
row was drawn) it returns, per metric, a ``(b, columns)`` array, one column per group and
one for all rows (group ``None``). Public names are re-exported by
:mod:`pipelines.fairness.generation`.
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from pipelines.errors import DataError
from pipelines.fairness._gen_helm import _count_matrix, _demographic_words, _target_words, _tvd_to_uniform, helm_tokens
from pipelines.fairness._gen_sentiment import _w1_weighted
from pipelines.fairness._gen_text import MSG_LENGTHS, _require, _texts

MSG_WEIGHTS = "weights must be a (b, {n}) array of non-negative resample counts. Got {found} instead."
MSG_INDICES = "indices must be a (b, m) array of row numbers in [0, {n}). Got {found} instead."
MSG_EMPTY = "{where}: there are no rows to score."
MSG_UNPAIRED = ("paired_difference needs two statistics over the same rows, in the same order and groups, "
                "with metrics in common. Got {a} and {b}.")
MSG_SCORES = "{where}: column {column!r} must hold finite numbers; row {row} holds {value!r}."


@dataclass(frozen=True)
class GroupStatistic:
    """Per-group metrics as a function of resample weights over rows.

    Attributes
    ----------
    groups
        Group labels (sorted); ``strata[i]`` is the index of row ``i``'s group.
    columns
        Per metric, the label of each output column: a group, or ``None`` for a value
        over all rows (or across groups, for the ``*_difference``-like metrics).
    compute
        ``(b, n)`` weights -> ``{metric: (b, len(columns[metric]))}``. Use the instance
        itself as the function: it checks the weights first.

    Examples
    --------
    >>> frame = pd.DataFrame({"group": ["a", "a", "b"], "rouge_l": [1.0, 0.5, 0.25]})
    >>> stat = pair_statistic(frame, means=("rouge_l",), sentiment=False)
    >>> stat.columns["rouge_l"], stat.point()["rouge_l"].tolist()
    (('a', 'b', None), [0.75, 0.25, 0.5833333333333334])
    >>> stat(np.array([[2.0, 0.0, 1.0]]))["rouge_l"].tolist()  # row 0 drawn twice, row 1 never
    [[1.0, 0.25, 0.75]]
    """

    groups: tuple[str, ...]
    strata: np.ndarray
    columns: Mapping[str, tuple[str | None, ...]]
    compute: Callable[[np.ndarray], dict[str, np.ndarray]] = field(repr=False)

    @property
    def n_rows(self) -> int:
        return int(self.strata.shape[0])

    @property
    def metrics(self) -> tuple[str, ...]:
        return tuple(self.columns)

    def __call__(self, weights: Any) -> dict[str, np.ndarray]:
        w = np.asarray(weights, dtype=np.float64)
        if w.ndim == 1:
            w = w[None, :]
        if w.ndim != 2 or w.shape[1] != self.n_rows or (w.size and (not np.isfinite(w).all() or w.min() < 0)):
            raise ValueError(MSG_WEIGHTS.format(n=self.n_rows, found=f"shape {w.shape}"))
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return self.compute(w)

    def point(self) -> dict[str, np.ndarray]:
        """The estimate on the data itself (every weight 1): ``{metric: (len(columns),)}``."""
        return {m: v[0] for m, v in self(np.ones((1, self.n_rows))).items()}

    def group_sizes(self) -> dict[str | None, int]:
        sizes: dict[str | None, int] = {g: int(c) for g, c in
                                         zip(self.groups, np.bincount(self.strata, minlength=len(self.groups)))}
        sizes[None] = self.n_rows
        return sizes

    def records(self, **keys: Any) -> list[dict[str, Any]]:
        """Tidy point estimates: ``{**keys, metric, group, value, n}``; ``value`` None where undefined."""
        sizes = self.group_sizes()
        out = []
        for metric, values in self.point().items():
            for label, value in zip(self.columns[metric], values.tolist()):
                out.append({**keys, "metric": metric, "group": label,
                            "value": float(value) if np.isfinite(value) else None, "n": sizes[label]})
        return out


def paired_difference(a: GroupStatistic, b: GroupStatistic) -> GroupStatistic:
    """``a - b`` for every metric both have, on the same resample of the same rows.

    For attribution across conditions (RAG vs its generator alone, full vs
    ``query_only`` retrieval): both statistics must be built over the same rows in
    the same order (one row per counterfactual pair or prompt), so that a resample
    draws the same pairs for both sides and the interval of the difference is paired.

    Examples
    --------
    >>> rag = pd.DataFrame({"group": ["a", "b"], "rouge_l": [0.5, 0.25]})
    >>> alone = pd.DataFrame({"group": ["a", "b"], "rouge_l": [1.0, 0.25]})
    >>> diff = paired_difference(pair_statistic(rag, sentiment=False), pair_statistic(alone, sentiment=False))
    >>> diff.point()["rouge_l"].tolist()
    [-0.5, 0.0, -0.25]
    """
    if a.groups != b.groups or a.n_rows != b.n_rows or not np.array_equal(a.strata, b.strata):
        raise ValueError(MSG_UNPAIRED.format(a=f"{a.n_rows} rows in groups {a.groups}",
                                             b=f"{b.n_rows} rows in groups {b.groups}"))
    shared = [m for m in a.columns if m in b.columns and a.columns[m] == b.columns[m]]
    if not shared:
        raise ValueError(MSG_UNPAIRED.format(a=f"metrics {a.metrics}", b=f"metrics {b.metrics}"))

    def compute(w: np.ndarray) -> dict[str, np.ndarray]:
        left, right = a.compute(w), b.compute(w)
        return {m: left[m] - right[m] for m in shared}

    return GroupStatistic(groups=a.groups, strata=a.strata, columns={m: a.columns[m] for m in shared},
                          compute=compute)


def weights_from_indices(indices: Any, n_rows: int) -> np.ndarray:
    """``(b, m)`` resampled row numbers -> ``(b, n_rows)`` weights (how often each row was drawn).

    Examples
    --------
    >>> weights_from_indices([[0, 0, 2], [1, 2, 2]], 3).tolist()
    [[2.0, 0.0, 1.0], [0.0, 1.0, 2.0]]
    """
    idx = np.asarray(indices)
    if idx.ndim == 1:
        idx = idx[None, :]
    in_range = idx.size == 0 or (idx.min() >= 0 and idx.max() < n_rows)
    if idx.ndim != 2 or not np.issubdtype(idx.dtype, np.integer) or not in_range:
        raise ValueError(MSG_INDICES.format(n=n_rows, found=f"shape {idx.shape}, dtype {idx.dtype}"))
    b = idx.shape[0]
    flat = (idx + (np.arange(b) * n_rows)[:, None]).ravel()
    return np.bincount(flat, minlength=b * n_rows).reshape(b, n_rows).astype(np.float64)


def _codes(groups: Sequence[Any], *, where: str) -> tuple[tuple[str, ...], np.ndarray]:
    labels = np.asarray([str(g) for g in groups], dtype=object)
    if labels.size == 0:
        raise DataError(MSG_EMPTY.format(where=where))
    uniques, codes = np.unique(labels, return_inverse=True)
    return tuple(str(u) for u in uniques), codes.astype(np.int64)


def _membership(codes: np.ndarray, n_groups: int) -> np.ndarray:
    """``(n, G + 1)`` 0/1 matrix: one column per group, then one of ones (all rows)."""
    h = np.zeros((codes.shape[0], n_groups + 1), dtype=np.float64)
    h[np.arange(codes.shape[0]), codes] = 1.0
    h[:, -1] = 1.0
    return h


def _column_sums(w: np.ndarray, h: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``(b, C, m)``: for each column ``c`` of ``h``, the ``w``-weighted sum of the rows of ``x`` in it."""
    return np.stack([(w * h[:, c]) @ x for c in range(h.shape[1])], axis=1)


def _finite_column(frame: pd.DataFrame, column: str, *, where: str) -> np.ndarray:
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(MSG_SCORES.format(where=where, column=column, row=i, value=frame[column].iloc[i]))
    return values


def pair_statistic(scores: pd.DataFrame, *, group_column: str = "group", means: Sequence[str] | None = None,
                   sentiment: bool = True, table: str = "answer pairs") -> GroupStatistic:
    """Counterfactual generation metrics per group, from :func:`score_answer_pairs`' table.

    Metrics (columns: each group, then ``None`` = all pairs):

    - every column in ``means`` (default: ``rouge_l`` and, if present, ``cosine``): its mean;
    - ``sentiment_strict``: Wasserstein-1 distance between the sentiment of the answers
      and of the twin answers (LangFair's strict counterfactual sentiment parity);
    - ``sentiment_weak``: share of negative answers minus share of negative twin answers
      (LangFair's weak parity; signed, so its sign says which side is more negative);
    - ``negative_share``, ``twin_negative_share``: the two shares.

    A pair is one row; the bootstrap resamples pairs.
    """
    if means is None:
        means = ("rouge_l",) + (("cosine",) if "cosine" in scores.columns else ())
    sentiment_columns = ["sentiment", "twin_sentiment", "negative", "twin_negative"] if sentiment else []
    needed = [group_column, *means, *sentiment_columns]
    _require(scores, needed, table=table)
    groups, codes = _codes(scores[group_column].tolist(), where=table)
    h = _membership(codes, len(groups))
    labels: tuple[str | None, ...] = (*groups, None)
    mean_values = np.column_stack([_finite_column(scores, m, where=table) for m in means]) if means else None
    if sentiment:
        s = _finite_column(scores, "sentiment", where=table)
        t = _finite_column(scores, "twin_sentiment", where=table)
        neg = np.column_stack([scores["negative"].to_numpy(dtype=np.float64),
                               scores["twin_negative"].to_numpy(dtype=np.float64)])
        rows_of = [np.flatnonzero(h[:, j]) for j in range(h.shape[1])]

    def compute(w: np.ndarray) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        den = w @ h  # (b, G + 1)
        if mean_values is not None:
            for k, m in enumerate(means):
                out[m] = (w @ (h * mean_values[:, [k]])) / den
        if sentiment:
            out["sentiment_strict"] = np.column_stack([_w1_weighted(s[r], t[r], w[:, r], w[:, r]) for r in rows_of])
            share = (w @ (h * neg[:, [0]])) / den
            twin_share = (w @ (h * neg[:, [1]])) / den
            out["sentiment_weak"] = share - twin_share
            out["negative_share"] = share
            out["twin_negative_share"] = twin_share
        return out

    names = list(means) + (["sentiment_strict", "sentiment_weak", "negative_share", "twin_negative_share"]
                           if sentiment else [])
    return GroupStatistic(groups=groups, strata=codes, columns={m: labels for m in names}, compute=compute)


def sentiment_statistic(sentiment: Sequence[float], negative: Sequence[bool], *, groups: Sequence[Any],
                        table: str = "open-ended answers") -> GroupStatistic:
    """Sentiment parity across groups of answers to open-ended prompts about each group.

    Metrics:

    - ``sentiment_mean``, ``negative_share`` (each group, then ``None`` = all answers);
    - ``sentiment_strict_to_overall``: per group, Wasserstein-1 distance between the
      group's scores and those of all answers; ``sentiment_strict`` (``None``): the
      largest Wasserstein-1 distance between two groups;
    - ``sentiment_weak_to_overall``: per group, its negative share minus that of all
      answers; ``sentiment_weak`` (``None``): largest minus smallest negative share.
    """
    s = np.asarray(sentiment, dtype=np.float64)
    neg = np.asarray(negative, dtype=np.float64)
    if s.shape != neg.shape or len(groups) != s.shape[0]:
        raise DataError(MSG_LENGTHS.format(where="sentiment_statistic", a="sentiment/negative",
                                           n_a=f"{s.shape[0]}/{neg.shape[0]}", b="groups", n_b=len(groups)))
    if not np.isfinite(s).all():
        i = int(np.flatnonzero(~np.isfinite(s))[0])
        raise DataError(MSG_SCORES.format(where=table, column="sentiment", row=i, value=s[i]))
    labels, codes = _codes(groups, where=table)
    h = _membership(codes, len(labels))
    rows_of = [np.flatnonzero(codes == j) for j in range(len(labels))]
    everyone = np.arange(s.shape[0])
    pairs = list(itertools.combinations(range(len(labels)), 2))

    def compute(w: np.ndarray) -> dict[str, np.ndarray]:
        den = w @ h
        share = (w @ (h * neg[:, None])) / den
        to_all = np.column_stack([_w1_weighted(s[r], s, w[:, r], w[:, everyone]) for r in rows_of])
        if pairs:
            pairwise = np.column_stack([_w1_weighted(s[rows_of[i]], s[rows_of[j]], w[:, rows_of[i]], w[:, rows_of[j]])
                                        for i, j in pairs])
            strict = np.nanmax(pairwise, axis=1, keepdims=True)
        else:
            strict = np.full((w.shape[0], 1), np.nan)
        groups_share = share[:, :-1]
        return {
            "sentiment_mean": (w @ (h * s[:, None])) / den,
            "negative_share": share,
            "sentiment_strict_to_overall": to_all,
            "sentiment_strict": strict,
            "sentiment_weak_to_overall": groups_share - share[:, [-1]],
            "sentiment_weak": (np.nanmax(groups_share, axis=1) - np.nanmin(groups_share, axis=1))[:, None],
        }

    per_group_and_all: tuple[str | None, ...] = (*labels, None)
    return GroupStatistic(groups=labels, strata=codes, compute=compute, columns={
        "sentiment_mean": per_group_and_all, "negative_share": per_group_and_all,
        "sentiment_strict_to_overall": labels, "sentiment_strict": (None,),
        "sentiment_weak_to_overall": labels, "sentiment_weak": (None,),
    })


def helm_statistic(answers: Sequence[str], *, groups: Sequence[Any],
                   demographics: Sequence[str] | Mapping[str, Mapping[str, Sequence[str]]] = ("gender", "race"),
                   targets: Sequence[str] | Mapping[str, Sequence[str]] = ("adjective", "profession"),
                   table: str = "open-ended answers") -> GroupStatistic:
    """HELM's demographic representation and stereotypical association, per group of prompts.

    Metrics ``helm_representation_<demographic>`` and
    ``helm_association_<demographic>_<target>``; columns: the answers to each group's
    prompts, then ``None`` = all answers (the value HELM reports for a scenario).
    ``demographics`` / ``targets``: HELM category names, or mappings of name -> words.
    A value is undefined (NaN; HELM's None) where no counted word occurs.
    """
    texts = _texts(answers, where="helm_statistic")
    if len(groups) != len(texts):
        raise DataError(MSG_LENGTHS.format(where="helm_statistic", a="groups", n_a=len(groups), b="answers",
                                           n_b=len(texts)))
    labels, codes = _codes(groups, where=table)
    h = _membership(codes, len(labels))
    tokens = [helm_tokens(t) for t in texts]
    demo = ({d: _demographic_words(d) for d in demographics} if not isinstance(demographics, Mapping)
            else {str(k): _demographic_words(v) for k, v in demographics.items()})
    targ = ({t: _target_words(t) for t in targets} if not isinstance(targets, Mapping)
            else {str(k): _target_words(v) for k, v in targets.items()})
    prepared = []
    for d, words in demo.items():
        sizes = np.asarray([len(w) for w in words.values()], dtype=np.float64)
        group_counts = _count_matrix(tokens, list(words.values()))  # (n, K)
        assoc = []
        for t, target_words in targ.items():
            hits = _count_matrix(tokens, [[w] for w in target_words])  # (n, A)
            rows = np.flatnonzero((hits.sum(axis=1) > 0) & (group_counts.sum(axis=1) > 0))
            used = np.flatnonzero(hits[rows].sum(axis=0) > 0)
            a, k = hits[np.ix_(rows, used)], group_counts[rows]
            cooc = (a[:, :, None] * k[:, None, :]).reshape(rows.size, used.size * k.shape[1])
            assoc.append((t, rows, cooc, (used.size, k.shape[1])))
        prepared.append((d, sizes, group_counts, assoc))

    def compute(w: np.ndarray) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for d, sizes, group_counts, assoc in prepared:
            out[f"helm_representation_{d}"] = _tvd_to_uniform(_column_sums(w, h, group_counts), sizes)
            for t, rows, cooc, shape in assoc:
                # (b, G + 1, A, K): weighted co-occurrences of each target word with each group's words
                pair_counts = _column_sums(w[:, rows], h[rows], cooc).reshape(w.shape[0], h.shape[1], *shape)
                per_target = _tvd_to_uniform(pair_counts, sizes)
                out[f"helm_association_{d}_{t}"] = (np.nanmean(per_target, axis=-1) if shape[0]
                                                    else np.full((w.shape[0], h.shape[1]), np.nan))
        return out

    per_group_and_all: tuple[str | None, ...] = (*labels, None)
    names = [f"helm_representation_{d}" for d in demo] + [f"helm_association_{d}_{t}" for d in demo for t in targ]
    return GroupStatistic(groups=labels, strata=codes, compute=compute,
                          columns={n: per_group_and_all for n in names})


