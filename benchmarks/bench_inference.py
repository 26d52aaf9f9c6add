"""Inference throughput of the two variants against the naive way, in one process.

* fine-tuned: ``FinetunedPredictor`` (tokenize once, batches sorted by length,
  dynamic padding, ``torch.inference_mode``) vs transformers
  ``pipeline('text-classification')`` with default settings (one text per call);
* RAG: ``RagScorer`` (length-sorted batches, shared-prefix KV cache, LM head
  only at the answer position) vs a per-example ``generate()`` of one token,
  plus the levers one at a time (no prefix cache, batch 1, dynamic int8).

Both sides score the same texts; the script checks that the scores agree and
reports the ratios, and a FLOP-bound ceiling from the CPU's fp32 peak.

Usage::

    .venv/bin/python benchmarks/bench_inference.py --quick
    .venv/bin/python benchmarks/bench_inference.py --n-finetuned 1000 --n-rag 100

Writes ``benchmarks/results/bench_inference-<utc time>.json`` (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402



def peak_gflops() -> tuple[float, str]:
    """fp32 peak of this CPU: GHz x FLOP/cycle x cores.

    FLOP/cycle per core: 32 with AVX2 (2 FMA units x 8 lanes x 2), 64 with
    AVX-512 (2 FMA units x 16 lanes x 2; parts with one AVX-512 FMA unit have
    32). ENVIRONMENT.md's 157 GFLOP/s is the AMD EPYC (AVX2) host at 2.45 GHz.
    vCPUs may be hyperthreads of fewer physical cores, so this is an upper bound.
    """
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return 157.0, "default (no /proc/cpuinfo)"
    mhz = [float(line.split(":")[1]) for line in info.splitlines() if line.startswith("cpu MHz")]
    flags = next((line for line in info.splitlines() if line.startswith("flags")), "")
    per_cycle = 64 if " avx512f" in flags else 32
    ghz = (max(mhz) if mhz else 2450.0) / 1000
    cores = os.cpu_count() or 1
    return ghz * per_cycle * cores, f"{ghz:.2f} GHz x {per_cycle} FLOP/cycle x {cores} cores"


PEAK_GFLOPS = 157.0  # replaced in main() by peak_gflops() or --peak-gflops


def _load_data(seed: int):
    from pipelines.config import config_from_dict
    from pipelines.stages.load_data.run import load_data_stage
    from pipelines.core.runner import StageContext

    cfg = config_from_dict({"audit": {"name": "bench"}, "seed": seed}, base_dir=ROOT)
    ctx = StageContext(config=cfg, run_id="bench", scratch_dir=Path(tempfile.mkdtemp()), cache_dir=cfg.cache_dir,
                       log=logging.getLogger("bench"), show_progress=False)
    return load_data_stage(ctx)


CPU_SECONDS: dict[int, float] = {}


def _timeit(fn, repeats: int):
    """Best wall time of ``repeats`` runs; the CPU seconds of that run are kept in CPU_SECONDS.

    The machine is shared, so wall times are noisy; process CPU time (both
    threads) is steadier and is reported next to each wall time.
    """
    best, out, cpu = float("inf"), None, None
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        wall = time.perf_counter() - t0
        if wall < best:
            best, cpu = wall, time.process_time() - c0
    CPU_SECONDS[id(out)] = cpu
    return best, out


def bench_finetuned(texts: list[str], *, repeats: int, max_length: int, batch_size: int) -> dict:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    from pipelines.config import resolve_resource
    from pipelines.config.variants import MINILM
    from pipelines.variants.finetuned import FinetunedPredictor, encode

    base = resolve_resource(MINILM, base_dir=ROOT)
    folder = Path(tempfile.mkdtemp()) / "minilm-cls"
    torch.manual_seed(0)  # the head is random: throughput does not depend on the weights' values
    AutoModelForSequenceClassification.from_pretrained(base, num_labels=2).save_pretrained(folder)
    AutoTokenizer.from_pretrained(base).save_pretrained(folder)

    ours = FinetunedPredictor(folder, max_length=max_length, batch_size=batch_size)
    ours.predict(texts[:8])  # load + warm up
    t_ours, pred = _timeit(lambda: ours.predict(texts), repeats)

    pipe = pipeline("text-classification", model=str(folder), tokenizer=str(folder), device=-1, top_k=None)
    pipe(texts[:4])
    t_naive, naive_out = _timeit(lambda: pipe(texts), 1)
    naive = np.array([{d["label"]: d["score"] for d in row}["LABEL_1"] for row in naive_out])
    t_naive32, _ = _timeit(lambda: pipe(texts, batch_size=32), 1)

    tok = ours._tokenizer
    ids, truncated = encode(tok, texts, max_length=max_length)
    tokens = sum(len(r) for r in ids)
    flop_per_token = 21e6  # ~2 x 10.6M non-embedding params (attention over ~25 tokens is small)
    ceiling = PEAK_GFLOPS * 1e9 / (flop_per_token * tokens / len(texts))
    eps = len(texts) / t_ours
    return {
        "examples": len(texts),
        "mean_tokens": round(tokens / len(texts), 2),
        "truncated": int(truncated.sum()),
        "ours": {"seconds": round(t_ours, 3), "cpu_seconds": round(CPU_SECONDS[id(pred)], 3),
                 "examples_per_s": round(eps, 1), "batch_size": batch_size, "max_length": max_length},
        "naive_pipeline_default": {"seconds": round(t_naive, 3), "cpu_seconds": round(CPU_SECONDS[id(naive_out)], 3),
                                   "examples_per_s": round(len(texts) / t_naive, 1)},
        "naive_pipeline_batch32": {"seconds": round(t_naive32, 3), "examples_per_s": round(len(texts) / t_naive32, 1)},
        "speedup_vs_default_pipeline": round(t_naive / t_ours, 2),
        "speedup_vs_pipeline_batch32": round(t_naive32 / t_ours, 2),
        "max_abs_score_diff_vs_pipeline": float(np.abs(naive - pred.scores).max()),
        "flop_bound_ceiling_examples_per_s": round(ceiling, 1),
        "achieved_gflops": round(eps * flop_per_token * tokens / len(texts) / 1e9, 1),
        "fraction_of_ceiling": round(eps / ceiling, 3),
    }


def bench_rag(texts: list[str], train, *, repeats: int, cache_dir: Path, kb_docs: int, seed: int, skip_int8: bool,
              k: int = 4) -> dict:

    import torch

    from pipelines.config import config_from_dict, resolve_resource
    from pipelines.core.runner import StageContext
    from pipelines.variants.cache import ModelCache
    from pipelines.config.variants import MINILM
    from pipelines.variants.retrieval import Embedder, top_k
    from pipelines.stages.predict.run import _generator_dir

    # the build stage's own conversion (and cache entry) of the default generator
    cfg = config_from_dict({"audit": {"name": "bench"}}, base_dir=ROOT)
    g = cfg.variants.rag.generator
    ctx = StageContext(config=cfg, run_id="bench", scratch_dir=Path(tempfile.mkdtemp()), cache_dir=cache_dir,
                       log=logging.getLogger("bench"), show_progress=False)
    t0 = time.perf_counter()
    generator_dir, _ = _generator_dir(ctx, ModelCache(cache_dir / "models"))
    t_conv = time.perf_counter() - t0

    rng = np.random.default_rng(seed)
    kb = train.iloc[np.sort(rng.choice(len(train), size=min(kb_docs, len(train)), replace=False))]
    emb = Embedder(resolve_resource(MINILM, base_dir=ROOT), max_length=128, batch_size=64)
    emb.embed(["warm up"])
    t_emb, (kb_emb, _) = _timeit(lambda: emb.embed(list(kb["text"])), 1)
    q_emb, _ = emb.embed(texts)
    idx, _ = top_k(q_emb, kb_emb, k)
    kb_texts, kb_labels = list(kb["text"]), [int(x) for x in kb["label"]]
    docs = [[(kb_texts[j], kb_labels[j]) for j in row] for row in idx]

    from pipelines.variants.rag import RagScorer

    def scorer(**kw):
        args = dict(system_prompt=g.system_prompt, instruction=g.instruction, question=g.question,
                    doc_max_tokens=g.doc_max_tokens, query_max_tokens=g.query_max_tokens)
        args.update(kw)
        s = RagScorer(generator_dir, **args)
        s.score(texts[:2], docs[:2])  # load + warm up
        return s

    results: dict = {"examples": len(texts), "k": k, "kb_docs": len(kb), "generator_dir": str(generator_dir),
                     "generator_convert_or_cache_seconds": round(t_conv, 2),
                     "embed_kb": {"seconds": round(t_emb, 2), "docs_per_s": round(len(kb) / t_emb, 1)}}
    base = scorer(batch_size=8, prefix_cache=True)
    t_ours, res_ours = _timeit(lambda: base.score(texts, docs), repeats)
    ours = res_ours[0]
    tok = base._tok
    prompt_ids = [base.prompt_ids(q, d) for q, d in zip(texts, docs)]
    mean_tokens = float(np.mean([len(p) for p in prompt_ids]))
    results["prompt_tokens_mean"] = round(mean_tokens, 1)
    results["shared_prefix_tokens"] = len(base._prefix_ids)
    results["ours_batch8_prefix_cache"] = {"seconds": round(t_ours, 3), "cpu_seconds": round(CPU_SECONDS[id(res_ours)], 3),
                                          "s_per_example": round(t_ours / len(texts), 4),
                                          "examples_per_s": round(len(texts) / t_ours, 2)}

    # the naive way: one generate() per example, one new token, greedy, read the first step's scores
    model = base._model
    yes, no = base.answer_ids

    def naive():
        out = []
        with torch.inference_mode():
            for ids in prompt_ids:
                gen = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                     max_new_tokens=1, do_sample=False, output_scores=True,
                                     return_dict_in_generate=True, pad_token_id=tok.pad_token_id)
                logit = gen.scores[0][0, [yes, no]].double()
                out.append(float(torch.softmax(logit, 0)[0]))
        return np.array(out)

    t_naive, naive_scores = _timeit(naive, 1)
    results["naive_generate_per_example"] = {"seconds": round(t_naive, 3),
                                             "cpu_seconds": round(CPU_SECONDS[id(naive_scores)], 3),
                                             "s_per_example": round(t_naive / len(texts), 4),
                                             "examples_per_s": round(len(texts) / t_naive, 2)}
    results["speedup_vs_naive"] = round(t_naive / t_ours, 2)
    results["max_abs_score_diff_vs_naive"] = float(np.abs(naive_scores - ours).max())

    levers = {"batch8_no_prefix_cache": dict(batch_size=8, prefix_cache=False),
              "batch1_prefix_cache": dict(batch_size=1, prefix_cache=True),
              "batch16_prefix_cache": dict(batch_size=16, prefix_cache=True)}
    if not skip_int8:
        levers["batch8_prefix_cache_int8"] = dict(batch_size=8, prefix_cache=True, int8=True)
    for name, kw in levers.items():
        s = scorer(**kw)
        t, res = _timeit(lambda: s.score(texts, docs), repeats)
        sc = res[0]
        results[name] = {"seconds": round(t, 3), "cpu_seconds": round(CPU_SECONDS[id(res)], 3),
                         "s_per_example": round(t / len(texts), 4),
                         "examples_per_s": round(len(texts) / t, 2), "speedup_vs_default": round(t / t_ours, 3),
                         "max_abs_score_diff_vs_default": float(np.abs(sc - ours).max())}
        del s

    n_params = sum(p.numel() for n, p in model.named_parameters() if "embed_tokens" not in n and "lm_head" not in n)
    head = 2 * model.config.vocab_size * model.config.hidden_size  # LM head at one position
    flop = 2 * n_params * mean_tokens + head
    flop_suffix = 2 * n_params * (mean_tokens - len(base._prefix_ids)) + head  # the prefix is computed once
    results["flop_per_example_gflop"] = round(flop / 1e9, 2)
    results["flop_per_example_after_prefix_cache_gflop"] = round(flop_suffix / 1e9, 2)
    results["non_embedding_params_millions"] = round(n_params / 1e6, 1)
    results["flop_bound_ceiling_examples_per_s"] = round(PEAK_GFLOPS * 1e9 / flop, 2)
    results["flop_bound_ceiling_with_prefix_cache_examples_per_s"] = round(PEAK_GFLOPS * 1e9 / flop_suffix, 2)
    best = max(v["examples_per_s"] for k, v in results.items() if isinstance(v, dict) and "examples_per_s" in v
               and "int8" not in k and "naive" not in k)
    results["best_fp32_examples_per_s"] = best
    results["best_fp32_achieved_gflops"] = round(best * flop_suffix / 1e9, 1)
    results["fraction_of_ceiling"] = round(best * flop_suffix / 1e9 / PEAK_GFLOPS, 3)
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="few examples, one repeat (about 1-2 minutes)")
    ap.add_argument("--n-finetuned", type=int, default=1000)
    ap.add_argument("--n-rag", type=int, default=100)
    ap.add_argument("--kb-docs", type=int, default=2000)
    ap.add_argument("--k", type=int, default=4, help="retrieved documents per RAG prompt")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip", choices=["finetuned", "rag"], action="append", default=[])
    ap.add_argument("--skip-int8", action="store_true")
    ap.add_argument("--peak-gflops", type=float, default=None,
                    help="fp32 peak for the ceiling estimate (default: from /proc/cpuinfo)")
    ap.add_argument("--cache-dir", type=Path, default=ROOT / "reports" / "cache")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args(argv)
    if args.quick:
        args.n_finetuned, args.n_rag, args.kb_docs, args.repeats = 256, 24, 1000, 1

    global PEAK_GFLOPS
    PEAK_GFLOPS, peak_note = (args.peak_gflops, "--peak-gflops") if args.peak_gflops else peak_gflops()
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    import torch

    torch.set_num_threads(args.threads)
    from pipelines.variants._hf import offline

    offline()
    data = _load_data(args.seed)
    rng = np.random.default_rng(args.seed)
    ev = data["eval"]
    results = {"started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "quick": args.quick,
               "threads": args.threads, "torch": torch.__version__, "platform": platform.platform(),
               "processor": platform.processor(), "peak_gflops_assumed": PEAK_GFLOPS, "peak_gflops_from": peak_note, "cpu_count": os.cpu_count(),
               "load_average_at_start": os.getloadavg()}
    if "finetuned" not in args.skip:
        texts = list(ev["text"].iloc[rng.choice(len(ev), size=min(args.n_finetuned, len(ev)), replace=False)])
        results["finetuned"] = bench_finetuned(texts, repeats=args.repeats, max_length=64, batch_size=64)
        print(json.dumps({"finetuned": results["finetuned"]}, indent=1), flush=True)
    if "rag" not in args.skip:
        texts = list(ev["text"].iloc[rng.choice(len(ev), size=min(args.n_rag, len(ev)), replace=False)])
        results["rag"] = bench_rag(texts, data["train"], repeats=args.repeats, cache_dir=args.cache_dir,
                                   kb_docs=args.kb_docs, seed=args.seed, skip_int8=args.skip_int8, k=args.k)
        print(json.dumps({"rag": results["rag"]}, indent=1), flush=True)
    results["load_average_at_end"] = os.getloadavg()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"bench_inference-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(results, indent=2), encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
