"""The build_variants and predict stages.

``build_variants`` puts every model a variant needs into the model cache
(``ctx.cache_dir / "models"``): the fine-tuned classifier, the generator
converted from GGUF to safetensors, and the embedded knowledge base. Entries
are keyed by the base model's hash, the data fingerprint and the
hyperparameters, so a re-run with the same inputs neither retrains nor
re-embeds.

``predict`` scores the audit sample and the counterfactual twins with every
enabled variant, fits calibration and picks thresholds on the validation
split, and records throughput and latency.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.errors import DataError, ModelError
from pipelines.runner import Stage, StageContext

__all__ = ["build_variants_stage", "predict_stage", "BUILD_STAGE", "PREDICT_STAGE", "make_predictor"]

TWIN_COLUMNS = ("twin_id", "example_id", "text")
SAMPLE_COLUMNS = ("example_id", "text", "label")


def _require(df: pd.DataFrame | None, columns: tuple[str, ...], *, artifact: str) -> pd.DataFrame:
    if df is None:
        raise DataError(f"input `{artifact}` is missing.")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(f"input `{artifact}`: column(s) {', '.join(missing)} missing. Expected {', '.join(columns)}; "
                        f"found {', '.join(map(str, df.columns))}.")
    return df


def fingerprint(df: pd.DataFrame, columns: tuple[str, ...]) -> str:
    """SHA-256 of the given columns, row by row (order matters)."""
    h = hashlib.sha256()
    for row in df[list(columns)].astype(str).itertuples(index=False):
        h.update("\x1f".join(row).encode("utf-8"))
        h.update(b"\x1e")
    return h.hexdigest()


def _path(ctx: StageContext, spec: str) -> Path:
    return ctx.config.resolve(spec)  # type: ignore[return-value]


# -- build --------------------------------------------------------------------


def _label_sample(table: pd.DataFrame, max_rows: int | None, seed: int) -> pd.DataFrame:
    """A seeded label-stratified sample of at most ``max_rows`` rows, independent of the input's row order."""
    from pipelines.variants._decision import stratified_rows

    table = table.sort_values("example_id").reset_index(drop=True)
    return table.iloc[stratified_rows(table["label"].to_numpy(), max_rows, seed)].reset_index(drop=True)


def _build_finetuned(ctx: StageContext, cache, train: pd.DataFrame) -> dict[str, Any]:
    from pipelines.variants._hf import check_model_dir, model_identity
    from pipelines.variants.finetuned import FinetunedPredictor, train_classifier

    fc = ctx.config.variants.finetuned
    base = _path(ctx, fc.model)
    t0 = time.perf_counter()
    if not fc.train:
        pred = FinetunedPredictor(base, max_length=fc.max_length, positive_index=fc.positive_index,
                                  allow_pickle=fc.allow_pickle)
        pred._load()  # fail here, not halfway through predict
        return {**pred.identity(), "trained": False, "training_metrics": None,
                "build_seconds": round(time.perf_counter() - t0, 3)}
    check_model_dir(base, field="variants.finetuned.model", allow_pickle=fc.allow_pickle)
    base_id = model_identity(base, kind="base")
    rows = _label_sample(_require(train, SAMPLE_COLUMNS, artifact="train"), fc.training.max_rows, ctx.seed)
    data_fp = fingerprint(rows, SAMPLE_COLUMNS)
    from pipelines.variants.cache import cache_key

    describe = {"base_model": str(base), "base_weights_sha256": base_id["weights_sha256"],
                "base_config_sha256": base_id["config_sha256"], "train_fingerprint": data_fp,
                "train_rows": int(len(rows)), "training": fc.training.model_dump(mode="json"),
                "max_length": fc.max_length, "seed": ctx.seed}
    key = cache_key(**describe)

    def build(tmp: Path) -> dict[str, Any]:
        ctx.log.info("fine-tuning %s on %d rows", base, len(rows))
        return train_classifier(
            base, texts=list(rows["text"]), labels=rows["label"].astype(int).tolist(), out_dir=tmp, seed=ctx.seed,
            epochs=fc.training.epochs, batch_size=fc.training.batch_size, learning_rate=fc.training.learning_rate,
            weight_decay=fc.training.weight_decay, warmup_ratio=fc.training.warmup_ratio, max_length=fc.max_length,
            allow_pickle=fc.allow_pickle, num_threads=ctx.config.variants.num_threads, progress=ctx.progress)

    entry = cache.get_or_build("finetuned", key, build, describe=describe)
    ctx.log.info("finetuned model: %s (%s)", entry.path, "cache hit" if entry.hit else "built")
    return {**model_identity(entry.path, kind="finetuned"), "trained": True, "cache_key": key,
            "base_model": str(base), "base_weights_sha256": base_id["weights_sha256"],
            "train_fingerprint": data_fp, "training_metrics": entry.meta["built"],
            "build_seconds": entry.meta["build_seconds"]}


def _generator_dir(ctx: StageContext, cache) -> tuple[Path, dict[str, Any]]:
    from pipelines.variants._hf import _file_sha256, check_model_dir, convert_gguf
    from pipelines.variants.cache import cache_key

    gc = ctx.config.variants.rag.generator
    src = _path(ctx, gc.model)
    if gc.gguf_file is None:
        check_model_dir(src, field="variants.rag.generator.model", allow_pickle=ctx.config.variants.rag.allow_pickle)
        return src, {"source": str(src), "converted_from_gguf": False, "build_seconds": 0.0}
    gguf = src / gc.gguf_file
    if not gguf.is_file():
        found = ", ".join(sorted(p.name for p in src.iterdir())) if src.is_dir() else "no such folder"
        raise ModelError(f"GGUF file {gguf} does not exist (`variants.rag.generator.gguf_file` in folder "
                         f"`variants.rag.generator.model`). Found: {found}.")
    import transformers

    describe = {"gguf": str(gguf), "gguf_sha256": _file_sha256(gguf), "transformers": transformers.__version__}
    entry = cache.get_or_build("generator", cache_key(**describe),
                               lambda tmp: (convert_gguf(src, gc.gguf_file, tmp) or {}), describe=describe)
    ctx.log.info("generator: %s (%s)", entry.path, "cache hit" if entry.hit else "converted from GGUF")
    return entry.path, {"source": str(gguf), "gguf_sha256": describe["gguf_sha256"], "converted_from_gguf": True,
                        "build_seconds": entry.meta["build_seconds"]}


def _kb_documents(ctx: StageContext, train: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    from pipelines.variants.rag import load_documents

    kb = ctx.config.variants.rag.knowledge_base
    if kb.path is None:
        _require(train, SAMPLE_COLUMNS, artifact="train")
        group_col = ctx.config.data.sensitive_features[0]
        docs = pd.DataFrame({
            "doc_id": train["example_id"].astype(str).values,
            "text": train["text"].astype(str).values,
            "doc_label": pd.array(train["label"], dtype="Int64"),
            "doc_group": train[group_col].astype(str).values if group_col in train.columns else [None] * len(train),
        })
        source = "train split"
    else:
        docs = load_documents(_path(ctx, kb.path), fmt=kb.format, text_column=kb.text_column, id_column=kb.id_column,
                              label_column=kb.label_column, group_column=kb.group_column)
        source = str(_path(ctx, kb.path))
    docs = docs.sort_values("doc_id", kind="stable").reset_index(drop=True)
    if kb.max_docs is not None and kb.max_docs < len(docs):
        from pipelines.variants._decision import stratified_rows

        strata = docs["doc_label"].fillna(-1).to_numpy()
        docs = docs.iloc[stratified_rows(strata, kb.max_docs, ctx.seed)].reset_index(drop=True)
    return docs, source


def _build_rag(ctx: StageContext, cache, train: pd.DataFrame) -> dict[str, Any]:
    from pipelines.variants._hf import check_model_dir, model_identity
    from pipelines.variants.cache import cache_key
    from pipelines.variants.rag import Embedder, build_kb_index

    vc = ctx.config.variants
    rc = vc.rag
    gen_dir, gen_info = _generator_dir(ctx, cache)
    check_model_dir(gen_dir, field="variants.rag.generator.model", allow_pickle=rc.allow_pickle)
    emb_dir = _path(ctx, rc.retriever.embedder)
    check_model_dir(emb_dir, field="variants.rag.retriever.embedder", allow_pickle=rc.allow_pickle)
    emb_id = model_identity(emb_dir, kind="embedder")
    docs, source = _kb_documents(ctx, train)
    describe = {"embedder_weights_sha256": emb_id["weights_sha256"], "embedder_config_sha256": emb_id["config_sha256"],
                "docs_fingerprint": fingerprint(docs, ("doc_id", "text", "doc_label", "doc_group")),
                "docs": int(len(docs)), "max_length": rc.retriever.max_length, "source": source}
    embedder = Embedder(emb_dir, max_length=rc.retriever.max_length, batch_size=rc.retriever.batch_size,
                        allow_pickle=rc.allow_pickle, num_threads=vc.num_threads)
    entry = cache.get_or_build("kb", cache_key(**describe),
                               lambda tmp: build_kb_index(embedder, docs, tmp, progress=ctx.progress),
                               describe=describe)
    ctx.log.info("knowledge base: %s (%s)", entry.path, "cache hit" if entry.hit else "embedded")
    gen_id = model_identity(gen_dir, kind="causal_lm")
    return {
        "kind": "rag",
        "model_dir": str(gen_dir),
        "weights_sha256": gen_id["weights_sha256"],
        "config_sha256": gen_id["config_sha256"],
        "generator": {**gen_id, **gen_info},
        "embedder": emb_id,
        "knowledge_base": {"dir": str(entry.path), "key": entry.meta["key"], "source": source,
                           **entry.meta["built"], "build_seconds": entry.meta["build_seconds"]},
        "k": rc.retriever.k,
        "training_metrics": None,
        "build_seconds": round(gen_info["build_seconds"] + entry.meta["build_seconds"], 3),
    }


def build_variants_stage(ctx: StageContext, *, train: pd.DataFrame) -> dict[str, Any]:
    """Build (or find in the model cache) every enabled variant; return their identities."""
    from pipelines.variants._hf import offline, set_threads
    from pipelines.variants.cache import ModelCache

    offline()
    vc = ctx.config.variants
    set_threads(vc.num_threads)
    cache = ModelCache(ctx.cache_dir / "models")
    out: dict[str, Any] = {}
    if vc.finetuned.enabled:
        out["finetuned"] = _build_finetuned(ctx, cache, train)
    if vc.rag.enabled:
        out["rag"] = _build_rag(ctx, cache, train)
    return {"variants": out}


# -- predict ------------------------------------------------------------------


MSG_CACHE_GONE = (
    "variant `{name}`: model folder {folder} from the build_variants stage is gone (the model cache was cleared "
    "after that stage's outputs were cached). Delete {stage_cache} and run again to rebuild it."
)


def make_predictor(name: str, built: dict[str, Any], vc, *, cache_dir: Path | None = None) -> Any:
    """A predictor for a variant from its ``build_variants`` entry and the config."""
    folders = [Path(built["model_dir"])]
    if name == "rag":
        folders.append(Path(built["knowledge_base"]["dir"]))
    for folder in folders:
        if not folder.is_dir():
            stage_cache = (cache_dir / "stages" / "build_variants") if cache_dir else "the build_variants stage cache"
            raise ModelError(MSG_CACHE_GONE.format(name=name, folder=folder, stage_cache=stage_cache))
    if name == "finetuned":
        from pipelines.variants.finetuned import FinetunedPredictor

        fc = vc.finetuned
        return FinetunedPredictor(Path(built["model_dir"]), name=name, max_length=fc.max_length,
                                  batch_size=fc.batch_size, positive_index=fc.positive_index if not built["trained"] else 1,
                                  allow_pickle=fc.allow_pickle, num_threads=vc.num_threads)
    if name == "rag":
        from pipelines.variants.rag import Embedder, KnowledgeBase, RagPredictor, RagScorer

        rc = vc.rag
        g = rc.generator
        kb_dir = Path(built["knowledge_base"]["dir"])
        embedder = Embedder(Path(built["embedder"]["model_dir"]), max_length=rc.retriever.max_length,
                            batch_size=rc.retriever.batch_size, allow_pickle=rc.allow_pickle, num_threads=vc.num_threads)
        scorer = RagScorer(Path(built["model_dir"]), system_prompt=g.system_prompt, instruction=g.instruction,
                           question=g.question, positive_answer=g.positive_answer, negative_answer=g.negative_answer,
                           doc_max_tokens=g.doc_max_tokens, query_max_tokens=g.query_max_tokens,
                           batch_size=g.batch_size, prefix_cache=g.prefix_cache, int8=g.int8,
                           prompt_style=g.prompt_style,
                           allow_pickle=rc.allow_pickle, num_threads=vc.num_threads)
        return RagPredictor(embedder=embedder, kb=KnowledgeBase.load(kb_dir), scorer=scorer, k=rc.retriever.k,
                            name=name, kb_dir=kb_dir)
    raise ModelError(f"unknown variant {name!r}; expected one of finetuned, rag.")


def _timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def _rate(n: int, seconds: float) -> dict[str, Any]:
    return {"examples": int(n), "seconds": round(seconds, 3),
            "examples_per_s": round(n / seconds, 2) if seconds > 0 and n else None,
            "latency_ms_per_example": round(1000 * seconds / n, 2) if n else None}


def _score_finetuned(ctx, pred, texts, twin_texts, val_texts) -> dict[str, Any]:
    audit, t_audit = _timed(pred.predict, texts, progress=ctx.progress)
    twins, t_twins = _timed(pred.predict, twin_texts, progress=ctx.progress)
    val, t_val = _timed(pred.predict, val_texts, progress=ctx.progress)
    return {
        "audit": audit, "twins": {"full": twins}, "validation": val,
        "timing": {"audit": _rate(len(texts), t_audit), "twins": _rate(len(twin_texts), t_twins),
                   "validation": _rate(len(val_texts), t_val)},
        "batch_size": pred.batch_size,
    }


def _score_rag(ctx, pred, texts, twin_texts, twin_rows, val_texts) -> dict[str, Any]:
    """Score audit, twins (full and query_only) and validation.

    ``query_only`` twins share their original's documents, so they are scored in
    the audit pass and reuse the KV cache of the original's prompt up to the
    query; their seconds are split off the audit's. A ``full`` twin whose
    retrieval equals the original's has the same prompt as its ``query_only``
    twin and is not scored again.
    """
    from pipelines.variants._base import Predictions, check_scores

    followers: list[list[str]] = [[] for _ in texts]
    slot: list[tuple[int, int]] = []
    for j, r in enumerate(twin_rows):
        slot.append((r, len(followers[r])))
        followers[r].append(twin_texts[j])
    t0 = time.perf_counter()
    audit, f_scores, f_cuts, f_seconds = pred.predict_with_followers(texts, followers, progress=ctx.progress)
    t_audit = time.perf_counter() - t0 - f_seconds
    t1 = time.perf_counter()
    out_twins: dict[str, Predictions] = {}
    reused = 0
    if twin_texts:
        s_q = np.array([f_scores[r][k] for r, k in slot])
        cut_q = np.array([f_cuts[r][k] for r, k in slot], dtype=bool)
        idx_full, sims_full, cut_full = pred.retrieve(twin_texts, progress=ctx.progress)
        idx_orig = np.asarray([audit.extras["retrieved_index"][r] for r in twin_rows])
        same = (idx_full == idx_orig).all(axis=1)
        reused = int(same.sum())
        changed = np.flatnonzero(~same)
        s_full = s_q.copy()
        if changed.size:
            s_c, _ = pred.score_with_docs([twin_texts[i] for i in changed], idx_full[changed], progress=ctx.progress,
                                          desc="rag: scoring twins (full)")
            s_full[changed] = s_c
        out_twins["full"] = Predictions(check_scores(s_full, variant="rag", where="twins (full)"), cut_full | cut_q)
        out_twins["query_only"] = Predictions(s_q, cut_q)
    else:
        out_twins = {"full": Predictions(np.zeros(0), np.zeros(0, bool)),
                     "query_only": Predictions(np.zeros(0), np.zeros(0, bool))}
    t_twins = time.perf_counter() - t1 + f_seconds
    val, t_val = _timed(pred.predict, val_texts, progress=ctx.progress)
    twins_timing = _rate(2 * len(twin_texts), t_twins)
    twins_timing.update(prompts_scored=int(2 * len(twin_texts) - reused), full_mode_reused_query_only=reused,
                        query_only_seconds=round(f_seconds, 3))
    return {
        "audit": audit, "twins": out_twins, "validation": val,
        "timing": {"audit": _rate(len(texts), t_audit), "twins": twins_timing, "validation": _rate(len(val_texts), t_val)},
        "batch_size": pred.scorer.batch_size,
    }


def _from_rows(frame: pd.DataFrame, extras: tuple[str, ...]):
    from pipelines.variants._base import Predictions

    return Predictions(scores=frame["score"].to_numpy(dtype=np.float64), truncated=frame["truncated"].to_numpy(dtype=bool),
                       extras={k: frame[k].tolist() for k in extras if k in frame.columns})


def _local_worker_processes(pipeline_args: list[str]) -> int:
    """How many processes a multi-process DirectRunner starts on this machine (1 otherwise)."""
    flags = dict(a.split("=", 1) for a in pipeline_args if "=" in a)
    if flags.get("--runner", "DirectRunner").lower().removesuffix("runner") != "direct" \
            or flags.get("--direct_running_mode") != "multi_processing":
        return 1
    import os

    n = int(flags.get("--direct_num_workers", "1"))
    return (os.cpu_count() or 1) if n == 0 else max(1, n)  # Beam: 0 means one per core


def _score_on_beam(ctx, name, built, vc, texts, twin_texts, twin_rows, val_texts) -> dict[str, Any]:
    """Score audit, twins and validation in one ``RunInference`` pass on the configured runner.

    Each worker builds the predictor once (``make_predictor`` from the build
    entry). RAG ``query_only`` twins are sent as ``(twin text, original text)``
    pairs: scored with the original's retrieved documents.
    """
    import functools

    from pipelines.beam.inference import score_on_beam
    from pipelines.variants._base import check_scores

    elements: list[tuple[str, Any]] = [(f"a{i}", t) for i, t in enumerate(texts)]
    elements += [(f"t{j}", t) for j, t in enumerate(twin_texts)]
    if name == "rag":
        elements += [(f"q{j}", (t, texts[r])) for j, (t, r) in enumerate(zip(twin_texts, twin_rows))]
    elements += [(f"v{i}", t) for i, t in enumerate(val_texts)]
    args = ctx.config.beam.pipeline_args()
    workers = _local_worker_processes(args)
    if workers > 1:
        # the local processes share this machine's cores: split the torch threads between them
        vc = vc.model_copy(update={"num_threads": max(1, vc.num_threads // workers)})
    factory = functools.partial(make_predictor, name, built, vc, cache_dir=ctx.cache_dir)
    batch = vc.rag.generator.batch_size if name == "rag" else vc.finetuned.batch_size
    ctx.log.info("%s: scoring %d texts with RunInference (%s)", name, len(elements), " ".join(args))
    t0 = time.perf_counter()
    frame = score_on_beam([k for k, _ in elements], [e for _, e in elements], factory=factory, pipeline_args=args,
                          workdir=ctx.scratch_dir / f"beam-{name}", batch_size=batch)
    seconds = time.perf_counter() - t0
    part = frame["example_id"].str[0]
    extras = ("retrieved_ids", "retrieved_similarities", "retrieved_index") if name == "rag" else ()

    def take(tag: str, where: str):
        pred = _from_rows(frame[part == tag], extras)
        pred.scores = check_scores(pred.scores, variant=name, where=where)
        return pred

    audit, val = take("a", "the audit sample"), take("v", "validation")
    twins = {"full": take("t", "twins (full)")}
    if name == "rag":
        twins["query_only"] = take("q", "twins (query_only)")
    rate = len(elements) / seconds if seconds > 0 else None

    def share(n: int) -> dict[str, Any]:
        # One pass scores everything: its seconds apportioned by count (so the rate is the pass's).
        return _rate(n, seconds * n / len(elements))

    n_twins = len(twin_texts) * (2 if name == "rag" else 1)
    return {
        "audit": audit, "twins": twins, "validation": val,
        "timing": {"audit": share(len(texts)), "twins": share(n_twins), "validation": share(len(val_texts))},
        "batch_size": batch,
        "beam": {"pipeline_args": args, "elements": len(elements), "seconds": round(seconds, 3),
                 "threads_per_worker": vc.num_threads,
                 "examples_per_s": round(rate, 2) if rate else None,
                 "note": "one RunInference pass over audit, twins and validation, model loads and runner "
                         "start-up included; per-set seconds are apportioned by count"},
    }


def predict_stage(ctx: StageContext, *, audit_sample: pd.DataFrame, twins: pd.DataFrame | None,
                  validation: pd.DataFrame, variants: dict[str, Any]) -> dict[str, Any]:
    """Score the audit sample and twins with every variant; thresholds and calibration from validation."""
    from pipelines.variants._base import check_texts
    from pipelines.variants._decision import choose_threshold, fit_calibrator
    from pipelines.variants._hf import offline, set_threads

    offline()
    vc = ctx.config.variants
    set_threads(vc.num_threads)
    _require(audit_sample, SAMPLE_COLUMNS, artifact="audit_sample")
    if audit_sample["example_id"].duplicated().any():
        raise DataError("input `audit_sample`: column `example_id` has duplicates; expected unique ids.")
    texts = check_texts(list(audit_sample["text"]), where="input `audit_sample`", ids=list(audit_sample["example_id"]))
    if twins is None:
        twins = pd.DataFrame({c: pd.Series(dtype=str) for c in TWIN_COLUMNS})
    _require(twins, TWIN_COLUMNS, artifact="twins")
    twin_texts = check_texts(list(twins["text"]), where="input `twins`", ids=list(twins["twin_id"]))
    pos = {eid: i for i, eid in enumerate(audit_sample["example_id"])}
    unknown = [e for e in twins["example_id"] if e not in pos]
    if unknown:
        raise DataError(f"input `twins`: {len(unknown)} twin(s) refer to example_id(s) not in `audit_sample` "
                        f"(e.g. {unknown[0]!r}).")
    twin_rows = [pos[e] for e in twins["example_id"]]
    _require(validation, SAMPLE_COLUMNS, artifact="validation")
    val = _label_sample(validation, vc.threshold.max_validation_rows, ctx.seed)
    val_texts = check_texts(list(val["text"]), where="input `validation`", ids=list(val["example_id"]))
    val_labels = val["label"].astype(int).to_numpy()

    pred_rows, twin_frames, retr_rows = [], [], []
    thresholds: dict[str, Any] = {}
    performance: dict[str, Any] = {}
    for name in vc.names():
        if name not in variants:
            raise DataError(f"input `variants`: no entry for enabled variant {name!r}; found {sorted(variants)}.")
        pred = make_predictor(name, variants[name], vc, cache_dir=ctx.cache_dir)
        if ctx.config.beam.inference:
            res = _score_on_beam(ctx, name, variants[name], vc, texts, twin_texts, twin_rows, val_texts)
        elif name == "rag":
            res = _score_rag(ctx, pred, texts, twin_texts, twin_rows, val_texts)
        else:
            res = _score_finetuned(ctx, pred, texts, twin_texts, val_texts)
        cal = fit_calibrator(vc.calibration.method, res["validation"].scores, val_labels)
        th = choose_threshold(cal(res["validation"].scores), val_labels, method=vc.threshold.method,
                              value=vc.threshold.value)
        th["calibration"] = cal.describe()
        th["raw_validation_score_range"] = [float(res["validation"].scores.min()), float(res["validation"].scores.max())] \
            if len(val_texts) else None
        thresholds[name] = th
        t = th["value"]
        audit = res["audit"]
        score = cal(audit.scores)
        frame = pd.DataFrame({
            "variant": name,
            "example_id": audit_sample["example_id"].astype(str).values,
            "score": score,
            "predicted_label": (score >= t).astype(np.int64),
            "threshold": float(t),
            "truncated": audit.truncated.astype(bool),
            "raw_score": audit.scores,
        })
        if name == "rag":
            frame["retrieved_ids"] = audit.extras["retrieved_ids"]
            frame["retrieved_similarities"] = audit.extras["retrieved_similarities"]
            docs = pred.kb.docs
            for eid, ids, sims, idx in zip(frame["example_id"], audit.extras["retrieved_ids"],
                                           audit.extras["retrieved_similarities"], audit.extras["retrieved_index"]):
                for rank, (d, s, j) in enumerate(zip(ids, sims, idx), 1):
                    lab = docs["doc_label"].iloc[j]
                    retr_rows.append({"variant": name, "example_id": eid, "rank": rank, "doc_id": d,
                                      "similarity": float(s), "doc_group": docs["doc_group"].iloc[j],
                                      "doc_label": None if pd.isna(lab) else int(lab)})
        else:
            frame["retrieved_ids"] = None
            frame["retrieved_similarities"] = None
        pred_rows.append(frame)
        for mode, p in res["twins"].items():
            s = cal(p.scores)
            twin_frames.append(pd.DataFrame({
                "variant": name, "mode": mode, "twin_id": twins["twin_id"].astype(str).values,
                "example_id": twins["example_id"].astype(str).values, "score": s,
                "predicted_label": (s >= t).astype(np.int64), "truncated": p.truncated.astype(bool),
                "raw_score": p.scores,
            }))
        timing = res["timing"]
        performance[name] = {
            **timing["audit"],
            "batch_size": res["batch_size"],
            "truncated": int(audit.truncated.sum()),
            "build_seconds": variants[name].get("build_seconds"),
            "twins": timing["twins"],
            "validation": timing["validation"],
            "num_threads": vc.num_threads,
            **({"beam": res["beam"]} if "beam" in res else {}),
        }
        ctx.log.info("%s: %d examples in %.1f s (%.1f/s)", name, len(texts), timing["audit"]["seconds"],
                     timing["audit"]["examples_per_s"] or 0)
    predictions = pd.concat(pred_rows, ignore_index=True) if pred_rows else pd.DataFrame()
    twin_predictions = pd.concat(twin_frames, ignore_index=True) if twin_frames else pd.DataFrame(
        columns=["variant", "mode", "twin_id", "example_id", "score", "predicted_label", "truncated", "raw_score"])
    retrievals = pd.DataFrame(retr_rows, columns=["variant", "example_id", "rank", "doc_id", "similarity",
                                                  "doc_group", "doc_label"])
    retrievals["doc_label"] = retrievals["doc_label"].astype("Int64")
    retrievals["rank"] = retrievals["rank"].astype(np.int64)
    retrievals["similarity"] = retrievals["similarity"].astype(np.float64)
    return {"predictions": predictions, "twin_predictions": twin_predictions, "retrievals": retrievals,
            "thresholds": thresholds, "performance": performance}


# -- stage specs ----------------------------------------------------------------


def _model_fingerprints(config) -> dict[str, str]:
    """Hashes of the model folders/files the build reads from outside the run (they key the stage cache)."""
    from pipelines.variants._hf import hash_files

    vc = config.variants
    specs = {}
    if vc.finetuned.enabled:
        specs["finetuned_model"] = vc.finetuned.model
    if vc.rag.enabled:
        specs["rag_embedder"] = vc.rag.retriever.embedder
        specs["rag_generator"] = vc.rag.generator.model
        if vc.rag.knowledge_base.path:
            specs["rag_knowledge_base"] = vc.rag.knowledge_base.path
    out = {}
    for name, spec in specs.items():
        try:
            path = config.resolve(spec)
        except Exception:  # reported properly by the stage itself
            out[name] = "unresolvable"
            continue
        if path.is_file():
            out[name] = hash_files([path])
        elif path.is_dir():
            if name == "rag_generator" and vc.rag.generator.gguf_file:
                files = [path / vc.rag.generator.gguf_file] if (path / vc.rag.generator.gguf_file).is_file() else []
            else:
                files = [p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
            out[name] = hash_files(files, root=path) if files else "empty"
        else:
            out[name] = "missing"
    return out


BUILD_STAGE = Stage(
    name="build_variants",
    fn=build_variants_stage,
    inputs={"train": "load_data.train"},
    config_sections=("variants", "data"),
    version="1",
    enabled=lambda cfg: bool(cfg.variants.names()),
    external_inputs=_model_fingerprints,
)

PREDICT_STAGE = Stage(
    name="predict",
    fn=predict_stage,
    inputs={"audit_sample": "load_data.audit_sample", "twins": "counterfactuals.twins",
            "validation": "load_data.validation", "variants": "build_variants.variants"},
    config_sections=("variants", "data"),
    version="3",
    enabled=lambda cfg: bool(cfg.variants.names()),
    optional_inputs=("twins",),
)
