"""Retrieval for the RAG variant: sentence embeddings, top-k search and the labelled knowledge base.

Embeddings are mean-pooled over the attention mask and L2-normalised, so the
cosine similarity of two texts is the dot product of their vectors. The
knowledge base is a table with ``doc_id, text, doc_label, doc_group`` plus its
embedding matrix, stored as ``docs.parquet`` and ``embeddings.npy`` (no pickle).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from pipelines.errors import DataError, ModelError
from pipelines.variants._base import Progress, no_progress
from pipelines.variants._hf import load_config, load_encoder, set_threads
from pipelines.variants._precision import ENGINES, check_choice, choose_path
from pipelines.variants.finetuned import _pad_id, encode, length_batches, pad_batch

__all__ = ["Embedder", "KnowledgeBase", "top_k", "load_documents", "build_kb_index", "DOC_COLUMNS"]


class Embedder:
    """Mean-pooled, L2-normalised sentence embeddings from an encoder folder.

    Always float32: the knowledge-base index and the queries must be embedded
    alike, or near ties in retrieval would flip. ``engine``: ``"auto"`` runs
    BERT encoders on :class:`._bert.PackedBert` (no padding), others on the
    transformers module; ``"hf"`` always on the module. The path taken is
    :attr:`path`; it keys the knowledge-base index in the model cache.
    """

    def __init__(self, model_dir: Path, *, max_length: int = 128, batch_size: int = 64, allow_pickle: bool = False,
                 num_threads: int = 2, field: str = "variants.rag.retriever.embedder", engine: str = "auto"):
        self.model_dir = Path(model_dir)
        self.max_length = max_length
        self.batch_size = batch_size
        self.allow_pickle = allow_pickle
        self.num_threads = num_threads
        self.field = field
        self.engine = check_choice(engine, ENGINES, field="engine")
        self._model = None
        self._tok = None
        self._packed = None
        self._path: dict[str, Any] | None = None

    @property
    def path(self) -> dict[str, Any]:
        """Which precision (always fp32) and runtime embed; read from the folder's config, no weights loaded."""
        if self._path is None:
            from pipelines.variants import _bert

            cfg = load_config(self.model_dir, field=self.field, allow_pickle=self.allow_pickle)
            self._path = choose_path(where=f"embedder {self.model_dir}", precision="fp32", engine=self.engine,
                                     fits=_bert.supports(cfg, classifier=False))
        return dict(self._path)

    def _load(self):
        if self._model is None:
            from pipelines.variants import _bert

            set_threads(self.num_threads)
            runtime = self.path["runtime"]
            self._model, self._tok = load_encoder(self.model_dir, field=self.field, allow_pickle=self.allow_pickle)
            if runtime == "torch-packed":
                self._packed = _bert.PackedBert(self._model)
        return self._model, self._tok

    def embed(self, texts: Sequence[str], *, progress: Progress = no_progress, desc: str = "embedding"):
        """``(embeddings float32 [n, d], truncated bool [n])`` in input order."""
        import torch

        model, tok = self._load()
        ids, truncated = encode(tok, texts, max_length=self.max_length)
        dim = model.config.hidden_size
        out = np.zeros((len(ids), dim), dtype=np.float32)
        pad = _pad_id(tok)
        batches = length_batches([len(r) for r in ids], self.batch_size)
        with torch.inference_mode():
            for idx in progress(batches, desc=desc, total=len(batches), unit="batch"):
                if self._packed is not None:
                    pooled = self._packed.mean_pooled([ids[i] for i in idx])
                    out[idx] = torch.nn.functional.normalize(pooled, p=2, dim=1).numpy()
                    continue
                input_ids, mask = pad_batch([ids[i] for i in idx], pad)
                hidden = model(input_ids=input_ids, attention_mask=mask).last_hidden_state
                m = mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
                out[idx] = pooled.float().numpy()
        if not np.isfinite(out).all():
            raise ModelError(f"embedder {self.model_dir}: produced non-finite embeddings.")
        return out, truncated


def top_k(queries: np.ndarray, docs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and cosine similarities of the ``k`` most similar docs per query (ties: lower index first).

    Both inputs are L2-normalised, so cosine is the dot product.
    """
    k = min(k, docs.shape[0])
    sims = queries.astype(np.float32) @ docs.astype(np.float32).T
    if k < docs.shape[0]:
        part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    else:
        part = np.tile(np.arange(docs.shape[0]), (sims.shape[0], 1))
    part_sims = np.take_along_axis(sims, part, axis=1)
    order = np.lexsort((part, -part_sims), axis=1)
    idx = np.take_along_axis(part, order, axis=1)
    return idx, np.take_along_axis(sims, idx, axis=1)


# -- knowledge base -----------------------------------------------------------

DOC_COLUMNS = ("doc_id", "text", "doc_label", "doc_group")


def load_documents(path: Path, *, fmt: str | None, text_column: str, id_column: str | None,
                   label_column: str | None, group_column: str | None):
    """A user corpus (CSV, JSONL or Parquet) as a table with ``doc_id, text, doc_label, doc_group``."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise DataError(f"knowledge base file {path} does not exist (`variants.rag.knowledge_base.path`).")
    fmt = fmt or {".csv": "csv", ".jsonl": "jsonl", ".parquet": "parquet", ".pq": "parquet"}.get(path.suffix.lower())
    try:
        if fmt == "csv":
            df = pd.read_csv(path)
        elif fmt == "jsonl":
            df = pd.read_json(path, lines=True)
        elif fmt == "parquet":
            df = pd.read_parquet(path)
        else:
            raise DataError(f"knowledge base file {path}: unknown format; set `variants.rag.knowledge_base.format` "
                            "to csv, jsonl or parquet.")
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"knowledge base file {path}: could not be read as {fmt}: {type(exc).__name__}: {exc}") from exc
    for field, col in (("text_column", text_column), ("id_column", id_column), ("label_column", label_column),
                       ("group_column", group_column)):
        if col is not None and col not in df.columns:
            raise DataError(f"knowledge base file {path}: column {col!r} (`variants.rag.knowledge_base.{field}`) "
                            f"is missing. Found columns: {', '.join(map(str, df.columns))}.")
    text = df[text_column]
    keep = text.map(lambda t: isinstance(t, str) and bool(t.strip()))
    df = df[keep].reset_index(drop=True)
    if df.empty:
        raise DataError(f"knowledge base file {path}: no rows with a non-empty `{text_column}`.")
    ids = df[id_column].astype(str) if id_column else pd.Series([f"kb-{i}" for i in range(len(df))])
    if ids.duplicated().any():
        raise DataError(f"knowledge base file {path}: column {id_column!r} has duplicate ids "
                        f"(e.g. {ids[ids.duplicated()].iloc[0]!r}).")
    out = pd.DataFrame({
        "doc_id": ids.values,
        "text": df[text_column].astype(str).values,
        "doc_label": pd.array(df[label_column], dtype="Int64") if label_column else pd.array([None] * len(df), dtype="Int64"),
        "doc_group": df[group_column].astype(str).values if group_column else [None] * len(df),
    })
    out.attrs["dropped_empty"] = int((~keep).sum())
    return out


def build_kb_index(embedder: Embedder, docs, out_dir: Path, *, progress: Progress = no_progress) -> dict[str, Any]:
    """Embed ``docs`` and write ``embeddings.npy`` and ``docs.parquet`` to ``out_dir``."""
    emb, truncated = embedder.embed(list(docs["text"]), progress=progress, desc="rag: embedding knowledge base")
    np.save(Path(out_dir) / "embeddings.npy", emb, allow_pickle=False)
    docs.to_parquet(Path(out_dir) / "docs.parquet", index=False)
    return {"docs": int(len(docs)), "dim": int(emb.shape[1]), "truncated": int(truncated.sum())}


@dataclass
class KnowledgeBase:
    docs: Any  # DataFrame with DOC_COLUMNS
    embeddings: np.ndarray

    @classmethod
    def load(cls, folder: Path) -> "KnowledgeBase":
        import pandas as pd

        folder = Path(folder)
        for name in ("embeddings.npy", "docs.parquet"):
            if not (folder / name).is_file():
                raise ModelError(f"knowledge-base index {folder}: {name} is missing; delete the folder to rebuild it.")
        emb = np.load(folder / "embeddings.npy", allow_pickle=False)
        docs = pd.read_parquet(folder / "docs.parquet")
        if len(docs) != emb.shape[0]:
            raise ModelError(f"knowledge-base index {folder}: {len(docs)} documents but {emb.shape[0]} embeddings.")
        return cls(docs=docs, embeddings=emb)
