"""The matrix-product kernel of the packed engines (pipelines.variants._gemm): oneDNN where a probe shows it exact.

Every kernel is compared with a float64 product computed here; the probe is shown to refuse impostors
that round float32 inputs to bf16 or drop the bias; the packed engines give the transformers model's
logits on either kernel.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from pipelines.variants import _gemm  # noqa: E402


@pytest.fixture(params=["onednn", "aten"])
def kernel(request, monkeypatch):
    """Run the test on each kernel (oneDNN only where this torch has it and its probe passes)."""
    if request.param == "onednn" and not _gemm._probe_onednn()[0]:
        pytest.skip("oneDNN's linear kernel is not usable here: " + _gemm._probe_onednn()[1])
    monkeypatch.setattr(_gemm, "_choice", lambda: (request.param, "test"))
    return request.param


def _data(n=29, k=70, m=45, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(n, k, generator=gen), torch.randn(m, k, generator=gen), torch.randn(m, generator=gen),
            torch.randn(m, k, generator=gen))


def test_linear_is_a_float32_product_on_each_kernel(kernel):
    x, w, b, _ = _data()
    ref = x.double() @ w.double().T + b.double()
    for weight in (w, _gemm.pack(w)):
        got = _gemm.linear(x, weight, b)
        assert got.dtype == torch.float32 and got.shape == (29, 45)
        assert float((got.double() - ref).abs().max()) < 1e-5 * float(ref.abs().max())
    # 3-d inputs and non-contiguous views, as the engines pass them
    x3 = x.reshape(1, 29, 70)
    assert torch.allclose(_gemm.linear(x3, w).reshape(29, 45).double(), ref - b.double(), atol=1e-4)
    xt = torch.randn(70, 29).T
    assert torch.allclose(_gemm.linear(xt, w).double(), xt.double() @ w.double().T, atol=1e-4)
    assert (_gemm.pack(w).is_mkldnn if kernel == "onednn" else _gemm.pack(w) is w)


def test_gelu_is_the_exact_gelu_of_the_product(kernel):
    x, w, b, _ = _data()
    pre = x.double() @ w.double().T + b.double()
    ref = torch.nn.functional.gelu(pre)
    got = _gemm.linear(x, _gemm.pack(w), b, gelu=True).double()
    assert float((got - ref).abs().max()) < 1e-5 * float(ref.abs().max())
    # the tanh approximation is more than that off somewhere in this range: the test tells the two apart
    assert float((torch.nn.functional.gelu(pre, approximate="tanh") - ref).abs().max()) > 1e-5 * float(ref.abs().max())


def test_bf16_products_round_like_torchs(kernel):
    x, w, _, _ = _data()
    got = _gemm.linear(x.bfloat16(), _gemm.pack(w.bfloat16()))
    assert got.dtype == torch.bfloat16
    want = torch.nn.functional.linear(x.bfloat16(), w.bfloat16())
    assert float((got.float() - want.float()).abs().max()) <= 0.01 * float(want.float().abs().max())


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_gated_is_silu_of_gate_times_up(kernel, dtype):
    x, gate, _, up = _data()
    dt = getattr(torch, dtype)
    w = _gemm.Gated(gate.to(dt), up.to(dt))
    got = _gemm.gated(x.to(dt), w).double()
    xr, gr, ur = (t.to(dt).double() for t in (x, gate, up))
    ref = torch.nn.functional.silu(xr @ gr.T) * (xr @ ur.T)
    tol = 1e-5 if dtype == "float32" else 2 ** -7  # bf16: the result is rounded to 8 significant bits
    assert float((got - ref).abs().max()) <= tol * float(ref.abs().max())


class _Impostor:
    """Stands in for torch.ops.mkldnn._linear_pointwise; ``flaw`` says what it gets wrong."""

    def __init__(self, flaw: str):
        self.flaw = flaw

    def __call__(self, x, w, b, attr, scalars, algo):
        if self.flaw == "rounds_inputs" and x.dtype == torch.float32:
            x, w = x.bfloat16().float(), w.bfloat16().float()
        y = torch.nn.functional.linear(x, w, None if self.flaw == "drops_bias" else b)
        if attr == "gelu":
            return torch.nn.functional.gelu(y, approximate="tanh" if self.flaw == "tanh_gelu" else "none")
        return torch.nn.functional.silu(y) if attr == "swish" else y

    def binary(self, x, other, w, b, attr):
        y = torch.nn.functional.linear(x, w, b)
        return y + other if self.flaw == "adds" else y * other


@pytest.mark.parametrize("flaw, message", [("rounds_inputs", "rounds float32 inputs"),
                                           ("drops_bias", "differ from a float64 reference"),
                                           ("adds", "fused SiLU and product differ"),
                                           ("tanh_gelu", "fused GELU differs")])
def test_the_probe_refuses_a_kernel_that_computes_something_else(flaw, message):
    ok, why = _gemm._probe_onednn(_Impostor(flaw), lambda w, rows: w)
    assert not ok and message in why
    assert _gemm._probe_onednn(_Impostor("none"), lambda w, rows: w) == (True, "probe passed")


def test_the_environment_can_force_aten(monkeypatch):
    _gemm._choice.cache_clear()
    try:
        monkeypatch.setenv(_gemm.ENV, "aten")
        assert _gemm.kernel() == {"kernel": "aten", "why": f"{_gemm.ENV}=aten"}
        x, w, _, _ = _data()
        assert _gemm.pack(w) is w
    finally:
        monkeypatch.delenv(_gemm.ENV)
        _gemm._choice.cache_clear()


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_packed_llama_gives_the_models_logits_on_each_kernel(kernel, tiny_lm_dir, dtype):
    from transformers import AutoModelForCausalLM

    from pipelines.variants._llama import PackedLlama

    model = AutoModelForCausalLM.from_pretrained(tiny_lm_dir, torch_dtype=torch.float32).eval()
    packed = PackedLlama(model, matmul_dtype=getattr(torch, dtype))
    rows = [[5, 9, 3, 7, 11, 2], [4, 4, 8], [12, 6, 1, 9, 13, 10, 3, 5, 7]]
    got, _ = packed.forward(rows, token_ids=None)
    with torch.inference_mode():
        want = torch.stack([model(input_ids=torch.tensor([r])).logits[0, -1] for r in rows])
    err = float((got - want).abs().max()) / float(want.abs().max())
    assert err < (1e-5 if dtype == "float32" else 0.05)
    if dtype == "bfloat16":
        assert err > 1e-6  # rounded, not silently fp32
