"""Short answers from a variant's generator: greedy, bounded, batched, reusing keys and values at every step.

A kind that can generate text returns an :class:`AnswerWriter` from
:meth:`~pipelines.variants.VariantKind.generator` (the RAG kind: its generator, with
its retriever and knowledge base as a :class:`Retrieval`); other kinds return None.

Each :class:`AnswerRequest` becomes one chat turn: the retrieved documents (if any,
one ``Related comment:`` line each, cut to ``doc_max_tokens``), the instruction, and
the text (cut to ``query_max_tokens``), rendered with the generator's chat template.
Identical prompts are generated once (an original's answer is the same in the ``rag``
and ``rag_query_only`` conditions; so is a twin whose retrieval did not change).
Prompts are sorted by length and batched; decoding is greedy (no sampling: the same
prompt gives the same answer) and stops at the end of the turn or after
``max_new_tokens`` tokens. On the packed engine (Llama architectures) a batch's
prompts run packed without padding and each step runs one token per unfinished
answer; elsewhere transformers' ``generate`` runs with left padding.

Batching changes the padding a prompt sees (transformers) or the rows it is packed
with, and with them the last bits of floating-point sums, so an answer can differ
from the one-at-a-time answer where two next tokens are almost tied;
``tests/variants/test_generation.py`` measures this.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from pipelines.errors import ModelError
from pipelines.variants._base import Progress, check_texts, no_progress
from pipelines.variants._hf import folder_path, load_causal_lm, offline, set_threads
from pipelines.variants._precision import ENGINES, PRECISIONS, check_choice

__all__ = ["AnswerRequest", "Answers", "AnswerWriter", "Retrieval", "PRECISIONS"]

MSG_NO_RETRIEVAL = "generator {model}: request {index} has documents to retrieve, but the writer has no retriever."


@dataclass(frozen=True)
class AnswerRequest:
    """One prompt: ``instruction``, then ``label`` + ``text``; ``docs``: documents shown before them."""

    text: str
    instruction: str
    label: str = ""
    docs: tuple[str, ...] = ()


@dataclass
class Answers:
    """Answers in request order, with what it cost."""

    texts: list[str]
    new_tokens: np.ndarray
    hit_limit: np.ndarray
    prompt_cut: np.ndarray
    prompts_generated: int
    seconds: float
    batches: int = 0
    prompt_tokens: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


class Retrieval:
    """Top-``k`` documents of a knowledge base for each text (the RAG variant's own retriever).

    ``embedder`` has ``embed(texts, progress=..., desc=...) -> (vectors, truncated)`` with
    L2-normalised rows; ``kb`` has ``docs`` (with ``doc_id`` and ``text``) and ``embeddings``.
    """

    def __init__(self, *, embedder: Any, kb: Any, k: int):
        self.embedder = embedder
        self.kb = kb
        self.k = int(k)

    def embed(self, texts: Sequence[str], *, progress: Progress = no_progress) -> np.ndarray:
        """Sentence embeddings of ``texts`` (the retriever's encoder; rows L2-normalised)."""
        vectors, _ = self.embedder.embed(list(texts), progress=progress, desc="generation: embedding")
        return np.asarray(vectors, dtype=np.float64)

    def retrieve(self, texts: Sequence[str], *, progress: Progress = no_progress) -> tuple[list[list[str]],
                                                                                            list[list[str]]]:
        """``(document texts, document ids)`` of the top ``k`` per text, most similar first."""
        from pipelines.variants.retrieval import top_k

        if not texts:
            return [], []
        vectors, _ = self.embedder.embed(list(texts), progress=progress, desc="generation: retrieving")
        index, _ = top_k(np.asarray(vectors), self.kb.embeddings, self.k)
        doc_texts = self.kb.docs["text"].astype(str).tolist()
        doc_ids = self.kb.docs["doc_id"].astype(str).tolist()
        return ([[doc_texts[j] for j in row] for row in index], [[doc_ids[j] for j in row] for row in index])


class AnswerWriter:
    """Greedy answers from a causal LM folder (safetensors, with a chat template).

    Parameters
    ----------
    model_dir
        The generator folder (the RAG build entry's ``model_dir``).
    max_new_tokens, batch_size
        Bound on each answer's length; prompts per ``generate`` call.
    precision
        ``fp32`` (the reference), ``bf16`` (the MLP's matrix products in
        bfloat16, on CPUs with native bf16; elsewhere fp32 with a warning) or
        ``auto`` (bf16 where native). Reduced precision runs on the packed engine.
    engine
        ``auto``: :class:`._llama.PackedLlama` where it fits the model (Llama
        architecture): prompts packed without padding, then one token per
        unfinished answer per step on its own keys and values; ``hf``: the
        transformers ``generate`` with left padding. The path taken is :attr:`path`.
    system_prompt
        A system turn before each prompt; None leaves the chat template's default.
    doc_max_tokens, query_max_tokens
        Each document and each text is cut to this many tokens (`` ...`` marks a cut).
    retrieval
        The variant's retriever, for the conditions with documents (None: generator only).
    """

    def __init__(self, model_dir: Path, *, max_new_tokens: int = 32, batch_size: int = 8, precision: str = "fp32",
                 system_prompt: str | None = None, doc_max_tokens: int = 48, query_max_tokens: int = 96,
                 retrieval: Retrieval | None = None, allow_pickle: bool = False, num_threads: int = 2,
                 field: str = "variants.rag.generator.model", engine: str = "auto"):
        check_choice(precision, PRECISIONS, field="generation precision")
        self.engine = check_choice(engine, ENGINES, field="generation engine")
        self.model_dir = Path(model_dir)
        self.max_new_tokens = int(max_new_tokens)
        self.batch_size = int(batch_size)
        self.precision = precision
        self.system_prompt = system_prompt
        self.doc_max_tokens = int(doc_max_tokens)
        self.query_max_tokens = int(query_max_tokens)
        self.retrieval = retrieval
        self.allow_pickle = allow_pickle
        self.num_threads = num_threads
        self.field = field
        self._model = None
        self._tok = None
        self._packed = None
        self._path: dict[str, Any] | None = None
        self._cut_memo: dict[tuple[str, int], tuple[str, bool]] = {}

    def _load(self):
        if self._model is None:
            offline()
            set_threads(self.num_threads)
            model, tok = load_causal_lm(self.model_dir, field=self.field, allow_pickle=self.allow_pickle)
            if self.path["runtime"] == "torch-packed":
                import torch

                from pipelines.variants._llama import PackedLlama

                dtype = torch.bfloat16 if self.path["precision"] == "bf16" else torch.float32
                self._packed = PackedLlama(model, matmul_dtype=dtype)
            tok.padding_side = "left"
            if tok.pad_token_id is None:
                tok.pad_token = tok.eos_token
            if tok.eos_token_id is None:
                raise ModelError(f"generator {self.model_dir}: the tokenizer has no end-of-turn (eos) token, so an "
                                 "answer could not stop before max_new_tokens.")
            self._model, self._tok = model, tok
        return self._model, self._tok

    @property
    def path(self) -> dict[str, Any]:
        """Which precision and runtime write the answers (decided from the folder's config and this CPU)."""
        if self._path is None:
            from pipelines.variants import _llama

            self._path = folder_path(self.model_dir, field=self.field, allow_pickle=self.allow_pickle,
                                     where=f"generator {self.model_dir}", precision=self.precision,
                                     engine=self.engine, supports=_llama.supports)
        return dict(self._path)

    def _cut(self, text: str, limit: int) -> tuple[str, bool]:
        key = (text, limit)
        if key not in self._cut_memo:
            clean = " ".join(text.split())
            ids = self._tok(clean, add_special_tokens=False)["input_ids"]
            self._cut_memo[key] = ((clean, False) if len(ids) <= limit else
                                   (self._tok.decode(ids[:limit], skip_special_tokens=True).strip() + " ...", True))
        return self._cut_memo[key]

    def render(self, request: AnswerRequest) -> tuple[str, bool]:
        """The prompt text of one request (chat template applied) and whether anything in it was cut."""
        self._load()
        cut_any = False
        lines = []
        for doc in request.docs:
            text, cut = self._cut(doc, self.doc_max_tokens)
            cut_any |= cut
            lines.append(f"Related comment: {text}")
        text, cut = self._cut(request.text, self.query_max_tokens)
        cut_any |= cut
        body = ("\n".join(lines) + "\n\n" if lines else "") + f"{request.instruction}\n\n{request.label}{text}"
        messages = ([{"role": "system", "content": self.system_prompt}] if self.system_prompt else []) + [
            {"role": "user", "content": body}]
        prompt = self._tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return prompt, cut_any

    def write(self, requests: Sequence[AnswerRequest], *, progress: Progress = no_progress,
              desc: str = "generation: answers") -> Answers:
        """Greedy answers to ``requests`` (identical prompts generated once), in request order."""
        import torch
        from transformers import GenerationConfig

        model, tok = self._load()
        check_texts([r.text for r in requests], where=f"generator {self.model_dir} requests")
        rendered = [self.render(r) for r in requests]
        unique = list(dict.fromkeys(p for p, _ in rendered))
        encoded = [tok(p, add_special_tokens=False)["input_ids"] for p in unique]
        order = np.argsort([len(e) for e in encoded], kind="stable")
        batches = [order[i: i + self.batch_size].tolist() for i in range(0, len(order), self.batch_size)]
        eos = int(tok.eos_token_id)
        config = GenerationConfig(max_new_tokens=self.max_new_tokens, do_sample=False, num_beams=1, use_cache=True,
                                  eos_token_id=eos, pad_token_id=int(tok.pad_token_id))
        texts: list[str] = [""] * len(unique)
        counts = np.zeros(len(unique), dtype=np.int64)
        limit = np.zeros(len(unique), dtype=bool)
        t0 = time.perf_counter()
        with torch.inference_mode():
            for idx in progress(batches, desc=desc, total=len(batches), unit="batch"):
                if self._packed is not None:
                    new = self._packed.greedy([encoded[i] for i in idx], max_new_tokens=self.max_new_tokens, eos=eos)
                else:
                    enc = tok([unique[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False)
                    out = model.generate(**enc, generation_config=config)
                    new = out[:, enc["input_ids"].shape[1]:].tolist()
                for row, i in zip(new, idx):
                    stop = row.index(eos) if eos in row else len(row)
                    counts[i] = stop
                    limit[i] = stop >= self.max_new_tokens
                    texts[i] = tok.decode(row[:stop], skip_special_tokens=True).strip()
        seconds = time.perf_counter() - t0
        where = {p: i for i, p in enumerate(unique)}
        pos = [where[p] for p, _ in rendered]
        return Answers(texts=[texts[i] for i in pos], new_tokens=counts[pos], hit_limit=limit[pos],
                       prompt_cut=np.asarray([c for _, c in rendered], dtype=bool), prompts_generated=len(unique),
                       seconds=seconds, batches=len(batches),
                       prompt_tokens=np.asarray([len(encoded[i]) for i in pos], dtype=np.int64))

    def documents(self, texts: Sequence[str], *, progress: Progress = no_progress) -> tuple[list[list[str]],
                                                                                            list[list[str]]]:
        """The retriever's documents for ``texts`` (``ModelError`` without a retriever)."""
        if self.retrieval is None:
            raise ModelError(MSG_NO_RETRIEVAL.format(model=self.model_dir, index=0))
        return self.retrieval.retrieve(texts, progress=progress)

    def embed(self, texts: Sequence[str], *, progress: Progress = no_progress) -> np.ndarray:
        """Sentence embeddings for the answer-similarity metric (the retriever's encoder)."""
        if self.retrieval is None:
            raise ModelError(f"generator {self.model_dir}: no sentence encoder (the writer has no retriever).")
        return self.retrieval.embed(texts, progress=progress)
