"""The validate_data stage: TFDV statistics, schema validation, drift and skew.

TensorFlow and TFDV are imported inside the functions here, never at module
import time: importing TFDV alone takes ~18 s on the reference machine.

Statistics go through ``tfdv.generate_statistics_from_csv`` (a Beam pipeline,
DirectRunner by default, ``beam:`` options from the config), because
``generate_statistics_from_dataframe`` silently ignores slice functions.
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

__all__ = [
    "STATS_FEATURES",
    "generate_split_statistics",
    "load_schema",
    "apply_drift_thresholds",
    "validate_splits",
    "slice_names",
    "validate_data",
    "schema_fingerprint",
]

OVERALL_SLICE = "All Examples"
DERIVED_FEATURES = ("n_chars", "n_tokens")
STATS_FEATURES = ("text", "label")


def _quiet_tf() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _columns(sensitive: tuple[str, ...]) -> list[str]:
    return [*STATS_FEATURES, *sensitive, *DERIVED_FEATURES]


def generate_split_statistics(frame: pd.DataFrame, *, name: str, sensitive: tuple[str, ...], workdir: Path,
                              pipeline_args: list[str] | None = None):
    """Statistics for one split, overall and per value of each sensitive feature.

    Returns a ``DatasetFeatureStatisticsList`` whose datasets are sorted by name
    (TFDV's slice order changes from run to run).
    """
    _quiet_tf()
    import tensorflow_data_validation as tfdv
    from tensorflow_data_validation.utils import slicing_util
    from tensorflow_metadata.proto.v0 import statistics_pb2

    from pipelines.beam import pipeline_options

    columns = [c for c in _columns(sensitive) if c in frame.columns]
    path = workdir / f"{name}.csv"
    frame[columns].to_csv(path, index=False)
    options = tfdv.StatsOptions(
        # one slicer per feature: a single slicer over several features slices by their cross
        experimental_slice_functions=[slicing_util.get_feature_value_slicer(features={f: None}) for f in sensitive],
        num_top_values=50,
    )
    stats = tfdv.generate_statistics_from_csv(
        data_location=str(path),
        stats_options=options,
        pipeline_options=pipeline_options(pipeline_args or []),
    )
    ordered = statistics_pb2.DatasetFeatureStatisticsList()
    for ds in sorted(stats.datasets, key=lambda d: d.name):
        ordered.datasets.add().CopyFrom(ds)
    return ordered


def slice_names(stats) -> list[str]:
    return [ds.name for ds in stats.datasets]


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
    _quiet_tf()
    import tensorflow_data_validation as tfdv

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
        frames["serving"] = load_file(serving_path, source=cfg.data.file).table
    stats = dict(stats_from_shards)
    for split, frame in frames.items():
        if frame.empty:
            continue
        stats[split] = generate_split_statistics(frame, name=split, sensitive=sensitive, workdir=ctx.scratch_dir,
                                                 pipeline_args=pipeline_args(cfg.beam))
        expected = {OVERALL_SLICE, *(f"{f}_{v}" for f in sensitive for v in frame[f].astype(str).unique())}
        missing = sorted(expected - set(slice_names(stats[split])))
        if missing:
            raise DataError(f"statistics for split {split!r}: slices {missing} are missing "
                            f"(got {slice_names(stats[split])}).")

    schema_path = cfg.resolve(cfg.validation.schema_path)
    inferred = None
    if schema_path is not None and schema_path.is_file():
        schema = load_schema(schema_path)
        schema_origin = {"origin": "curated", "path": str(schema_path), "sha256": hash_path(schema_path)}
    elif schema_path is not None and cfg.validation.on_missing_schema == "error":
        raise ConfigError(f"{cfg.source}: `validation.schema` file {schema_path} not found "
                          "(on_missing_schema is 'error').")
    else:
        inferred = tfdv.infer_schema(overall(stats["train"]))
        schema = inferred
        schema_origin = {"origin": "inferred from train", "path": None, "sha256": None,
                         "hint": (f"review schema_inferred.pbtxt in this stage's folder and check it in as {schema_path}"
                                  if schema_path is not None else "set `validation.schema` to a curated schema")}
    schema = apply_drift_thresholds(schema, drift=cfg.validation.drift, skew=cfg.validation.skew)
    result = validate_splits(stats, schema)
    summary = result["summary"]
    summary["schema"] = schema_origin
    summary["examples_per_slice"] = {split: _slice_counts(s) for split, s in stats.items()}
    summary["blessed"] = summary["anomaly_count"] == 0 and not summary["drift_exceeded"] and not summary["skew_exceeded"]
    summary["block_on_anomalies"] = cfg.validation.block_on_anomalies
    out: dict[str, Any] = {f"statistics_{split}": s for split, s in stats.items()}
    out.update({f"anomalies_{split}": a for split, a in result["anomalies"].items()})
    out["schema"] = schema
    if inferred is not None:
        from google.protobuf import text_format

        out["schema_inferred"] = text_format.MessageToString(inferred)
    out["validation_summary"] = summary
    ctx.log.info("TFDV: %d anomalies, %d drift thresholds exceeded; slices %s",
                 summary["anomaly_count"], len(summary["drift_exceeded"]),
                 {k: len(v) for k, v in summary["slices"].items()})
    return out


def schema_fingerprint(cfg: AuditConfig) -> dict[str, str]:
    out = {}
    for name, spec in (("schema", cfg.validation.schema_path), ("serving", cfg.validation.serving_path)):
        path = cfg.resolve(spec)
        if path is not None:
            out[name] = hash_path(path) if path.is_file() else "missing"
    return out
