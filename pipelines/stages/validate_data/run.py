"""The validate_data stage: TFDV statistics, schema validation, drift and skew.

TensorFlow and TFDV are imported inside the functions here, never at module
import time: importing TFDV alone takes ~18 s on the reference machine.

Statistics go through TFDV's Beam API from Arrow record batches
(:mod:`pipelines.stages.validate_data.stats`; DirectRunner by default, ``beam:`` options
from the config): no CSV round trip, so any text passes, and every temporary file lives
in the stage's scratch folder. Texts shared between splits (and with a RAG knowledge
base) are reported by :mod:`pipelines.stages.validate_data.leakage`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from pipelines.config import AuditConfig
from pipelines.core.artifacts import hash_path
from pipelines.core.runner import StageContext
from pipelines.errors import ConfigError, DataError
from pipelines.stages.validate_data.stats import OVERALL_SLICE, generate_split_statistics, slice_names

__all__ = [
    "STATS_FEATURES",
    "generate_split_statistics",
    "load_schema",
    "apply_drift_thresholds",
    "validate_splits",
    "slice_names",
    "validate_data",
    "schema_fingerprint",
    "knowledge_bases",
    "validation_preflight",
    "INFERRED_SCHEMA_FILE",
]

DERIVED_FEATURES = ("n_chars", "n_tokens")
STATS_FEATURES = ("text", "label")
#: Where an inferred schema goes: this file in the stage's folder of the run.
INFERRED_SCHEMA_FILE = "schema_inferred.pbtxt"


def _quiet_tf() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _columns(sensitive: tuple[str, ...]) -> list[str]:
    return [*STATS_FEATURES, *sensitive, *DERIVED_FEATURES]


def overall(stats):
    """The unsliced dataset of a sliced statistics list, as its own list."""
    from tensorflow_metadata.proto.v0 import statistics_pb2

    out = statistics_pb2.DatasetFeatureStatisticsList()
    for ds in stats.datasets:
        if ds.name == OVERALL_SLICE:
            out.datasets.add().CopyFrom(ds)
    if not out.datasets:
        raise DataError(f"statistics: no {OVERALL_SLICE!r} dataset among {slice_names(stats)}.")
    return out


def load_schema(path: Path):
    _quiet_tf()
    import tensorflow_data_validation as tfdv
    from google.protobuf import text_format

    try:
        return tfdv.load_schema_text(str(path))
    except text_format.ParseError as exc:
        raise ConfigError(f"{path}: not a valid TFDV schema (text proto): {exc}") from exc


def apply_drift_thresholds(schema, *, drift: Mapping[str, Any], skew: Mapping[str, Any]):
    """A copy of ``schema`` with the config's drift/skew comparators set on each feature."""
    _quiet_tf()
    import tensorflow_data_validation as tfdv
    from tensorflow_metadata.proto.v0 import schema_pb2

    out = schema_pb2.Schema()
    out.CopyFrom(schema)
    names = {f.name for f in out.feature}
    for kind, rules in (("drift", drift), ("skew", skew)):
        for feature, rule in rules.items():
            if feature not in names:
                from pipelines.config import did_you_mean

                raise ConfigError(
                    f"validation.{kind}: feature {feature!r} is not in the schema.{did_you_mean(feature, sorted(names))} "
                    f"Schema features: {', '.join(sorted(names))}."
                )
            comparator = getattr(tfdv.get_feature(out, feature), f"{kind}_comparator")
            if rule.l_infinity is not None:
                comparator.infinity_norm.threshold = rule.l_infinity
            if rule.jensen_shannon is not None:
                comparator.jensen_shannon_divergence.threshold = rule.jensen_shannon
    return out


def _anomaly_list(anomalies) -> list[dict[str, Any]]:
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    def entry(feature: str, info) -> dict[str, Any]:
        return {
            "feature": feature,
            "severity": anomalies_pb2.AnomalyInfo.Severity.Name(info.severity),
            "short_description": info.short_description,
            "description": info.description,
            "types": sorted({anomalies_pb2.AnomalyInfo.Type.Name(r.type) for r in info.reason}),
        }

    out = [entry(feature, info) for feature, info in sorted(anomalies.anomaly_info.items())]
    if anomalies.HasField("dataset_anomaly_info"):
        out.append(entry("<dataset>", anomalies.dataset_anomaly_info))
    return out


def _distances(anomalies, *, kind: str) -> list[dict[str, Any]]:
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    out = []
    for info in anomalies.drift_skew_info:
        feature = ".".join(info.path.step)
        for m in (info.drift_measurements if kind == "drift" else info.skew_measurements):
            out.append({
                "feature": feature,
                "measure": anomalies_pb2.DriftSkewInfo.Measurement.Type.Name(m.type),
                "value": float(m.value),
                "threshold": float(m.threshold),
                "exceeded": bool(m.value > m.threshold),
            })
    return sorted(out, key=lambda d: (d["feature"], d["measure"]))


def validate_splits(stats: Mapping[str, Any], schema) -> dict[str, Any]:
    """Validate each split against ``schema``; eval is also compared with train (drift)
    and, when present, serving with train (skew).

    Returns ``{"anomalies": {split: Anomalies}, "summary": {...}}``.
    """
    _quiet_tf()
    import tensorflow_data_validation as tfdv

    anomalies: dict[str, Any] = {}
    train = overall(stats["train"])
    for split, split_stats in stats.items():
        base = overall(split_stats)
        if split == "eval":
            anomalies[split] = tfdv.validate_statistics(base, schema, previous_statistics=train)
        elif split == "serving":
            anomalies[split] = tfdv.validate_statistics(train, schema, serving_statistics=base)
        else:
            anomalies[split] = tfdv.validate_statistics(base, schema)
    summary = {
        "anomalies": {split: _anomaly_list(a) for split, a in anomalies.items()},
        "drift": _distances(anomalies["eval"], kind="drift") if "eval" in anomalies else [],
        "skew": _distances(anomalies["serving"], kind="skew") if "serving" in anomalies else [],
        "slices": {split: slice_names(s) for split, s in stats.items()},
    }
    summary["anomaly_count"] = sum(len(v) for v in summary["anomalies"].values())
    summary["drift_exceeded"] = [d for d in summary["drift"] if d["exceeded"]]
    summary["skew_exceeded"] = [d for d in summary["skew"] if d["exceeded"]]
    return {"anomalies": anomalies, "summary": summary}


def _slice_counts(stats) -> dict[str, int]:
    return {ds.name: int(ds.num_examples) for ds in stats.datasets}


def validate_data(ctx: StageContext, *, train: pd.DataFrame, validation: pd.DataFrame,
                        eval: pd.DataFrame, splits: Path | None = None) -> dict[str, Any]:  # noqa: A002
    """Statistics per split and slice, schema validation, drift and skew, and leakage between splits."""
    _quiet_tf()
    from pipelines.beam import pipeline_args

    cfg = ctx.config
    sensitive = tuple(cfg.data.sensitive_features)
    frames = {"train": train, "validation": validation, "eval": eval}
    if splits is not None:
        # Beam data path: statistics from the full split shards, not the capped in-memory tables.
        from pipelines.stages.validate_data.beam import statistics_from_shards

        columns = _columns(sensitive)
        frames = {}
        stats_from_shards = {
            split: statistics_from_shards(splits, split, columns=columns, sensitive=sensitive,
                                          pipeline_args=pipeline_args(cfg.beam), workdir=ctx.scratch_dir)
            for split in ("train", "validation", "eval") if list(Path(splits).glob(f"{split}*.parquet"))
        }
    else:
        stats_from_shards = {}
    serving_path = cfg.resolve(cfg.validation.serving_path)
    if serving_path is not None:
        from pipelines.stages.load_data.sources import load_file

        if cfg.data.file is None:
            raise ConfigError(f"{cfg.source}: `validation.serving` needs `data.source: file` "
                              "(the serving file is read with the same column mapping).")
        frames["serving"] = load_file(serving_path, source=cfg.data.file, dedupe=False).table
    stats = dict(stats_from_shards)
    for split, frame in frames.items():
        if frame.empty:
            continue
        stats[split] = generate_split_statistics(frame, name=split, sensitive=sensitive, workdir=ctx.scratch_dir,
                                                 pipeline_args=pipeline_args(cfg.beam),
                                                 columns=[c for c in _columns(sensitive) if c in frame.columns])
        expected = {OVERALL_SLICE, *(f"{f}_{v}" for f in sensitive for v in frame[f].astype(str).unique())}
        missing = sorted(expected - set(slice_names(stats[split])))
        if missing:
            raise DataError(f"statistics for split {split!r}: slices {missing} are missing "
                            f"(got {slice_names(stats[split])}).")

    schema, schema_origin, inferred = _schema(ctx, stats)
    schema = apply_drift_thresholds(schema, drift=cfg.validation.drift, skew=cfg.validation.skew)
    result = validate_splits(stats, schema)
    summary = result["summary"]
    summary["schema"] = schema_origin
    summary["examples_per_slice"] = {split: _slice_counts(s) for split, s in stats.items()}
    summary["blessed"] = summary["anomaly_count"] == 0 and not summary["drift_exceeded"] and not summary["skew_exceeded"]
    summary["block_on_anomalies"] = cfg.validation.block_on_anomalies
    summary["leakage"] = _leakage(cfg, {"train": train, "validation": validation, "eval": eval}, splits)
    # reasons that fail the run whatever the gates say (read by pipelines.graph.run_verdict)
    summary["blocking"] = list((summary["leakage"] or {}).get("blocking") or [])
    out: dict[str, Any] = {f"statistics_{split}": s for split, s in stats.items()}
    out.update({f"anomalies_{split}": a for split, a in result["anomalies"].items()})
    out["schema"] = schema
    if inferred is not None:
        out["schema_inferred"] = inferred
    out["validation_summary"] = summary
    leak = summary["leakage"] or {"pairs": []}
    ctx.log.info("TFDV: %d anomalies, %d drift thresholds exceeded; slices %s; shared texts %s",
                 summary["anomaly_count"], len(summary["drift_exceeded"]),
                 {k: len(v) for k, v in summary["slices"].items()},
                 {f"{p['a']}/{p['b']}": p["near"] for p in leak["pairs"]})
    for reason in summary["blocking"]:
        ctx.log.warning("%s", reason)
    return out


def _schema(ctx: StageContext, stats: Mapping[str, Any]) -> tuple[Any, dict[str, Any], Path | None]:
    """The schema to validate against, where it came from, and the inferred schema's file (or None)."""
    import tensorflow_data_validation as tfdv
    from google.protobuf import text_format

    cfg = ctx.config
    schema_path = cfg.resolve(cfg.validation.schema_path)
    if schema_path is not None and schema_path.is_file():
        return load_schema(schema_path), {"origin": "curated", "path": str(schema_path),
                                          "sha256": hash_path(schema_path), "inferred_from_same_data": False}, None
    if schema_path is not None and cfg.validation.on_missing_schema == "error":
        raise ConfigError(f"{cfg.source}: `validation.schema` file {schema_path} not found "
                          "(on_missing_schema is 'error').")
    inferred = tfdv.infer_schema(overall(stats["train"]))
    written = ctx.scratch_dir / INFERRED_SCHEMA_FILE
    written.write_text(text_format.MessageToString(inferred), encoding="utf-8")
    where = f"validate_data/{INFERRED_SCHEMA_FILE} in this run's folder"
    origin = {
        "origin": "inferred from train", "path": None, "sha256": None,
        # the splits were validated against a schema drawn from the data itself: few anomalies can show
        "inferred_from_same_data": True,
        "written_to": where,
        "hint": (f"review {where} and check it in as {schema_path}" if schema_path is not None
                 else f"review {where}, check it in, and set `validation.schema` to it"),
    }
    return inferred, origin, written


def knowledge_bases(cfg: AuditConfig) -> list[tuple[str, Any]]:
    """``(variant name, knowledge_base section)`` of every variant that retrieves from a knowledge base."""
    return [(spec.name, kb) for spec in cfg.variants if (kb := getattr(spec, "knowledge_base", None)) is not None]


def _leakage(cfg: AuditConfig, frames: Mapping[str, pd.DataFrame], splits: Path | None) -> dict[str, Any] | None:
    from pipelines.stages.validate_data.leakage import TextSet, leakage_report

    settings = cfg.validation.leakage
    if not settings.check:
        return None
    if splits is not None:
        from pipelines.stages.validate_data.beam import text_set_from_shards

        sets = {split: text_set_from_shards(splits, split) for split in ("train", "validation", "eval")
                if list(Path(splits).glob(f"{split}*.parquet"))}
        scope = "every row of the split shards"
    else:
        sets = {split: TextSet(split, f["example_id"], f["text"]) for split, f in frames.items() if len(f)}
        scope = "every row of each split"
    kbs = []
    for name, kb in knowledge_bases(cfg):
        if kb.path is None:
            kbs.append((name, None, "the train split"))
            continue
        from pipelines.variants.retrieval import load_documents

        path = cfg.resolve(kb.path)
        docs = load_documents(path, fmt=kb.format, text_column=kb.text_column, id_column=kb.id_column,
                              label_column=None, group_column=None)
        kbs.append((name, TextSet(f"knowledge base of {name}", docs["doc_id"], docs["text"]), str(path)))
    return leakage_report(sets, kbs, max_shared=settings.max_shared, block=settings.block, scope=scope)


def schema_fingerprint(cfg: AuditConfig) -> dict[str, str]:
    """Hashes of the files the stage reads from outside the run: the schema, the serving file, and each
    knowledge-base file (for the leakage check)."""
    specs = [("schema", cfg.validation.schema_path), ("serving", cfg.validation.serving_path)]
    if cfg.validation.leakage.check:
        specs += [(f"knowledge_base:{name}", kb.path) for name, kb in knowledge_bases(cfg) if kb.path]
    out = {}
    for name, spec in specs:
        path = cfg.resolve(spec)
        if path is not None:
            out[name] = hash_path(path) if path.is_file() else "missing"
    return out


def leakage_settings(cfg: AuditConfig) -> dict[str, Any]:
    """The parts of other sections the stage reads (they key its cache): the knowledge bases' columns."""
    return {"knowledge_bases": [{"variant": name, **kb.model_dump(mode="json")} for name, kb in knowledge_bases(cfg)
                                if kb.path]}


def validation_preflight(cfg: AuditConfig) -> list[Exception]:
    """What can be checked before running: the curated schema parses, the serving file and each knowledge-base
    file exist and have their columns (no TFDV import: the schema is parsed as a text proto)."""
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    from pipelines.core.tables import require_columns, shard_columns, sniff_format

    problems: list[Exception] = []
    schema_path = cfg.resolve(cfg.validation.schema_path)
    if schema_path is not None and schema_path.is_file():
        try:
            text_format.Parse(schema_path.read_text(encoding="utf-8"), schema_pb2.Schema())
        except (text_format.ParseError, UnicodeDecodeError) as exc:
            problems.append(ConfigError(f"{schema_path}: `validation.schema` is not a valid TFDV schema (text proto): "
                                        f"{exc}"))
    elif schema_path is not None and cfg.validation.on_missing_schema == "error":
        problems.append(ConfigError(f"{schema_path}: `validation.schema` file not found (on_missing_schema is "
                                    "'error'; set it to 'infer' to infer one from train on this run)."))
    serving = cfg.resolve(cfg.validation.serving_path)
    if serving is not None and cfg.data.file is not None:
        from pipelines.stages.load_data.sources import column_roles

        src = cfg.data.file
        try:
            require_columns(shard_columns(serving, fmt=sniff_format(serving, src.format), encoding=src.encoding,
                                          encoding_fallback=src.encoding_fallback), serving, column_roles(src))
        except DataError as exc:
            problems.append(DataError(f"`validation.serving`: {exc}"))
    if cfg.validation.leakage.check:
        for name, kb in knowledge_bases(cfg):
            if kb.path is None:
                continue
            path = cfg.resolve(kb.path)
            try:
                fmt = kb.format or sniff_format(path, None)
                require_columns(shard_columns(path, fmt=fmt), path,
                                {kb.text_column: f"text of the knowledge base of variant {name!r} "
                                                 "(variants[*].knowledge_base.text_column)"})
            except DataError as exc:
                problems.append(DataError(f"knowledge base of variant {name!r}: {exc}"))
    return problems
