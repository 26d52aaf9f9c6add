import numpy as np
import pandas as pd
import pytest

from pipelines.errors import DataError, ModelError
from pipelines.variants._base import Predictor
from pipelines.variants.rag import RagPredictor, RagScorer
from pipelines.variants.retrieval import Embedder, KnowledgeBase, build_kb_index, load_documents, top_k

PROMPT = dict(system_prompt="you are a careful content moderator",
              instruction="here are labelled example comments",
              question="does this comment express a negative stereotype about a group ? answer Yes or No")


def _scorer(lm_dir, **kw):
    return RagScorer(lm_dir, **{**PROMPT, **kw})


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("k", [1, 3, 7])
def test_top_k_equals_brute_force_cosine(seed, k):
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(6, 16))
    d = rng.normal(size=(7 if k == 7 else 40, 16))
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    dn = d / np.linalg.norm(d, axis=1, keepdims=True)
    idx, sims = top_k(qn.astype(np.float32), dn.astype(np.float32), k)
    cos = (q @ d.T) / np.outer(np.linalg.norm(q, axis=1), np.linalg.norm(d, axis=1))
    ref = np.argsort(-cos, axis=1, kind="stable")[:, :k]
    np.testing.assert_array_equal(idx, ref)
    np.testing.assert_allclose(sims, np.take_along_axis(cos, ref, axis=1), atol=1e-5)
    assert np.all(np.diff(sims, axis=1) <= 1e-7)


def test_top_k_ties_go_to_lower_index():
    docs = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 0.0]], dtype=np.float32)
    idx, _ = top_k(np.array([[1.0, 0.0]], dtype=np.float32), docs, 2)
    assert idx.tolist() == [[0, 2]]


def test_embeddings_are_mean_pooled_and_normalised(tiny_bert_dir, texts):
    import torch
    from transformers import AutoModel, AutoTokenizer

    emb, _ = Embedder(tiny_bert_dir, batch_size=3).embed(texts)
    model = AutoModel.from_pretrained(tiny_bert_dir).eval()
    tok = AutoTokenizer.from_pretrained(tiny_bert_dir)
    for text, row in zip(texts, emb):
        with torch.no_grad():
            h = model(**tok(text, return_tensors="pt")).last_hidden_state[0].numpy()
        ref = h.mean(0) / np.linalg.norm(h.mean(0))
        np.testing.assert_allclose(row, ref, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("prefix_cache", [True, False])
def test_score_equals_manual_softmax_of_answer_logits(tiny_lm_dir, texts, prefix_cache):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    scorer = _scorer(tiny_lm_dir, prefix_cache=prefix_cache, batch_size=4)
    docs = [[("women are lazy", 1), ("all people are good", 0)]] * len(texts)
    scores, _ = scorer.score(texts, docs)
    model = AutoModelForCausalLM.from_pretrained(tiny_lm_dir).eval()
    tok = AutoTokenizer.from_pretrained(tiny_lm_dir)
    yes, no = tok("Yes", add_special_tokens=False)["input_ids"][0], tok("No", add_special_tokens=False)["input_ids"][0]
    for text, d, score in zip(texts, docs, scores):
        ids = scorer.prompt_ids(text, d)
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids])).logits[0, -1].double().numpy()
        p = np.exp(logits[[yes, no]]) / np.exp(logits[[yes, no]]).sum()
        assert score == pytest.approx(p[0], abs=1e-5)
    assert np.all((scores > 0) & (scores < 1)) and scores.std() > 1e-4


def test_few_shot_turns_prompt(tiny_lm_dir):
    text = _scorer(tiny_lm_dir).prompt("women are lazy", [("black people are smart", 1), ("all people", None),
                                                          ("a b", 0)])
    assert text == (
        "<|im_start|>system\nyou are a careful content moderator " + PROMPT["question"] + "<|im_end|>\n"
        "<|im_start|>user\nComment: black people are smart<|im_end|>\n<|im_start|>assistant\nYes<|im_end|>\n"
        "<|im_start|>user\nComment: a b<|im_end|>\n<|im_start|>assistant\nNo<|im_end|>\n"
        "<|im_start|>user\nRelated comment: all people\n\nComment: women are lazy<|im_end|>\n"
        "<|im_start|>assistant\n")


def test_single_turn_prompt(tiny_lm_dir):
    text = _scorer(tiny_lm_dir, prompt_style="single_turn").prompt(
        "women are lazy", [("black people are smart", 1), ("all people", None), ("a b", 0)])
    assert text.startswith("<|im_start|>system\nyou are a careful content moderator<|im_end|>")
    assert "Example 1: black people are smart\nLabel: Yes\nExample 2: all people\nExample 3: a b\nLabel: No" in text
    assert text.index("Comment: women are lazy") > text.index("Example 3")
    assert text.endswith("<|im_start|>assistant\n")


@pytest.mark.parametrize("style", ["few_shot_turns", "single_turn"])
def test_prefix_cache_equals_full_forward_for_each_style(tiny_lm_dir, texts, style):
    docs = [[(texts[(i + 3) % len(texts)], i % 2), (texts[(i + 1) % len(texts)], 1)] for i in range(len(texts))]
    cached = _scorer(tiny_lm_dir, prefix_cache=True, batch_size=4, prompt_style=style).score(texts, docs)[0]
    plain = _scorer(tiny_lm_dir, prefix_cache=False, batch_size=3, prompt_style=style).score(texts, docs)[0]
    np.testing.assert_allclose(cached, plain, atol=1e-5)


def test_prefix_cache_equals_full_forward_and_batching_is_exact(tiny_lm_dir, texts):
    docs = [[(texts[(i + 1) % len(texts)], i % 2)] for i in range(len(texts))]
    cached = _scorer(tiny_lm_dir, prefix_cache=True, batch_size=4).score(texts, docs)[0]
    plain = _scorer(tiny_lm_dir, prefix_cache=False, batch_size=4).score(texts, docs)[0]
    single = np.array([_scorer(tiny_lm_dir, batch_size=1).score([t], [d])[0][0] for t, d in zip(texts, docs)])
    np.testing.assert_allclose(cached, plain, atol=1e-5)
    np.testing.assert_allclose(cached, single, atol=1e-5)


def test_query_and_doc_truncation(tiny_lm_dir, texts):
    scorer = _scorer(tiny_lm_dir, query_max_tokens=5, doc_max_tokens=2)
    _, cut = scorer.score(texts, [[("women are lazy and bad", 1)]] * len(texts))
    np.testing.assert_array_equal(cut, np.array([len(t.split()) > 5 for t in texts]))
    assert "Comment: women are ...<|im_end|>" in scorer.prompt("a b", [("women are lazy and bad", 1)])


@pytest.fixture()
def kb_table(texts):
    return pd.DataFrame({"doc_id": [f"d{i}" for i in range(len(texts))], "text": texts,
                         "doc_label": pd.array([i % 2 for i in range(len(texts))], dtype="Int64"),
                         "doc_group": ["g1", "g2"] * (len(texts) // 2)})


@pytest.fixture()
def rag(tiny_bert_dir, tiny_lm_dir, kb_table, tmp_path):
    emb = Embedder(tiny_bert_dir)
    info = build_kb_index(emb, kb_table, tmp_path)
    assert info == {"docs": 10, "dim": 32, "truncated": 0}
    return RagPredictor(embedder=emb, kb=KnowledgeBase.load(tmp_path), scorer=_scorer(tiny_lm_dir, batch_size=3), k=3)


def test_rag_predictor_interface(rag, texts):
    assert isinstance(rag, Predictor)
    queries = ["women are lazy people", "they hate money"]
    out = rag.predict(queries)
    assert out.scores.shape == (2,) and np.all((out.scores >= 0) & (out.scores <= 1))
    emb, _ = rag.embedder.embed(queries)
    ref = np.argsort(-(emb @ rag.kb.embeddings.T), axis=1, kind="stable")[:, :3]
    assert out.extras["retrieved_ids"] == [[f"d{j}" for j in row] for row in ref]
    sims = np.asarray(out.extras["retrieved_similarities"])
    np.testing.assert_allclose(sims, np.take_along_axis(emb @ rag.kb.embeddings.T, ref, axis=1), atol=1e-5)
    # the score is the scorer's score for exactly those retrieved documents with their labels
    docs = [[(texts[j], j % 2) for j in row] for row in ref]
    np.testing.assert_allclose(out.scores, rag.scorer.score(queries, docs)[0], atol=1e-6)
    ident = rag.identity()
    assert ident["kind"] == "rag" and ident["k"] == 3 and ident["embedder"]["kind"] == "embedder"
    assert len(ident["weights_sha256"]) == 64


def test_rag_batched_equals_unbatched(rag, texts):
    batched = rag.predict(texts).scores
    single = np.array([rag.predict([t]).scores[0] for t in texts])
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_rag_rejects_empty_text(rag):
    with pytest.raises(DataError, match="1 missing or empty"):
        rag.predict(["women are lazy", ""])


def test_nan_from_generator_is_a_model_error(tiny_lm_dir, tmp_path, rag):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    import torch

    model = AutoModelForCausalLM.from_pretrained(tiny_lm_dir)
    with torch.no_grad():
        model.model.norm.weight.fill_(float("nan"))
    model.save_pretrained(tmp_path / "nan")
    AutoTokenizer.from_pretrained(tiny_lm_dir).save_pretrained(tmp_path / "nan")
    rag.scorer = _scorer(tmp_path / "nan")
    with pytest.raises(ModelError, match="non-finite score"):
        rag.predict(["women are lazy"])


def test_generator_without_chat_template(tiny_lm_dir, tmp_path):
    import shutil
    import json

    folder = shutil.copytree(tiny_lm_dir, tmp_path / "nochat")
    cfg = json.loads((folder / "tokenizer_config.json").read_text())
    cfg.pop("chat_template", None)
    (folder / "tokenizer_config.json").write_text(json.dumps(cfg))
    for f in folder.glob("chat_template.*"):
        f.unlink()
    with pytest.raises(ModelError, match="no chat template"):
        _scorer(folder).score(["a"], [[]])


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_load_user_corpus(tmp_path, fmt):
    df = pd.DataFrame({"body": ["one doc", "", "two doc"], "id": ["a", "b", "c"], "y": [1, 0, 0]})
    path = tmp_path / f"kb.{fmt}"
    {"csv": lambda: df.to_csv(path, index=False), "jsonl": lambda: df.to_json(path, orient="records", lines=True),
     "parquet": lambda: df.to_parquet(path)}[fmt]()
    docs = load_documents(path, fmt=None, text_column="body", id_column="id", label_column="y", group_column=None)
    assert docs["doc_id"].tolist() == ["a", "c"] and docs["doc_label"].tolist() == [1, 0]
    assert docs.attrs["dropped_empty"] == 1


def test_user_corpus_missing_column(tmp_path):
    path = tmp_path / "kb.csv"
    pd.DataFrame({"body": ["x"]}).to_csv(path, index=False)
    with pytest.raises(DataError, match=r"column 'text' \(`variants.rag.knowledge_base.text_column`\) is missing. "
                                        r"Found columns: body"):
        load_documents(path, fmt=None, text_column="text", id_column=None, label_column=None, group_column=None)


@pytest.mark.parametrize("prefix_cache", [True, False])
@pytest.mark.parametrize("style", ["few_shot_turns", "single_turn"])
def test_followers_reuse_the_document_cache_exactly(rag, texts, prefix_cache, style):
    rag.scorer = _scorer(rag.scorer.model_dir, prefix_cache=prefix_cache, prompt_style=style, batch_size=3)
    queries = texts[:5]
    followers = [["men are lazy", "people are lazy and bad at money and work"], [], ["gay people love work"], [],
                 ["a b"]]
    rows = [i for i, fs in enumerate(followers) for _ in fs]
    pred, query_only, _, info = rag.predict_with_twins(queries, [f for fs in followers for f in fs], rows)
    np.testing.assert_allclose(pred.scores, rag.predict(queries).scores, atol=1e-5)
    assert len(query_only.scores) == len(rows) and len(query_only.truncated) == len(rows)
    start = 0
    for i, fs in enumerate(followers):
        if fs:
            idx = np.array([pred.extras["retrieved_index"][i]] * len(fs))
            ref, _ = rag.score_with_docs(fs, idx)
            np.testing.assert_allclose(query_only.scores[start : start + len(fs)], ref, atol=1e-5)
        start += len(fs)
    assert info["query_only_seconds"] > 0


@pytest.mark.parametrize("engine", ["packed", "hf"])
def test_twins_scored_in_one_pass_equal_scoring_them_apart(rag, texts, engine):
    """predict_with_twins: audit, query_only and full twins as predict / predict_with_retrieval_of give them."""
    rag.scorer = _scorer(rag.scorer.model_dir, batch_size=3, engine=engine)
    queries = texts[:6]
    twins = ["men are lazy", queries[0], "gay people love work", "people are lazy and bad at money and work", "a b"]
    rows = [0, 0, 2, 3, 5]
    pred, query_only, full, info = rag.predict_with_twins(queries, twins, rows)
    np.testing.assert_allclose(pred.scores, rag.predict(queries).scores, atol=1e-5)
    want_q = rag.predict_with_retrieval_of(twins, [queries[r] for r in rows])
    np.testing.assert_allclose(query_only.scores, want_q.scores, atol=1e-5)
    want_full = rag.predict(twins)
    np.testing.assert_allclose(full.scores, want_full.scores, atol=1e-5)
    assert pred.extras["retrieved_index"] == rag.predict(queries).extras["retrieved_index"]
    # twin 1 is its original's own text: same retrieval, so its full score is its query_only score
    assert info["full_reused"] >= 1 and full.scores[1] == query_only.scores[1]
    assert info["audit_seconds"] > 0 and info["twin_seconds"] > 0 and info["query_only_seconds"] > 0
    with pytest.raises(ModelError, match="5 twins with 4 original rows"):
        rag.predict_with_twins(queries, twins, rows[:4])
