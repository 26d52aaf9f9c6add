"""The fine-tuned variant: a sequence classifier (MiniLM-L6 by default) fine-tuned on the train split.

Inference is tuned for a small CPU: texts are tokenized once, sorted by
length and cut into batches, and run under ``torch.inference_mode``. BERT
classifiers (MiniLM) run on :class:`._bert.PackedBert` (no padding at all, the
last layer for ``[CLS]`` only), in bf16 where the CPU has native bf16 and
``precision`` allows it; other architectures run the transformers module on
batches padded to their own longest text.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from pipelines.variants._base import Predictions, Progress, check_scores, check_texts, no_progress
from pipelines.variants._hf import folder_path, load_sequence_classifier, model_identity, offline, set_threads
from pipelines.variants._precision import ENGINES, PRECISIONS, check_choice, resolve_precision

__all__ = ["FinetunedPredictor", "train_classifier", "training_batches", "encode", "length_batches", "pad_batch"]

offline()


def encode(tokenizer: Any, texts: Sequence[str], *, max_length: int) -> tuple[list[list[int]], np.ndarray]:
    """Token ids (with special tokens, cut to ``max_length``) and whether each text was cut."""
    enc = tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
    raw = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    n_special = tokenizer.num_special_tokens_to_add(pair=False)
    truncated = np.array([len(r) + n_special > max_length for r in raw], dtype=bool)
    return [list(e) for e in enc], truncated


def length_batches(lengths: Sequence[int], batch_size: int) -> list[np.ndarray]:
    """Index batches over texts sorted by length (stable), so padding stays small."""
    order = np.argsort(np.asarray(lengths), kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def pad_batch(ids: Sequence[Sequence[int]], pad_id: int, *, side: str = "right"):
    """``input_ids`` and ``attention_mask`` tensors padded to the batch's longest row."""
    import torch

    width = max(len(r) for r in ids)
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for i, row in enumerate(ids):
        if side == "right":
            input_ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            mask[i, : len(row)] = 1
        else:
            input_ids[i, width - len(row) :] = torch.tensor(row, dtype=torch.long)
            mask[i, width - len(row) :] = 1
    return input_ids, mask


def _pad_id(tokenizer: Any) -> int:
    pid = tokenizer.pad_token_id
    if pid is None:
        pid = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
    return int(pid)


class FinetunedPredictor:
    """Scores texts with a 2-label sequence classifier folder.

    Parameters
    ----------
    model_dir
        A sequence-classification model folder (safetensors, config, tokenizer).
    max_length
        Longer texts are cut to this many tokens (and reported as truncated).
    batch_size
        Texts per forward pass.
    precision
        ``"fp32"`` (the reference), ``"bf16"`` (matrix products in bfloat16 on
        CPUs with native bf16; elsewhere fp32 with a warning) or ``"auto"``
        (bf16 where native, else fp32).
    engine
        ``"auto"``: the packed engine where it fits the model (BERT), else the
        transformers module; ``"packed"``: the same, warning where it does not
        fit; ``"hf"``: always the transformers module (fp32).

    The path actually taken is :attr:`path` and is part of :meth:`identity`.
    """

    kind = "finetuned"

    def __init__(self, model_dir: Path, *, name: str = "finetuned", max_length: int = 64, batch_size: int = 64,
                 positive_index: int = 1, allow_pickle: bool = False, num_threads: int = 2,
                 field: str = "variants.finetuned.model", precision: str = "fp32", engine: str = "auto"):
        self.name = name
        self.model_dir = Path(model_dir)
        self.max_length = max_length
        self.batch_size = batch_size
        self.positive_index = positive_index
        self.allow_pickle = allow_pickle
        self.num_threads = num_threads
        self.field = field
        self.precision = check_choice(precision, PRECISIONS, field="precision")
        self.engine = check_choice(engine, ENGINES, field="engine")
        self._model = None
        self._tokenizer = None
        self._packed = None
        self._path: dict[str, Any] | None = None

    @property
    def path(self) -> dict[str, Any]:
        """Which precision and runtime score: ``{"precision", "runtime", "requested", "reason", "cpu", "torch"}``.

        Decided from the folder's config and this CPU's flags (no weights are
        loaded); a request that cannot run here falls back to fp32 with a warning.
        """
        if self._path is None:
            from pipelines.variants import _bert

            self._path = folder_path(self.model_dir, field=self.field, allow_pickle=self.allow_pickle,
                                     where=f"classifier {self.model_dir}", precision=self.precision,
                                     engine=self.engine, supports=lambda cfg: _bert.supports(cfg, classifier=True))
        return dict(self._path)

    def _load(self):
        if self._model is None:
            set_threads(self.num_threads)
            path = self.path
            self._model, self._tokenizer = load_sequence_classifier(
                self.model_dir, field=self.field, allow_pickle=self.allow_pickle, new_head=False,
                positive_index=self.positive_index)
            if path["runtime"] == "torch-packed":
                import torch

                from pipelines.variants._bert import PackedBert

                dtype = torch.bfloat16 if path["precision"] == "bf16" else torch.float32
                self._packed = PackedBert(self._model, matmul_dtype=dtype)
        return self._model, self._tokenizer

    def identity(self) -> dict[str, Any]:
        ident = model_identity(self.model_dir, kind=self.kind)
        ident.update(max_length=self.max_length, positive_index=self.positive_index, path=self.path)
        return ident

    def logits(self, texts: Sequence[str], *, progress: Progress = no_progress) -> tuple[np.ndarray, np.ndarray]:
        """Raw logits (n x 2, float64) in input order, and the truncation flags."""
        import torch

        model, tok = self._load()
        ids, truncated = encode(tok, texts, max_length=self.max_length)
        out = np.zeros((len(ids), model.config.num_labels), dtype=np.float64)
        pad = _pad_id(tok)
        batches = length_batches([len(r) for r in ids], self.batch_size)
        with torch.inference_mode():
            for idx in progress(batches, desc=f"{self.name}: scoring", total=len(batches), unit="batch"):
                if self._packed is not None:
                    out[idx] = self._packed.logits([ids[i] for i in idx]).double().numpy()
                    continue
                input_ids, mask = pad_batch([ids[i] for i in idx], pad)
                logits = model(input_ids=input_ids, attention_mask=mask).logits
                out[idx] = logits.double().numpy()
        return out, truncated

    def predict(self, texts: Sequence[str], *, progress: Progress = no_progress) -> Predictions:
        texts = check_texts(texts, where=f"variant `{self.name}` input")
        if not texts:
            return Predictions(np.zeros(0), np.zeros(0, dtype=bool))
        logits, truncated = self.logits(texts, progress=progress)
        shifted = logits - logits.max(axis=1, keepdims=True)
        probs = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
        scores = check_scores(probs[:, self.positive_index], variant=self.name, where=f"{len(texts)} texts")
        return Predictions(scores=scores, truncated=truncated)


def training_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator, *,
                     group_by_length: bool = True, chunk_batches: int = 50) -> list[np.ndarray]:
    """Row indices of each training batch for one epoch, drawn from ``rng``.

    Without ``group_by_length``: a random permutation cut into batches. With it
    (what transformers' ``group_by_length`` does): the permutation is cut into
    chunks of ``chunk_batches`` batches, each chunk sorted by length (stable) and
    cut into batches, and the batches are shuffled, so each batch holds texts of
    similar length (little padding) while batch order and membership stay random.

    >>> [b.tolist() for b in training_batches(np.array([5, 1, 4, 2]), 2, np.random.default_rng(0))]
    [[2, 0], [1, 3]]

    (rows 2 and 0 have lengths 4 and 5, rows 1 and 3 lengths 1 and 2.)
    """
    order = rng.permutation(len(lengths))
    if not group_by_length:
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    chunk = batch_size * chunk_batches
    batches = []
    for c in range(0, len(order), chunk):
        part = order[c : c + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def train_classifier(
    base_dir: Path,
    *,
    texts: Sequence[str],
    labels: Sequence[int],
    out_dir: Path,
    seed: int,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    weight_decay: float,
    warmup_ratio: float,
    max_length: int,
    allow_pickle: bool = False,
    num_threads: int = 2,
    progress: Progress = no_progress,
    field: str = "variants.finetuned.model",
    group_by_length: bool = True,
    precision: str = "fp32",
) -> dict[str, Any]:
    """Fine-tune ``base_dir`` with a fresh 2-label head; save an HF folder to ``out_dir``.

    Seeded: the head's initialisation, dropout and batch order follow ``seed``.
    ``group_by_length`` batches texts of similar length (:func:`training_batches`);
    ``precision`` ``bf16``/``auto`` runs the forward pass under bfloat16 autocast
    where the CPU has native bf16 (weights, gradients and the optimizer stay fp32).
    Returns training metrics (also written to ``out_dir/training_metrics.json``).
    """
    import contextlib

    import torch

    set_threads(num_threads)
    resolved, precision_reason = resolve_precision(precision, where=f"fine-tuning {base_dir}")
    texts = check_texts(texts, where="fine-tuning data (train split)")
    y = np.asarray(labels, dtype=np.int64)
    if set(np.unique(y).tolist()) - {0, 1}:
        from pipelines.errors import DataError

        raise DataError(f"fine-tuning data: column `label` must hold 0/1. Got values {sorted(set(y.tolist()))}.")
    torch.manual_seed(seed)
    model, tok = load_sequence_classifier(base_dir, field=field, allow_pickle=allow_pickle, new_head=True)
    model.config.id2label = {0: "negative", 1: "positive"}
    model.config.label2id = {"negative": 0, "positive": 1}
    ids, truncated = encode(tok, texts, max_length=max_length)
    pad = _pad_id(tok)
    steps_per_epoch = math.ceil(len(ids) / batch_size)
    total = steps_per_epoch * epochs
    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")
    groups = [
        {"params": [p for n, p in model.named_parameters() if not n.endswith(no_decay)], "weight_decay": weight_decay},
        {"params": [p for n, p in model.named_parameters() if n.endswith(no_decay)], "weight_decay": 0.0},
    ]
    optim = torch.optim.AdamW(groups, lr=learning_rate)
    warmup = int(round(warmup_ratio * total))

    def schedule(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    sched = torch.optim.lr_scheduler.LambdaLR(optim, schedule)
    rng = np.random.default_rng(seed)
    lengths = np.asarray([len(r) for r in ids])
    model.train()
    t0 = time.perf_counter()
    history = []
    real_tokens = padded_tokens = 0
    bar = progress(total=total, desc="finetuned: training", unit="step")
    for epoch in range(epochs):
        losses, correct = [], 0
        for s, idx in enumerate(training_batches(lengths, batch_size, rng, group_by_length=group_by_length)):
            input_ids, mask = pad_batch([ids[i] for i in idx], pad)
            real_tokens += int(lengths[idx].sum())
            padded_tokens += int(input_ids.numel())
            target = torch.as_tensor(y[idx])
            autocast = (torch.autocast("cpu", dtype=torch.bfloat16) if resolved == "bf16"
                        else contextlib.nullcontext())
            with autocast:
                out = model(input_ids=input_ids, attention_mask=mask, labels=target)
            loss = out.loss.float()
            if not torch.isfinite(loss):
                from pipelines.errors import ModelError

                raise ModelError(f"fine-tuning {base_dir}: the loss became {loss.item()} at epoch {epoch + 1}, "
                                 f"step {s + 1}. Lower `variants.finetuned.training.learning_rate`.")
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optim.step()
            sched.step()
            optim.zero_grad(set_to_none=True)
            losses.append(float(loss.item()))
            correct += int((out.logits.argmax(-1) == target).sum())
            bar.update(1)
        history.append({"epoch": epoch + 1, "mean_loss": float(np.mean(losses)),
                        "final_loss": losses[-1], "train_accuracy": correct / len(ids)})
    bar.close()
    seconds = time.perf_counter() - t0
    model.eval()
    model.save_pretrained(str(out_dir), safe_serialization=True)
    tok.save_pretrained(str(out_dir))
    metrics = {
        "rows": len(ids),
        "positives": int(y.sum()),
        "epochs": epochs,
        "steps": total,
        "seed": seed,
        "truncated": int(truncated.sum()),
        "precision": resolved,
        "precision_reason": precision_reason,
        "group_by_length": bool(group_by_length),
        "real_token_share": round(real_tokens / padded_tokens, 4) if padded_tokens else None,
        "train_seconds": round(seconds, 3),
        "train_examples_per_s": round(len(ids) * epochs / seconds, 2) if seconds > 0 else None,
        "history": history,
    }
    (Path(out_dir) / "training_metrics.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    return metrics
