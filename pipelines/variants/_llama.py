"""A lean forward pass for Llama-architecture chat LMs (SmolLM2), for scoring prompts on a CPU.

:class:`PackedLlama` takes the weights of a transformers ``LlamaForCausalLM``
and computes the same function with fewer passes over memory:

* rows are packed end to end (no padding tokens in any matrix product);
  attention runs per row, on that row's keys and values only;
* the query, key and value projections are one matrix product; the gate and
  up projections, SiLU and their product run through :func:`._gemm.gated`
  (two oneDNN products with SiLU and the multiplication fused in); every
  weight is laid out once for the kernel (:func:`._gemm.pack`); RMSNorm is
  ``torch.nn.functional.rms_norm``;
* rotary embeddings are one complex multiplication: the rows of the query and
  key weights are permuted within each head so that the two halves that
  ``rotate_half`` pairs sit next to each other. Queries and keys are permuted
  alike, so every attention score is unchanged;
* the last layer runs its query, attention output and MLP for each row's last
  token only, and the LM head is applied to the asked-for token ids only.

With ``matmul_dtype=torch.bfloat16`` the MLP's matrix products (gate/up and
down: two thirds of the FLOPs) take bfloat16 weights and inputs, while the
attention block (the query/key/value and output projections), the residual
stream, the norms, the rotary embeddings and attention stay in float32. That
keeps the error of a bf16 path far below a model cast wholly to bf16 (whose
residual stream is rounded after every layer); it is only fast on CPUs with
native bf16 instructions (AVX512_BF16, AMX), see :mod:`._precision`.

Why the attention block stays in float32 (:data:`FP32_MATRICES`): attention
scores are exponentiated, so rounding queries and keys moves the answer more
than rounding any other product. Measured on the demo's RAG prompts
(SmolLM2-135M, eval comments, AMD Zen 5, 2 threads), largest score change
against the fp32 path and speed relative to it: every product in bf16, 0.024
on 200 comments at 2.30x; query/key/value in fp32, 0.015 on those 200 but
0.024 on 600 others at 1.97x; the whole attention block in fp32, 0.015 on the
600 (99th percentile 0.012, AUC change 0.0001) at 1.87x. Keeping the down
projection or the first or last layers in fp32 instead did not bring the
largest change under 0.02.

Keys and values are returned per row and layer, so a later call can continue
a row from any cut of its prompt (the RAG scorer's shared system prefix and
the ``query_only`` twins that reuse their original's documents).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from pipelines.variants import _gemm

__all__ = ["PackedLlama", "RowCache", "supports", "FP32_MATRICES"]

#: Matrix products that stay in float32 when ``matmul_dtype`` is bfloat16 (see the module docstring).
FP32_MATRICES = ("qkv", "o")

_ROPE_TYPES = ("default", "linear", "llama3")


def supports(cfg: Any) -> tuple[bool, str]:
    """Whether :class:`PackedLlama` computes the same function as a model with config ``cfg``, and why not."""
    if getattr(cfg, "model_type", None) != "llama":
        return False, f"model type {getattr(cfg, 'model_type', None)!r} is not 'llama'"
    checks = {
        "attention_bias": not getattr(cfg, "attention_bias", False),
        "mlp_bias": not getattr(cfg, "mlp_bias", False),
        "hidden_act": getattr(cfg, "hidden_act", "silu") == "silu",
        "pretraining_tp": getattr(cfg, "pretraining_tp", 1) == 1,
    }
    rope = getattr(cfg, "rope_parameters", None) or getattr(cfg, "rope_scaling", None) or {}
    checks["rope_type"] = rope.get("rope_type", rope.get("type", "default")) in _ROPE_TYPES
    bad = [k for k, ok in checks.items() if not ok]
    if bad:
        return False, "unsupported config: " + ", ".join(bad)
    return True, ""


@dataclass
class RowCache:
    """Keys and values of one row for every layer: ``keys[l]``, ``values[l]`` are ``[kv_heads, length, head_dim]``."""

    keys: list[Any]
    values: list[Any]

    @property
    def length(self) -> int:
        return int(self.keys[0].shape[1]) if self.keys else 0

    def cut(self, length: int) -> "RowCache":
        """The first ``length`` positions (views, no copy)."""
        return RowCache([k[:, :length] for k in self.keys], [v[:, :length] for v in self.values])


class PackedLlama:
    """The forward pass of a ``LlamaForCausalLM`` over packed rows; see the module docstring.

    Parameters
    ----------
    model
        A loaded ``LlamaForCausalLM`` (float32). Its weights are copied
        (permuted, concatenated, cast); the module itself is not kept.
    matmul_dtype
        ``torch.float32`` (the reference) or ``torch.bfloat16``.
    """

    def __init__(self, model: Any, *, matmul_dtype: Any = None):
        import torch

        ok, why = supports(model.config)
        inner = getattr(model, "model", None)
        if ok and (inner is None or not hasattr(inner, "layers") or not hasattr(inner, "rotary_emb")):
            ok, why = False, "not a LlamaForCausalLM module layout"
        if not ok:
            raise ValueError(f"PackedLlama cannot run this model: {why}")
        cfg = model.config
        self.dtype = matmul_dtype or torch.float32
        self.n_heads = cfg.num_attention_heads
        self.n_kv = cfg.num_key_value_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.hidden = cfg.hidden_size
        self.eps = float(cfg.rms_norm_eps)
        perm = torch.cat([torch.stack([torch.arange(self.head_dim // 2),
                                       torch.arange(self.head_dim // 2) + self.head_dim // 2], 1).reshape(-1)
                          + h * self.head_dim for h in range(max(self.n_heads, self.n_kv))])
        q_perm, k_perm = perm[: self.n_heads * self.head_dim], perm[: self.n_kv * self.head_dim]

        def w(t, name):
            return t.detach().to(torch.float32 if name in FP32_MATRICES else self.dtype).contiguous()

        self.layers = []
        with torch.no_grad():
            for li, layer in enumerate(inner.layers):
                at, mlp = layer.self_attn, layer.mlp
                qkv = torch.cat([at.q_proj.weight[q_perm], at.k_proj.weight[k_perm], at.v_proj.weight], 0)
                self.layers.append({
                    "norm_in": layer.input_layernorm.weight.detach().float().contiguous(),
                    "norm_post": layer.post_attention_layernorm.weight.detach().float().contiguous(),
                    "qkv": w(qkv, "qkv"),
                    "o": w(at.o_proj.weight, "o"),
                    "gate_up": _gemm.Gated(w(mlp.gate_proj.weight, "gate_up"), w(mlp.up_proj.weight, "gate_up")),
                    "down": w(mlp.down_proj.weight, "down"),
                })
            # the last layer projects queries for each row's last token only
            q_rows = self.n_heads * self.head_dim
            self.layers[-1]["q"] = self.layers[-1]["qkv"][:q_rows].contiguous()
            self.layers[-1]["kv"] = self.layers[-1]["qkv"][q_rows:].contiguous()
            for lw in self.layers:  # laid out once for the matrix-product kernel (see _gemm)
                for name in ("qkv", "o", "down", "q", "kv"):
                    if name in lw:
                        lw[name] = _gemm.pack(lw[name])
            self.embed = inner.embed_tokens.weight.detach().float()
            self.norm = inner.norm.weight.detach().float().contiguous()
            self.head = model.get_output_embeddings().weight.detach().float()
            rot = inner.rotary_emb
            self.inv_freq = rot.inv_freq.detach().float().clone()
            self.rope_scale = float(getattr(rot, "attention_scaling", 1.0))
        self._freqs = None

    # helpers ------------------------------------------------------------------
    def _rope(self, positions):
        """Complex rotations ``[n, head_dim / 2]`` for the given positions."""
        import torch

        need = int(positions.max()) + 1
        if self._freqs is None or self._freqs.shape[0] < need:
            n = max(need, 512)
            ang = torch.arange(n, dtype=torch.float32)[:, None] * self.inv_freq[None, :]
            self._freqs = torch.polar(torch.full_like(ang, self.rope_scale), ang)
        return self._freqs[positions]

    @staticmethod
    def _mm(x, weight):
        return _gemm.linear(x if x.dtype == weight.dtype else x.to(weight.dtype), weight)

    def _rotate(self, t, freqs, heads: int):
        """Rotary embedding of projected queries or keys ``t`` [n, heads * head_dim] (rows of ``freqs``): fp32."""
        import torch

        pairs = torch.view_as_complex(t.float().reshape(-1, heads, self.head_dim // 2, 2))
        return torch.view_as_real(pairs * freqs).reshape(-1, heads, self.head_dim)

    def _mlp(self, x, lw):
        """``x`` plus the layer's MLP of its post-attention norm (SiLU and the gate product: :func:`._gemm.gated`)."""
        import torch.nn.functional as F

        h = F.rms_norm(x, (self.hidden,), lw["norm_post"], self.eps)
        gate_up = lw["gate_up"]
        # SiLU and the gate product fused into the products (oneDNN), or in fp32: rounding the gate and up
        # products to bf16 before them made the mean score error ~1.4x larger
        return x + self._mm(_gemm.gated(h if h.dtype == gate_up.dtype else h.to(gate_up.dtype), gate_up),
                            lw["down"]).float()

    def _attend(self, q, k, v, mask):
        """Attention of one row: queries ``q`` [H, T, D], keys/values [KV, S, D], additive ``mask`` or None.

        ``mask`` is [group * T, S]: a [T, S] mask repeated once per query head that
        shares a key/value head (``group = H / KV``), as ``forward`` caches it.

        Returns [T, H, D]. Three batched products and a softmax, fp32: on rows of ~200
        positions this took 0.66 ms per layer where ``scaled_dot_product_attention``'s
        flash kernel took 1.09 ms (AMD Zen 5, 2 threads), with the same results to 5e-7.
        The query heads that share a key/value head are stacked into one matrix
        ([KV, group * T, D]) instead of copying keys and values per query head: on
        the short rows that continue a long cache (prefix trees, twins) the copies
        cost more than the products.
        """
        import torch

        H, T, D = q.shape
        kv_heads, S = k.shape[0], k.shape[1]
        group = H // kv_heads
        qg = q.reshape(kv_heads, group * T, D)  # query head h = kv * group + g uses key/value head kv
        scale = D ** -0.5
        if mask is None:
            scores = torch.bmm(qg, k.transpose(1, 2)).mul_(scale)
        else:
            scores = torch.baddbmm(mask.expand(kv_heads, group * T, S), qg, k.transpose(1, 2), alpha=scale)
        return torch.bmm(torch.softmax(scores, -1), v).reshape(H, T, D).transpose(0, 1)

    # forward ------------------------------------------------------------------
    def forward(self, rows: Sequence[Sequence[int]], *, past: Sequence[RowCache | None] | None = None,
                keep: Sequence[int | None] | None = None, token_ids: Sequence[int] | None):
        """Hidden state of each row's last token, turned into logits of ``token_ids``.

        Parameters
        ----------
        rows
            Token ids of each row (at least one each), continuing ``past[i]``.
        past
            Per row, keys and values of the positions before it (or None).
            Rows may share one cache object.
        keep
            Per row, return the row's keys and values (past + this call) cut to
            this many positions (None: return nothing for the row).
        token_ids
            The vocabulary ids whose logits are returned (None: the whole vocabulary).

        Returns
        -------
        (logits float32 [n rows, len(token_ids)], list of RowCache or None per row)
        """
        import torch
        import torch.nn.functional as F

        n = len(rows)
        past = list(past) if past is not None else [None] * n
        keep = list(keep) if keep is not None else [None] * n
        lens = [len(r) for r in rows]
        if min(lens) < 1:
            raise ValueError("every row needs at least one token")
        starts = [p.length if p is not None else 0 for p in past]
        offsets = [0]
        for L in lens:
            offsets.append(offsets[-1] + L)
        total = offsets[-1]
        ids = torch.tensor([t for r in rows for t in r], dtype=torch.long)
        positions = torch.cat([torch.arange(s, s + L) for s, L in zip(starts, lens)])
        freqs = self._rope(positions)[:, None, :]  # [N, 1, hd/2]
        last = torch.tensor([o - 1 for o in offsets[1:]])
        x = self.embed[ids]  # [N, hidden] fp32
        H, KV, D = self.n_heads, self.n_kv, self.head_dim
        q_width, kv_width = H * D, KV * D
        kept_k: list[list[Any]] = [[] for _ in range(n)]
        kept_v: list[list[Any]] = [[] for _ in range(n)]
        masks: dict[tuple[int, int], Any] = {}

        def mask(t: int, p: int):
            """Additive causal mask [t, p + t] of t new positions after p cached ones, repeated per query head group."""
            if (t, p) not in masks:
                allowed = torch.arange(p + t)[None, :] <= (torch.arange(t)[:, None] + p)
                group = self.n_heads // self.n_kv  # stacked as _attend stacks a key/value head's query heads
                masks[(t, p)] = torch.zeros(allowed.shape).masked_fill_(~allowed, float("-inf")).repeat(group, 1)
            return masks[(t, p)]

        n_layers = len(self.layers)
        for li, lw in enumerate(self.layers):
            final = li == n_layers - 1
            h = F.rms_norm(x, (self.hidden,), lw["norm_in"], self.eps)
            if final:
                kv = self._mm(h, lw["kv"])
                q_in = self._mm(h[last], lw["q"])
                k_raw, v_raw = kv[:, :kv_width], kv[:, kv_width:]
            else:
                qkv = self._mm(h, lw["qkv"])
                q_in, k_raw, v_raw = qkv[:, :q_width], qkv[:, q_width : q_width + kv_width], qkv[:, q_width + kv_width :]
            k = self._rotate(k_raw, freqs, KV)
            v = v_raw.float().reshape(total, KV, D)
            q = self._rotate(q_in, freqs[last] if final else freqs, H)
            attn = torch.empty((n if final else total, H, D), dtype=torch.float32)
            for i in range(n):
                s, e = offsets[i], offsets[i + 1]
                k_i, v_i = k[s:e].transpose(0, 1), v[s:e].transpose(0, 1)  # [KV, T, D]
                p = past[i]
                if p is not None and p.length:
                    k_i = torch.cat([p.keys[li], k_i], 1)
                    v_i = torch.cat([p.values[li], v_i], 1)
                if keep[i] is not None:
                    kept_k[i].append(k_i[:, : keep[i]])
                    kept_v[i].append(v_i[:, : keep[i]])
                if final:  # the row's last token attends to every position
                    attn[i] = self._attend(q[i : i + 1].transpose(0, 1), k_i, v_i, None)[0]
                else:
                    attn[s:e] = self._attend(q[s:e].transpose(0, 1), k_i, v_i, mask(e - s, starts[i]))
            if final:
                x = x[last]
            x = x + self._mm(attn.reshape(-1, q_width), lw["o"]).float()
            x = self._mlp(x, lw)
        h = F.rms_norm(x, (self.hidden,), self.norm, self.eps)
        logits = h @ (self.head if token_ids is None else self.head[list(token_ids)]).T
        caches = [RowCache(kept_k[i], kept_v[i]) if keep[i] is not None else None for i in range(n)]
        return logits, caches

    def greedy(self, prompts: Sequence[Sequence[int]], *, max_new_tokens: int, eos: int) -> list[list[int]]:
        """Greedy continuations of ``prompts`` (token ids), each up to ``eos`` (not included) or ``max_new_tokens``.

        The prompts run packed in one :meth:`forward`; their keys and values are
        copied once into per-layer buffers ``[rows, kv_heads, longest + max_new_tokens,
        head_dim]``, and each step then runs one token for every row of the batch
        (rows that have finished too: their tokens are ignored; most answers run to
        the limit) with one attention call per layer, masked to each row's length,
        writing its key and value in place. The argmax is over the whole
        vocabulary's logits in float32, as ``generate(do_sample=False)`` takes it.
        """
        import torch
        import torch.nn.functional as F

        out: list[list[int]] = [[] for _ in prompts]
        if max_new_tokens < 1 or not prompts:
            return out
        n = len(prompts)
        logits, caches = self.forward(prompts, keep=[len(p) for p in prompts], token_ids=None)
        H, KV, D = self.n_heads, self.n_kv, self.head_dim
        lens = torch.tensor([len(p) for p in prompts])
        width = int(lens.max()) + max_new_tokens
        keys, values = [], []
        for li in range(len(self.layers)):
            k = torch.zeros((n, KV, width, D))
            v = torch.zeros((n, KV, width, D))
            for r, c in enumerate(caches):
                k[r, :, : c.length] = c.keys[li]
                v[r, :, : c.length] = c.values[li]
            keys.append(k)
            values.append(v)
        del caches
        rows = torch.arange(n)
        done = torch.zeros(n, dtype=torch.bool)
        nxt = torch.argmax(logits, dim=-1)
        for step in range(max_new_tokens):
            for r in torch.nonzero(~done & (nxt != eos)).flatten().tolist():
                out[r].append(int(nxt[r]))
            done |= nxt == eos
            if bool(done.all()) or step == max_new_tokens - 1:
                return out
            pos = lens + step  # where this step's token sits in each row
            freqs = self._rope(pos)[:, None, :]
            valid = (torch.arange(width)[None, :] <= pos[:, None])[:, None, None, :]  # [n, 1, 1, width]
            x = self.embed[nxt]
            for li, lw in enumerate(self.layers):
                h = F.rms_norm(x, (self.hidden,), lw["norm_in"], self.eps)
                qkv = self._mm(h, lw["qkv"]).float()
                q = self._rotate(qkv[:, : H * D], freqs, H)
                keys[li][rows, :, pos] = self._rotate(qkv[:, H * D : (H + KV) * D], freqs, KV)
                values[li][rows, :, pos] = qkv[:, (H + KV) * D :].reshape(n, KV, D)
                o = F.scaled_dot_product_attention(q.reshape(n, H, 1, D), keys[li], values[li], attn_mask=valid,
                                                   enable_gqa=True)
                x = x + self._mm(o.reshape(n, H * D), lw["o"]).float()
                x = self._mlp(x, lw)
            h = F.rms_norm(x, (self.hidden,), self.norm, self.eps)
            nxt = torch.argmax(h @ self.head.T, dim=-1)
            nxt = torch.where(done, torch.full_like(nxt, eos), nxt)
        return out
