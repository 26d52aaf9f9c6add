"""The load_data stage: read, normalize, split and summarize the audit dataset."""

from __future__ import annotations

from typing import Any

import pandas as pd

from pipelines.artifacts import hash_path
from pipelines.config import AuditConfig, RedditBiasSource
from pipelines.data._sources import REDDITBIAS_FILES, LoadedData, expand_shards, load_file, load_redditbias
from pipelines.data._split import assign_splits, stratified_sample
from pipelines.runner import Stage, StageContext

__all__ = ["load_data_stage", "LOAD_DATA_STAGE", "summarize", "SPLITS"]

SPLITS = ("train", "validation", "eval")


def _load(ctx: StageContext) -> LoadedData:
    cfg = ctx.config
    data = cfg.data
    if data.source == "redditbias":
        src = data.redditbias or RedditBiasSource()
        return load_redditbias(cfg.resolve(src.root), groups=tuple(src.groups), encoding=src.encoding,
                               encoding_fallback=src.encoding_fallback, min_text_chars=data.min_text_chars)
    return load_file(cfg.resolve(data.file.path), source=data.file)


def summarize(table: pd.DataFrame, *, sensitive_features: tuple[str, ...]) -> dict[str, Any]:
    """Representation and label base rate per split and per sensitive-feature value."""
    out: dict[str, Any] = {"rows": int(len(table)), "splits": {}}
    for split in ("all", *SPLITS):
        part = table if split == "all" else table[table["split"] == split]
        entry: dict[str, Any] = {
            "rows": int(len(part)),
            "base_rate": float(part["label"].mean()) if len(part) else None,
            "features": {},
        }
        for feature in sensitive_features:
            groups = {}
            for value, rows in part.groupby(feature, sort=True):
                groups[str(value)] = {
                    "count": int(len(rows)),
                    "share": float(len(rows) / len(part)) if len(part) else None,
                    "positives": int(rows["label"].sum()),
                    "base_rate": float(rows["label"].mean()),
                }
            entry["features"][feature] = groups
        out["splits"][split] = entry
    return out


def load_data_stage(ctx: StageContext) -> dict[str, Any]:
    cfg = ctx.config
    loaded = _load(ctx)
    table = loaded.table
    strata = [loaded.sensitive_features[0], "label"]
    table = table.assign(split=assign_splits(
        table, by=strata, eval_fraction=cfg.data.split.eval_fraction,
        validation_fraction=cfg.data.split.validation_fraction, seed=cfg.seed,
    ))
    table = table.sort_values("example_id").reset_index(drop=True)
    splits = {name: table[table["split"] == name].reset_index(drop=True) for name in SPLITS}
    sample = stratified_sample(splits["eval"], by=strata, size=cfg.data.audit_sample_size, seed=cfg.seed)
    by_file = {}
    by_reason: dict[str, int] = {}
    for removal in loaded.removals:
        kept = int((table["source_file"] == removal.file).sum())
        by_file[removal.file] = removal.as_dict(kept)
        for reason, n in removal.reasons.items():
            by_reason[reason] = by_reason.get(reason, 0) + int(n)
    removed = {
        "total": int(sum(by_reason.values())),
        "rows_read": int(sum(r.rows_read for r in loaded.removals)),
        "kept": int(len(table)),
        "by_reason": dict(sorted(by_reason.items())),
        "by_file": by_file,
    }
    summary = summarize(table, sensitive_features=loaded.sensitive_features)
    summary.update({
        "source": cfg.data.source,
        "sensitive_features": list(loaded.sensitive_features),
        "stratified_by": strata,
        "audit_sample_rows": int(len(sample)),
        "encodings": loaded.encodings,
        "file_sha256": loaded.fingerprints,
        "fingerprint": _fingerprint(loaded.fingerprints),
        "removed_rows": removed["total"],
    })
    ctx.log.info("loaded %d rows (%d removed); train %d, validation %d, eval %d; audit sample %d",
                 len(table), removed["total"], len(splits["train"]), len(splits["validation"]),
                 len(splits["eval"]), len(sample))
    return {
        "examples": table,
        **splits,
        "audit_sample": sample,
        "removed_rows": removed,
        "data_summary": summary,
    }


def _fingerprint(file_hashes: dict[str, str]) -> str:
    from pipelines.artifacts import hash_bytes

    return hash_bytes("\n".join(f"{k}={v}" for k, v in sorted(file_hashes.items())).encode())


def source_fingerprints(cfg: AuditConfig) -> dict[str, str]:
    """SHA-256 of every file the data stage will read (missing files hash to 'missing')."""
    if cfg.data.source == "redditbias":
        src = cfg.data.redditbias or RedditBiasSource()
        root = cfg.resolve(src.root)
        paths = {group: root / "data" / REDDITBIAS_FILES[group][1] for group in src.groups}
    else:
        from pipelines.errors import DataError

        try:
            shards = expand_shards(cfg.resolve(cfg.data.file.path))
        except DataError:
            shards = []
        paths = {str(p): p for p in shards} or {"file": cfg.resolve(cfg.data.file.path)}
    return {name: (hash_path(p) if p.is_file() else "missing") for name, p in paths.items()}


LOAD_DATA_STAGE = Stage(
    name="load_data",
    fn=load_data_stage,
    config_sections=("data",),
    version="1",
    external_inputs=source_fingerprints,
)
