"""The load_data stage: read, normalize, split and summarize the audit dataset."""

from __future__ import annotations

from typing import Any

import numpy as np
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
    import json

    counts: dict[str, int] = {}
    for feature in sensitive_features:
        for (split, value, label), n in table.groupby(["split", feature, "label"]).size().items():
            counts[json.dumps(["rows", split, feature, str(value), int(label)])] = int(n)
    return summarize_counts(counts, sensitive_features=sensitive_features)


def summarize_counts(counts: dict[str, int], *, sensitive_features: tuple[str, ...]) -> dict[str, Any]:
    """Representation and label base rate per split and sensitive-feature value, from
    ``["rows", split, feature, value, label] -> n`` counts (the Beam data pass yields these)."""
    import json

    cells: dict[tuple[str, str, str, int], int] = {}
    for key, n in counts.items():
        _, split, feature, value, label = json.loads(key)
        cells[(split, feature, str(value), int(label))] = cells.get((split, feature, str(value), int(label)), 0) + n
    out: dict[str, Any] = {"splits": {}}
    first = sensitive_features[0]
    for split in ("all", *SPLITS):
        def pick(feature, s=split):
            return {k: v for k, v in cells.items() if k[1] == feature and (s == "all" or k[0] == s)}
        base = pick(first)
        rows = sum(base.values())
        positives = sum(v for k, v in base.items() if k[3] == 1)
        entry: dict[str, Any] = {"rows": rows, "base_rate": positives / rows if rows else None, "features": {}}
        for feature in sensitive_features:
            groups: dict[str, Any] = {}
            for (sp, _, value, label), n in sorted(pick(feature).items()):
                g = groups.setdefault(value, {"count": 0, "positives": 0})
                g["count"] += n
                g["positives"] += n * label
            for g in groups.values():
                g["share"] = g["count"] / rows if rows else None
                g["base_rate"] = g["positives"] / g["count"]
            entry["features"][feature] = dict(sorted(groups.items()))
        out["splits"][split] = entry
    out["rows"] = out["splits"]["all"]["rows"]
    return out


def _load_on_beam(ctx: StageContext) -> dict[str, Any]:
    """The Beam path: sharded inputs, split shards out, in-memory tables are capped samples."""
    import json

    from pipelines.beam.data import run_beam_data_pipeline
    from pipelines.data._io import require_columns, shard_columns, sniff_format
    from pipelines.data._sources import column_roles
    from pipelines.data._split import largest_remainder
    from pipelines.errors import DataError

    cfg = ctx.config
    src = cfg.data.file
    path = cfg.resolve(src.path)
    shards = expand_shards(path)
    fmt = sniff_format(shards[0], src.format)
    roles = column_roles(src)
    for shard in shards:  # headers only: a missing column is an error before any worker starts
        require_columns(shard_columns(shard, fmt=fmt, encoding=src.encoding, encoding_fallback=src.encoding_fallback),
                        shard, roles)
    cap = cfg.beam.max_in_memory_rows
    sample_size = cfg.data.audit_sample_size
    result = run_beam_data_pipeline(
        shards, source=src, seed=cfg.seed, eval_fraction=cfg.data.split.eval_fraction,
        validation_fraction=cfg.data.split.validation_fraction, sample_per_stratum=cap,
        out_dir=ctx.scratch_dir / "beam", pipeline_args=cfg.beam.pipeline_args(),
    )
    sensitive = tuple(src.sensitive_columns)
    label_removed = result["removed"].get("label_missing", 0) + result["removed"].get("label_out_of_domain", 0)
    if label_removed and not src.drop_unlabelled:
        values = ", ".join(f"{k!r} x{n}" for k, n in sorted(result["removed_label_values"].items())[:5])
        raise DataError(
            f"{path}: column {src.label_column!r} must hold labels in "
            f"{sorted(map(str, (*src.positive_labels, *src.negative_labels)))}. Got {label_removed} row(s) "
            f"missing or outside them ({values or 'empty'}). Set `data.file.drop_unlabelled: true` to remove "
            "and count them."
        )
    summary = summarize_counts(result["counts"], sensitive_features=sensitive)
    for feature in sensitive:
        values = list(summary["splits"]["all"]["features"].get(feature, {}))
        if len(values) < 2:
            raise DataError(f"{path}: sensitive feature {feature!r} must have at least two distinct values to "
                            f"compare groups. Found only {values[0] if values else None!r}.")
    by_split: dict[str, list[tuple[str, list[dict]]]] = {s: [] for s in SPLITS}
    for stratum, rows in sorted(result["samples"].items()):
        split = json.loads(stratum)[0]
        by_split[split].append((stratum, rows))

    # a stratum is (split, value of the first sensitive feature, label), as in the Beam pass
    stratum_size: dict[str, int] = {}
    for key, n in result["counts"].items():
        _, split, feature, value, label = json.loads(key)
        if feature == sensitive[0]:
            stratum_size[json.dumps([split, value, label])] = n

    def capped(split: str, size: int | None) -> pd.DataFrame:
        strata = by_split[split]
        sizes = [stratum_size[stratum] for stratum, _ in strata]
        total = sum(sizes)
        want = total if size is None else min(size, total)
        alloc = largest_remainder(np.array(sizes), want) if sizes else []
        rows = [r for (_, rs), k in zip(strata, alloc) for r in rs[: int(k)]]
        frame = pd.DataFrame(rows)
        return frame.sort_values("example_id").reset_index(drop=True) if len(frame) else frame

    tables = {split: capped(split, cap) for split in SPLITS}
    sample = capped("eval", sample_size if sample_size is not None else cap)
    fingerprints = source_fingerprints(cfg)
    removed = {
        "total": int(sum(result["removed"].values())),
        "kept": int(summary["rows"]),
        "by_reason": dict(sorted(result["removed"].items())),
        "removed_label_values": dict(sorted(result["removed_label_values"].items())),
    }
    removed["rows_read"] = removed["kept"] + removed["total"]
    summary.update({
        "source": "file", "engine": "beam", "sensitive_features": list(sensitive),
        "split_method": "seeded hash of example_id (stratified in expectation)",
        "in_memory_rows": {split: int(len(t)) for split, t in tables.items()},
        "audit_sample_rows": int(len(sample)),
        "file_sha256": fingerprints,
        "fingerprint": _fingerprint(fingerprints),
        "removed_rows": removed["total"],
    })
    ctx.log.info("Beam data pass: %d rows kept (%d removed) from %d shard(s)", summary["rows"], removed["total"],
                 len(shards))
    return {**tables, "audit_sample": sample, "removed_rows": removed, "data_summary": summary,
            "splits": result["split_dir"]}


def load_data_stage(ctx: StageContext) -> dict[str, Any]:
    cfg = ctx.config
    if cfg.beam.data:
        return _load_on_beam(ctx)
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
    config_sections=("data", "beam"),
    version="1",
    external_inputs=source_fingerprints,
)
