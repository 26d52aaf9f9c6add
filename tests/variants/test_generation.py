"""The answer writer on the tiny chat LM: greedy answers equal an independent step-by-step argmax decoder,
batching with left padding does not change them, duplicates are generated once, limits are kept."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.errors import ModelError
from pipelines.variants.generation import AnswerRequest, AnswerWriter, Retrieval

REQUESTS = [
    AnswerRequest("women are lazy", "Reply to this comment.", "Comment: "),
    AnswerRequest("men are lazy", "Reply to this comment.", "Comment: "),
    AnswerRequest("black people are smart and good and they love work", "Reply to this comment.", "Comment: "),
    AnswerRequest("women are lazy", "Reply to this comment.", "Comment: "),  # a duplicate
    AnswerRequest("the jewish comment", "Reply to this comment.", "Comment: ", docs=("all people are good",)),
]


def _reference(model_dir, prompts, max_new_tokens):
    """Greedy decoding without a KV cache, one prompt at a time: the argmax of a full forward pass per step."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    out = []
    for p in prompts:
        ids = tok(p, add_special_tokens=False)["input_ids"]
        new = []
        with torch.inference_mode():
            for _ in range(max_new_tokens):
                logits = model(input_ids=torch.tensor([ids + new]), use_cache=False).logits[0, -1]
                nxt = int(torch.argmax(logits))
                if nxt == tok.eos_token_id:
                    break
                new.append(nxt)
        out.append(new)
    return out, tok


@pytest.fixture(scope="module")
def writer(tiny_models):
    return AnswerWriter(tiny_models["generator"], max_new_tokens=7, batch_size=2, num_threads=1)


def test_greedy_answers_equal_a_step_by_step_argmax_decoder(writer, tiny_models):
    answers = writer.write(REQUESTS)
    prompts = [writer.render(r)[0] for r in REQUESTS]
    reference, tok = _reference(tiny_models["generator"], prompts, 7)
    assert answers.texts == [tok.decode(r, skip_special_tokens=True).strip() for r in reference]
    assert answers.new_tokens.tolist() == [len(r) for r in reference]
    assert answers.hit_limit.tolist() == [len(r) >= 7 for r in reference]
    assert answers.prompts_generated == 4  # the duplicate prompt is generated once
    assert answers.texts[0] == answers.texts[3]


def test_batch_size_does_not_change_the_answers(writer, tiny_models):
    one = AnswerWriter(tiny_models["generator"], max_new_tokens=7, batch_size=1, num_threads=1).write(REQUESTS)
    assert one.texts == writer.write(REQUESTS).texts


def test_prompt_has_the_documents_the_instruction_and_the_text(writer):
    prompt, cut = writer.render(REQUESTS[4])
    assert "Related comment: all people are good\n\nReply to this comment.\n\nComment: the jewish comment" in prompt
    assert prompt.endswith("<|im_start|>assistant\n") and not cut
    long = AnswerRequest(" ".join(["women"] * 200), "Reply.", "Comment: ")
    short = AnswerWriter(writer.model_dir, query_max_tokens=5, num_threads=1)
    text, cut = short.render(long)
    assert cut and "Comment: women women women women women ..." in text


def test_retrieval_is_the_top_k_by_cosine():
    class Embedder:
        def embed(self, texts, progress=None, desc=""):
            vecs = np.array([[1.0, 0.0] if "a" in t else [0.0, 1.0] for t in texts])
            return vecs, np.zeros(len(texts), bool)

    import pandas as pd

    class KB:
        docs = pd.DataFrame({"doc_id": ["d0", "d1", "d2"], "text": ["x", "y", "z"]})
        embeddings = np.array([[0.0, 1.0], [1.0, 0.0], [0.6, 0.8]])

    docs, ids = Retrieval(embedder=Embedder(), kb=KB(), k=2).retrieve(["a", "b"])
    assert ids == [["d1", "d2"], ["d0", "d2"]] and docs == [["y", "z"], ["x", "z"]]


def test_errors(tiny_models):
    with pytest.raises(ValueError, match="precision.*'fp16'"):
        AnswerWriter(tiny_models["generator"], precision="fp16")
    bare = AnswerWriter(tiny_models["generator"], num_threads=1)
    with pytest.raises(ModelError, match="no retriever"):
        bare.documents(["text"])
    with pytest.raises(ModelError, match="no sentence encoder"):
        bare.embed(["text"])


def test_bf16_writes_answers_of_the_same_shape(tiny_models):
    answers = AnswerWriter(tiny_models["generator"], max_new_tokens=5, precision="bf16", num_threads=1).write(
        REQUESTS[:2])
    assert len(answers.texts) == 2 and (answers.new_tokens <= 5).all()
