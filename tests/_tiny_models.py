"""Tiny models built from configs, so that tests run the real model code path in seconds.

A 2-layer BERT encoder and a 2-label BERT classifier with a word-level tokenizer, and a
2-layer Llama chat LM (with a chat template), each saved as a safetensors folder.
"""

from __future__ import annotations

from pathlib import Path

WORDS = (
    "the a an is are was not no yes they them people all women men black jewish muslim gay lgbtq lesbian "
    "are lazy smart good bad always never hate love work money crime religion comment example label kind "
    "does this express negative stereotype about group answer or here labelled means it you careful "
    "content moderator decide whether reddit girls boys christian straight white number one two three four "
    "five six seven eight nine ten"
).split()

CHAT_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _word_tokenizer(specials, *, lowercase=True):
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers
    from tokenizers.models import WordLevel

    vocab = {}
    for tok in list(specials) + ["Yes", "No", "Label", "Example", "Comment", ":", ".", "?", ";", ",", "1", "2", "3",
                                 "4"] + WORDS:
        vocab.setdefault(tok, len(vocab))
    tk = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    if lowercase:
        tk.normalizer = normalizers.Lowercase()
    tk.decoder = decoders.WordPiece(prefix="##")
    return tk, vocab


def build_tiny_models(root: Path) -> dict[str, Path]:
    """A 2-label classifier, an encoder and a chat LM, each a safetensors folder with its tokenizer."""
    import torch
    from tokenizers.processors import TemplateProcessing
    from transformers import (BertConfig, BertForSequenceClassification, BertModel, LlamaConfig, LlamaForCausalLM,
                              PreTrainedTokenizerFast)

    tk, vocab = _word_tokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    tk.post_processor = TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
                                           special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    bert_tok = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                       sep_token="[SEP]", mask_token="[MASK]", model_max_length=512)
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=128, pad_token_id=vocab["[PAD]"])
    torch.manual_seed(0)
    encoder = root / "encoder"
    BertModel(cfg).save_pretrained(encoder)
    bert_tok.save_pretrained(encoder)
    torch.manual_seed(1)
    cls = BertForSequenceClassification(BertConfig(**{**cfg.to_dict(), "num_labels": 2}))
    with torch.no_grad():
        cls.classifier.weight.normal_(0, 2.0)  # spread the scores
    classifier = root / "classifier"
    cls.save_pretrained(classifier)
    bert_tok.save_pretrained(classifier)

    ltk, lvocab = _word_tokenizer(["<pad>", "[UNK]", "<|im_start|>", "<|im_end|>", "system", "user", "assistant"],
                                  lowercase=False)
    lm_tok = PreTrainedTokenizerFast(tokenizer_object=ltk, unk_token="[UNK]", pad_token="<pad>", eos_token="<|im_end|>",
                                     bos_token="<|im_start|>", additional_special_tokens=["<|im_start|>", "<|im_end|>"],
                                     chat_template=CHAT_TEMPLATE)
    torch.manual_seed(2)
    lcfg = LlamaConfig(vocab_size=len(lvocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                       pad_token_id=lvocab["<pad>"], bos_token_id=lvocab["<|im_start|>"],
                       eos_token_id=lvocab["<|im_end|>"], tie_word_embeddings=True, initializer_range=0.5)
    lm = LlamaForCausalLM(lcfg)
    with torch.no_grad():
        lm.model.embed_tokens.weight.normal_(0, 1.0)
    generator = root / "generator"
    lm.save_pretrained(generator)
    lm_tok.save_pretrained(generator)
    return {"classifier": classifier, "encoder": encoder, "generator": generator}
