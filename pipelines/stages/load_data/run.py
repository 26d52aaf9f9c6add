"""The load_data stage: read, normalize, split and summarize the audit dataset (in memory).

With ``beam.data: true`` the work is done by :func:`pipelines.stages.load_data.beam.load_on_beam`.
"""

from __future__ import annotations

from typing import Any


from pipelines.config import RedditBiasSource
from pipelines.core.runner import StageContext
from pipelines.stages.load_data.normalize import NORMALIZATION
from pipelines.stages.load_data.sources import LoadedData, load_file, load_redditbias
from pipelines.stages.load_data.split import assign_splits, stratified_sample
from pipelines.stages.load_data.summary import SPLITS, data_fingerprint, summarize

__all__ = ["load_data"]

def _load(ctx: StageContext) -> LoadedData:
    cfg = ctx.config
    data = cfg.data
    if data.source == "redditbias":
        src = data.redditbias or RedditBiasSource()
        return load_redditbias(cfg.resolve(src.root), groups=tuple(src.groups), encoding=src.encoding,
                               encoding_fallback=src.encoding_fallback, min_text_chars=data.min_text_chars)
    return load_file(cfg.resolve(data.file.path), source=data.file, extra_columns=cfg.passthrough_columns,
                     group_by=data.split.group_by)


def _split_key(cfg, table) -> str | None:
    """The table column named by ``data.split.group_by`` (a ConfigError when the table has no such column)."""
    from pipelines.config import did_you_mean
    from pipelines.errors import ConfigError
    from pipelines.stages.load_data.sources import split_key_column

    group_by = cfg.data.split.group_by
    if group_by is None:
        return None
    key = split_key_column(cfg.data.file, group_by) if cfg.data.file is not None else group_by
    if key not in table.columns:
        columns = [c for c in table.columns if c != "split"]
        raise ConfigError(f"`data.split.group_by` names column {group_by!r}, which the data does not have."
                          f"{did_you_mean(group_by, columns)} Columns: {', '.join(columns)}.")
    return key


def load_data(ctx: StageContext) -> dict[str, Any]:
    """Read the configured data, normalize it, split it and draw the audit sample."""
    cfg = ctx.config
    if cfg.beam.data:
        from pipelines.stages.load_data.beam import load_on_beam

        return load_on_beam(ctx)
    loaded = _load(ctx)
    table = loaded.table
    strata = [loaded.sensitive_features[0], "label"]
    key = _split_key(cfg, table)
    table = table.assign(split=assign_splits(
        table, by=strata, eval_fraction=cfg.data.split.eval_fraction,
        validation_fraction=cfg.data.split.validation_fraction, seed=cfg.seed, group_by=key,
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
        "duplicates": {"normalization": NORMALIZATION, **(loaded.duplicates or {})},
    }
    summary = summarize(table, sensitive_features=loaded.sensitive_features)
    summary.update({
        "source": cfg.data.source,
        "sensitive_features": list(loaded.sensitive_features),
        "stratified_by": strata,
        "split_grouped_by": cfg.data.split.group_by,
        "audit_sample_rows": int(len(sample)),
        "encodings": loaded.encodings,
        "file_sha256": loaded.fingerprints,
        "fingerprint": data_fingerprint(loaded.fingerprints),
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
