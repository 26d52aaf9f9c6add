"""Sliced metrics, disparities, bias AUCs and the paired comparisons, with their evidence.

Point estimates come from fairlearn's MetricFrame (:mod:`._frame`); every bootstrap
resample goes through the vectorized weighted sums (:mod:`._metrics`); resamples come
as weight matrices from :func:`._bootstrap.resample_weights`, stratified by the cells
of the sensitive features, and every variant is evaluated on the *same* weights, so
variant differences are paired. Results are tidy records (one dict per estimand) that
carry their evidence in private keys: the bootstrap replicates (``_boot``), the counts of
a proportion (``events``, ``trials``) and an AUC's DeLong statistics (``_auc``). The
intervals with known coverage are assigned from that evidence by :mod:`._calibrate`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from pipelines.fairness import _bias_auc as ba
from pipelines.fairness._bootstrap import resample_weights
from pipelines.fairness._delong import bias_auc_delong, delong_auc
from pipelines.fairness._frame import metricframe_point
from pipelines.fairness._metrics import (
    STATUS_INSUFFICIENT,
    STATUS_OK,
    STATUS_UNDEFINED,
    Slicing,
    build_slicing,
    group_sums,
    metric_eligibility,
    metrics_from_sums,
    proportion_counts,
    threshold_design,
)
from pipelines.config.evaluation import BIAS_AUC_METRICS, DISPARITY_BASE_METRICS, GROUP_METRICS, BiasAucConfig

__all__ = ["SlicedSettings", "sliced_evaluation", "make_record", "boot_loop", "disparity_arrays"]


@dataclass(frozen=True)
class SlicedSettings:
    """Numbers the evaluation needs (all from the config)."""

    features: tuple[str, ...]
    intersections: bool = True
    min_group_size: int = 30
    min_class_count: int = 10
    ece_bins: int = 10
    resamples: int = 1000
    level: float = 0.95
    seed: int = 0
    bias_auc: BiasAucConfig = BiasAucConfig()


def make_record(*, point: float, boot: np.ndarray | None, status: str, level: float, **keys: Any) -> dict[str, Any]:
    """One tidy estimand: the value, or nulls with a status; its bootstrap replicates kept as ``_boot``.

    The interval is assigned later from the estimand's evidence (:mod:`._calibrate`):
    exact, score or DeLong intervals where the metric has one, else the bias-corrected
    bootstrap interval of ``_boot``. It is never widened to contain the point.
    """
    rec: dict[str, Any] = dict(keys)
    point = float(point) if point is not None else float("nan")
    if status == STATUS_OK and not np.isfinite(point):
        status = STATUS_UNDEFINED
    if status != STATUS_OK:
        rec.update(value=None, ci_low=None, ci_high=None, status=status, _boot=None)
        return rec
    rec.update(value=point, ci_low=None, ci_high=None, status=status,
               _boot=boot if boot is not None and boot.size else None)
    return rec


def boot_loop(compute: Callable[[np.ndarray], dict[Any, np.ndarray]], strata: np.ndarray, *, resamples: int,
               seed: Any) -> dict[Any, np.ndarray] | None:
    if resamples <= 0:
        return None
    parts: dict[Any, list[np.ndarray]] = {}
    for W in resample_weights(strata, n_resamples=resamples, seed=seed):
        for key, value in compute(W).items():
            parts.setdefault(key, []).append(value)
    return {k: np.concatenate(v, axis=0) for k, v in parts.items()}


# -- disparities -----------------------------------------------------------------

def disparity_arrays(values: Mapping[str, np.ndarray], overall: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Disparities of one feature from per-group metric arrays ``(b, G_f)`` (NaN = not eligible).

    ``<m>_difference`` = max - min over groups, ``<m>_ratio`` = min / max,
    ``<m>_difference_to_overall`` = max |group - overall|, ``<m>_ratio_to_overall`` =
    min over groups of min(group / overall, overall / group) (fairlearn's definitions),
    plus demographic parity, equalized odds and equal opportunity.
    """
    import warnings

    out: dict[str, np.ndarray] = {}
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        for m, v in values.items():
            enough = (np.isfinite(v).sum(axis=1) >= 2)
            hi = np.nanmax(v, axis=1)
            lo = np.nanmin(v, axis=1)
            o = overall[m][:, None]
            out[f"{m}_difference"] = np.where(enough, hi - lo, np.nan)
            out[f"{m}_ratio"] = np.where(enough & (hi > 0), lo / hi, np.where(enough & (hi == 0), 1.0, np.nan))
            out[f"{m}_difference_to_overall"] = np.where(enough, np.nanmax(np.abs(v - o), axis=1), np.nan)
            r = np.minimum(v / o, o / v)
            r = np.where((v == 0) & (o == 0), 1.0, r)
            out[f"{m}_ratio_to_overall"] = np.where(enough, np.nanmin(r, axis=1), np.nan)
    out["demographic_parity_difference"] = out["selection_rate_difference"]
    out["demographic_parity_ratio"] = out["selection_rate_ratio"]
    out["equalized_odds_difference"] = np.fmax(out["tpr_difference"], out["fpr_difference"])
    both = np.isfinite(out["tpr_difference"]) & np.isfinite(out["fpr_difference"])
    out["equalized_odds_difference"] = np.where(both, out["equalized_odds_difference"], np.nan)
    out["equalized_odds_ratio"] = np.where(both, np.fmin(out["tpr_ratio"], out["fpr_ratio"]), np.nan)
    out["equal_opportunity_difference"] = out["tpr_difference"]
    out["equal_opportunity_ratio"] = out["tpr_ratio"]
    return out


def _disparity_inputs(arrays: Mapping[str, np.ndarray], status: Mapping[str, np.ndarray], cols: np.ndarray
                      ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, int]]:
    vals, ovr, n_ok = {}, {}, {}
    for m in DISPARITY_BASE_METRICS:
        ok = status[m][cols] == STATUS_OK
        v = arrays[m][:, cols].copy()
        v[:, ~ok] = np.nan
        vals[m] = v
        ovr[m] = arrays[m][:, 0]
        n_ok[m] = int(ok.sum())
    return vals, ovr, n_ok


def _disparity_groups_needed(name: str) -> tuple[str, ...]:
    if name.startswith("demographic_parity"):
        return ("selection_rate",)
    if name.startswith("equalized_odds"):
        return ("tpr", "fpr")
    if name.startswith("equal_opportunity"):
        return ("tpr",)
    for m in sorted(DISPARITY_BASE_METRICS, key=len, reverse=True):
        if name.startswith(m + "_"):
            return (m,)
    raise KeyError(name)


# -- the main evaluation ----------------------------------------------------------

def sliced_evaluation(*, y: np.ndarray, scores: Mapping[str, np.ndarray], preds: Mapping[str, np.ndarray],
                      sensitive: pd.DataFrame, settings: SlicedSettings,
                      comparisons: Sequence[tuple[str, str]] = ()) -> dict[str, Any]:
    """Evaluate every variant on the same rows.

    Parameters
    ----------
    y
        True labels (0/1) of the ``n`` rows.
    scores, preds
        Per variant name: P(positive) and the 0/1 decision of each row.
    sensitive
        The sensitive feature columns of the rows (``settings.features``).
    comparisons
        Pairs ``(a, b)``: also report ``metric(a) - metric(b)`` with paired-bootstrap CIs,
        and the agreement rate of their decisions.

    Returns
    -------
    dict
        ``group_metrics``, ``disparities``, ``bias_auc`` and ``comparison`` lists of
        records, plus ``groups`` (sizes) and ``notes``.
    """
    s = settings
    slicing, order = build_slicing(sensitive, features=s.features, intersections=s.intersections)
    y = np.asarray(y, dtype=np.float64)[order]
    names = list(scores)
    sc = {v: np.asarray(scores[v], dtype=np.float64)[order] for v in names}
    pr = {v: np.asarray(preds[v], dtype=np.float64)[order] for v in names}
    designs64 = {v: threshold_design(y, pr[v], sc[v], ece_bins=s.ece_bins) for v in names}
    designs32 = {v: x.astype(np.float32) for v, x in designs64.items()}
    layouts = {v: ba.auc_layouts(sc[v], y, slicing) for v in names}
    agree_x = {(a, b): np.column_stack([(pr[a] == pr[b]).astype(np.float64), np.ones(slicing.n_rows)])
               for a, b in comparisons}

    def compute(W: np.ndarray) -> dict[Any, np.ndarray]:
        out: dict[Any, np.ndarray] = {}
        designs = designs32 if W.dtype == np.float32 else designs64
        for v in names:
            sums = group_sums(W, designs[v], slicing)
            conc = ba.auc_sums(W, layouts[v], slicing)
            metrics = metrics_from_sums(sums, ece_bins=s.ece_bins, auc_concordant=conc["within"])
            pos = sums[..., 1]
            neg = sums[..., 0] - pos
            metrics.update(ba.bias_aucs(conc, pos, neg))
            for m, arr in metrics.items():
                out[(v, m)] = arr
            out[(v, "_sums")] = sums
        for pair, x in agree_x.items():
            ag = group_sums(W, x, slicing)
            out[("_agreement", *pair)] = ag[..., 0] / ag[..., 1]
        return out

    point = compute(np.ones((1, slicing.n_rows)))
    point.update(metricframe_point(y=y, scores=sc, preds=pr, slicing=slicing, ece_bins=s.ece_bins))
    boot = boot_loop(compute, slicing.cells, resamples=s.resamples, seed=np.random.SeedSequence([s.seed, 1]))
    aucs = {v: _delong_evidence(y, sc[v], slicing) for v in names}
    return _assemble(slicing, names, point, boot, s, list(comparisons), aucs)


def _delong_evidence(y: np.ndarray, score: np.ndarray, slicing: Slicing) -> dict[tuple[str, int], tuple]:
    """``{(metric, column): (auc, variance, n_positive, n_negative)}``: DeLong statistics of every AUC."""
    out: dict[tuple[str, int], tuple] = {}
    pos, neg = score[y == 1], score[y != 1]
    if len(pos) >= 2 and len(neg) >= 2:
        auc, var = delong_auc(positive_scores=pos, negative_scores=neg)
        out[("roc_auc", 0)] = (float(auc), float(var), len(pos), len(neg))
    for f in slicing.features:
        labels = np.asarray(slicing.groups[f], dtype=object)[slicing.codes[f]]
        cols = {slicing.columns[j][1]: j for j in slicing.feature_columns(f)}
        for kind, metric in (("subgroup", "subgroup_auc"), ("bpsn", "bpsn_auc"), ("bnsp", "bnsp_auc")):
            res = bias_auc_delong(scores=score, labels=y, groups=labels, kind=kind)
            for i, g in enumerate(res["group"]):
                stats_ = (float(res["auc"][i]), float(res["variance"][i]), int(res["n_positive"][i]),
                          int(res["n_negative"][i]))
                out[(metric, cols[str(g)])] = stats_
                if kind == "subgroup":
                    out[("roc_auc", cols[str(g)])] = stats_
    return out


def _status_bias(point_sums: np.ndarray, s: SlicedSettings) -> dict[str, np.ndarray]:
    n = point_sums[:, 0]
    pos = point_sums[:, 1]
    neg = n - pos
    tp, tn = pos[0], neg[0]
    small = n < s.min_group_size
    mc = s.min_class_count
    out = {}
    for m, bad in (
        ("subgroup_auc", small | (pos < mc) | (neg < mc)),
        ("bpsn_auc", small | (neg < mc) | ((tp - pos) < mc)),
        ("bnsp_auc", small | (pos < mc) | ((tn - neg) < mc)),
    ):
        st = np.where(bad, STATUS_INSUFFICIENT, STATUS_OK).astype(object)
        st[0] = STATUS_UNDEFINED
        out[m] = st
    return out


def _assemble(slicing: Slicing, names: list[str], point: dict, boot: dict | None, s: SlicedSettings,
              comparisons: list[tuple[str, str]], aucs: dict[str, dict]) -> dict[str, Any]:
    level = s.level
    group_records: list[dict] = []
    disparity_records: list[dict] = []
    bias_records: list[dict] = []
    comparison_records: list[dict] = []
    status: dict[str, dict[str, np.ndarray]] = {}
    counts: dict[str, np.ndarray] = {}
    # masked arrays (NaN where the point status is not ok) for disparities and comparison
    masked: dict[tuple[str, str], tuple[np.ndarray, np.ndarray | None]] = {}
    for v in names:
        psums = point[(v, "_sums")][0]
        st = metric_eligibility(psums, min_group_size=s.min_group_size, min_class_count=s.min_class_count)
        st.update(_status_bias(psums, s))
        status[v] = st
        counts[v] = psums[:, 0]
        props = proportion_counts(psums)
        for m in GROUP_METRICS + BIAS_AUC_METRICS:
            p = point[(v, m)].copy()
            bt = boot[(v, m)].copy() if boot is not None else None
            bad = st[m] != STATUS_OK
            p[:, bad] = np.nan
            if bt is not None:
                bt[:, bad] = np.nan
            masked[(v, m)] = (p, bt)
            for j, (feature, group) in enumerate(slicing.columns):
                if m in BIAS_AUC_METRICS and j == 0:
                    continue
                rec = make_record(point=point[(v, m)][0, j], boot=None if bt is None else bt[:, j], status=st[m][j],
                                  level=level, variant=v, feature=feature, group=group, metric=m,
                                  n=int(psums[j, 0]))
                if m in props:
                    rec.update(events=float(props[m][0][j]), trials=float(props[m][1][j]))
                if (m, j) in aucs[v] and rec["status"] == STATUS_OK:
                    rec["_auc"] = aucs[v][(m, j)]
                (bias_records if m in BIAS_AUC_METRICS else group_records).append(rec)

    def feature_disparities(getter: Callable[[str], np.ndarray], v: str, cols: np.ndarray) -> dict[str, np.ndarray]:
        arrays = {m: getter(m) for m in DISPARITY_BASE_METRICS}
        vals, ovr, _ = _disparity_inputs(arrays, status[v], cols)
        return disparity_arrays(vals, ovr)

    disp_point: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    disp_boot: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    for v in names:
        for f in slicing.features:
            cols = slicing.feature_columns(f)
            dp = feature_disparities(lambda m: point[(v, m)], v, cols)
            db = feature_disparities(lambda m: boot[(v, m)], v, cols) if boot is not None else None
            disp_point[(v, f)] = dp
            if db is not None:
                disp_boot[(v, f)] = db
            for name, arr in dp.items():
                needed = _disparity_groups_needed(name)
                n_ok = min(int((status[v][m][cols] == STATUS_OK).sum()) for m in needed)
                st = STATUS_OK if n_ok >= 2 else STATUS_INSUFFICIENT
                disparity_records.append(make_record(
                    point=arr[0], boot=None if db is None else db[name], status=st, level=level,
                    variant=v, feature=f, group=None, metric=name, n=n_ok))
            # Borkan final score: over the groups with ok status per kind.
            fp, fb = _final_score(point, boot, masked, v, cols, s)
            n_ok = min(int((status[v][m][cols] == STATUS_OK).sum()) for m in BIAS_AUC_METRICS)
            overall_ok = status[v]["roc_auc"][0] == STATUS_OK
            st = STATUS_OK if (n_ok >= 1 and overall_ok) else STATUS_INSUFFICIENT
            disp_point[(v, f)]["final_bias_score"] = fp
            if fb is not None:
                disp_boot[(v, f)]["final_bias_score"] = fb
            disparity_records.append(make_record(point=fp[0], boot=fb, status=st, level=level, variant=v,
                                                 feature=f, group=None, metric="final_bias_score", n=n_ok))

    for a, b in comparisons:
        keys = {"a": a, "b": b}
        for m in GROUP_METRICS + BIAS_AUC_METRICS:
            pa, ba_ = masked[(a, m)]
            pb, bb = masked[(b, m)]
            for j, (feature, group) in enumerate(slicing.columns):
                if m in BIAS_AUC_METRICS and j == 0:
                    continue
                both = status[a][m][j] == STATUS_OK and status[b][m][j] == STATUS_OK
                comparison_records.append(make_record(
                    point=pa[0, j] - pb[0, j], boot=None if ba_ is None else ba_[:, j] - bb[:, j],
                    status=STATUS_OK if both else STATUS_INSUFFICIENT, level=level, **keys, kind="metric",
                    feature=feature, group=group, metric=m, n=int(counts[a][j])))
        for f in slicing.features:
            for name in disp_point[(a, f)]:
                pa, pb = disp_point[(a, f)][name], disp_point[(b, f)][name]
                bt = disp_boot[(a, f)][name] - disp_boot[(b, f)][name] if boot is not None else None
                both = np.isfinite(pa[0]) and np.isfinite(pb[0])
                comparison_records.append(make_record(
                    point=pa[0] - pb[0], boot=bt, status=STATUS_OK if both else STATUS_INSUFFICIENT, level=level,
                    **keys, kind="disparity", feature=f, group=None, metric=name, n=None))
        ag_p = point[("_agreement", a, b)]
        ag_b = boot[("_agreement", a, b)] if boot is not None else None
        for j, (feature, group) in enumerate(slicing.columns):
            n_j = int(counts[a][j])
            comparison_records.append(make_record(
                point=ag_p[0, j], boot=None if ag_b is None else ag_b[:, j],
                status=STATUS_OK if n_j >= s.min_group_size else STATUS_INSUFFICIENT, level=level, **keys,
                kind="agreement", feature=feature, group=group, metric="agreement_rate", n=n_j))

    groups = {f: {g: int(counts[names[0]][j]) for j, (ff, g) in enumerate(slicing.columns) if ff == f}
              for f in slicing.features} if names else {}
    return {
        "features": list(slicing.features),
        "groups": groups,
        "n": slicing.n_rows,
        "notes": list(slicing.notes),
        "group_metrics": group_records,
        "bias_auc": bias_records,
        "disparities": disparity_records,
        "comparison": comparison_records,
    }


def _final_score(point, boot, masked, v, cols, s: SlicedSettings):
    cfg = s.bias_auc

    def score(overall, sub, bpsn, bnsp):
        return ba.final_bias_score(overall, sub, bpsn, bnsp, p=cfg.power, overall_weight=cfg.overall_weight,
                                   bias_weights=tuple(cfg.bias_weights))

    p_over = masked[(v, "roc_auc")][0][:, 0]
    fp = score(p_over, *(masked[(v, m)][0][:, cols] for m in BIAS_AUC_METRICS))
    if boot is None:
        return fp, None
    b_over = masked[(v, "roc_auc")][1][:, 0]
    fb = score(b_over, *(masked[(v, m)][1][:, cols] for m in BIAS_AUC_METRICS))
    return fp, fb
