"""Inference throughput of the two variants against the naive way and against the CPU's limit, in one process.

* fine-tuned: ``FinetunedPredictor`` on each path this CPU offers (packed
  engine in fp32, in bf16 where native; the transformers module in fp32) vs
  transformers ``pipeline('text-classification')`` with default settings (one
  text per call) and with batching (8, 32, 64: the strongest is the baseline);
* RAG: ``RagScorer`` on the same paths vs a per-example ``generate()`` of one
  token, plus the follower (``query_only`` twin) path that reuses its
  original's KV cache, and a check that each reduced-precision path's scores
  stay close to fp32 on ``--n-rag-accuracy`` real examples (max difference and
  AUC against the labels).

Timings are interleaved (round ``r`` runs every path once, in turn) and each
path's best round counts, because the machine is shared and noisy: compare
the ratios, which come from one run, not absolute rates across runs. The CPU
model and flags, the load average and a measured fp32 GEMM rate are recorded
with the figures.

The fp32 FLOP ceiling is ``peak / FLOP per example``, with ``peak`` the larger
of the nominal fp32 peak (GHz x FLOP/cycle x cores, :func:`nominal_peak`) and
an fp32 matrix product measured in this run on each kernel the project can
use (:func:`gemm_rates`, the fastest kernel: torch's BLAS and the packed engines' oneDNN
kernel, which runs fp32 about twice as fast as MKL on AMD Zen 5), so that a path
is never said to beat a ceiling this machine's own fp32 kernels exceed.

Usage::

    .venv/bin/python benchmarks/bench_inference.py --quick
    .venv/bin/python benchmarks/bench_inference.py --n-finetuned 1000 --n-rag 64 --n-rag-accuracy 200
    .venv/bin/python benchmarks/bench_inference.py --demo-rag   # the demo's RAG scoring, today's path vs the fastest

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
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

THREADS = 2  # replaced in main() by --threads; every predictor is built with it (they set torch's threads on load)

REDUCED_TOLERANCE = {"finetuned": {"max_abs_score_diff": 0.01},
                     "rag": {"max_abs_score_diff": 0.02, "auc_diff": 0.005}}


# -- the machine ----------------------------------------------------------------


def nominal_peak(info=None) -> tuple[float, str]:
    """fp32 peak of this CPU from its flags: GHz x FLOP/cycle x logical CPUs.

    FLOP/cycle per core: 32 with AVX2 (2 FMA units x 8 lanes x 2) and on AMD
    Zen 3/Zen 4 (family 25: Zen 4 runs AVX-512 on 256-bit units), 64 with
    AVX-512 elsewhere (2 FMA units x 16 lanes x 2; Intel parts with one
    AVX-512 FMA unit have 32, so this is an upper bound there), 16 without
    AVX2. The clock is ``cpu MHz`` (a VM often shows the base clock; boost can
    be higher, which is why the ceiling also uses a measured GEMM rate).
    """
    from pipelines.variants._precision import cpu_info

    info = info or cpu_info()
    try:
        mhz = [float(line.split(":")[1]) for line in Path("/proc/cpuinfo").read_text().splitlines()
               if line.startswith("cpu MHz")]
    except OSError:
        mhz = []
    if "avx512f" in info.flags and not (info.vendor == "AuthenticAMD" and info.family == 25):
        per_cycle, why = 64, "AVX-512, 2 FMA units"
    elif "avx2" in info.flags:
        per_cycle = 32
        why = "AMD family 25 (Zen 3/4): 2 x 256-bit FMA" if info.vendor == "AuthenticAMD" else "AVX2, 2 FMA units"
    else:
        per_cycle, why = 16, "no AVX2"
    ghz = (max(mhz) if mhz else 2450.0) / 1000
    return ghz * per_cycle * info.cores, f"{ghz:.2f} GHz x {per_cycle} FLOP/cycle ({why}) x {info.cores} CPUs"


def gemm_rates(*, size: int = 1536, repeats: int = 5) -> dict[str, float]:
    """Best fp32 rate (GFLOP/s) of a ``size``-square product on each kernel: torch's BLAS (``torch.mm``) and
    the packed engines' kernel (``pipelines.variants._gemm``: oneDNN where its probe passed)."""
    import torch

    from pipelines.variants import _gemm

    a, b = torch.randn(size, size), torch.randn(size, size)
    kinds = {"torch.mm": lambda: torch.mm(a, b)}
    kernel = _gemm.kernel()["kernel"]
    if kernel != "aten":
        packed = _gemm.pack(b.T.contiguous())
        kinds[f"packed-engine kernel ({kernel})"] = lambda: _gemm.linear(a, packed)
    out = {}
    for name, fn in kinds.items():
        fn()
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
        out[name] = 2 * size**3 / best / 1e9
    return out


def machine_record(threads: int) -> dict[str, Any]:
    import torch

    from pipelines.variants._precision import cpu_info, native_bf16

    info = cpu_info()
    ok, isa = native_bf16(info)
    peak, note = nominal_peak(info)
    return {"cpu": info.summary(), "native_bf16": isa if ok else None, "torch": torch.__version__,
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
            "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(), "threads": threads,
            "platform": platform.platform(), "nominal_fp32_peak_gflops": round(peak, 1), "nominal_peak_from": note}


# -- timing ---------------------------------------------------------------------


def interleaved(fns: dict[str, Callable[[], Any]], repeats: int) -> dict[str, dict[str, Any]]:
    """Run every function once per round, ``repeats`` rounds; best and median wall seconds, CPU seconds of the best.

    Interleaving spreads the machine's load over all paths alike.
    """
    runs: dict[str, list[tuple[float, float]]] = {k: [] for k in fns}
    outs: dict[str, Any] = {}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0, c0 = time.perf_counter(), time.process_time()
            outs[name] = fn()
            runs[name].append((time.perf_counter() - t0, time.process_time() - c0))
    res = {}
    for name, r in runs.items():
        best = min(r)
        res[name] = {"best_s": best[0], "median_s": float(np.median([w for w, _ in r])), "cpu_s": best[1],
                     "rounds": len(r), "out": outs[name]}
    return res


def _rate(n: int, t: dict[str, Any]) -> dict[str, Any]:
    return {"seconds": round(t["best_s"], 3), "median_seconds": round(t["median_s"], 3),
            "cpu_seconds": round(t["cpu_s"], 3), "examples_per_s": round(n / t["best_s"], 2)}


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC by the rank-sum formula (ties get average ranks)."""
    from scipy.stats import rankdata

    labels = np.asarray(labels).astype(bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if not n_pos or not n_neg:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


# -- data and models --------------------------------------------------------------


def _context(overrides: dict[str, Any] | None = None, *, cache_dir: Path | None = None, config: Path | None = None):
    from pipelines.config import config_from_dict, load_config
    from pipelines.core.runner import StageContext

    if config is not None:
        cfg = load_config(config, overrides=overrides)
    else:
        cfg = config_from_dict({"audit": {"name": "bench"}, **(overrides or {})}, base_dir=ROOT)
    return StageContext(config=cfg, run_id="bench", scratch_dir=Path(tempfile.mkdtemp()),
                        cache_dir=cache_dir or cfg.cache_dir, log=logging.getLogger("bench"), show_progress=False)


def _load_data(seed: int):
    from pipelines.stages.load_data.run import load_data

    return load_data(_context({"seed": seed}))


def _rag_kind(ctx):
    """The config's first RAG variant (the default one where the config lists none) and its kind object."""
    from pipelines.config.variants import RagVariant
    from pipelines.variants import variant_kind

    for i, spec in enumerate(ctx.config.variants):
        if isinstance(spec, RagVariant):
            return variant_kind(spec, index=i)
    return variant_kind(RagVariant(name="rag"))


def _build_context(ctx, cache_dir: Path):
    from pipelines.core.rundir import CacheDir
    from pipelines.variants import BuildContext, ModelCache

    return BuildContext(cache=ModelCache(CacheDir(cache_dir).models), seed=ctx.seed, resolve=ctx.config.resolve,
                        num_threads=THREADS, data_features=tuple(ctx.config.data.sensitive_features),
                        log=logging.getLogger("bench"))


def _classifier_dir(args, train) -> tuple[Path, str]:
    """A trained classifier: ``--finetuned-model``, else one the build stage cached, else a quick fine-tune."""
    if args.finetuned_model is not None:
        return args.finetuned_model, "--finetuned-model"
    from pipelines.core.rundir import CacheDir

    cached = sorted(CacheDir(args.cache_dir).models.glob("finetuned-*/model.safetensors"))
    if cached:
        return cached[-1].parent, "build-stage cache"
    from pipelines.config import resolve_resource
    from pipelines.config.variants import MINILM
    from pipelines.variants.finetuned import train_classifier

    folder = Path(tempfile.mkdtemp()) / "minilm-cls"
    rows = train.sample(n=min(args.finetune_rows, len(train)), random_state=args.seed)
    train_classifier(resolve_resource(MINILM, base_dir=ROOT), texts=list(rows["text"]), labels=list(rows["label"]),
                     out_dir=folder, seed=args.seed, epochs=1, batch_size=32, learning_rate=1e-4, weight_decay=0.01,
                     warmup_ratio=0.1, max_length=64, num_threads=THREADS)
    return folder, f"fine-tuned here on {len(rows)} train rows, 1 epoch"


# -- fine-tuned -------------------------------------------------------------------


def bench_finetuned(texts: list[str], labels: np.ndarray, model_dir: Path, *, repeats: int, peak: float,
                    max_length: int, batch_size: int, n_default_pipeline: int, model_source: str) -> dict:
    from transformers import pipeline

    from pipelines.variants.finetuned import FinetunedPredictor, encode

    common = dict(max_length=max_length, batch_size=batch_size, num_threads=THREADS)
    preds = {"packed_fp32": FinetunedPredictor(model_dir, **common)}
    auto = FinetunedPredictor(model_dir, precision="auto", **common)
    if auto.path["precision"] != "fp32":
        preds[f"packed_{auto.path['precision']}"] = auto
    preds["transformers_fp32"] = FinetunedPredictor(model_dir, engine="hf", **common)
    for p in preds.values():
        p.predict(texts[:8])  # load + warm up
    pipe = pipeline("text-classification", model=str(model_dir), tokenizer=str(model_dir), device=-1, top_k=None,
                    trust_remote_code=False, local_files_only=True)
    pipe(texts[:4])

    def pipe_scores(out) -> np.ndarray:
        return np.array([{d["label"]: d["score"] for d in row}["LABEL_1" if "LABEL_1" in {d["label"] for d in row}
                                                                  else "positive"] for row in out])

    fns: dict[str, Callable[[], Any]] = {name: (lambda p=p: p.predict(texts).scores) for name, p in preds.items()}
    for bs in (8, 32, 64):
        fns[f"pipeline_batch{bs}"] = lambda bs=bs: pipe_scores(pipe(texts, batch_size=bs, truncation=True,
                                                                    max_length=max_length))
    sub = texts[:n_default_pipeline]  # one text per call is slow: timed on fewer texts, in the same rounds
    fns["pipeline_default"] = lambda: pipe_scores(pipe(sub, truncation=True, max_length=max_length))
    t = interleaved(fns, repeats)
    t_default = {"pipeline_default": t.pop("pipeline_default")}

    ids, truncated = encode(preds["packed_fp32"]._tokenizer, texts, max_length=max_length)
    mean_tokens = sum(len(r) for r in ids) / len(texts)
    flop_per_token = 21e6  # ~2 x 10.6M non-embedding params (attention over ~25 tokens is small)
    ceiling = peak * 1e9 / (flop_per_token * mean_tokens)
    ref = t["packed_fp32"]["out"]
    out: dict[str, Any] = {"examples": len(texts), "mean_tokens": round(mean_tokens, 2),
                           "truncated": int(truncated.sum()), "model": str(model_dir), "model_source": model_source,
                           "batch_size": batch_size, "max_length": max_length,
                           "flop_bound_ceiling_examples_per_s": round(ceiling, 1), "paths": {}}
    for name, r in t.items():
        entry = _rate(len(texts), r)
        entry["max_abs_score_diff_vs_packed_fp32"] = float(np.abs(r["out"] - ref).max())
        if name in preds:
            entry["path"] = {k: preds[name].path[k] for k in ("precision", "runtime", "reason")}
            entry["auc"] = auc(r["out"], labels)
        out["paths"][name] = entry
    d = t_default["pipeline_default"]
    out["paths"]["pipeline_default"] = {**_rate(len(sub), d), "examples": len(sub),
                                        "max_abs_score_diff_vs_packed_fp32":
                                            float(np.abs(d["out"] - ref[: len(sub)]).max())}
    rates = {k: v["examples_per_s"] for k, v in out["paths"].items()}
    strongest = max((k for k in rates if k.startswith("pipeline")), key=rates.get)
    fastest_ok = max((k for k in preds if k == "packed_fp32" or out["paths"][k]["max_abs_score_diff_vs_packed_fp32"]
                      <= REDUCED_TOLERANCE["finetuned"]["max_abs_score_diff"]), key=rates.get)
    out["strongest_naive_baseline"] = strongest
    out["fastest_correct_path"] = fastest_ok
    out["ratios"] = {
        "fastest_vs_strongest_pipeline": round(rates[fastest_ok] / rates[strongest], 2),
        "fastest_vs_default_pipeline": round(rates[fastest_ok] / rates["pipeline_default"], 2),
        "fastest_vs_transformers_fp32": round(rates[fastest_ok] / rates["transformers_fp32"], 2),
        "packed_fp32_fraction_of_ceiling": round(rates["packed_fp32"] / ceiling, 3),
        "fastest_fraction_of_fp32_ceiling": round(rates[fastest_ok] / ceiling, 3),
    }
    out["goals"] = {
        ">=0.75 of fp32 ceiling (or past it)": out["ratios"]["fastest_fraction_of_fp32_ceiling"] >= 0.75,
        ">=1.5x strongest pipeline": out["ratios"]["fastest_vs_strongest_pipeline"] >= 1.5,
    }
    return out


# -- RAG --------------------------------------------------------------------------


def _rag_setup(texts_all: list[str], train, *, cache_dir: Path, kb_docs: int, seed: int, k: int):
    """The build stage's generator folder, a knowledge base embedded from ``train``, and each text's documents."""
    from pipelines.config import resolve_resource
    from pipelines.config.variants import MINILM
    from pipelines.variants.retrieval import Embedder, top_k

    ctx = _context(cache_dir=cache_dir)
    kind = _rag_kind(ctx)
    t0 = time.perf_counter()
    generator_dir, _ = kind._generator_dir(_build_context(ctx, cache_dir))
    t_conv = time.perf_counter() - t0
    rng = np.random.default_rng(seed)
    kb = train.iloc[np.sort(rng.choice(len(train), size=min(kb_docs, len(train)), replace=False))]
    emb = Embedder(resolve_resource(MINILM, base_dir=ROOT), max_length=128, batch_size=64, num_threads=THREADS)
    t0 = time.perf_counter()
    kb_emb, _ = emb.embed(list(kb["text"]))
    t_emb = time.perf_counter() - t0
    q_emb, _ = emb.embed(texts_all)
    idx, _ = top_k(q_emb, kb_emb, k)
    kb_texts, kb_labels = list(kb["text"]), [int(x) for x in kb["label"]]
    docs = [[(kb_texts[j], kb_labels[j]) for j in row] for row in idx]
    return generator_dir, docs, kind.spec.generator, {
        "generator_dir": str(generator_dir), "generator_convert_or_cache_seconds": round(t_conv, 2),
        "kb_docs": len(kb), "embed_kb": {"seconds": round(t_emb, 2), "docs_per_s": round(len(kb) / t_emb, 1),
                                         "path": {k: emb.path[k] for k in ("precision", "runtime")}}}


def bench_rag(texts: list[str], docs: list, acc_texts: list[str], acc_docs: list, acc_labels: np.ndarray,
              followers: list[list[str]], *, generator_dir: Path, g, repeats: int, peak: float, n_naive: int,
              skip_int8: bool, batch_size: int) -> dict:
    import torch

    from pipelines.variants.rag import RagScorer

    def scorer(**kw):
        args = dict(system_prompt=g.system_prompt, instruction=g.instruction, question=g.question,
                    doc_max_tokens=g.doc_max_tokens, query_max_tokens=g.query_max_tokens, batch_size=batch_size,
                    num_threads=THREADS)
        args.update(kw)
        s = RagScorer(generator_dir, **args)
        s.score(texts[:2], docs[:2])  # load + warm up
        return s

    scorers = {"packed_fp32": scorer()}
    auto = scorer(precision="auto")
    if auto.path["precision"] != "fp32":
        scorers[f"packed_{auto.path['precision']}"] = auto
    scorers["transformers_fp32"] = scorer(engine="hf")  # the previous default path
    if not skip_int8:
        scorers["transformers_int8_dynamic"] = scorer(engine="hf", int8=True)
    base = scorers["packed_fp32"]
    fns: dict[str, Callable[[], Any]] = {name: (lambda s=s: s.score(texts, docs)[0]) for name, s in scorers.items()}
    # the query_only twin path: originals plus followers that reuse the original's document KV cache
    fast_name = max(scorers, key=lambda n: {"bf16": 2}.get(scorers[n].path["precision"], 1)
                    if scorers[n].path["runtime"] == "torch-packed" else 0)
    n_followers = sum(len(f) for f in followers)
    if n_followers:
        for name in dict.fromkeys(["packed_fp32", fast_name]):
            fns[f"{name}+followers"] = lambda s=scorers[name]: s.answer_logits_with_followers(
                texts, docs, followers=followers)
    t = interleaved(fns, repeats)

    # the naive way: one generate() per example, one new token, greedy, read the first step's scores
    model, tok = base._model, base._tok
    yes, no = base.answer_ids
    prompt_ids = [base.prompt_ids(q, d) for q, d in zip(texts, docs)]

    def naive():
        out = []
        with torch.inference_mode():
            for ids in prompt_ids[:n_naive]:
                gen = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                     max_new_tokens=1, do_sample=False, output_scores=True,
                                     return_dict_in_generate=True, pad_token_id=tok.pad_token_id)
                logit = gen.scores[0][0, [yes, no]].double()
                out.append(float(torch.softmax(logit, 0)[0]))
        return np.array(out)

    t_naive = interleaved({"naive_generate_per_example": naive}, 1)["naive_generate_per_example"]

    mean_tokens = float(np.mean([len(p) for p in prompt_ids]))
    n_prefix = len(base._prefix_ids)
    n_params = sum(p.numel() for n, p in model.named_parameters() if "embed_tokens" not in n and "lm_head" not in n)
    head = 2 * model.config.vocab_size * model.config.hidden_size  # LM head at one position
    flop = 2 * n_params * mean_tokens + head
    flop_suffix = 2 * n_params * (mean_tokens - n_prefix) + head  # the prefix is computed once
    ceiling = peak * 1e9 / flop_suffix
    ref = t["packed_fp32"]["out"]
    out: dict[str, Any] = {"examples": len(texts), "prompt_tokens_mean": round(mean_tokens, 1),
                           "shared_prefix_tokens": n_prefix, "batch_size": batch_size,
                           "doc_max_tokens": g.doc_max_tokens, "query_max_tokens": g.query_max_tokens,
                           "non_embedding_params_millions": round(n_params / 1e6, 1),
                           "flop_per_example_gflop": round(flop / 1e9, 2),
                           "flop_per_example_after_prefix_cache_gflop": round(flop_suffix / 1e9, 2),
                           "flop_bound_ceiling_examples_per_s": round(ceiling, 2), "paths": {}}
    for name, r in t.items():
        if name.endswith("+followers"):
            continue
        entry = _rate(len(texts), r)
        entry["max_abs_score_diff_vs_packed_fp32"] = float(np.abs(r["out"] - ref).max())
        entry["path"] = {k: scorers[name].path[k] for k in ("precision", "runtime", "reason")}
        out["paths"][name] = entry
    out["paths"]["naive_generate_per_example"] = {
        **_rate(min(n_naive, len(texts)), t_naive), "examples": min(n_naive, len(texts)),
        "max_abs_score_diff_vs_packed_fp32": float(np.abs(t_naive["out"] - ref[: len(t_naive["out"])]).max())}
    if n_followers:
        out["followers"] = {"followers": n_followers}
        for name in dict.fromkeys(["packed_fp32", fast_name]):
            r = t[f"{name}+followers"]
            f_seconds = r["out"][4]
            both = r["best_s"]
            out["followers"][name] = {
                "seconds_originals_and_followers": round(both, 3), "follower_seconds": round(f_seconds, 3),
                "followers_per_s": round(n_followers / f_seconds, 2) if f_seconds > 0 else None,
                "follower_speedup_vs_full_prompt": round((n_followers / f_seconds)
                                                         / out["paths"][name]["examples_per_s"], 2)
                if f_seconds > 0 else None}

    # correctness of each reduced-precision path on real examples: scores and AUC against the labels
    acc: dict[str, Any] = {"examples": len(acc_texts), "positives": int(np.sum(acc_labels))}
    acc_scores = {}
    for name, s in scorers.items():
        if name == "packed_fp32" or s.path["precision"] == "bf16" or name == "transformers_fp32":
            t0 = time.perf_counter()
            acc_scores[name] = s.score(acc_texts, acc_docs)[0]
            acc[f"{name}_seconds"] = round(time.perf_counter() - t0, 2)
    ref_acc = acc_scores["packed_fp32"]
    acc["auc_packed_fp32"] = auc(ref_acc, acc_labels)
    for name, sc in acc_scores.items():
        if name == "packed_fp32":
            continue
        diff = np.abs(sc - ref_acc)
        acc[name] = {"max_abs_score_diff": float(diff.max()), "mean_abs_score_diff": float(diff.mean()),
                     "p99_abs_score_diff": float(np.quantile(diff, 0.99)), "auc": auc(sc, acc_labels),
                     "auc_diff": abs(auc(sc, acc_labels) - acc["auc_packed_fp32"]),
                     "correlation": float(np.corrcoef(sc, ref_acc)[0, 1])}
        tol = REDUCED_TOLERANCE["rag"]
        acc[name]["within_tolerance"] = bool(acc[name]["max_abs_score_diff"] <= tol["max_abs_score_diff"]
                                             and acc[name]["auc_diff"] <= tol["auc_diff"])
    out["accuracy_vs_packed_fp32"] = acc

    rates = {k: v["examples_per_s"] for k, v in out["paths"].items()}
    correct = [k for k in scorers if k == "packed_fp32" or (k in acc and acc[k]["within_tolerance"])
               or (k not in acc and out["paths"][k]["max_abs_score_diff_vs_packed_fp32"] <= 1e-3)]
    fastest = max(correct, key=rates.get)
    out["fastest_correct_path"] = fastest
    out["ratios"] = {
        "fastest_vs_naive_generate": round(rates[fastest] / rates["naive_generate_per_example"], 2),
        "fastest_vs_transformers_fp32": round(rates[fastest] / rates["transformers_fp32"], 2),
        "packed_fp32_vs_transformers_fp32": round(rates["packed_fp32"] / rates["transformers_fp32"], 2),
        "packed_fp32_fraction_of_ceiling": round(rates["packed_fp32"] / ceiling, 3),
        "fastest_fraction_of_fp32_ceiling": round(rates[fastest] / ceiling, 3),
    }
    out["goals"] = {">=1.3x fp32 ceiling": out["ratios"]["fastest_fraction_of_fp32_ceiling"] >= 1.3,
                    ">=2.5x naive generate": out["ratios"]["fastest_vs_naive_generate"] >= 2.5}
    return out


def _followers(sample, seed: int) -> list[list[str]]:
    """Counterfactual twins of ``sample`` (the project's RedditBias term pairs), as one follower list per row."""
    from pipelines.stages.counterfactuals.run import counterfactuals

    frame = sample.reset_index(drop=True)
    twins = counterfactuals(_context({"seed": seed}), audit_sample=frame)["twins"]
    row_of = {eid: i for i, eid in enumerate(frame["example_id"])}
    out: list[list[str]] = [[] for _ in range(len(frame))]
    for eid, text in zip(twins["example_id"], twins["text"]):
        out[row_of[eid]].append(text)
    return out


# -- the demo's RAG scoring -----------------------------------------------------------


def bench_demo_rag(args) -> dict:
    """The rag kind's own scoring of the demo's inputs (audit sample, twins, validation), per path.

    The same calls as the predict stage (:meth:`RagKind.score` on the stage's
    :class:`ScoringRequest`), with the generator's engine and precision set per
    path; the audit sample size is the demo config's unless ``--demo-audit-size``.
    """

    from pipelines.stages.counterfactuals.run import counterfactuals
    from pipelines.stages.load_data.run import load_data
    from pipelines.stages.predict.run import _request
    from pipelines.variants import variant_kind

    overrides = {"data": {"audit_sample_size": args.demo_audit_size}} if args.demo_audit_size else None
    ctx = _context(config=ROOT / "pipelines" / "configs" / "demo.yaml", cache_dir=args.cache_dir,
                   overrides=overrides)
    data = load_data(ctx)
    audit = data["audit_sample"]
    twins = counterfactuals(ctx, audit_sample=audit)["twins"]
    request = _request(ctx, audit, twins, data["validation"])
    kind = _rag_kind(ctx)
    t0 = time.perf_counter()
    built = kind.build(_build_context(ctx, args.cache_dir), train=data["train"])
    out: dict[str, Any] = {"audit": len(request.audit), "twins": len(request.twins),
                           "validation": len(request.validation),
                           "build_seconds_here": round(time.perf_counter() - t0, 1), "paths": {}}
    # "whole prompts": the packed engine without prefix trees (every prompt runs from the shared system prefix)
    paths = {"transformers fp32": dict(engine="hf", precision="fp32"),
             "packed auto, whole prompts": dict(engine="auto", precision="auto", share_prefixes=False),
             "packed auto": dict(engine="auto", precision="auto")}
    if args.demo_rag_all:
        paths["packed fp32"] = dict(engine="auto", precision="fp32")
    scores = {}
    for label, kw in paths.items():
        kw = dict(kw)
        share = kw.pop("share_prefixes", True)
        spec = kind.spec.model_copy(update={"generator": kind.spec.generator.model_copy(update=kw)})
        path_kind = variant_kind(spec, index=kind.index)
        pred = path_kind.predictor(built, num_threads=args.threads)
        pred.scorer.share_prefixes = share
        pred.scorer.score(request.audit_texts[:2], [[]] * 2)  # load
        t0 = time.perf_counter()
        res = path_kind.score(pred, request)
        seconds = time.perf_counter() - t0
        scores[label] = np.concatenate([res.audit.scores, res.twins["full"].predictions.scores,
                                        res.twins["query_only"].predictions.scores, res.validation.scores])
        out["paths"][label] = {"seconds": round(seconds, 1), "timing": res.timing,
                               "path": {k: pred.scorer.path[k] for k in ("precision", "runtime")}}
    ref = scores["transformers fp32"]
    for label, sc in scores.items():
        out["paths"][label]["max_abs_score_diff_vs_transformers_fp32"] = float(np.abs(sc - ref).max())
        out["paths"][label]["mean_abs_score_diff_vs_transformers_fp32"] = float(np.abs(sc - ref).mean())
    base = out["paths"]["transformers fp32"]["seconds"]
    whole = out["paths"]["packed auto, whole prompts"]["seconds"]
    for label in out["paths"]:
        out["paths"][label]["speedup_vs_transformers_fp32"] = round(base / out["paths"][label]["seconds"], 2)
        out["paths"][label]["speedup_vs_whole_prompts"] = round(whole / out["paths"][label]["seconds"], 2)
    return out


# -- main -----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="few examples, two rounds (several minutes)")
    ap.add_argument("--n-finetuned", type=int, default=1000)
    ap.add_argument("--n-rag", type=int, default=64, help="RAG examples timed per path and round")
    ap.add_argument("--n-rag-accuracy", type=int, default=200, help="RAG examples for the reduced-precision check")
    ap.add_argument("--n-naive", type=int, default=16, help="examples for the per-example generate() baseline")
    ap.add_argument("--n-default-pipeline", type=int, default=256, help="examples for the unbatched pipeline()")
    ap.add_argument("--kb-docs", type=int, default=2000)
    ap.add_argument("--k", type=int, default=4, help="retrieved documents per RAG prompt")
    ap.add_argument("--rag-batch-size", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3, help="interleaved rounds; each path's best round counts")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip", choices=["finetuned", "rag"], action="append", default=[])
    ap.add_argument("--skip-int8", action="store_true")
    ap.add_argument("--no-followers", action="store_true", help="do not time query_only twins")
    ap.add_argument("--demo-rag", action="store_true",
                    help="only time the rag kind's scoring of the demo's inputs (as the predict stage does it): the "
                    "transformers modules in fp32 vs the packed engine at precision 'auto', with and without "
                    "prefix trees")
    ap.add_argument("--demo-audit-size", type=int, default=None,
                    help="with --demo-rag: audit this many eval comments instead of the demo config's number")
    ap.add_argument("--demo-rag-all", action="store_true", help="with --demo-rag: also the packed engine in fp32")
    ap.add_argument("--finetuned-model", type=Path, default=None, help="a trained classifier folder")
    ap.add_argument("--finetune-rows", type=int, default=512,
                    help="train rows for a quick fine-tune when no trained classifier is found")
    ap.add_argument("--omp-spin", action="store_true",
                    help="leave OpenMP's spinning wait (the variants set OMP_WAIT_POLICY=PASSIVE by default)")
    ap.add_argument("--peak-gflops", type=float, default=None, help="override the nominal fp32 peak")
    ap.add_argument("--cache-dir", type=Path, default=ROOT / "reports" / "cache")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args(argv)
    if args.quick:
        args.n_finetuned, args.n_rag, args.n_rag_accuracy, args.kb_docs, args.repeats = 256, 16, 64, 1000, 2
        args.n_naive, args.n_default_pipeline = 4, 64

    from pipelines.variants._hf import offline

    if args.omp_spin:
        os.environ.setdefault("OMP_WAIT_POLICY", "ACTIVE")
    offline()  # before torch is imported: OpenMP reads OMP_WAIT_POLICY once
    import torch

    global THREADS
    THREADS = args.threads
    torch.set_num_threads(args.threads)
    results: dict[str, Any] = {"started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                               "quick": args.quick, "load_average_at_start": os.getloadavg(),
                               "machine": machine_record(args.threads)}
    m = results["machine"]
    print(f"CPU: {m['cpu']['model']} ({m['cpu']['logical_cpus']} CPUs; flags {' '.join(m['cpu']['flags'])}); "
          f"native bf16: {m['native_bf16']}; torch {m['torch']} ({m['torch_cpu_capability']}), "
          f"{args.threads} threads", flush=True)
    nominal = args.peak_gflops or m["nominal_fp32_peak_gflops"]
    by_kernel: list[dict[str, float]] = []  # fp32 GEMM rates per kernel, measured before and after each part
    gemm: list[float] = []  # the fastest kernel of each measurement: a ceiling must hold against it

    def measure_gemm() -> None:
        by_kernel.append(gemm_rates())
        gemm.append(max(by_kernel[-1].values()))

    measure_gemm()
    if args.demo_rag:
        results["demo_rag"] = bench_demo_rag(args)
        print(json.dumps(results["demo_rag"], indent=1), flush=True)
    else:
        data = _load_data(args.seed)
        rng = np.random.default_rng(args.seed)
        ev = data["eval"]
        if "finetuned" not in args.skip:
            rows = ev.iloc[rng.choice(len(ev), size=min(args.n_finetuned, len(ev)), replace=False)]
            model_dir, source = _classifier_dir(args, data["train"])
            peak = max(nominal, *gemm)
            results["finetuned"] = bench_finetuned(list(rows["text"]), rows["label"].to_numpy(), model_dir,
                                                   repeats=args.repeats, peak=peak, max_length=64, batch_size=64,
                                                   n_default_pipeline=args.n_default_pipeline, model_source=source)
            measure_gemm()
            print(json.dumps({"finetuned": results["finetuned"]}, indent=1), flush=True)
        if "rag" not in args.skip:
            n_all = max(args.n_rag, args.n_rag_accuracy)
            rows = ev.iloc[rng.choice(len(ev), size=min(n_all, len(ev)), replace=False)].reset_index(drop=True)
            texts_all = list(rows["text"])
            generator_dir, docs, g, setup = _rag_setup(texts_all, data["train"], cache_dir=args.cache_dir,
                                                       kb_docs=args.kb_docs, seed=args.seed, k=args.k)
            n = min(args.n_rag, len(rows))
            followers = [[] for _ in range(n)] if args.no_followers else _followers(rows.iloc[:n], args.seed)
            peak = max(nominal, *gemm)
            res = bench_rag(texts_all[:n], docs[:n], texts_all[: args.n_rag_accuracy], docs[: args.n_rag_accuracy],
                            rows["label"].to_numpy()[: args.n_rag_accuracy], followers, generator_dir=generator_dir,
                            g=g, repeats=args.repeats, peak=peak, n_naive=args.n_naive, skip_int8=args.skip_int8,
                            batch_size=args.rag_batch_size)
            results["rag"] = {"k": args.k, **setup, **res}
            measure_gemm()
            print(json.dumps({"rag": results["rag"]}, indent=1), flush=True)
    results["fp32_peak"] = {"nominal_gflops": nominal, "measured_gemm_gflops": [round(x, 1) for x in gemm],
                            "gemm_by_kernel_gflops": {k: round(max(r[k] for r in by_kernel), 1) for k in by_kernel[0]},
                            "ceiling_uses_gflops": round(max(nominal, *gemm), 1)}
    results["load_average_at_end"] = os.getloadavg()
    _summary(results)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"bench_inference-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(results, indent=2, default=float), encoding="utf-8")
    print(f"wrote {path}")
    return 0


def _summary(results: dict) -> None:
    m = results["machine"]
    print("\n== summary (ratios from this run) ==")
    print(f"CPU {m['cpu']['model']}, flags: {' '.join(m['cpu']['flags'])}; native bf16: {m['native_bf16']}; "
          f"load {results['load_average_at_start'][0]:.1f} -> {results['load_average_at_end'][0]:.1f}; "
          f"fp32 peak used {results['fp32_peak']['ceiling_uses_gflops']} GFLOP/s (nominal "
          f"{results['fp32_peak']['nominal_gflops']}, measured fp32 GEMM "
          f"{results['fp32_peak']['measured_gemm_gflops']}; by kernel {results['fp32_peak']['gemm_by_kernel_gflops']})")
    for part in ("finetuned", "rag"):
        if part in results:
            r = results[part]
            print(f"{part}: " + ", ".join(f"{k} {v['examples_per_s']}/s" for k, v in r["paths"].items()))
            print(f"  fastest correct: {r['fastest_correct_path']}; ratios {r['ratios']}; goals {r['goals']}")
    if "rag" in results:
        acc = results["rag"]["accuracy_vs_packed_fp32"]
        for k, v in acc.items():
            if isinstance(v, dict):
                print(f"  rag {k} vs packed fp32 on {acc['examples']}: max diff {v['max_abs_score_diff']:.4f}, "
                      f"AUC diff {v['auc_diff']:.4f}, within tolerance: {v['within_tolerance']}")
        if "followers" in results["rag"]:
            print(f"  followers: {results['rag']['followers']}")
    if "demo_rag" in results:
        for k, v in results["demo_rag"]["paths"].items():
            print(f"demo RAG scoring, {k} ({v['path']['precision']}, {v['path']['runtime']}): {v['seconds']} s "
                  f"({v['speedup_vs_transformers_fp32']}x transformers fp32, "
                  f"{v['speedup_vs_whole_prompts']}x whole prompts), score diff vs transformers fp32 max "
                  f"{v['max_abs_score_diff_vs_transformers_fp32']:.4f} "
                  f"mean {v['mean_abs_score_diff_vs_transformers_fp32']:.4f}")


if __name__ == "__main__":
    raise SystemExit(main())
