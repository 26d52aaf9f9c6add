"""The matrix-product kernel of the packed engines: oneDNN's linear where it is exact, else torch's ``linear``.

``torch.nn.functional.linear`` on float32 CPU tensors calls the BLAS that torch
was built with (MKL in the PyPI wheels). On AMD CPUs MKL takes a slower code
path: on a 2-vCPU AMD EPYC (Zen 5) it reached 138-177 GFLOP/s on the RAG
generator's shapes, while oneDNN's linear kernel (``torch.ops.mkldnn._linear_pointwise``,
the op torch's own compiler emits for CPU linear layers) reached 335-364 GFLOP/s
on the same products, and bf16 products about the same on both.

The oneDNN op is internal to torch, so it is only used after a probe at first
use shows that it exists and computes what ``linear`` computes: float32 inputs
must not be rounded (an identity product returns its input bit for bit;
oneDNN may round float32 to bf16 on CPUs where its "fpmath mode" allows it),
random products (with a plain or a packed weight, with a fused GELU, with the
fused SiLU and product of :func:`gated`) agree with a float64 reference as closely as float32
allows, the bias is added, and bfloat16 products agree with ``linear``'s. Where any of
that fails, or ``PIPELINES_GEMM=aten`` is set, every product goes to ``linear``.
:func:`kernel` names the kernel in use, for the path record of a run.
"""

from __future__ import annotations

import functools
import os
from typing import Any

__all__ = ["linear", "gated", "Gated", "pack", "kernel", "KERNELS", "ENV", "ROWS_HINT"]

KERNELS = ("onednn", "aten")
#: Environment variable that forces a kernel (``aten`` or ``onednn``; unset or ``auto``: probe).
ENV = "PIPELINES_GEMM"
#: Input rows a packed weight's layout is tuned for (a RAG batch: 8 prompts of ~160 tokens).
ROWS_HINT = 1024


def _onednn_linear(x: Any, weight: Any, bias: Any = None, post: str = "none") -> Any:
    import torch

    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, post, [], "none" if post == "gelu" else "")


def _aten_linear(x: Any, weight: Any, bias: Any = None) -> Any:
    import torch

    return torch.nn.functional.linear(x, weight, bias)


def _probe_onednn(op: Any = None, reorder: Any = None) -> tuple[bool, str]:
    """Whether the oneDNN linear op exists here and computes ``linear`` without rounding float32 inputs.

    ``op`` and ``reorder`` stand in for ``torch.ops.mkldnn._linear_pointwise`` and
    ``torch.ops.mkldnn._reorder_linear_weight`` (tests pass impostors).
    """
    import torch

    try:
        if op is None:
            if not torch.backends.mkldnn.is_available():
                return False, "torch was built without oneDNN"
            op = torch.ops.mkldnn._linear_pointwise
            reorder = torch.ops.mkldnn._reorder_linear_weight
    except (AttributeError, RuntimeError) as exc:
        return False, f"no oneDNN linear op ({exc.__class__.__name__})"
    try:
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(37, 96, generator=gen) * (1 + 2.0 ** -20)  # values bf16 cannot hold
        eye = torch.eye(96)[:40]
        if not torch.equal(op(x, eye, None, "none", [], ""), x[:, :40]):
            return False, "oneDNN rounds float32 inputs on this CPU"
        w = torch.randn(50, 96, generator=gen)
        b = torch.randn(50, generator=gen)
        ref = (x.double() @ w.double().T + b.double())
        got = op(x, w, b, "none", [], "").double()
        tol = 1e-5 * float(ref.abs().max()) + 1e-6
        if got.shape != ref.shape or float((got - ref).abs().max()) > tol:
            return False, "oneDNN float32 products differ from a float64 reference"
        packed = reorder(w, 16)
        if float((op(x, packed, b, "none", [], "").double() - ref).abs().max()) > tol:
            return False, "oneDNN products with a packed weight differ from a float64 reference"
        w2 = torch.randn(50, 96, generator=gen)
        ref_g = torch.nn.functional.silu(x.double() @ w.double().T) * (x.double() @ w2.double().T)
        got_g = op.binary(x, op(x, w, None, "swish", [], ""), w2, None, "mul").double()
        if float((got_g - ref_g).abs().max()) > 1e-5 * float(ref_g.abs().max()) + 1e-6:
            return False, "oneDNN's fused SiLU and product differ from a float64 reference"
        ref_gelu = torch.nn.functional.gelu(ref)
        got_gelu = op(x, w, b, "gelu", [], "none").double()
        if float((got_gelu - ref_gelu).abs().max()) > tol:
            return False, "oneDNN's fused GELU differs from a float64 reference"
        xb, wb = x.bfloat16(), w.bfloat16()
        got_b = op(xb, wb, None, "none", [], "")
        ref_b = torch.nn.functional.linear(xb, wb)
        if got_b.dtype != torch.bfloat16 or float((got_b.float() - ref_b.float()).abs().max()) > 0.02 * float(
                ref_b.float().abs().max()):
            return False, "oneDNN bfloat16 products differ from torch's"
    except (RuntimeError, TypeError, ValueError) as exc:
        return False, f"oneDNN linear op failed: {exc}"
    return True, "probe passed"


@functools.lru_cache(maxsize=1)
def _choice() -> tuple[str, str]:
    forced = os.environ.get(ENV, "auto").strip().lower()
    if forced == "aten":
        return "aten", f"{ENV}=aten"
    ok, why = _probe_onednn()
    if ok:
        return "onednn", why if forced != "onednn" else f"{ENV}=onednn; {why}"
    return "aten", why


def kernel() -> dict[str, str]:
    """``{"kernel": "onednn"|"aten", "why": ...}``: the kernel :func:`linear` uses in this process."""
    name, why = _choice()
    return {"kernel": name, "why": why}


def pack(weight: Any, *, rows: int = ROWS_HINT) -> Any:
    """``weight`` [out, in] laid out once for the kernel in use (oneDNN's blocked layout; unchanged for aten).

    A packed weight works for any number of input rows (``rows`` only tunes
    the layout) but only through :func:`linear`, :func:`gated`; its ``shape``
    and ``dtype`` are the original's. Reordering a weight on every call
    cost 4% (fp32) to 15% (bf16) of the RAG scorer's time on Zen 5.
    """
    if _choice()[0] != "onednn":
        return weight
    import torch

    return torch.ops.mkldnn._reorder_linear_weight(weight.contiguous(), rows)


def linear(x: Any, weight: Any, bias: Any = None, *, gelu: bool = False) -> Any:
    """``x @ weight.T (+ bias)`` in the dtype of ``x`` and ``weight`` (which must match), on the chosen kernel.

    ``gelu``: the exact (erf) GELU of that, fused into the product on oneDNN (computed
    before the result is rounded to a bf16 output), applied after it on aten.
    """
    if _choice()[0] == "onednn":
        if x.dim() != 2:
            out = linear(x.reshape(-1, x.shape[-1]), weight, bias, gelu=gelu)
            return out.reshape(*x.shape[:-1], weight.shape[0])
        return _onednn_linear(x.contiguous(), weight if weight.is_mkldnn else weight.contiguous(), bias,
                              "gelu" if gelu else "none")
    out = _aten_linear(x, weight, bias)
    if gelu:
        import torch

        return torch.nn.functional.gelu(out)
    return out


class Gated:
    """The weights of a gated (SwiGLU) product ``silu(x @ gate.T) * (x @ up.T)``, laid out for the kernel in use."""

    def __init__(self, gate: Any, up: Any, *, rows: int = ROWS_HINT):
        import torch

        self.width = int(gate.shape[0])
        self.dtype = gate.dtype
        if _choice()[0] == "onednn":
            self.gate, self.up, self.both = pack(gate, rows=rows), pack(up, rows=rows), None
        else:
            self.gate = self.up = None
            self.both = torch.cat([gate, up], 0).contiguous()


def gated(x: Any, w: Gated) -> Any:
    """``silu(x @ gate.T) * (x @ up.T)`` for ``x`` in ``w.dtype``.

    oneDNN: two products, SiLU and the multiplication fused into them (each
    result rounded once to ``w.dtype``). aten: one product of the stacked
    weights, SiLU and the multiplication in float32 (result float32).
    """
    import torch

    if w.both is None:
        x = x.contiguous()
        return torch.ops.mkldnn._linear_pointwise.binary(x, _onednn_linear(x, w.gate, None, "swish"), w.up, None,
                                                        "mul")
    gu = _aten_linear(x, w.both).float()
    return torch.nn.functional.silu(gu[:, : w.width]) * gu[:, w.width :]
