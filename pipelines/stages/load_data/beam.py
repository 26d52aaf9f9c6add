"""The data stage on Apache Beam: sharded inputs in, split shards out, nothing loaded whole.

With ``beam.data: true`` the ``load_data`` stage runs this instead of the
in-memory path. One pass over the shards (CSV, Parquet, JSONL or TFRecord files matching
a glob, each read in chunks):

* normalizes every record (labels mapped to 0/1, texts checked) and counts each
  removed record by reason, as the in-memory path does;
* keeps one row per normalized text across all groups (the smallest example id),
  counting the others as duplicates within or across groups, as the in-memory
  path does, so that no text reaches two splits;
* assigns the split from a seeded hash of the example id (or of the
  ``data.split.group_by`` key, so that rows sharing it stay in one split), so it
  needs no global shuffle and is stable when data is appended (stratified in
  expectation rather than exactly, unlike the in-memory split);
* writes each split as Parquet shards and counts rows per split, group and label;
* keeps, per (sensitive feature value, label) stratum, the rows with the
  smallest hashes: a seeded sample for the stages that need rows in memory (the
  audit sample; training and validation tables capped at
  ``beam.max_in_memory_rows``).

Statistics are then computed by TFDV's Beam transforms straight from the split
shards (:func:`pipelines.stages.validate_data.beam.statistics_from_shards`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Iterator, Sequence

from pipelines.core.runner import StageContext

__all__ = ["split_of", "run_beam_data_pipeline", "load_on_beam", "BEAM_SPLIT_DIR"]

BEAM_SPLIT_DIR = "splits"


def _unit_hash(seed: int, key: str) -> float:
    digest = hashlib.sha256(f"{seed}\x1f{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def split_of(example_id: str, *, seed: int, eval_fraction: float, validation_fraction: float) -> str:
    """The split of one example, from a seeded hash of its id (uniform in [0, 1))."""
    u = _unit_hash(seed, example_id)
    if u < eval_fraction:
        return "eval"
    if u < eval_fraction + validation_fraction:
        return "validation"
    return "train"


def _read_shard(path: str, *, fmt: str, encoding: str, encoding_fallback: str | None,
                columns: list[str] | None = None, text_columns: tuple[str, ...] = (),
                chunk_rows: int = 50_000) -> Iterator[dict[str, Any]]:
    """Records of one shard, read in chunks; each carries its shard and row number. A text column
    holding numbers is a DataError naming the shard and the row (record)."""
    import pandas as pd

    from pipelines.core.tables import check_encoding, check_text_values

    name = Path(path).name
    if fmt == "tfrecord":
        from pipelines.core.tables import iter_tfrecord_examples

        for row, rec in enumerate(iter_tfrecord_examples(path, columns=columns, encoding=encoding,
                                                         encoding_fallback=encoding_fallback,
                                                         text_columns=text_columns)):
            yield {"_shard": name, "_row": row, **rec}
        return
    if fmt == "parquet":
        import pyarrow.parquet as pq

        row = 0
        for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows):
            check_text_values(batch.to_pandas(), path, text_columns, first_row=row)
            for rec in batch.to_pylist():
                yield {"_shard": name, "_row": row, **rec}
                row += 1
        return
    # CSV / JSONL: find the encoding block by block, then stream the records in chunks.
    used = check_encoding(Path(path), encoding=encoding, encoding_fallback=encoding_fallback)
    from pipelines.core.tables import csv_options, file_has_nul

    reader = (pd.read_csv(path, dtype=str, keep_default_na=False, chunksize=chunk_rows, encoding=used,
                          **csv_options(file_has_nul(Path(path))))
              if fmt == "csv" else pd.read_json(path, lines=True, dtype=False, chunksize=chunk_rows, encoding=used))
    row = 0
    for chunk in reader:
        check_text_values(chunk, path, text_columns, first_row=row)
        for rec in chunk.to_dict(orient="records"):
            yield {"_shard": name, "_row": row, **rec}
            row += 1


def _normalize(rec: dict[str, Any], *, source, positive: set[str], negative: set[str],
               split_key: tuple[str, str] | None = None):
    """('kept', record) or ('removed', reason, label value). ``split_key`` is ``(file column, table column)``
    of ``data.split.group_by``: the key is carried into the record."""
    from pipelines.stages.load_data.normalize import (
        REASON_LABEL_MISSING,
        REASON_LABEL_OUT_OF_DOMAIN,
        REASON_TEXT_MISSING,
        _canon,
    )

    label = _canon(rec.get(source.label_column))
    if label == "":
        return ("removed", REASON_LABEL_MISSING, "")
    if label not in positive and label not in negative:
        return ("removed", REASON_LABEL_OUT_OF_DOMAIN, label)
    text = rec.get(source.text_column)
    text = "" if text is None or (isinstance(text, float) and text != text) else str(text).strip()
    if not text:
        return ("removed", REASON_TEXT_MISSING, "")
    example_id = str(rec[source.id_column]) if source.id_column else f"{rec['_shard']}-{rec['_row']:09d}"
    out = {"example_id": example_id, "text": text, "label": 1 if label in positive else 0,
           "source_file": rec["_shard"], "n_chars": len(text), "n_tokens": len(text.split())}
    for col in source.sensitive_columns:
        value = rec.get(col)
        value = "" if value is None else str(value).strip()
        out[col] = value or "<missing>"
    if split_key is not None and split_key[1] not in out:
        value = rec.get(split_key[0])
        value = "" if value is None or (isinstance(value, float) and value != value) else str(value).strip()
        out[split_key[1]] = value or None
    return ("kept", out)


def _dedupe(kv, *, sensitive: list[str]):
    """(normalized text, records) -> the kept record (smallest example id) and one removal per other record."""
    from pipelines.stages.load_data.normalize import REASON_DUPLICATE, REASON_DUPLICATE_ACROSS

    records = sorted(kv[1], key=lambda r: r["example_id"])
    kept = records[0]
    yield ("kept", kept)
    for rec in records[1:]:
        same = all(rec[c] == kept[c] for c in sensitive)
        yield ("removed", REASON_DUPLICATE if same else REASON_DUPLICATE_ACROSS, "")
        if rec["label"] != kept["label"]:
            yield ("conflict", 1)


def run_beam_data_pipeline(
    shards: Sequence[Path],
    *,
    source,
    seed: int,
    eval_fraction: float,
    validation_fraction: float,
    sample_per_stratum: int,
    out_dir: Path,
    pipeline_args: Sequence[str],
    group_by: str | None = None,
) -> dict[str, Any]:
    """Run the Beam data pass. Returns counts, removals and the per-stratum samples.

    Split shards are written to ``out_dir / 'splits' / '<split>-*.parquet'``.
    """
    import apache_beam as beam
    import pyarrow as pa

    from pipelines.beam import beam_pipeline
    from pipelines.core.tables import sniff_format
    from pipelines.stages.load_data.normalize import _canon, normalized_text
    from pipelines.stages.load_data.sources import column_roles, split_key_column

    fmt = sniff_format(Path(shards[0]), source.format)
    positive = {_canon(v) for v in source.positive_labels}
    negative = {_canon(v) for v in source.negative_labels}
    sensitive = list(source.sensitive_columns)
    wanted = list(column_roles(source, group_by=group_by))
    key_column = split_key_column(source, group_by)
    split_key = (group_by, key_column) if group_by is not None else None
    extra = [] if key_column is None or key_column in ("example_id", "text", "label", *sensitive) else [key_column]
    out_dir = Path(out_dir)
    split_dir = out_dir / BEAM_SPLIT_DIR
    split_dir.mkdir(parents=True, exist_ok=True)
    side = out_dir / "side"
    side.mkdir(exist_ok=True)
    schema = pa.schema([("example_id", pa.string()), ("text", pa.string()), ("label", pa.int64()),
                        *[(c, pa.string()) for c in sensitive + extra], ("source_file", pa.string()),
                        ("n_chars", pa.int64()), ("n_tokens", pa.int64()), ("split", pa.string())])

    def tag_split(rec):
        rec = dict(rec)
        key = rec.get(key_column) if key_column is not None else None
        rec["split"] = split_of(str(key) if key is not None else rec["example_id"], seed=seed,
                                eval_fraction=eval_fraction, validation_fraction=validation_fraction)
        return rec

    def stratum(rec):
        return json.dumps([rec["split"], rec[sensitive[0]], rec["label"]])

    with beam_pipeline(pipeline_args, what="the data pass") as p:
        normalized = (
            p
            | "Shards" >> beam.Create([str(s) for s in shards])
            | "Read" >> beam.FlatMap(_read_shard, fmt=fmt, encoding=source.encoding,
                                     encoding_fallback=source.encoding_fallback, columns=wanted,
                                     text_columns=(source.text_column,))
            | "Normalize" >> beam.Map(_normalize, source=source, positive=positive, negative=negative,
                                      split_key=split_key)
        )
        kept = normalized | "Kept" >> beam.Filter(lambda t: t[0] == "kept") | beam.Map(lambda t: t[1])
        removed = normalized | "Removed" >> beam.Filter(lambda t: t[0] == "removed")
        # one row per normalized text, across groups: keep the smallest example id
        deduped = (kept
                   | "DupKey" >> beam.Map(lambda r: (normalized_text(r["text"]), r))
                   | "GroupDup" >> beam.GroupByKey()
                   | "Dedupe" >> beam.FlatMap(_dedupe, sensitive=sensitive))
        unique = deduped | "Unique" >> beam.Filter(lambda t: t[0] == "kept") | "UniqueRows" >> beam.Map(lambda t: t[1])
        dup_removed = deduped | "DupRemoved" >> beam.Filter(lambda t: t[0] == "removed")
        conflicts = deduped | "Conflicts" >> beam.Filter(lambda t: t[0] == "conflict")
        rows = unique | "Split" >> beam.Map(tag_split)
        for split in ("train", "validation", "eval"):
            _ = (rows
                 | f"Only{split}" >> beam.Filter(lambda r, s=split: r["split"] == s)
                 | f"Write{split}" >> beam.io.WriteToParquet(str(split_dir / split), schema,
                                                             file_name_suffix=".parquet"))
        counts = (rows
                  | "CountKey" >> beam.FlatMap(lambda r: [json.dumps(["rows", r["split"], f, r[f], r["label"]])
                                                          for f in sensitive])
                  | "Count" >> beam.combiners.Count.PerElement())
        reasons = (
            (removed | "R1" >> beam.Map(lambda t: (json.dumps(["removed", t[1], t[2]]), 1)),
             dup_removed | "R2" >> beam.Map(lambda t: (json.dumps(["removed", t[1], t[2]]), 1)),
             conflicts | "R3" >> beam.Map(lambda t: (json.dumps(["conflict", "label_conflicts", ""]), 1)))
            | "Reasons" >> beam.Flatten()
            | "SumReasons" >> beam.CombinePerKey(sum)
        )
        samples = (rows
                   | "HashKey" >> beam.Map(lambda r: (stratum(r), (_unit_hash(seed + 1, r["example_id"]), r)))
                   | "Smallest" >> beam.combiners.Top.SmallestPerKey(sample_per_stratum, key=lambda t: t[0])
                   | "SampleJson" >> beam.Map(lambda kv: json.dumps({"stratum": kv[0], "rows": [r for _, r in kv[1]]})))
        _ = ((counts, reasons) | "Stats" >> beam.Flatten()
             | "StatsJson" >> beam.Map(lambda kv: json.dumps([kv[0], kv[1]]))
             | "WriteStats" >> beam.io.WriteToText(str(side / "counts"), file_name_suffix=".jsonl"))
        _ = samples | "WriteSamples" >> beam.io.WriteToText(str(side / "samples"), file_name_suffix=".jsonl")

    def lines(prefix):
        for shard in sorted(side.glob(f"{prefix}*.jsonl")):
            yield from (json.loads(l) for l in shard.read_text(encoding="utf-8").splitlines() if l)

    counts_out: dict[str, int] = {}
    removed_out: dict[str, int] = {}
    removed_values: dict[str, int] = {}
    conflicts_out = 0
    for key, n in lines("counts"):
        parts = json.loads(key)
        if parts[0] == "rows":
            counts_out[key] = int(n)
        elif parts[0] == "conflict":
            conflicts_out += int(n)
        else:
            removed_out[parts[1]] = removed_out.get(parts[1], 0) + int(n)
            if parts[2]:
                removed_values[parts[2]] = removed_values.get(parts[2], 0) + int(n)
    samples_out = {rec["stratum"]: rec["rows"] for rec in lines("samples")}
    return {"counts": counts_out, "removed": removed_out, "removed_label_values": removed_values,
            "samples": samples_out, "split_dir": split_dir, "label_conflicts": conflicts_out}


def load_on_beam(ctx: StageContext) -> dict[str, Any]:
    """The Beam path: sharded inputs, split shards out, in-memory tables are capped samples."""
    import json

    import numpy as np
    import pandas as pd

    from pipelines.beam import pipeline_args
    from pipelines.core.sampling import largest_remainder
    from pipelines.core.tables import require_columns, shard_columns, sniff_format
    from pipelines.errors import DataError
    from pipelines.stages.load_data.normalize import NORMALIZATION
    from pipelines.stages.load_data.summary import SPLITS, data_fingerprint, source_fingerprints, summarize_counts
    from pipelines.stages.load_data.sources import column_roles, expand_shards

    cfg = ctx.config
    src = cfg.data.file
    path = cfg.resolve(src.path)
    shards = expand_shards(path)
    fmt = sniff_format(shards[0], src.format)
    roles = column_roles(src, group_by=cfg.data.split.group_by)
    for shard in shards:  # headers only: a missing column is an error before any worker starts
        require_columns(shard_columns(shard, fmt=fmt, encoding=src.encoding, encoding_fallback=src.encoding_fallback),
                        shard, roles)
    cap = cfg.beam.max_in_memory_rows
    sample_size = cfg.data.audit_sample_size
    result = run_beam_data_pipeline(
        shards, source=src, seed=cfg.seed, eval_fraction=cfg.data.split.eval_fraction,
        validation_fraction=cfg.data.split.validation_fraction, sample_per_stratum=cap,
        out_dir=ctx.scratch_dir / "beam", pipeline_args=pipeline_args(cfg.beam), group_by=cfg.data.split.group_by,
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
        "duplicates": {"normalization": NORMALIZATION, "label_conflicts": result["label_conflicts"]},
    }
    removed["rows_read"] = removed["kept"] + removed["total"]
    summary.update({
        "source": "file", "engine": "beam", "sensitive_features": list(sensitive),
        "split_method": (f"seeded hash of {cfg.data.split.group_by or 'example_id'} (stratified in expectation)"),
        "split_grouped_by": cfg.data.split.group_by,
        "in_memory_rows": {split: int(len(t)) for split, t in tables.items()},
        "audit_sample_rows": int(len(sample)),
        "file_sha256": fingerprints,
        "fingerprint": data_fingerprint(fingerprints),
        "removed_rows": removed["total"],
    })
    ctx.log.info("Beam data pass: %d rows kept (%d removed) from %d shard(s)", summary["rows"], removed["total"],
                 len(shards))
    return {**tables, "audit_sample": sample, "removed_rows": removed, "data_summary": summary,
            "splits": result["split_dir"]}
