"""The numeric path of each variant: CPU flags -> precision/runtime, the packed engines against transformers."""

import warnings

import numpy as np
import pytest

from pipelines.variants import _gemm, _precision
from pipelines.variants._precision import (CpuInfo, PathFallbackWarning, _parse_cpuinfo, choose_path, native_bf16,
                                           resolve_precision)

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 143
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse avx avx2 fma avx512f avx512bw avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8

processor\t: 1
vendor_id\t: GenuineIntel
model name\t: a second block that must not be read
"""

ZEN3 = CpuInfo(model="AMD EPYC 7B13", vendor="AuthenticAMD", family=25, model_number=1,
               flags=frozenset({"avx", "avx2", "fma"}), cores=2)
ZEN4 = CpuInfo(model="AMD EPYC 9B14", vendor="AuthenticAMD", family=25, model_number=17,
               flags=frozenset({"avx2", "avx512f", "avx512_bf16"}), cores=2)
SPR = _parse_cpuinfo(CPUINFO, cores=2)

PROMPT = dict(system_prompt="you are a careful content moderator", instruction="here are labelled example comments",
              question="does this comment express a negative stereotype about a group ? answer Yes or No")


@pytest.fixture()
def on_cpu(monkeypatch):
    """Pretend to run on ``info``, with oneDNN agreeing that the CPU's bf16 flags are usable."""

    def use(info: CpuInfo, *, onednn: bool | None = True):
        monkeypatch.setattr(_precision, "cpu_info", lambda: info)
        monkeypatch.setattr(_precision, "_onednn_bf16", lambda: onednn)

    return use


# -- CPU flags -> precision ------------------------------------------------------------


def test_cpuinfo_first_block_is_parsed():
    assert SPR.model == "Intel(R) Xeon(R) Platinum 8480+" and SPR.vendor == "GenuineIntel"
    assert (SPR.family, SPR.model_number) == (6, 143)
    assert {"amx_bf16", "avx512_bf16", "avx2"} <= SPR.flags
    assert SPR.summary()["flags"] == ["avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16",
                                      "amx_tile", "amx_bf16", "amx_int8"]


@pytest.mark.parametrize("info, onednn, native, isa", [
    (SPR, True, True, "AMX-BF16"),
    (ZEN4, True, True, "AVX512-BF16"),
    (ZEN3, True, False, "none"),
    (ZEN4, False, False, "AVX512-BF16 (but this torch build's oneDNN does not use it)"),
    (ZEN4, None, False, "AVX512-BF16 (torch cannot tell whether oneDNN uses it)"),
])
def test_native_bf16_needs_the_flag_and_onednn(on_cpu, info, onednn, native, isa):
    on_cpu(info, onednn=onednn)
    assert native_bf16(info) == (native, isa)


@pytest.mark.parametrize("info, requested, expected", [
    (ZEN4, "auto", "bf16"), (SPR, "auto", "bf16"), (ZEN3, "auto", "fp32"),
    (ZEN4, "bf16", "bf16"), (ZEN4, "fp32", "fp32"), (ZEN3, "fp32", "fp32"),
])
def test_resolve_precision_without_warning(on_cpu, info, requested, expected):
    on_cpu(info)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        precision, reason = resolve_precision(requested, where="variant `x`")
    assert precision == expected and reason


def test_bf16_without_native_support_falls_back_to_fp32_with_a_warning(on_cpu):
    on_cpu(ZEN3)
    with pytest.warns(PathFallbackWarning, match=r"variant `x`: precision 'bf16' was requested, but this CPU "
                                                 r"\(AMD EPYC 7B13\) has no native bf16"):
        precision, reason = resolve_precision("bf16", where="variant `x`")
    assert precision == "fp32" and "fell back to fp32" in reason


def test_unknown_precision_is_rejected():
    with pytest.raises(ValueError, match=r"`precision` must be one of auto, fp32, bf16. Got 'int4' instead."):
        resolve_precision("int4", where="x")


def test_choose_path(on_cpu):
    on_cpu(ZEN4)
    path = choose_path(where="m", precision="auto", engine="auto", fits=(True, ""))
    assert (path["precision"], path["runtime"]) == ("bf16", "torch-packed")
    assert path["cpu"]["model"] == "AMD EPYC 9B14" and "avx512_bf16" in path["cpu"]["flags"]
    assert path["gemm"] == _gemm.kernel()["kernel"] and path["gemm"] in _gemm.KERNELS  # the packed engine's kernel
    with pytest.warns(PathFallbackWarning, match="bf16 runs on the packed engine only"):
        path = choose_path(where="m", precision="bf16", engine="hf", fits=(True, ""))
    assert (path["precision"], path["runtime"]) == ("fp32", "transformers") and "gemm" not in path
    with pytest.warns(PathFallbackWarning, match=r"engine 'packed' was requested, but it does not fit this model "
                                                 r"\(model type 'gpt2'"):
        path = choose_path(where="m", precision="fp32", engine="packed", fits=(False, "model type 'gpt2'"))
    assert path["runtime"] == "transformers" and "gpt2" in path["reason"]
    with warnings.catch_warnings():  # auto engine on an unsupported model: no warning, the reason is recorded
        warnings.simplefilter("error")
        path = choose_path(where="m", precision="auto", engine="auto", fits=(False, "model type 'gpt2'"))
    assert (path["precision"], path["runtime"]) == ("fp32", "transformers")


# -- the packed engines against transformers ---------------------------------------------------


def _random_rows(vocab: int, lengths, seed: int):
    rng = np.random.default_rng(seed)
    return [rng.integers(5, vocab, size=n).tolist() for n in lengths]


def test_packed_llama_equals_transformers_and_continues_from_any_cut(tiny_lm_dir):
    import torch
    from transformers import AutoModelForCausalLM

    from pipelines.variants._llama import PackedLlama

    model = AutoModelForCausalLM.from_pretrained(tiny_lm_dir).eval()
    packed = PackedLlama(model)
    rows = _random_rows(model.config.vocab_size, [1, 7, 3, 12], seed=0)
    want = [5, 9, 11]
    with torch.inference_mode():
        logits, caches = packed.forward(rows, keep=[None, 4, 3, 12], token_ids=want)
        for row, got in zip(rows, logits):
            ref = model(input_ids=torch.tensor([row])).logits[0, -1, want]
            np.testing.assert_allclose(got.numpy(), ref.numpy(), rtol=1e-5, atol=1e-5)
        assert caches[0] is None and [c.length for c in caches[1:]] == [4, 3, 12]
        # a row continued from its own cut equals the whole row; rows may share one cache
        tails = [rows[1][4:], rows[1][4:6], [7, 8]]
        cont, _ = packed.forward(tails, past=[caches[1], caches[1], caches[3]], token_ids=want)
        for tail, past_row, got in zip(tails, [rows[1][:4], rows[1][:4], rows[3]], cont):
            ref = model(input_ids=torch.tensor([past_row + tail])).logits[0, -1, want]
            np.testing.assert_allclose(got.numpy(), ref.numpy(), rtol=1e-5, atol=1e-5)


def test_packed_llama_bf16_is_close_to_fp32(tiny_lm_dir):
    import torch
    from transformers import AutoModelForCausalLM

    from pipelines.variants._llama import PackedLlama

    model = AutoModelForCausalLM.from_pretrained(tiny_lm_dir).eval()
    rows = _random_rows(model.config.vocab_size, [4, 9, 2], seed=1)
    with torch.inference_mode():
        ref, _ = PackedLlama(model).forward(rows, token_ids=[3, 4])
        got, _ = PackedLlama(model, matmul_dtype=torch.bfloat16).forward(rows, token_ids=[3, 4])
    assert got.dtype == torch.float32
    diff = (got - ref).abs().max().item()
    assert 0 < diff < 0.05 * ref.abs().max().item()  # rounded, not broken


def test_packed_llama_bf16_keeps_the_attention_block_in_fp32(tiny_lm_dir):
    """Only the MLP's products are bf16: rounding queries and keys moved RAG scores past the 0.02 tolerance."""
    import torch
    from transformers import AutoModelForCausalLM

    from pipelines.variants._llama import FP32_MATRICES, PackedLlama

    def dense(t):  # weights laid out for oneDNN (pipelines.variants._gemm.pack) read back in their own layout
        return t.to_dense() if t.is_mkldnn else t

    model = AutoModelForCausalLM.from_pretrained(tiny_lm_dir).eval()
    packed = PackedLlama(model, matmul_dtype=torch.bfloat16)
    assert set(FP32_MATRICES) == {"qkv", "o"}
    for layer in packed.layers:
        assert layer["qkv"].dtype == layer["o"].dtype == torch.float32
        assert layer["gate_up"].dtype == layer["down"].dtype == torch.bfloat16
    # and the fp32 parts are the model's own weights, unrounded
    first = model.model.layers[0]
    assert torch.equal(dense(packed.layers[0]["o"]), first.self_attn.o_proj.weight)
    assert torch.equal(dense(packed.layers[0]["down"]).float(),
                       first.mlp.down_proj.weight.to(torch.bfloat16).float())


def test_packed_llama_refuses_other_architectures(tiny_lm_dir):
    from transformers import AutoConfig

    from pipelines.variants._llama import supports

    cfg = AutoConfig.from_pretrained(tiny_lm_dir)
    assert supports(cfg) == (True, "")
    cfg.attention_bias = True
    assert supports(cfg) == (False, "unsupported config: attention_bias")


def test_packed_bert_equals_transformers(tiny_classifier_dir, tiny_bert_dir):
    import torch
    from transformers import AutoModel, AutoModelForSequenceClassification

    from pipelines.variants._bert import PackedBert

    cls = AutoModelForSequenceClassification.from_pretrained(tiny_classifier_dir).eval()
    enc = AutoModel.from_pretrained(tiny_bert_dir).eval()
    rows = _random_rows(cls.config.vocab_size, [5, 5, 3, 9, 9, 9, 1], seed=2)  # runs of equal length
    with torch.inference_mode():
        logits = PackedBert(cls).logits(rows)
        pooled = PackedBert(enc).mean_pooled(rows)
        for i, row in enumerate(rows):
            ids = torch.tensor([row])
            np.testing.assert_allclose(logits[i].numpy(), cls(input_ids=ids).logits[0].numpy(), atol=1e-5)
            np.testing.assert_allclose(pooled[i].numpy(), enc(input_ids=ids).last_hidden_state[0].mean(0).numpy(),
                                       atol=1e-5)


# -- the predictors ----------------------------------------------------------------------------------


def test_rag_engines_agree_on_scores_and_followers(tiny_lm_dir, texts):
    from pipelines.variants.rag import RagScorer

    docs = [[(texts[(i + 2) % len(texts)], i % 2), (texts[(i + 5) % len(texts)], None)] for i in range(len(texts))]
    followers = [[texts[(i + 1) % len(texts)]] * (i % 3) for i in range(len(texts))]
    res = {}
    for engine in ("hf", "packed"):
        s = RagScorer(tiny_lm_dir, **PROMPT, batch_size=3, engine=engine)
        res[engine] = s.answer_logits_with_followers(texts, docs, followers=followers)
        assert s.path["runtime"] == {"hf": "transformers", "packed": "torch-packed"}[engine]
    np.testing.assert_allclose(res["packed"][0], res["hf"][0], atol=1e-4)
    np.testing.assert_array_equal(res["packed"][1], res["hf"][1])
    for a, b in zip(res["packed"][2], res["hf"][2]):
        np.testing.assert_allclose(a, b, atol=1e-4)


def test_rag_path_is_in_identity_and_bf16_falls_back_without_native_support(tiny_lm_dir, texts, on_cpu):
    from pipelines.variants.rag import RagScorer

    on_cpu(ZEN3)
    s = RagScorer(tiny_lm_dir, **PROMPT, precision="bf16")
    with pytest.warns(PathFallbackWarning, match="no native bf16"):
        ident = s.identity()
    assert ident["path"]["precision"] == "fp32" and ident["path"]["runtime"] == "torch-packed"
    assert ident["path"]["cpu"]["model"] == "AMD EPYC 7B13" and ident["kind"] == "causal_lm"
    fp32 = RagScorer(tiny_lm_dir, **PROMPT).score(texts, [[]] * len(texts))[0]
    np.testing.assert_allclose(s.score(texts, [[]] * len(texts))[0], fp32, atol=1e-6)


def test_rag_bf16_scores_close_to_fp32(tiny_lm_dir, texts, on_cpu):
    from pipelines.variants.rag import RagScorer

    on_cpu(ZEN4)  # bf16 is chosen (emulated if this CPU lacks it: slow, but the same numbers)
    docs = [[("women are lazy", 1), ("all people are good", 0)]] * len(texts)
    bf16 = RagScorer(tiny_lm_dir, **PROMPT, precision="auto")
    assert bf16.path["precision"] == "bf16"
    got = bf16.score(texts, docs)[0]
    ref = RagScorer(tiny_lm_dir, **PROMPT).score(texts, docs)[0]
    assert np.abs(got - ref).max() < 0.05 and not np.array_equal(got, ref)


def test_int8_cannot_be_combined_with_bf16(tiny_lm_dir):
    from pipelines.variants.rag import RagScorer

    with pytest.raises(ValueError, match="int8"):
        RagScorer(tiny_lm_dir, **PROMPT, int8=True, precision="bf16")
    assert RagScorer(tiny_lm_dir, **PROMPT, int8=True).path["precision"] == "int8-dynamic"


def test_embedder_engines_agree(tiny_bert_dir, texts):
    from pipelines.variants.retrieval import Embedder

    packed = Embedder(tiny_bert_dir, batch_size=4)
    hf = Embedder(tiny_bert_dir, batch_size=4, engine="hf")
    np.testing.assert_allclose(packed.embed(texts)[0], hf.embed(texts)[0], atol=1e-6)
    assert (packed.path["runtime"], hf.path["runtime"]) == ("torch-packed", "transformers")
    assert packed.path["precision"] == "fp32"


@pytest.mark.parametrize("precision", ["fp32", "auto", "bf16"])
def test_finetuned_paths(tiny_classifier_dir, texts, precision, on_cpu):
    from pipelines.variants.finetuned import FinetunedPredictor

    on_cpu(ZEN4)
    p = FinetunedPredictor(tiny_classifier_dir, batch_size=4, precision=precision)
    ref = FinetunedPredictor(tiny_classifier_dir, batch_size=4, engine="hf")
    got = p.predict(texts).scores
    want = ref.predict(texts).scores
    expected = "fp32" if precision == "fp32" else "bf16"
    assert p.identity()["path"]["precision"] == expected and p.path["runtime"] == "torch-packed"
    assert ref.path == {**ref.path, "precision": "fp32", "runtime": "transformers"}
    np.testing.assert_allclose(got, want, atol=1e-6 if expected == "fp32" else 0.02)


@pytest.mark.parametrize("preset, expected", [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_openmp_threads_sleep_unless_the_user_chose(preset, expected):
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if preset:
        env["OMP_WAIT_POLICY"] = preset
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    code = ("import os, sys; import pipelines.variants.rag; assert 'torch' not in sys.modules; "
            "import torch; print(os.environ['OMP_WAIT_POLICY'])")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == expected


def test_packed_llama_greedy_equals_step_by_step_argmax_and_stops_at_eos(tiny_lm_dir):
    """Decoding from the key/value buffers equals a full forward pass per step, for rows of different lengths."""
    import torch
    from transformers import AutoModelForCausalLM

    from pipelines.variants._llama import PackedLlama

    model = AutoModelForCausalLM.from_pretrained(tiny_lm_dir).eval()
    prompts = _random_rows(model.config.vocab_size, [3, 9, 5, 1], seed=4)

    def reference(prompt, steps, eos):
        ids, new = list(prompt), []
        with torch.inference_mode():
            for _ in range(steps):
                nxt = int(torch.argmax(model(input_ids=torch.tensor([ids + new])).logits[0, -1]))
                if nxt == eos:
                    break
                new.append(nxt)
        return new

    packed = PackedLlama(model)
    with torch.inference_mode():
        free = packed.greedy(prompts, max_new_tokens=6, eos=-1)
        assert free == [reference(p, 6, -1) for p in prompts] and all(len(r) == 6 for r in free)
        eos = free[1][2]  # a token row 1 writes third: that row (and any other writing it) stops there
        stopped = packed.greedy(prompts, max_new_tokens=6, eos=eos)
    assert stopped == [reference(p, 6, eos) for p in prompts]
    assert stopped[1] == free[1][:2]
    assert packed.greedy(prompts, max_new_tokens=0, eos=eos) == [[], [], [], []]
