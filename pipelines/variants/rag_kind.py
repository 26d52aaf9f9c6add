"""The ``rag`` kind: retrieval over a labelled knowledge base + a chat LM that answers Yes/No."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

from pipelines.errors import ModelError
from pipelines.variants._base import Predictions, Progress, no_progress
from pipelines.variants.interface import (
    SAMPLE_COLUMNS,
    BuildContext,
    ScoreSets,
    ScoringRequest,
    VariantKind,
    all_twins,
    model_files,
    rate,
    require_table,
    timed,
)

__all__ = ["RagKind"]

DOC_COLUMNS = ("doc_id", "text", "doc_label", "doc_group")


class RagKind(VariantKind):
    """MiniLM retrieval over a labelled knowledge base + a chat LM that answers Yes/No."""

    kind = "rag"
    twin_modes = ("full", "query_only")

    @property
    def batch_size(self) -> int:
        return int(self.spec.generator.batch_size)

    def precisions(self) -> tuple[str, ...]:
        # the embedder is always fp32; int8 is its own path, whatever the CPU
        return ("int8",) if self.spec.generator.int8 else (self.spec.generator.precision,)

    def external_files(self, resolve: Callable[[str], Path]) -> dict[str, list[Path]]:
        gen = self.spec.generator
        gen_path = resolve(gen.model)
        out = {"embedder": model_files(resolve(self.spec.retriever.embedder)),
               "generator": ([gen_path / gen.gguf_file] if gen.gguf_file and (gen_path / gen.gguf_file).is_file()
                             else [] if gen.gguf_file else model_files(gen_path))}
        if self.spec.knowledge_base.path:
            out["knowledge_base"] = model_files(resolve(self.spec.knowledge_base.path))
        return out

    def model_folders(self, built: Mapping[str, Any]) -> list[Path]:
        return [Path(built["model_dir"]), Path(built["embedder"]["model_dir"]), Path(built["knowledge_base"]["dir"])]

    def _generator_dir(self, ctx: BuildContext) -> tuple[Path, dict[str, Any]]:
        from pipelines.core.artifacts import file_sha256
        from pipelines.variants._hf import check_model_dir, convert_gguf
        from pipelines.variants.cache import cache_key

        gc = self.spec.generator
        src = ctx.resolve(gc.model)
        if gc.gguf_file is None:
            check_model_dir(src, field=self.field("generator.model"), allow_pickle=self.spec.allow_pickle)
            return src, {"source": str(src), "converted_from_gguf": False, "build_seconds": 0.0}
        gguf = src / gc.gguf_file
        if not gguf.is_file():
            found = ", ".join(sorted(p.name for p in src.iterdir())) if src.is_dir() else "no such folder"
            raise ModelError(f"GGUF file {gguf} does not exist (`{self.field('generator.gguf_file')}` in folder "
                             f"`{self.field('generator.model')}`). Found: {found}.")
        import transformers

        describe = {"gguf": str(gguf), "gguf_sha256": file_sha256(gguf), "transformers": transformers.__version__}
        entry = ctx.cache.get_or_build("generator", cache_key(**describe),
                                       lambda tmp: (convert_gguf(src, gc.gguf_file, tmp) or {}), describe=describe)
        ctx.log.info("%s: generator %s (%s)", self.name, entry.path,
                     "cache hit" if entry.hit else "converted from GGUF")
        return entry.path, {"source": str(gguf), "gguf_sha256": describe["gguf_sha256"], "converted_from_gguf": True,
                            "build_seconds": entry.meta["build_seconds"]}

    def _documents(self, ctx: BuildContext, train: Any) -> tuple[Any, str]:
        import pandas as pd

        from pipelines.core.sampling import stratified_rows
        from pipelines.variants.retrieval import load_documents

        kb = self.spec.knowledge_base
        if kb.path is None:
            require_table(train, SAMPLE_COLUMNS, artifact="train")
            group_col = ctx.data_features[0] if ctx.data_features else None
            docs = pd.DataFrame({
                "doc_id": train["example_id"].astype(str).values,
                "text": train["text"].astype(str).values,
                "doc_label": pd.array(train["label"], dtype="Int64"),
                "doc_group": (train[group_col].astype(str).values if group_col in train.columns
                              else [None] * len(train)),
            })
            source = "train split"
        else:
            path = ctx.resolve(kb.path)
            docs = load_documents(path, fmt=kb.format, text_column=kb.text_column, id_column=kb.id_column,
                                  label_column=kb.label_column, group_column=kb.group_column)
            source = str(path)
        docs = docs.sort_values("doc_id", kind="stable").reset_index(drop=True)
        if kb.max_docs is not None and kb.max_docs < len(docs):
            strata = docs["doc_label"].fillna(-1).to_numpy()
            docs = docs.iloc[stratified_rows(strata, kb.max_docs, ctx.seed)].reset_index(drop=True)
        return docs, source

    def build(self, ctx: BuildContext, *, train: Any) -> dict[str, Any]:
        from pipelines.core.artifacts import hash_table
        from pipelines.variants._hf import check_model_dir, model_identity
        from pipelines.variants.cache import cache_key
        from pipelines.variants.retrieval import Embedder, build_kb_index

        spec = self.spec
        gen_dir, gen_info = self._generator_dir(ctx)
        check_model_dir(gen_dir, field=self.field("generator.model"), allow_pickle=spec.allow_pickle)
        emb_dir = ctx.resolve(spec.retriever.embedder)
        check_model_dir(emb_dir, field=self.field("retriever.embedder"), allow_pickle=spec.allow_pickle)
        emb_id = model_identity(emb_dir, kind="embedder")
        docs, source = self._documents(ctx, train)
        embedder = Embedder(emb_dir, max_length=spec.retriever.max_length, batch_size=spec.retriever.batch_size,
                            allow_pickle=spec.allow_pickle, num_threads=ctx.num_threads,
                            field=self.field("retriever.embedder"), engine=spec.retriever.engine)
        describe = {"embedder_weights_sha256": emb_id["weights_sha256"],
                    "embedder_config_sha256": emb_id["config_sha256"],
                    "docs_fingerprint": hash_table(docs, DOC_COLUMNS),
                    "docs": int(len(docs)), "max_length": spec.retriever.max_length, "source": source,
                    # the runtime that embeds (packed or transformers) moves embeddings by float rounding
                    "embedder_path": {k: embedder.path[k] for k in ("precision", "runtime")}}
        entry = ctx.cache.get_or_build("kb", cache_key(**describe),
                                       lambda tmp: build_kb_index(embedder, docs, tmp, progress=ctx.progress),
                                       describe=describe)
        ctx.log.info("%s: knowledge base %s (%s)", self.name, entry.path, "cache hit" if entry.hit else "embedded")
        gen_id = model_identity(gen_dir, kind="causal_lm")
        return {
            "kind": self.kind,
            "model_dir": str(gen_dir),
            "weights_sha256": gen_id["weights_sha256"],
            "config_sha256": gen_id["config_sha256"],
            "generator": {**gen_id, **gen_info},
            "embedder": emb_id,
            "knowledge_base": {"dir": str(entry.path), "key": entry.meta["key"], "source": source,
                               **entry.meta["built"], "build_seconds": entry.meta["build_seconds"]},
            "k": spec.retriever.k,
            "training_metrics": None,
            "build_seconds": round(gen_info["build_seconds"] + entry.meta["build_seconds"], 3),
        }

    def predictor(self, built: Mapping[str, Any], *, num_threads: int = 2) -> Any:
        from pipelines.variants.rag import RagPredictor, RagScorer
        from pipelines.variants.retrieval import Embedder, KnowledgeBase

        spec, g = self.spec, self.spec.generator
        kb_dir = Path(built["knowledge_base"]["dir"])
        embedder = Embedder(Path(built["embedder"]["model_dir"]), max_length=spec.retriever.max_length,
                            batch_size=spec.retriever.batch_size, allow_pickle=spec.allow_pickle,
                            num_threads=num_threads, field=self.field("retriever.embedder"),
                            engine=spec.retriever.engine)
        scorer = RagScorer(Path(built["model_dir"]), system_prompt=g.system_prompt, instruction=g.instruction,
                           question=g.question, positive_answer=g.positive_answer, negative_answer=g.negative_answer,
                           doc_max_tokens=g.doc_max_tokens, query_max_tokens=g.query_max_tokens,
                           batch_size=g.batch_size, prefix_cache=g.prefix_cache, int8=g.int8,
                           prompt_style=g.prompt_style, allow_pickle=spec.allow_pickle, num_threads=num_threads,
                           field=self.field("generator.model"), precision=g.precision, engine=g.engine)
        return RagPredictor(embedder=embedder, kb=KnowledgeBase.load(kb_dir), scorer=scorer, k=spec.retriever.k,
                            name=self.name, kb_dir=kb_dir)

    def score(self, predictor: Any, request: ScoringRequest, *, progress: Progress = no_progress) -> ScoreSets:
        """Score audit, twins (``full`` and ``query_only``) and validation.

        One pass for the audit texts and their twins (:meth:`RagPredictor.predict_with_twins`):
        ``query_only`` twins reuse the KV cache of their original's prompt up to
        the query, ``full`` twins whose retrieval changed share leading documents
        with the other prompts, and a ``full`` twin whose retrieval equals its
        original's takes its ``query_only`` score. The twins' seconds (their
        retrieval and the tokens only they need) are split off the audit's.
        """
        audit, query_only, full, info = predictor.predict_with_twins(
            request.audit_texts, request.twin_texts, request.twin_rows, progress=progress)
        n_twins, reused = len(request.twin_texts), info["full_reused"]
        val, t_val = timed(predictor.predict, request.validation_texts, progress=progress)
        twins_timing = rate(2 * n_twins, info["twin_seconds"])
        twins_timing.update(prompts_scored=int(2 * n_twins - reused), full_mode_reused_query_only=reused,
                            query_only_seconds=round(info["query_only_seconds"], 3))
        return ScoreSets(
            audit=audit,
            twins={"full": all_twins(request, full), "query_only": all_twins(request, query_only)},
            validation=val,
            timing={"audit": rate(len(request.audit_texts), info["audit_seconds"]), "twins": twins_timing,
                    "validation": rate(len(request.validation), t_val)},
            batch_size=self.batch_size)

    def generator(self, built: Mapping[str, Any], *, settings: Any, num_threads: int = 2) -> Any | None:
        """The generator of ``built["model_dir"]`` writing answers, with this variant's retriever and knowledge base."""
        from pipelines.variants.generation import AnswerWriter, Retrieval

        predictor = self.predictor(built, num_threads=num_threads)
        return AnswerWriter(Path(built["model_dir"]), max_new_tokens=settings.max_new_tokens,
                            batch_size=settings.batch_size, precision=settings.precision,
                            system_prompt=settings.system_prompt, doc_max_tokens=settings.doc_max_tokens,
                            query_max_tokens=settings.query_max_tokens,
                            retrieval=Retrieval(embedder=predictor.embedder, kb=predictor.kb, k=self.spec.retriever.k),
                            allow_pickle=self.spec.allow_pickle, num_threads=num_threads,
                            field=self.field("generator.model"), engine=settings.engine)

    def columns(self, predictions: Predictions) -> dict[str, list[Any]]:
        return {"retrieved_ids": list(predictions.extras["retrieved_ids"]),
                "retrieved_similarities": list(predictions.extras["retrieved_similarities"])}

    def retrievals(self, built: Mapping[str, Any], example_ids: list[str],
                   predictions: Predictions) -> list[dict[str, Any]]:
        import pandas as pd

        from pipelines.variants.retrieval import KnowledgeBase

        docs = KnowledgeBase.load(Path(built["knowledge_base"]["dir"])).docs
        rows = []
        for eid, ids, sims, idx in zip(example_ids, predictions.extras["retrieved_ids"],
                                       predictions.extras["retrieved_similarities"],
                                       predictions.extras["retrieved_index"]):
            for rank, (d, s, j) in enumerate(zip(ids, sims, idx), 1):
                lab = docs["doc_label"].iloc[j]
                rows.append({"variant": self.name, "example_id": eid, "rank": rank, "doc_id": d,
                             "similarity": float(s), "doc_group": docs["doc_group"].iloc[j],
                             "doc_label": None if pd.isna(lab) else int(lab)})
        return rows
