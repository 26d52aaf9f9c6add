"""Bad model folders give one clear ModelError naming the folder, what was expected and what was found."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from pipelines.errors import ModelError
from pipelines.variants._hf import check_model_dir, model_identity
from pipelines.variants.finetuned import FinetunedPredictor


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def test_good_folder(tiny_classifier_dir):
    found = check_model_dir(tiny_classifier_dir, field="variants.finetuned.model", allow_pickle=False)
    assert found == {"safetensors": True, "weights": ["model.safetensors"]}


def test_missing_folder(tmp_path):
    with pytest.raises(ModelError, match=r"does not exist \(configured as `variants.finetuned.model`\)"):
        check_model_dir(tmp_path / "nope", field="variants.finetuned.model", allow_pickle=False)


@pytest.mark.parametrize("missing, words", [
    ("config.json", ["config.json is missing", "Found: model.safetensors"]),
    ("model.safetensors", ["no weights file", "Expected model.safetensors", "Found: config.json"]),
    ("tokenizer.json", ["no tokenizer files", "tokenizer.json"]),
])
def test_folder_with_a_missing_file(tiny_classifier_dir, tmp_path, missing, words):
    folder = _copy(tiny_classifier_dir, tmp_path / "m")
    (folder / missing).unlink()
    with pytest.raises(ModelError) as exc:
        FinetunedPredictor(folder).predict(["women are lazy"])
    for w in words:
        assert w in str(exc.value)
    assert str(folder) in str(exc.value)


def test_missing_shard(tiny_classifier_dir, tmp_path):
    folder = _copy(tiny_classifier_dir, tmp_path / "m")
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"a": "model-00002.safetensors"}}))
    with pytest.raises(ModelError, match="shards that are missing: model-00002.safetensors"):
        check_model_dir(folder, field="f", allow_pickle=False)


@pytest.fixture()
def pickle_dir(tiny_classifier_dir, tmp_path):
    import torch
    from transformers import AutoModelForSequenceClassification

    folder = _copy(tiny_classifier_dir, tmp_path / "pickled")
    model = AutoModelForSequenceClassification.from_pretrained(tiny_classifier_dir)
    (folder / "model.safetensors").unlink()
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    return folder


def test_pickle_checkpoint_refused_by_default(pickle_dir):
    with pytest.raises(ModelError) as exc:
        FinetunedPredictor(pickle_dir).predict(["women are lazy"])
    msg = str(exc.value)
    assert "pytorch_model.bin" in msg and "allow_pickle: true" in msg and "variants.finetuned.allow_pickle" in msg


def test_pickle_checkpoint_loads_when_allowed(pickle_dir, tiny_classifier_dir):
    allowed = FinetunedPredictor(pickle_dir, allow_pickle=True).predict(["women are lazy", "all people are good"])
    ref = FinetunedPredictor(tiny_classifier_dir).predict(["women are lazy", "all people are good"])
    assert allowed.scores == pytest.approx(ref.scores, abs=1e-6)


def test_label_count_mismatch(tiny_bert_dir, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = tmp_path / "three"
    AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir, num_labels=3).save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_bert_dir).save_pretrained(folder)
    with pytest.raises(ModelError, match="a classifier with 3 labels; the audit needs a binary classifier"):
        FinetunedPredictor(folder).predict(["women are lazy"])


def test_encoder_without_head_is_not_a_classifier(tiny_bert_dir):
    with pytest.raises(ModelError, match="not a sequence-classification model"):
        FinetunedPredictor(tiny_bert_dir).predict(["women are lazy"])


def test_identity_hashes_change_with_weights(tiny_classifier_dir, tmp_path):
    a = model_identity(tiny_classifier_dir, kind="finetuned")
    folder = _copy(tiny_classifier_dir, tmp_path / "m")
    assert model_identity(folder, kind="finetuned")["weights_sha256"] == a["weights_sha256"]
    with open(folder / "model.safetensors", "ab") as fh:
        fh.write(b"\0")
    b = model_identity(folder, kind="finetuned")
    assert b["weights_sha256"] != a["weights_sha256"] and b["config_sha256"] == a["config_sha256"]


def test_gguf_conversion_parses_the_file_once_and_converts_the_same_weights(tmp_path, monkeypatch):
    """convert_gguf hands transformers one parsed reader; the saved folder equals transformers' own three parses."""
    import gguf
    from safetensors.numpy import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from pipelines.config import resolve_resource
    from pipelines.config.variants import SMOLLM2, GeneratorConfig
    from pipelines.variants import _hf

    src = resolve_resource(SMOLLM2, base_dir=Path.cwd())
    name = GeneratorConfig().gguf_file
    opened = []
    real = gguf.GGUFReader

    def counting(path, *args, **kwargs):
        opened.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(gguf, "GGUFReader", counting)
    _hf.convert_gguf(src, name, tmp_path / "once")
    assert len(opened) == 1  # transformers alone opens it three times (config, tokenizer, weights)
    assert gguf.GGUFReader is counting  # the block restored what it replaced
    monkeypatch.undo()
    # transformers' own path, unpatched
    ref_tok = AutoTokenizer.from_pretrained(str(src), gguf_file=name, local_files_only=True)
    ref = AutoModelForCausalLM.from_pretrained(str(src), gguf_file=name, local_files_only=True).state_dict()
    got = load_file(tmp_path / "once" / "model.safetensors")
    assert set(got) <= set(ref) and len(got) >= 270
    assert all(np.array_equal(got[k], ref[k].numpy()) for k in got)
    tok = AutoTokenizer.from_pretrained(tmp_path / "once")
    text = "Comment: women are lazy <|im_end|> Yes"
    assert tok(text)["input_ids"] == ref_tok(text)["input_ids"] and tok.chat_template == ref_tok.chat_template
