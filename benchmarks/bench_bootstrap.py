"""Benchmark: vectorized stratified bootstrap vs looping fairlearn's MetricFrame.

1,000 bootstrap resamples over 100,000 rows and 10 groups, every group metric
(count, base rate, selection rate, accuracy, balanced accuracy, precision, TPR,
FPR, FNR, ROC AUC, Brier, ECE), the disparities and Borkan's bias AUCs, through
``sliced_evaluation``. The baseline runs fairlearn's ``MetricFrame`` with the same
twelve metrics on a few of the *same* resamples (rows expanded by their bootstrap
counts), checks that both agree, and is extrapolated per resample.

Run: ``.venv/bin/python benchmarks/bench_bootstrap.py [--rows N] [--resamples B] [--baseline K]``.
Results are printed and written to ``benchmarks/results/bench_bootstrap.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.fairness import _bias_auc as ba
from pipelines.fairness._bootstrap import resample_weights
from pipelines.fairness._metrics import build_slicing, group_sums, metrics_from_sums, threshold_design
from pipelines.fairness._sliced import SlicedSettings, sliced_evaluation

RESULTS = Path(__file__).resolve().parent / "results"
ECE_BINS = 10


def make_data(n: int, groups: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    g = rng.integers(0, groups, n)
    y = (rng.random(n) < 0.3 + 0.04 * g).astype(int)
    s = np.clip(0.3 + 0.3 * y + 0.02 * g + rng.normal(0, 0.2, n), 0, 1)
    return np.array([f"g{i}" for i in range(groups)])[g], y, s, (s >= 0.5).astype(int)


def fairlearn_metrics():
    from fairlearn.metrics import count, false_negative_rate, false_positive_rate, selection_rate
    from sklearn import metrics as skm

    def ece(y_true, y_prob):
        edges = np.linspace(0, 1, ECE_BINS + 1)
        b = np.searchsorted(edges[1:-1], y_prob)
        n = np.bincount(b, minlength=ECE_BINS)
        sy = np.bincount(b, weights=y_true, minlength=ECE_BINS)
        sp = np.bincount(b, weights=y_prob, minlength=ECE_BINS)
        return float(np.abs(sy - sp).sum() / n.sum())

    threshold = {
        "count": count, "base_rate": lambda yt, yp: float(np.mean(yt)), "selection_rate": selection_rate,
        "accuracy": skm.accuracy_score, "balanced_accuracy": skm.balanced_accuracy_score,
        "precision": lambda yt, yp: skm.precision_score(yt, yp, zero_division=0), "tpr": skm.recall_score,
        "fpr": false_positive_rate, "fnr": false_negative_rate,
    }
    scored = {"roc_auc": skm.roc_auc_score, "brier": skm.brier_score_loss, "ece": ece}
    return threshold, scored


def metricframe_once(y, s, p, g):
    from fairlearn.metrics import MetricFrame

    threshold, scored = fairlearn_metrics()
    mf1 = MetricFrame(metrics=threshold, y_true=y, y_pred=p, sensitive_features=g)
    mf2 = MetricFrame(metrics=scored, y_true=y, y_pred=s, sensitive_features=g)
    by_group = pd.concat([mf1.by_group, mf2.by_group], axis=1)
    # the disparities fairlearn offers: between groups and to overall
    for mf in (mf1, mf2):
        mf.difference(), mf.ratio(), mf.difference(method="to_overall"), mf.ratio(method="to_overall")
    return by_group


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--groups", type=int, default=10)
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--baseline", type=int, default=5, help="resamples for the MetricFrame loop")
    ap.add_argument("--quick", action="store_true", help="20,000 rows, 200 resamples, 2 baseline resamples")
    args = ap.parse_args()
    if args.quick:
        args.rows, args.resamples, args.baseline = 20_000, 200, 2
    g, y, s, p = make_data(args.rows, args.groups)
    settings = SlicedSettings(features=("g",), min_group_size=30, min_class_count=10, ece_bins=ECE_BINS,
                              resamples=args.resamples, seed=0)

    t0 = time.perf_counter()
    res = sliced_evaluation(y=y, scores={"m": s}, preds={"m": p}, sensitive=pd.DataFrame({"g": g}),
                            settings=settings)
    t_vec = time.perf_counter() - t0
    n_estimands = len(res["group_metrics"]) + len(res["bias_auc"]) + len(res["disparities"])

    # The same resamples, one by one, through MetricFrame (rows expanded by their bootstrap counts).
    slicing, order = build_slicing(pd.DataFrame({"g": g}), features=("g",), intersections=False)
    yo, so, po, go = y[order], s[order], p[order], g[order]
    W = next(resample_weights(slicing.cells, n_resamples=args.baseline, seed=99))
    sums = group_sums(W, threshold_design(yo, po, so, ece_bins=ECE_BINS), slicing)
    conc = ba.auc_sums(W, ba.auc_layouts(so, yo, slicing), slicing)
    ours = metrics_from_sums(sums, ece_bins=ECE_BINS, auc_concordant=conc["within"])
    max_abs_diff = 0.0
    t_loop = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for b in range(W.shape[0]):
            idx = np.repeat(np.arange(len(yo)), W[b].astype(np.int64))
            t1 = time.perf_counter()
            by_group = metricframe_once(yo[idx], so[idx], po[idx], go[idx])
            t_loop += time.perf_counter() - t1
            for j, (feature, group) in enumerate(slicing.columns):
                if feature == "overall":
                    continue
                for m in by_group.columns:
                    max_abs_diff = max(max_abs_diff, abs(float(by_group.loc[group, m]) - float(ours[m][b, j])))
    per_mf = t_loop / W.shape[0]
    per_vec = t_vec / max(1, args.resamples)
    extrapolated = per_mf * args.resamples
    out = {
        "rows": args.rows, "groups": args.groups, "resamples": args.resamples, "ece_bins": ECE_BINS,
        "vectorized_total_s": round(t_vec, 3), "vectorized_per_resample_ms": round(1000 * per_vec, 3),
        "estimands_with_ci": n_estimands,
        "metricframe_resamples_timed": W.shape[0], "metricframe_per_resample_s": round(per_mf, 3),
        "metricframe_extrapolated_total_s": round(extrapolated, 1), "speedup": round(extrapolated / t_vec, 1),
        "max_abs_difference_vs_fairlearn": max_abs_diff,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
    }
    print(f"{'':38s}{'seconds':>12s}{'per resample':>16s}")
    print(f"{'vectorized (all metrics, CIs)':38s}{t_vec:12.2f}{1000 * per_vec:13.2f} ms")
    print(f"{'MetricFrame loop (extrapolated)':38s}{extrapolated:12.1f}{1000 * per_mf:13.1f} ms"
          f"   ({W.shape[0]} resamples timed)")
    print(f"speed-up: {extrapolated / t_vec:.0f}x;  {n_estimands} estimands with CIs;  "
          f"max |ours - fairlearn| on the shared resamples: {max_abs_diff:.2e}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench_bootstrap.json").write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
