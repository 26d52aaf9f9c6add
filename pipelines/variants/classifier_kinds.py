"""The classifier kinds: ``finetuned`` (fine-tune a base encoder) and ``classifier`` (a folder as it is)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Mapping

from pipelines.variants.interface import SAMPLE_COLUMNS, BuildContext, VariantKind, model_files, require_table

__all__ = ["FinetunedKind", "ClassifierKind"]


class _SequenceClassifier(VariantKind):
    positive_index: int = 1
    judges_text = True  # the audit's own stereotype classifier: it scores generated answers too

    def precisions(self) -> tuple[str, ...]:
        return (self.spec.precision,)

    def predictor(self, built: Mapping[str, Any], *, num_threads: int = 2) -> Any:
        from pipelines.variants.finetuned import FinetunedPredictor

        return FinetunedPredictor(Path(built["model_dir"]), name=self.name, max_length=self.spec.max_length,
                                  batch_size=self.spec.batch_size, positive_index=int(built.get("positive_index", 1)),
                                  allow_pickle=self.spec.allow_pickle, num_threads=num_threads,
                                  field=self.field("model"), precision=self.spec.precision, engine=self.spec.engine)


class FinetunedKind(_SequenceClassifier):
    """Fine-tune a base encoder with a fresh 2-label head on (a stratified sample of) the train split."""

    kind = "finetuned"

    def external_files(self, resolve: Callable[[str], Path]) -> dict[str, list[Path]]:
        return {"model": model_files(resolve(self.spec.model))}

    def build(self, ctx: BuildContext, *, train: Any) -> dict[str, Any]:
        from pipelines.core.artifacts import hash_table
        from pipelines.core.sampling import label_sample
        from pipelines.variants._hf import check_model_dir, model_identity
        from pipelines.variants._precision import effective_precision
        from pipelines.variants.cache import cache_key
        from pipelines.variants.finetuned import train_classifier

        spec = self.spec
        base = ctx.resolve(spec.model)
        check_model_dir(base, field=self.field("model"), allow_pickle=spec.allow_pickle)
        base_id = model_identity(base, kind="base")
        rows = label_sample(require_table(train, SAMPLE_COLUMNS, artifact="train"), spec.training.max_rows, ctx.seed)
        data_fp = hash_table(rows, SAMPLE_COLUMNS)
        describe = {"base_model": str(base), "base_weights_sha256": base_id["weights_sha256"],
                    "base_config_sha256": base_id["config_sha256"], "train_fingerprint": data_fp,
                    "train_rows": int(len(rows)), "training": spec.training.model_dump(mode="json"),
                    "max_length": spec.max_length, "seed": ctx.seed,
                    # what `training.precision` resolves to on this CPU: bf16 and fp32 training give other models
                    "training_precision": effective_precision(spec.training.precision)}
        key = cache_key(**describe)

        def build(tmp: Path) -> dict[str, Any]:
            ctx.log.info("%s: fine-tuning %s on %d rows", self.name, base, len(rows))
            t = spec.training
            return train_classifier(
                base, texts=list(rows["text"]), labels=rows["label"].astype(int).tolist(), out_dir=tmp,
                seed=ctx.seed, epochs=t.epochs, batch_size=t.batch_size, learning_rate=t.learning_rate,
                weight_decay=t.weight_decay, warmup_ratio=t.warmup_ratio, max_length=spec.max_length,
                allow_pickle=spec.allow_pickle, num_threads=ctx.num_threads, progress=ctx.progress,
                field=self.field("model"), group_by_length=t.group_by_length, precision=t.precision)

        entry = ctx.cache.get_or_build("finetuned", key, build, describe=describe)
        ctx.log.info("%s: fine-tuned model %s (%s)", self.name, entry.path, "cache hit" if entry.hit else "built")
        return {**model_identity(entry.path, kind=self.kind), "trained": True, "positive_index": 1,
                "cache_key": key, "base_model": str(base), "base_weights_sha256": base_id["weights_sha256"],
                "train_fingerprint": data_fp, "training_metrics": entry.meta["built"],
                "build_seconds": entry.meta["build_seconds"]}


class ClassifierKind(_SequenceClassifier):
    """A local 2-label sequence-classification folder, scored as it is."""

    kind = "classifier"

    def external_files(self, resolve: Callable[[str], Path]) -> dict[str, list[Path]]:
        return {"model": model_files(resolve(self.spec.model))}

    def build(self, ctx: BuildContext, *, train: Any) -> dict[str, Any]:
        from pipelines.variants._hf import model_identity
        from pipelines.variants.finetuned import FinetunedPredictor

        t0 = time.perf_counter()
        path = ctx.resolve(self.spec.model)
        pred = FinetunedPredictor(path, name=self.name, max_length=self.spec.max_length,
                                  positive_index=self.spec.positive_index, allow_pickle=self.spec.allow_pickle,
                                  num_threads=ctx.num_threads, field=self.field("model"),
                                  precision=self.spec.precision, engine=self.spec.engine)
        pred._load()  # a broken folder fails here, not halfway through predict
        return {**model_identity(path, kind=self.kind), "trained": False, "positive_index": self.spec.positive_index,
                "training_metrics": None, "build_seconds": round(time.perf_counter() - t0, 3)}
