"""Would 8-bit matrix products keep the RAG scores right? Kernel rates and simulated accuracy (issue 17).

Two measurements, printed as a table each:

* ``--rates``: GFLOP/s of the generator's product shapes (1,024 rows) in fp32 and bf16
  (oneDNN's linear), int8 x int8 -> int32 (``torch._int_mm``) and oneDNN's quantized
  linear with u8 activations (``torch.ops.onednn.qlinear_pointwise``).
* accuracy: the packed engine's scores with chosen matrices rounded to an 8-bit grid,
  against packed fp32 on ``--n`` eval comments (largest and 99th-percentile score change,
  AUC change; the tolerances of ``bench_inference.py`` are 0.02 and 0.005). The rounding
  is simulated exactly (values snapped to the int8 grid, products in fp32, which is what an
  int32-accumulating kernel computes up to fp32 rounding), so a scheme that fails here
  fails with any kernel. Schemes: per-token activations with per-output-channel weights,
  the same after SmoothQuant's channel scaling (alpha 0.5, maxima from ``--n-calibration``
  other comments), and llama.cpp's Q8_0 (blocks of 32 along the inner dimension, one scale
  per block, both operands).

    .venv/bin/python benchmarks/int8_accuracy.py --rates --n 200 --cache-dir reports/cache

Results of 2026-12-03 (AMD EPYC Zen 5): docs/variants.md, "8-bit products tried".
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ["PIPELINES_GEMM"] = "aten"  # plain weight tensors, so that they can be re-rounded
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

import bench_inference as B  # noqa: E402

SCHEMES = {
    "bf16 MLP (the bf16 path)": {"gate_up": "bf16", "down": "bf16"},
    "gate/up per-token": {"gate_up": "token", "down": "bf16"},
    "gate/up SmoothQuant": {"gate_up": "smooth", "down": "bf16"},
    "gate/up+down SmoothQuant": {"gate_up": "smooth", "down": "smooth"},
    "qkv SmoothQuant": {"qkv": "smooth", "gate_up": "bf16", "down": "bf16"},
    "o per-token": {"o": "token", "gate_up": "bf16", "down": "bf16"},
    "all SmoothQuant": {"qkv": "smooth", "o": "smooth", "gate_up": "smooth", "down": "smooth"},
    "gate/up+down Q8_0": {"gate_up": "q8_0", "down": "q8_0"},
    "all Q8_0": {"qkv": "q8_0", "o": "q8_0", "gate_up": "q8_0", "down": "q8_0"},
}


def rates(rows: int = 1024) -> None:
    import torch

    def rate(f, flops: float, reps: int = 10) -> float:
        f(), f()
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            for _ in range(reps):
                f()
            best = min(best, (time.perf_counter() - t0) / reps)
        return flops / best / 1e9

    print(f"{'shape (K x N)':16s} {'fp32':>6s} {'bf16':>6s} {'int_mm':>7s} {'qlinear u8':>10s}  GFLOP/s, {rows} rows")
    for k, n in [(576, 3072), (1536, 576), (576, 960)]:
        fl = 2 * rows * k * n
        x, w = torch.randn(rows, k), torch.randn(n, k)
        pack, lin = torch.ops.mkldnn._reorder_linear_weight, torch.ops.mkldnn._linear_pointwise
        wp, wbp = pack(w, rows), pack(w.bfloat16(), rows)
        xb = x.bfloat16()
        r32 = rate(lambda: lin(x, wp, None, "none", [], ""), fl)
        rbf = rate(lambda: lin(xb, wbp, None, "none", [], ""), fl)
        xi = torch.randint(-127, 127, (rows, k), dtype=torch.int8)
        wi = torch.randint(-127, 127, (k, n), dtype=torch.int8)
        ri = rate(lambda: torch._int_mm(xi, wi), fl)
        pw = torch.ops.onednn.qlinear_prepack(wi.T.contiguous(), [rows, k])
        xu = torch.randint(0, 255, (rows, k), dtype=torch.uint8)
        ws, wz = torch.rand(n) * 0.01, torch.zeros(n, dtype=torch.long)
        rq = rate(lambda: torch.ops.onednn.qlinear_pointwise(xu, 0.02, 128, pw, ws, wz, None, 1.0, 0,
                                                             torch.float32, "none", [], ""), fl)
        print(f"{k:>5d} x {n:<8d} {r32:6.0f} {rbf:6.0f} {ri:7.0f} {rq:10.0f}")


class _Weight:
    """A packed-engine weight with a name, for the simulated products."""

    def __init__(self, name: str, w):
        self.name, self.w, self.amax = name, w.float(), None
        self.dtype, self.shape = self.w.dtype, self.w.shape


def accuracy(args) -> None:
    import torch

    from pipelines.variants import _gemm, _llama
    from pipelines.variants.rag import RagScorer

    data = B._load_data(args.seed)
    ev = data["eval"]
    rng = np.random.default_rng(args.seed)
    rows = ev.iloc[rng.choice(len(ev), size=args.n + args.n_calibration, replace=False)].reset_index(drop=True)
    texts = list(rows["text"])
    gdir, docs, g, _ = B._rag_setup(texts, data["train"], cache_dir=args.cache_dir, kb_docs=2000, seed=args.seed,
                                    k=4)
    labels = rows["label"].to_numpy()[: args.n]
    common = dict(system_prompt=g.system_prompt, instruction=g.instruction, question=g.question,
                  doc_max_tokens=g.doc_max_tokens, query_max_tokens=g.query_max_tokens, batch_size=8,
                  num_threads=B.THREADS, precision="fp32")
    ref = RagScorer(gdir, **common).score(texts[: args.n], docs[: args.n])[0]
    auc_ref = B.auc(ref, labels)

    state = {"calibrating": True, "scheme": {}}

    def rows_q(t):  # per-row (per-token / per-output-channel) symmetric int8 grid
        s = t.abs().amax(1, keepdim=True).clamp_min(1e-8) / 127
        return torch.round(t / s).clamp(-127, 127) * s

    def blocks_q(t, b=32):  # Q8_0
        n, k = t.shape
        tb = t.reshape(n, k // b, b)
        s = tb.abs().amax(-1, keepdim=True).clamp_min(1e-12) / 127
        return (torch.round(tb / s).clamp(-127, 127) * s).reshape(n, k)

    def mm(x, w):
        x = x.float()
        if state["calibrating"]:
            a = x.abs().amax(0)
            w.amax = a if w.amax is None else torch.maximum(w.amax, a)
            return x @ w.w.T
        how = state["scheme"].get(w.name, "fp32")
        if how == "fp32":
            return x @ w.w.T
        if how == "bf16":
            return (x.bfloat16() @ w.w.bfloat16().T).float()
        if how == "q8_0":
            return blocks_q(x) @ blocks_q(w.w).T
        if how == "smooth":
            s = (w.amax.clamp_min(1e-5) ** 0.5 / w.w.abs().amax(0).clamp_min(1e-5) ** 0.5).clamp_min(1e-5)
            return rows_q(x / s) @ rows_q(w.w * s).T
        return rows_q(x) @ rows_q(w.w).T  # "token"

    def gated(x, w):
        gu = mm(x, w)
        half = gu.shape[1] // 2
        return torch.nn.functional.silu(gu[:, :half]) * gu[:, half:]

    scorer = RagScorer(gdir, **common)
    scorer.score(texts[:1], docs[:1])
    for lw in scorer._packed.layers:
        for name in ("qkv", "o", "down", "q", "kv"):
            if name in lw:
                lw[name] = _Weight("qkv" if name in ("q", "kv") else name, lw[name])
        lw["gate_up"] = _Weight("gate_up", lw["gate_up"].both)
    _llama.PackedLlama._mm = staticmethod(mm)
    _gemm.gated = gated
    scorer._packed_prefix = None
    scorer.score(texts[args.n:], docs[args.n:])  # calibration: channel maxima of every product's input
    state["calibrating"] = False
    print(f"\n{args.n} comments; tolerance: max change 0.02, AUC change 0.005 (AUC of packed fp32 {auc_ref:.4f})")
    print(f"{'8-bit matrices and scheme':28s} {'max':>7s} {'p99':>7s} {'mean':>7s} {'AUC chg':>8s}")
    for name in args.schemes or list(SCHEMES):
        state["scheme"] = SCHEMES[name]
        scorer._packed_prefix = None
        sc = scorer.score(texts[: args.n], docs[: args.n])[0]
        d = np.abs(sc - ref)
        print(f"{name:28s} {d.max():7.4f} {np.quantile(d, 0.99):7.4f} {d.mean():7.4f} "
              f"{abs(B.auc(sc, labels) - auc_ref):8.4f}", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rates", action="store_true", help="also measure the kernels' rates")
    ap.add_argument("--n", type=int, default=200, help="eval comments whose scores are compared")
    ap.add_argument("--n-calibration", type=int, default=64, help="other comments for SmoothQuant's maxima")
    ap.add_argument("--schemes", nargs="*", choices=list(SCHEMES), default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache-dir", type=Path, default=B.ROOT / "reports" / "cache")
    args = ap.parse_args(argv)
    from pipelines.variants._hf import offline

    offline()
    import torch

    torch.set_num_threads(args.threads)
    B.THREADS = args.threads
    if args.rates:
        rates()
    accuracy(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
