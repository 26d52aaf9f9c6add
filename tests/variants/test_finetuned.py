import json

import numpy as np
import pytest

from pipelines.errors import DataError, ModelError
from pipelines.variants._base import Predictor
from pipelines.variants.finetuned import FinetunedPredictor, train_classifier


def test_is_a_predictor(tiny_classifier_dir):
    p = FinetunedPredictor(tiny_classifier_dir)
    assert isinstance(p, Predictor)
    ident = p.identity()
    assert ident["kind"] == "finetuned" and len(ident["weights_sha256"]) == 64 and len(ident["config_sha256"]) == 64


def test_scores_equal_manual_softmax(tiny_classifier_dir, texts):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    got = FinetunedPredictor(tiny_classifier_dir, max_length=64).predict(texts).scores
    model = AutoModelForSequenceClassification.from_pretrained(tiny_classifier_dir).eval()
    tok = AutoTokenizer.from_pretrained(tiny_classifier_dir)
    for text, score in zip(texts, got):
        with torch.no_grad():
            logits = model(**tok(text, return_tensors="pt")).logits[0].double().numpy()
        p = np.exp(logits) / np.exp(logits).sum()
        assert score == pytest.approx(p[1], abs=1e-6)
    assert np.all((got >= 0) & (got <= 1)) and got.std() > 1e-4


@pytest.mark.parametrize("batch_size", [1, 3, 64])
def test_batched_equals_unbatched(tiny_classifier_dir, texts, batch_size):
    batched = FinetunedPredictor(tiny_classifier_dir, batch_size=batch_size).predict(texts).scores
    single = np.array([FinetunedPredictor(tiny_classifier_dir).predict([t]).scores[0] for t in texts])
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_permutation_invariant(tiny_classifier_dir, texts):
    p = FinetunedPredictor(tiny_classifier_dir, batch_size=4)
    perm = np.random.default_rng(0).permutation(len(texts))
    a = p.predict(texts).scores
    b = p.predict([texts[i] for i in perm]).scores
    np.testing.assert_allclose(a[perm], b, atol=1e-5)


def test_long_texts_truncated_and_counted(tiny_classifier_dir, texts):
    pred = FinetunedPredictor(tiny_classifier_dir, max_length=8).predict(texts)
    n_words = np.array([len(t.split()) for t in texts])
    np.testing.assert_array_equal(pred.truncated, n_words + 2 > 8)  # word-level tokenizer + [CLS]/[SEP]
    assert pred.truncated.sum() == 1 and pred.truncated[6]


@pytest.mark.parametrize("bad", [[""], ["ok text", "   "], [None], [float("nan")], ["women", 3]])
def test_empty_or_missing_texts_are_a_data_error(tiny_classifier_dir, bad):
    with pytest.raises(DataError, match="must be a non-empty string"):
        FinetunedPredictor(tiny_classifier_dir).predict(bad)


def test_nan_scores_are_a_model_error(tiny_classifier_dir, tmp_path):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(tiny_classifier_dir)
    with torch.no_grad():
        model.classifier.bias.fill_(float("nan"))
    model.save_pretrained(tmp_path / "nan")
    AutoTokenizer.from_pretrained(tiny_classifier_dir).save_pretrained(tmp_path / "nan")
    with pytest.raises(ModelError, match=r"produced 2 non-finite score\(s\)"):
        FinetunedPredictor(tmp_path / "nan").predict(["women are lazy", "all people are good"])


def _train(base, out, seed, texts):
    labels = [1, 0, 1, 1, 0, 0, 1, 0, 1, 0]
    return train_classifier(base, texts=texts, labels=labels, out_dir=out, seed=seed, epochs=2, batch_size=4,
                            learning_rate=1e-3, weight_decay=0.0, warmup_ratio=0.1, max_length=16)


def test_training_saves_a_standard_folder_and_is_seeded(tiny_bert_dir, tmp_path, texts):
    from safetensors.numpy import load_file

    m1 = _train(tiny_bert_dir, tmp_path / "a", 7, texts)
    _train(tiny_bert_dir, tmp_path / "b", 7, texts)
    _train(tiny_bert_dir, tmp_path / "c", 8, texts)
    names = {p.name for p in (tmp_path / "a").iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "training_metrics.json"} <= names
    assert not any(n.endswith(".bin") for n in names)
    assert json.loads((tmp_path / "a" / "training_metrics.json").read_text()) == m1
    assert m1["rows"] == 10 and m1["steps"] == 6 and len(m1["history"]) == 2
    assert m1["truncated"] == 1 and np.isfinite(m1["history"][-1]["mean_loss"])
    wa, wb, wc = (load_file(tmp_path / x / "model.safetensors") for x in "abc")
    assert all(np.array_equal(wa[k], wb[k]) for k in wa)
    assert not all(np.array_equal(wa[k], wc[k]) for k in wa)
    # the trained folder is a 2-label classifier the predictor accepts
    scores = FinetunedPredictor(tmp_path / "a").predict(texts).scores
    assert scores.shape == (10,) and np.all((scores >= 0) & (scores <= 1))


def test_training_rejects_non_binary_labels(tiny_bert_dir, tmp_path):
    with pytest.raises(DataError, match="must hold 0/1"):
        train_classifier(tiny_bert_dir, texts=["a", "b"], labels=[0, 2], out_dir=tmp_path, seed=0, epochs=1,
                         batch_size=2, learning_rate=1e-3, weight_decay=0.0, warmup_ratio=0.0, max_length=8)


def test_training_batches_cover_every_row_once_and_group_lengths():
    from pipelines.variants.finetuned import training_batches

    rng = np.random.default_rng(3)
    lengths = rng.integers(3, 64, size=1003)
    for grouped in (False, True):
        batches = training_batches(lengths, 32, np.random.default_rng(0), group_by_length=grouped)
        flat = np.concatenate(batches)
        assert sorted(flat.tolist()) == list(range(1003))  # every row exactly once
        assert len(batches) == 32 and sum(len(b) < 32 for b in batches) == 1  # ceil(1003 / 32), one short batch
    # padding: the share of real tokens in the padded batches, counted by hand
    def real_share(batches):
        return sum(lengths[b].sum() for b in batches) / sum(len(b) * lengths[b].max() for b in batches)

    plain = training_batches(lengths, 32, np.random.default_rng(0), group_by_length=False)
    grouped = training_batches(lengths, 32, np.random.default_rng(0), group_by_length=True)
    assert real_share(plain) < 0.65 and real_share(grouped) > 0.95
    # within a chunk of 50 batches (1,600 rows: here all of them) each batch is a run of the length order
    spans = [(lengths[b].min(), lengths[b].max()) for b in grouped]
    assert sum(hi - lo for lo, hi in spans) < 2 * 61  # sorted runs: the ranges add up to about the whole range
    # the batch order is shuffled, not sorted by length
    assert [lo for lo, _ in spans] != sorted(lo for lo, _ in spans)
    # seeded
    again = training_batches(lengths, 32, np.random.default_rng(0), group_by_length=True)
    assert all(np.array_equal(a, b) for a, b in zip(grouped, again))


def test_training_records_precision_and_padding(tiny_bert_dir, tmp_path, texts):
    m = _train(tiny_bert_dir, tmp_path / "a", 7, texts)
    assert m["precision"] == "fp32" and m["precision_reason"] == "requested"
    assert m["group_by_length"] is True and 0 < m["real_token_share"] <= 1


def test_bf16_training_runs_under_autocast_where_native(tiny_bert_dir, tmp_path, texts, monkeypatch):
    """bf16 mixed precision: the forward's matrix products in bf16, the saved weights fp32 and close to fp32 training."""
    import torch
    from safetensors.numpy import load_file

    from pipelines.variants import finetuned as ft

    seen = []
    real_autocast = torch.autocast

    def spy(*args, **kwargs):
        seen.append(kwargs.get("dtype"))
        return real_autocast(*args, **kwargs)

    monkeypatch.setattr(ft, "resolve_precision", lambda requested, where: ("bf16", "native bf16 (test)"))
    monkeypatch.setattr(torch, "autocast", spy)
    labels = [1, 0, 1, 1, 0, 0, 1, 0, 1, 0]
    kw = dict(texts=texts, labels=labels, seed=7, epochs=2, batch_size=4, learning_rate=1e-3, weight_decay=0.0,
              warmup_ratio=0.1, max_length=16)
    m16 = train_classifier(tiny_bert_dir, out_dir=tmp_path / "bf16", precision="bf16", **kw)
    assert m16["precision"] == "bf16" and seen and set(seen) == {torch.bfloat16}
    monkeypatch.undo()
    m32 = train_classifier(tiny_bert_dir, out_dir=tmp_path / "fp32", precision="fp32", **kw)
    w16, w32 = load_file(tmp_path / "bf16" / "model.safetensors"), load_file(tmp_path / "fp32" / "model.safetensors")
    assert all(w16[k].dtype == np.float32 for k in w16)
    diff = max(float(np.abs(w16[k] - w32[k]).max()) for k in w16)
    assert 0 < diff < 0.05  # rounded, not broken: 6 steps at lr 1e-3 move weights by at most ~6e-3 each
    assert abs(m16["history"][-1]["mean_loss"] - m32["history"][-1]["mean_loss"]) < 0.05
