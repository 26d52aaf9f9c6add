"""The RAG variant: MiniLM retrieval over a labelled knowledge base + a small chat LM that answers Yes/No.

Retriever: ``pipelines.variants.retrieval`` (MiniLM embeddings, top-k by cosine). Generator: the chat template of the
causal LM, with the retrieved documents and their labels as few-shot
evidence, then the query. The score is the normalised probability of the
positive answer token against the negative one at the answer position,
``P(Yes) / (P(Yes) + P(No)) = sigmoid(logit_Yes - logit_No)``. Nothing is sampled.

Speed levers (measured in ``benchmarks/bench_inference.py``): the KV cache of
the prompt prefix that every example shares (system prompt + instruction) is
computed once; prompts are batched by length, and only the hidden state of
each row's last token goes through the LM head. For Llama-architecture
generators (SmolLM2) the default engine is :class:`._llama.PackedLlama`:
prompts packed without padding, fused projections, and bf16 matrix products
where the CPU has native bf16 (``precision="auto"`` or ``"bf16"``; fp32 is the
reference and the fallback, see :mod:`._precision`). Other architectures, and
``engine="hf"``, run the transformers modules with right padding
(:mod:`._rag_forward` holds both forward passes).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from pipelines.errors import ModelError
from pipelines.variants._base import Predictions, Progress, check_scores, check_texts, no_progress
from pipelines.variants._hf import folder_path, load_causal_lm, model_identity, offline, set_threads
from pipelines.variants._precision import ENGINES, PRECISIONS, check_choice, path_record
from pipelines.variants._rag_forward import hf_answer_logits, packed_answer_logits
from pipelines.variants._rag_twins import predict_with_twins
from pipelines.variants.retrieval import Embedder, KnowledgeBase, top_k

__all__ = ["RagScorer", "RagPredictor", "PROMPT_SPLIT"]

offline()

PROMPT_SPLIT = "\x00"


# -- generator ----------------------------------------------------------------


class RagScorer:
    """Scores (query, retrieved documents) pairs with a chat LM: P(positive answer) at the answer position.

    Parameters (the speed-related ones)
    -----------------------------------
    batch_size
        Prompts per forward pass (sorted by length).
    prefix_cache
        Compute the KV cache of the prompt prefix that every example shares once.
    share_prefixes
        Packed engine: run the tokens that prompts share once (:mod:`._prefix_tree`); False: whole prompts.
    int8
        torch's dynamic int8 quantization of the Linear layers (transformers
        engine only). Fast but it moves scores by up to ~0.6: kept for
        comparison, not for audits.
    precision
        ``"fp32"`` (the reference), ``"bf16"`` (matrix products in bfloat16 on
        CPUs with native bf16; elsewhere fp32 with a warning) or ``"auto"``
        (bf16 where native, else fp32). Reduced precision runs on the packed
        engine only.
    engine
        ``"auto"``: :class:`._llama.PackedLlama` where it fits the model
        (Llama architecture), else the transformers modules; ``"packed"``: the
        same, warning where it does not fit; ``"hf"``: the transformers modules.

    The path actually taken is :attr:`path`, also in :meth:`identity`.
    """

    def __init__(self, model_dir: Path, *, system_prompt: str, instruction: str, question: str,
                 positive_answer: str = "Yes", negative_answer: str = "No", doc_max_tokens: int = 48,
                 query_max_tokens: int = 96, batch_size: int = 8, prefix_cache: bool = True, int8: bool = False,
                 prompt_style: str = "few_shot_turns", allow_pickle: bool = False,
                 num_threads: int = 2, field: str = "variants.rag.generator.model", precision: str = "fp32",
                 engine: str = "auto", share_prefixes: bool = True):
        self.model_dir = Path(model_dir)
        self.system_prompt = system_prompt
        self.instruction = instruction
        self.question = question
        self.positive_answer = positive_answer
        self.negative_answer = negative_answer
        self.doc_max_tokens = doc_max_tokens
        self.query_max_tokens = query_max_tokens
        self.batch_size = batch_size
        self.prefix_cache = prefix_cache
        self.share_prefixes = share_prefixes
        self.int8 = int8
        if prompt_style not in ("few_shot_turns", "single_turn"):
            raise ValueError(f"prompt_style must be 'few_shot_turns' or 'single_turn'. Got {prompt_style!r} instead.")
        self.prompt_style = prompt_style
        self.allow_pickle = allow_pickle
        self.num_threads = num_threads
        self.field = field
        self.precision = check_choice(precision, PRECISIONS, field="precision")
        self.engine = check_choice(engine, ENGINES, field="engine")
        if int8 and (precision == "bf16" or engine == "packed"):
            raise ValueError(f"int8 (dynamic quantization of the transformers modules) cannot be combined with "
                             f"precision {precision!r} or engine {engine!r}; use int8 with precision 'fp32'/'auto' "
                             "and engine 'auto'/'hf'.")
        self._model = None
        self._tok = None
        self._packed = None
        self._path: dict[str, Any] | None = None
        self._prefix_kv = None
        self._packed_prefix = None
        self._doc_text_memo: dict[str, str] = {}
        self._doc_part_memo: dict[tuple, tuple[str, str]] = {}

    # loading ------------------------------------------------------------------
    def _load(self):
        if self._model is None:
            set_threads(self.num_threads)
            path = self.path
            model, tok = load_causal_lm(self.model_dir, field=self.field, allow_pickle=self.allow_pickle)
            if path["runtime"] == "torch-packed":
                import torch

                from pipelines.variants._llama import PackedLlama

                dtype = torch.bfloat16 if path["precision"] == "bf16" else torch.float32
                self._packed = PackedLlama(model, matmul_dtype=dtype)
            if self.int8:
                import torch
                from torch.ao.quantization import quantize_dynamic

                model = quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
            self._model, self._tok = model, tok
            self.answer_ids = (self._answer_id(self.positive_answer), self._answer_id(self.negative_answer))
            if self.answer_ids[0] == self.answer_ids[1]:
                raise ModelError(f"generator {self.model_dir}: the answers {self.positive_answer!r} and "
                                 f"{self.negative_answer!r} start with the same token; pick answers that differ.")
            head = self._render([{"role": "user", "content": PROMPT_SPLIT}]).split(PROMPT_SPLIT)[0]
            self._prefix_text = head + (self.instruction + "\n\n" if self.prompt_style == "single_turn" else "")
            self._prefix_ids = tok(self._prefix_text, add_special_tokens=False)["input_ids"]
        return self._model, self._tok

    def _answer_id(self, answer: str) -> int:
        ids = self._tok(answer, add_special_tokens=False)["input_ids"]
        if not ids:
            raise ModelError(f"generator {self.model_dir}: the answer {answer!r} tokenizes to nothing.")
        return int(ids[0])

    def _render(self, turns: list[dict[str, str]]) -> str:
        system = self.system_prompt
        if self.prompt_style == "few_shot_turns":
            # the question is asked once, in the (cached) system prompt, not in every turn
            system = f"{system} {self.question}".strip()
        messages = [{"role": "system", "content": system}] if system else []
        return self._tok.apply_chat_template(messages + turns, tokenize=False, add_generation_prompt=True)

    @property
    def path(self) -> dict[str, Any]:
        """Which precision and runtime score: ``{"precision", "runtime", "requested", "reason", "cpu", "torch"}``.

        Decided from the folder's config and this CPU's flags (no weights are
        loaded); a request that cannot run here falls back to fp32 with a warning.
        """
        if self._path is None:
            from pipelines.variants import _llama

            path = folder_path(self.model_dir, field=self.field, allow_pickle=self.allow_pickle,
                               where=f"generator {self.model_dir}", precision=self.precision, engine=self.engine,
                               supports=_llama.supports)
            self._path = path_record(precision="int8-dynamic", runtime="transformers", requested="int8",
                                     reason="int8: torch dynamic quantization of the Linear layers") if self.int8 else path
        return dict(self._path)

    def identity(self) -> dict[str, Any]:
        return {**model_identity(self.model_dir, kind="causal_lm"), "path": self.path}

    # prompts ------------------------------------------------------------------
    def _short(self, text: str, limit: int) -> tuple[str, bool]:
        ids = self._tok(text, add_special_tokens=False)["input_ids"]
        if len(ids) <= limit:
            return text, False
        return self._tok.decode(ids[:limit], skip_special_tokens=True).strip() + " ...", True

    def _doc_text(self, text: str) -> str:
        if text not in self._doc_text_memo:
            self._doc_text_memo[text] = self._short(" ".join(text.split()), self.doc_max_tokens)[0]
        return self._doc_text_memo[text]

    def _label(self, label: Any) -> str | None:
        if label is None or (isinstance(label, float) and np.isnan(label)):
            return None
        return self.positive_answer if int(label) == 1 else self.negative_answer

    def _turns(self, q: str, docs: Sequence[tuple[str, Any]]) -> list[dict[str, str]]:
        if self.prompt_style == "few_shot_turns":
            # each labelled document is a solved example: a user turn and the assistant's answer
            turns, context = [], []
            for text, label in docs:
                answer = self._label(label)
                if answer is None:
                    context.append(f"Related comment: {self._doc_text(text)}")
                    continue
                turns += [{"role": "user", "content": f"Comment: {self._doc_text(text)}"},
                          {"role": "assistant", "content": answer}]
            final = "\n".join(context) + ("\n\n" if context else "") + f"Comment: {q}"
            return turns + [{"role": "user", "content": final}]
        lines = []
        for i, (text, label) in enumerate(docs, 1):
            lines.append(f"Example {i}: {self._doc_text(text)}")
            answer = self._label(label)
            if answer is not None:
                lines.append(f"Label: {answer}")
        body = "\n".join(lines) + ("\n\n" if lines else "") + f"Comment: {q}\n{self.question}"
        return [{"role": "user", "content": self.instruction + "\n\n" + body}]

    def parts(self, query: str, docs: Sequence[tuple[str, Any]]) -> tuple[str, str, bool]:
        """``(document part, query part, query cut)``: prompt = shared prefix + document part + query part.

        The document part depends only on the documents, so an example and its
        ``query_only`` twins share it (and its KV cache). The parts are always
        tokenized separately, so that every path sees the same token ids.
        """
        self._load()
        key = tuple((t, self._label(lab)) for t, lab in docs)
        if key not in self._doc_part_memo:
            marker = "Comment: " + PROMPT_SPLIT
            full = self._render(self._turns(PROMPT_SPLIT, docs))
            if not full.startswith(self._prefix_text) or full.count(marker) != 1:
                raise ModelError(f"generator {self.model_dir}: the chat template does not render the shared prompt "
                                 "prefix the same way for every example; set `variants.rag.generator.prefix_cache: "
                                 "false`.")
            head, tail = full.split(marker)
            self._doc_part_memo[key] = (head[len(self._prefix_text):], tail)
        doc_part, tail = self._doc_part_memo[key]
        q, cut = self._short(" ".join(query.split()), self.query_max_tokens)
        return doc_part, "Comment: " + q + tail, cut

    def suffix(self, query: str, docs: Sequence[tuple[str, Any]]) -> tuple[str, bool]:
        """The per-example part of the prompt (everything after the shared prefix) and whether the query was cut."""
        doc_part, query_part, cut = self.parts(query, docs)
        return doc_part + query_part, cut

    def prompt(self, query: str, docs: Sequence[tuple[str, Any]]) -> str:
        """The full prompt text (what a naive per-example ``generate()`` would see)."""
        self._load()
        return self._prefix_text + self.suffix(query, docs)[0]

    def prompt_ids(self, query: str, docs: Sequence[tuple[str, Any]]) -> list[int]:
        """Token ids of the full prompt: prefix ids + document-part ids + query-part ids (tokenized separately)."""
        _, tok = self._load()
        doc_part, query_part, _ = self.parts(query, docs)
        return list(self._prefix_ids) + self._ids(doc_part) + self._ids(query_part)

    def _ids(self, text: str) -> list[int]:
        return list(self._tok(text, add_special_tokens=False)["input_ids"]) if text else []

    # scoring ------------------------------------------------------------------
    def answer_logits(self, queries: Sequence[str], doc_lists: Sequence[Sequence[tuple[str, Any]]], *,
                      progress: Progress = no_progress, desc: str = "rag: scoring") -> tuple[np.ndarray, np.ndarray]:
        """``(logits [n, 2] of (positive, negative) answer tokens, query truncated flags [n])``."""
        out, cuts, _, _, _ = self.answer_logits_with_followers(queries, doc_lists, followers=None, progress=progress,
                                                               desc=desc)
        return out, cuts

    def answer_logits_with_followers(
        self, queries: Sequence[str], doc_lists: Sequence[Sequence[tuple[str, Any]]], *,
        followers: Sequence[Sequence[str]] | None, progress: Progress = no_progress, desc: str = "rag: scoring",
        seconds_out: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray], list[np.ndarray], float]:
        """:meth:`answer_logits`, plus the logits of follower queries.

        ``followers[i]``: more queries that share ``doc_lists[i]`` (``query_only``
        twins). Their prompts reuse the KV cache of query ``i``'s prefix and
        document part, so only their query part is computed. Returns ``(logits,
        cuts, follower logits [m_i, 2] per query, follower cuts per query,
        seconds spent on followers)``; ``seconds_out`` [n] gets each query's share of the
        rest (shared tokens charged to the first query). Runs on the path of :attr:`path`.
        """
        self._load()
        if self._packed is not None:
            return packed_answer_logits(self, self._packed, queries, doc_lists, followers=followers,
                                        progress=progress, desc=desc, seconds_out=seconds_out)
        return hf_answer_logits(self, queries, doc_lists, followers=followers, progress=progress, desc=desc,
                                seconds_out=seconds_out)

    @staticmethod
    def _to_scores(logits: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore"):
            return 1.0 / (1.0 + np.exp(-(logits[:, 0] - logits[:, 1])))

    def score(self, queries: Sequence[str], doc_lists: Sequence[Sequence[tuple[str, Any]]], *,
              progress: Progress = no_progress, desc: str = "rag: scoring") -> tuple[np.ndarray, np.ndarray]:
        logits, cuts = self.answer_logits(queries, doc_lists, progress=progress, desc=desc)
        return self._to_scores(logits), cuts


class RagPredictor:
    """Retrieval over a knowledge base + :class:`RagScorer`, behind the one predictor interface."""

    kind = "rag"

    def __init__(self, *, embedder: Embedder, kb: KnowledgeBase, scorer: RagScorer, k: int = 4, name: str = "rag",
                 kb_dir: Path | None = None):
        import pandas as pd

        self.name = name
        self.embedder = embedder
        self.kb = kb
        self.scorer = scorer
        self.k = k
        self.kb_dir = kb_dir
        self._doc_texts = list(kb.docs["text"])
        self._doc_labels = [None if pd.isna(v) else int(v) for v in kb.docs["doc_label"].tolist()]
        self._doc_ids = [str(v) for v in kb.docs["doc_id"]]

    def identity(self) -> dict[str, Any]:
        emb = model_identity(self.embedder.model_dir, kind="embedder")
        gen = self.scorer.identity()
        out = {
            "kind": self.kind,
            "model_dir": str(self.scorer.model_dir),
            "weights_sha256": gen["weights_sha256"],
            "config_sha256": gen["config_sha256"],
            "embedder": {**emb, "path": self.embedder.path},
            "generator": gen,
            "path": gen["path"],
            "k": self.k,
            "knowledge_base_docs": int(len(self._doc_ids)),
        }
        if self.kb_dir is not None:
            out["knowledge_base_dir"] = str(self.kb_dir)
            entry = Path(self.kb_dir) / "_entry.json"
            if entry.is_file():
                out["knowledge_base_key"] = json.loads(entry.read_text(encoding="utf-8")).get("key")
        return out

    @property
    def path(self) -> dict[str, Any]:
        """The generator's path (precision, runtime): what decides the scores. The embedder is always fp32."""
        return self.scorer.path

    def retrieve(self, texts: Sequence[str], *, progress: Progress = no_progress) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(doc indices [n, k], cosine similarities [n, k], query truncated [n])``."""
        emb, truncated = self.embedder.embed(texts, progress=progress, desc=f"{self.name}: embedding queries")
        idx, sims = top_k(emb, self.kb.embeddings, self.k)
        return idx, sims, truncated

    def _docs(self, doc_index: np.ndarray) -> list[list[tuple[str, Any]]]:
        return [[(self._doc_texts[j], self._doc_labels[j]) for j in row] for row in doc_index]

    def _extras(self, idx: np.ndarray, sims: np.ndarray) -> dict[str, list[Any]]:
        return {
            "retrieved_ids": [[self._doc_ids[j] for j in row] for row in idx],
            "retrieved_similarities": [[float(v) for v in row] for row in sims],
            "retrieved_index": [row.tolist() for row in idx],
        }

    def score_with_docs(self, texts: Sequence[str], doc_index: np.ndarray, *, progress: Progress = no_progress,
                        desc: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        return self.scorer.score(texts, self._docs(doc_index), progress=progress, desc=desc or f"{self.name}: scoring")

    def predict_with_twins(self, texts: Sequence[str], twin_texts: Sequence[str], twin_rows: Sequence[int], *,
                           progress: Progress = no_progress) -> tuple[Predictions, Predictions, Predictions, dict]:
        """The texts and both modes of their twins (``twin_texts[j]`` of ``texts[twin_rows[j]]``) in one pass.

        Returns ``(predictions, query_only, full, info)``; see :func:`._rag_twins.predict_with_twins`.
        """
        return predict_with_twins(self, texts, twin_texts, twin_rows, progress=progress)

    def predict_with_retrieval_of(self, texts: Sequence[str], queries: Sequence[str], *,
                                  progress: Progress = no_progress) -> Predictions:
        """Score ``texts[i]`` with the documents retrieved for ``queries[i]``.

        The ``query_only`` twin mode without the shared KV cache: a twin is scored
        with its original's documents. Used where originals and twins are scored
        apart (Beam workers); equal to :meth:`predict_with_twins`' ``query_only``
        scores up to float rounding.
        """
        texts = check_texts(texts, where=f"variant `{self.name}` input")
        queries = check_texts(queries, where=f"variant `{self.name}` retrieval queries")
        if len(texts) != len(queries):
            raise ModelError(f"variant `{self.name}`: {len(texts)} texts but {len(queries)} retrieval queries; "
                             "expected one query per text.")
        if not texts:
            return self.predict(texts)
        idx, sims, _ = self.retrieve(queries, progress=progress)
        scores, cut_prompt = self.score_with_docs(texts, idx, progress=progress)
        scores = check_scores(scores, variant=self.name, where=f"{len(texts)} texts")
        return Predictions(scores=scores, truncated=cut_prompt, extras=self._extras(idx, sims))

    def predict(self, texts: Sequence[str], *, progress: Progress = no_progress) -> Predictions:
        texts = check_texts(texts, where=f"variant `{self.name}` input")
        if not texts:
            return Predictions(np.zeros(0), np.zeros(0, dtype=bool),
                               {"retrieved_ids": [], "retrieved_similarities": [], "retrieved_index": []})
        idx, sims, cut_embed = self.retrieve(texts, progress=progress)
        scores, cut_prompt = self.score_with_docs(texts, idx, progress=progress)
        scores = check_scores(scores, variant=self.name, where=f"{len(texts)} texts")
        return Predictions(scores=scores, truncated=cut_embed | cut_prompt, extras=self._extras(idx, sims))
