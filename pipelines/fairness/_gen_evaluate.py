"""Generation metrics per group with intervals, from the ``generate`` stage's per-answer tables.

Two sets of answers, each per variant and condition (``docs/generation.md``):

* **answer pairs** (one row per counterfactual pair; feature: the counterfactual feature,
  group: the original's group): the mean masked cosine and ROUGE-L of the two answers,
  LangFair's strict (Wasserstein-1) and weak (difference of negative shares) counterfactual
  sentiment parity, and the shares of negative and of stereotyped answers;
* **open-ended answers** (one row per prompt; feature ``prompt_group``): the mean sentiment,
  the shares of negative and stereotyped answers, each group's Wasserstein-1 distance to
  all answers and the largest between two groups, and HELM's demographic representation
  and stereotypical association over all answers.

Shares carry ``events``/``trials`` (exact intervals; their ``_difference`` gaps get the
pairwise score intervals); everything else gets the bias-corrected bootstrap of the
statistic's resamples, stratified by group. Attribution conditions ``<a>_minus_<b>``
(:data:`pipelines.config.generation.ATTRIBUTIONS`) are paired differences over the same
pairs or prompts, on the same resamples.
"""

from __future__ import annotations

import zlib
from typing import Any, Mapping

import numpy as np
import pandas as pd

from pipelines.config.generation import (
    ATTRIBUTIONS,
    GENERATION_PROPORTIONS,
    HELM_METRICS,
    PROMPT_FEATURE,
    attribution_name,
)
from pipelines.errors import DataError
from pipelines.fairness._gen_statistics import (
    GroupStatistic,
    helm_statistic,
    pair_statistic,
    paired_difference,
    sentiment_statistic,
)
from pipelines.fairness._metrics import STATUS_INSUFFICIENT, STATUS_OK
from pipelines.fairness._sliced import SlicedSettings, boot_loop, make_record

__all__ = ["generation_records", "PAIR_COLUMNS", "OPEN_COLUMNS", "OVERALL"]

#: Columns of the ``answer_pairs`` table that the evaluation reads.
PAIR_COLUMNS = ("variant", "condition", "pair_id", "feature", "group", "cosine", "rouge_l", "sentiment",
                "twin_sentiment", "negative", "twin_negative", "stereotype")
#: Columns of the ``open_answers`` table that the evaluation reads.
OPEN_COLUMNS = ("variant", "condition", "prompt_id", "group", "answer", "sentiment", "negative", "stereotype")
#: Feature and group of the estimate over all pairs.
OVERALL = ("overall", "all")

MSG_COLUMNS = "input `{table}`: column {column!r} is missing; expected {expected}. Found {found}."
MSG_DUPLICATE = "input `{table}`: {count} duplicate row(s) for (variant, condition, {key}) (e.g. {examples})."

#: statistic's metric -> table metric, for the pairs.
_PAIR_NAMES = {"cosine": "answer_cosine", "rouge_l": "answer_rouge_l", "sentiment_strict": "answer_sentiment_strict",
               "sentiment_weak": "answer_sentiment_weak", "negative_share": "answer_negative_share",
               "stereotype": "answer_stereotype_rate"}
#: statistic's metric -> table metric, for the open-ended answers (``None`` columns only for the ``*_max``).
_OPEN_NAMES = {"sentiment_mean": "answer_sentiment_mean", "negative_share": "answer_negative_share",
               "sentiment_strict_to_overall": "answer_sentiment_strict", "sentiment_strict": "answer_sentiment_strict_max",
               "stereotype": "answer_stereotype_rate"}


def _seed(settings: SlicedSettings, *parts: str) -> np.random.SeedSequence:
    return np.random.SeedSequence([settings.seed, zlib.crc32("/".join(("generation", *parts)).encode())])


def _check(table: str, frame: pd.DataFrame, columns: tuple[str, ...], key: str) -> pd.DataFrame:
    for c in columns:
        if c not in frame.columns:
            raise DataError(MSG_COLUMNS.format(table=table, column=c, expected=list(columns),
                                               found=list(map(str, frame.columns))))
    frame = frame.astype({"variant": str, "condition": str, key: str})
    dup = frame.duplicated(["variant", "condition", key], keep=False)
    if dup.any():
        raise DataError(MSG_DUPLICATE.format(table=table, count=int(dup.sum()), key=key,
                                             examples=frame.loc[dup, key].head(3).tolist()))
    return frame.sort_values(["variant", "condition", key], kind="stable").reset_index(drop=True)


def _flags(frame: pd.DataFrame, column: str) -> np.ndarray | None:
    """0/1 floats of a boolean column, or None when any row lacks a value (nothing scored it)."""
    values = frame[column]
    if values.isna().any():
        return None
    return values.astype(bool).to_numpy(dtype=np.float64)


def _pair_stat(part: pd.DataFrame) -> GroupStatistic:
    frame = pd.DataFrame({"group": part["group"].astype(str).to_numpy(),
                          "rouge_l": part["rouge_l"].to_numpy(dtype=np.float64),
                          "sentiment": part["sentiment"].to_numpy(dtype=np.float64),
                          "twin_sentiment": part["twin_sentiment"].to_numpy(dtype=np.float64),
                          "negative": part["negative"].astype(bool).to_numpy(),
                          "twin_negative": part["twin_negative"].astype(bool).to_numpy()})
    means = ["rouge_l"]
    if part["cosine"].notna().all():
        frame["cosine"] = part["cosine"].to_numpy(dtype=np.float64)
        means.append("cosine")
    stereo = _flags(part, "stereotype")
    if stereo is not None:
        frame["stereotype"] = stereo
        means.append("stereotype")
    return pair_statistic(frame, means=means, table="answer_pairs")


def _open_stat(part: pd.DataFrame, *, helm: bool) -> GroupStatistic:
    groups = part["group"].astype(str).tolist()
    stats = [sentiment_statistic(part["sentiment"].to_numpy(dtype=np.float64), part["negative"].astype(bool).to_numpy(),
                                 groups=groups, table="open_answers")]
    stereo = _flags(part, "stereotype")
    if stereo is not None:
        stats.append(pair_statistic(pd.DataFrame({"group": groups, "stereotype": stereo}), means=("stereotype",),
                                    sentiment=False, table="open_answers"))
    if helm:
        stats.append(helm_statistic(part["answer"].astype(str).tolist(), groups=groups, table="open_answers"))
    return _joined(stats)


def _joined(stats: list[GroupStatistic]) -> GroupStatistic:
    """One statistic computing every metric of ``stats`` (built over the same rows)."""
    if len(stats) == 1:
        return stats[0]

    def compute(w: np.ndarray) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for s in stats:
            out.update(s.compute(w))
        return out

    columns: dict[str, tuple[str | None, ...]] = {}
    for s in stats:
        columns.update(s.columns)
    return GroupStatistic(groups=stats[0].groups, strata=stats[0].strata, columns=columns, compute=compute)


def _records(stat: GroupStatistic, *, names: Mapping[str, str], feature: str, overall: bool, settings: SlicedSettings,
             min_group_size: int, seed: np.random.SeedSequence, sums: Mapping[str, np.ndarray] | None,
             gaps: bool, **keys: Any) -> list[dict[str, Any]]:
    """Tidy records of ``stat``'s metrics in ``names``.

    A metric whose only column is ``None`` (a value across groups) and every HELM metric
    (HELM reports one value over all answers) are feature-level (``group`` None); the
    ``None`` column of a per-group metric is the ``overall`` row when ``overall`` is set.
    """
    boot = boot_loop(stat, stat.strata, resamples=settings.resamples, seed=seed)
    point = stat.point()
    sizes = stat.group_sizes()
    out = []
    for metric, label in names.items():
        if metric not in stat.columns:
            continue
        columns = stat.columns[metric]
        scenario = label in HELM_METRICS
        per_group = not scenario and any(c is not None for c in columns)
        for j, group in enumerate(columns):
            if (scenario and group is not None) or (group is None and per_group and not overall):
                continue
            where = OVERALL if group is None and per_group else (feature, group)
            n = sizes[group]
            proportion = label in GENERATION_PROPORTIONS and sums is not None
            ok = proportion or not per_group or n >= min_group_size
            rec = make_record(point=point[metric][j], boot=None if boot is None else boot[metric][:, j],
                              status=STATUS_OK if ok else STATUS_INSUFFICIENT, level=settings.level, **keys,
                              feature=where[0], group=where[1], metric=label, n=int(n))
            if proportion:
                rec.update(events=float(sums[metric][j]), trials=float(n))
            out.append(rec)
        if gaps and label in GENERATION_PROPORTIONS and per_group:
            out.append(_gap(point[metric], None if boot is None else boot[metric], columns, label=label,
                            feature=feature, settings=settings, **keys))
    return out


def _gap(point: np.ndarray, boot: np.ndarray | None, columns: tuple[str | None, ...], *, label: str, feature: str,
         settings: SlicedSettings, **keys: Any) -> dict[str, Any]:
    """``<label>_difference``: the largest minus the smallest group share (the score intervals come later)."""
    cols = [j for j, g in enumerate(columns) if g is not None]

    def spread(values: np.ndarray) -> np.ndarray:
        v = values[..., cols]
        with np.errstate(all="ignore"):
            return np.nanmax(v, axis=-1) - np.nanmin(v, axis=-1)

    enough = np.isfinite(point[cols]).sum() >= 2
    return make_record(point=float(spread(point)) if enough else float("nan"),
                       boot=None if boot is None else spread(boot),
                       status=STATUS_OK if enough else STATUS_INSUFFICIENT, level=settings.level, **keys,
                       feature=feature, group=None, metric=f"{label}_difference", n=int(len(cols)))


def _event_sums(stat: GroupStatistic, part: pd.DataFrame, columns: Mapping[str, str]) -> dict[str, np.ndarray]:
    """Per metric, the events of each column of ``stat`` (a group's rows, then all rows)."""
    out = {}
    codes = stat.strata
    for metric, column in columns.items():
        if metric not in stat.columns:
            continue
        flags = part[column].astype(bool).to_numpy(dtype=np.float64)
        by_group = np.bincount(codes, weights=flags, minlength=len(stat.groups))
        out[metric] = np.append(by_group, flags.sum())
    return out


def generation_records(*, answer_pairs: pd.DataFrame | None, open_answers: pd.DataFrame | None,
                       settings: SlicedSettings, min_group_size: int) -> list[dict[str, Any]]:
    """Every generation metric per variant, condition, feature and group, with attribution differences.

    Parameters
    ----------
    answer_pairs, open_answers
        The ``generate`` stage's tables (:data:`PAIR_COLUMNS`, :data:`OPEN_COLUMNS`); None or
        empty: nothing from that set.
    settings
        Resamples, level and seed of the bootstrap.
    min_group_size
        Groups with fewer rows get no estimate of the mean-like metrics (shares are kept).

    Returns
    -------
    list of dict
        Records with ``variant``, ``condition``, ``feature``, ``group``, ``metric``, ``value``,
        ``n``, ``status``, the evidence for the intervals (``_boot``; ``events``/``trials`` of
        shares), not yet with intervals (:func:`pipelines.fairness._calibrate.assign_intervals`).
    """
    records: list[dict[str, Any]] = []
    common = dict(settings=settings, min_group_size=min_group_size)
    if answer_pairs is not None and len(answer_pairs):
        pairs = _check("answer_pairs", answer_pairs, PAIR_COLUMNS, "pair_id")
        for variant, by_variant in pairs.groupby("variant", sort=True):
            for feature, by_feature in by_variant.groupby("feature", sort=True):
                stats: dict[str, GroupStatistic] = {}
                ids: dict[str, list[str]] = {}
                for condition, part in by_feature.groupby("condition", sort=True):
                    stat = _pair_stat(part)
                    stats[condition], ids[condition] = stat, part["pair_id"].tolist()
                    sums = _event_sums(stat, part, {"negative_share": "negative", "stereotype": "stereotype"})
                    records += _records(stat, names=_PAIR_NAMES, feature=feature, overall=True, sums=sums, gaps=True,
                                        seed=_seed(settings, "pairs", variant, condition), variant=variant,
                                        condition=condition, **common)
                records += _attribution(stats, ids, names=_PAIR_NAMES, feature=feature, overall=True,
                                        variant=variant, set_name="pairs", **common)
    if open_answers is not None and len(open_answers):
        opened = _check("open_answers", open_answers, OPEN_COLUMNS, "prompt_id")
        helm_names = {m: m for m in HELM_METRICS}
        for variant, by_variant in opened.groupby("variant", sort=True):
            stats, ids = {}, {}
            for condition, part in by_variant.groupby("condition", sort=True):
                stat = _open_stat(part, helm=True)
                stats[condition], ids[condition] = stat, part["prompt_id"].tolist()
                sums = _event_sums(stat, part, {"negative_share": "negative", "stereotype": "stereotype"})
                records += _records(stat, names={**_OPEN_NAMES, **helm_names}, feature=PROMPT_FEATURE, overall=False,
                                    sums=sums, gaps=True, seed=_seed(settings, "open", variant, condition),
                                    variant=variant, condition=condition, **common)
            records += _attribution(stats, ids, names={**_OPEN_NAMES, **helm_names}, feature=PROMPT_FEATURE,
                                    overall=False, variant=variant, set_name="open", **common)
    return records


def _attribution(stats: Mapping[str, GroupStatistic], ids: Mapping[str, list[str]], *, names: Mapping[str, str],
                 feature: str, overall: bool, variant: str, set_name: str, settings: SlicedSettings,
                 min_group_size: int) -> list[dict[str, Any]]:
    """Paired differences ``a - b`` of the conditions of :data:`ATTRIBUTIONS` (same rows, same resamples)."""
    out = []
    for a, b in ATTRIBUTIONS:
        if a not in stats or b not in stats or ids[a] != ids[b]:
            continue
        condition = attribution_name(a, b)
        out += _records(paired_difference(stats[a], stats[b]), names=names, feature=feature, overall=overall,
                        sums=None, gaps=False, seed=_seed(settings, set_name, variant, condition), variant=variant,
                        condition=condition, settings=settings, min_group_size=min_group_size)
    return out
