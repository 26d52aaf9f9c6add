"""A lean forward pass for BERT encoders (MiniLM), for scoring and embedding texts on a CPU.

:class:`PackedBert` takes the weights of a transformers ``BertModel`` or
``BertForSequenceClassification`` and computes the same function with less
work:

* rows are packed end to end, so no matrix product sees a padding token;
  only attention (a small share of the work for short texts) runs on a
  padded layout, one call per layer with a key mask;
* the query, key and value projections are one matrix product with its bias;
* for a classifier, the last layer runs its attention output and MLP for the
  ``[CLS]`` token only: the pooler reads nothing else.

With ``matmul_dtype=torch.bfloat16`` the matrix products run in bfloat16
(weights stored in bfloat16, inputs rounded to it) while the residual stream,
layer norms, softmax and attention stay in float32; see :mod:`._precision`
for when that is fast.
"""

from __future__ import annotations

from typing import Any, Sequence

from pipelines.variants import _gemm

__all__ = ["PackedBert", "supports"]


def supports(cfg: Any, *, classifier: bool) -> tuple[bool, str]:
    """Whether :class:`PackedBert` computes the same function as a BERT with config ``cfg``, and why not.

    ``classifier``: the model is a ``BertForSequenceClassification`` (else a ``BertModel``).
    """
    if getattr(cfg, "model_type", None) != "bert":
        return False, f"model type {getattr(cfg, 'model_type', None)!r} is not 'bert'"
    checks = {
        "hidden_act": getattr(cfg, "hidden_act", None) == "gelu",
        "position_embedding_type": getattr(cfg, "position_embedding_type", "absolute") == "absolute",
        "is_decoder": not getattr(cfg, "is_decoder", False),
    }
    if classifier:
        checks["problem_type"] = getattr(cfg, "problem_type", None) in (None, "single_label_classification")
    bad = [k for k, ok in checks.items() if not ok]
    if bad:
        return False, "unsupported config: " + ", ".join(bad)
    return True, ""


class PackedBert:
    """The forward pass of a BERT encoder (and its classification head) over packed rows.

    Parameters
    ----------
    model
        A loaded ``BertModel`` or ``BertForSequenceClassification`` in float32.
        Its weights are copied; the module itself is not kept.
    matmul_dtype
        ``torch.float32`` (the reference) or ``torch.bfloat16``.
    """

    def __init__(self, model: Any, *, matmul_dtype: Any = None):
        import torch

        classifier = hasattr(model, "classifier")
        ok, why = supports(model.config, classifier=classifier)
        bert = getattr(model, "bert", model)
        if ok and (not hasattr(bert, "embeddings") or not hasattr(bert, "encoder")
                   or (classifier and getattr(bert, "pooler", None) is None)):
            ok, why = False, "not a BertModel / BertForSequenceClassification module layout"
        if not ok:
            raise ValueError(f"PackedBert cannot run this model: {why}")
        cfg = model.config
        self.dtype = matmul_dtype or torch.float32
        self.hidden = cfg.hidden_size
        self.n_heads = cfg.num_attention_heads
        self.head_dim = cfg.hidden_size // cfg.num_attention_heads
        self.eps = float(cfg.layer_norm_eps)

        def w(t):
            return t.detach().to(self.dtype).contiguous()

        def f(t):
            return t.detach().float().contiguous()

        with torch.no_grad():
            emb = bert.embeddings
            self.word = f(emb.word_embeddings.weight)
            self.pos = f(emb.position_embeddings.weight)
            self.type0 = f(emb.token_type_embeddings.weight[0])
            self.emb_ln = (f(emb.LayerNorm.weight), f(emb.LayerNorm.bias))
            self.layers = []
            for layer in bert.encoder.layer:
                sa, so = layer.attention.self, layer.attention.output
                self.layers.append({
                    "qkv": w(torch.cat([sa.query.weight, sa.key.weight, sa.value.weight], 0)),
                    "qkv_b": w(torch.cat([sa.query.bias, sa.key.bias, sa.value.bias], 0)),
                    "o": w(so.dense.weight), "o_b": w(so.dense.bias),
                    "ln1": (f(so.LayerNorm.weight), f(so.LayerNorm.bias)),
                    "up": w(layer.intermediate.dense.weight), "up_b": w(layer.intermediate.dense.bias),
                    "down": w(layer.output.dense.weight), "down_b": w(layer.output.dense.bias),
                    "ln2": (f(layer.output.LayerNorm.weight), f(layer.output.LayerNorm.bias)),
                })
            for lw in self.layers:  # laid out once for the matrix-product kernel (see _gemm)
                for name in ("qkv", "o", "up", "down"):
                    lw[name] = _gemm.pack(lw[name])
            self.classifier = None
            if classifier:
                self.pooler = (f(bert.pooler.dense.weight), f(bert.pooler.dense.bias))
                self.classifier = (f(model.classifier.weight), f(model.classifier.bias))

    def _lin(self, x, weight, bias, *, gelu: bool = False):
        return _gemm.linear(x if x.dtype == self.dtype else x.to(self.dtype), weight, bias, gelu=gelu)

    def _ln(self, x, params):
        import torch

        return torch.nn.functional.layer_norm(x, (self.hidden,), params[0], params[1], self.eps)

    def _encode(self, rows: Sequence[Sequence[int]], *, cls_only_last: bool):
        """Hidden states after the last layer: every token ``[N, hidden]``, or each row's first token."""
        import torch
        import torch.nn.functional as F

        lens = [len(r) for r in rows]
        if min(lens) < 1:
            raise ValueError("every row needs at least one token")
        n, width = len(rows), max(lens)
        offsets = [0]
        for L in lens:
            offsets.append(offsets[-1] + L)
        ids = torch.tensor([t for r in rows for t in r], dtype=torch.long)
        positions = torch.cat([torch.arange(L) for L in lens])
        # attention runs on a padded [rows, width] layout (one call per layer); everything else stays packed
        slot = torch.arange(n).repeat_interleave(torch.tensor(lens)) * width + positions
        key_ok = (torch.arange(width)[None, :] < torch.tensor(lens)[:, None])[:, None, None, :]  # [n, 1, 1, width]
        x = self._ln(self.word[ids] + self.pos[positions] + self.type0, self.emb_ln)
        H, D, W = self.n_heads, self.head_dim, self.hidden
        first = torch.tensor(offsets[:-1])
        n_layers = len(self.layers)
        for li, lw in enumerate(self.layers):
            final = cls_only_last and li == n_layers - 1
            qkv = self._lin(x, lw["qkv"], lw["qkv_b"]).float()
            padded = qkv.new_zeros((n * width, 3 * W)).index_copy_(0, slot, qkv).view(n, width, 3, H, D)
            k, v = padded[:, :, 1].transpose(1, 2), padded[:, :, 2].transpose(1, 2)  # [n, H, width, D]
            if final:
                q = padded[:, :1, 0].transpose(1, 2)  # [n, H, 1, D]: the [CLS] query only
                attn = F.scaled_dot_product_attention(q, k, v, attn_mask=key_ok).transpose(1, 2).reshape(n, W)
                x = x[first]
            else:
                q = padded[:, :, 0].transpose(1, 2)
                o = F.scaled_dot_product_attention(q, k, v, attn_mask=key_ok)  # [n, H, width, D]
                attn = o.transpose(1, 2).reshape(n * width, W).index_select(0, slot)
            x = self._ln(x + self._lin(attn, lw["o"], lw["o_b"]).float(), lw["ln1"])
            inter = self._lin(x, lw["up"], lw["up_b"], gelu=True)
            x = self._ln(x + self._lin(inter, lw["down"], lw["down_b"]).float(), lw["ln2"])
        return x, offsets

    def logits(self, rows: Sequence[Sequence[int]]):
        """Classifier logits ``float32 [n rows, labels]`` (token ids include ``[CLS]`` and ``[SEP]``)."""
        import torch

        if self.classifier is None:
            raise ValueError("PackedBert.logits needs a sequence-classification model")
        cls, _ = self._encode(rows, cls_only_last=True)
        pooled = torch.tanh(torch.nn.functional.linear(cls, *self.pooler))
        return torch.nn.functional.linear(pooled, *self.classifier)

    def mean_pooled(self, rows: Sequence[Sequence[int]]):
        """Mean of the last hidden states over each row's tokens, ``float32 [n rows, hidden]``."""
        import torch

        x, offsets = self._encode(rows, cls_only_last=False)
        seg = torch.repeat_interleave(torch.arange(len(rows)), torch.tensor([len(r) for r in rows]))
        sums = torch.zeros((len(rows), self.hidden), dtype=torch.float32).index_add_(0, seg, x)
        return sums / torch.tensor([len(r) for r in rows], dtype=torch.float32)[:, None]
