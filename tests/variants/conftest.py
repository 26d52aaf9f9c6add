"""Tiny models built inside the tests, so the real code path runs in seconds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

WORDS = (
    "the a an is are was not no yes they them people all women men black jewish muslim gay lgbtq "
    "are lazy smart good bad always never hate love work money crime religion comment example label "
    "does this express negative stereotype about group answer or here labelled means it you careful "
    "content moderator decide whether reddit"
).split()

CHAT_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

TEXTS = [
    "women are lazy",
    "black people are smart",
    "the jewish comment is about money",
    "muslim men always hate",
    "gay people love work",
    "this is not a stereotype",
    "they are bad at religion and crime and money and work and everything else in the world",
    "all people are good",
    "lgbtq people never work",
    "a b c",
]


def _word_tokenizer(specials, *, lowercase=True):
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers
    from tokenizers.models import WordLevel

    vocab = {}
    for tok in list(specials) + ["Yes", "No", "Label", "Example", "Comment", ":", ".", "?", ";", ",", "1", "2", "3", "4"] + WORDS:
        vocab.setdefault(tok, len(vocab))
    tk = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace()])
    if lowercase:
        tk.normalizer = normalizers.Lowercase()
    tk.decoder = decoders.WordPiece(prefix="##")
    return tk, vocab


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    """A 2-layer BERT encoder (no head) with a word-level tokenizer, saved as safetensors."""
    import torch
    from tokenizers.processors import TemplateProcessing
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    out = tmp_path_factory.mktemp("tiny_bert")
    tk, vocab = _word_tokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    tk.post_processor = TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
                                           special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                  sep_token="[SEP]", mask_token="[MASK]", model_max_length=512)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=128, pad_token_id=vocab["[PAD]"])
    BertModel(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_classifier_dir(tiny_bert_dir, tmp_path_factory) -> Path:
    """A 2-label BertForSequenceClassification made from the tiny encoder."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out = tmp_path_factory.mktemp("tiny_cls")
    torch.manual_seed(1)
    m = AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir, num_labels=2)
    with torch.no_grad():
        m.classifier.weight.normal_(0, 2.0)  # spread the scores so the tests see real differences
    m.save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_bert_dir).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_lm_dir(tmp_path_factory) -> Path:
    """A 2-layer Llama causal LM with a chat template, saved as safetensors."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out = tmp_path_factory.mktemp("tiny_lm")
    tk, vocab = _word_tokenizer(["<pad>", "[UNK]", "<|im_start|>", "<|im_end|>", "system", "user", "assistant"],
                                lowercase=False)
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="[UNK]", pad_token="<pad>", eos_token="<|im_end|>",
                                  bos_token="<|im_start|>", additional_special_tokens=["<|im_start|>", "<|im_end|>"],
                                  chat_template=CHAT_TEMPLATE)
    torch.manual_seed(2)
    cfg = LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                      pad_token_id=vocab["<pad>"], bos_token_id=vocab["<|im_start|>"], eos_token_id=vocab["<|im_end|>"],
                      tie_word_embeddings=True, initializer_range=0.5)
    m = LlamaForCausalLM(cfg)
    with torch.no_grad():
        m.model.embed_tokens.weight.normal_(0, 1.0)
    m.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture()
def texts():
    return list(TEXTS)
