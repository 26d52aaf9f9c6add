"""What the data stage reports: representation per split and group, and the data's fingerprint."""

from __future__ import annotations

from typing import Any

import pandas as pd

from pipelines.config import AuditConfig, RedditBiasSource
from pipelines.core.artifacts import hash_bytes, hash_path
from pipelines.stages.load_data.sources import REDDITBIAS_FILES, expand_shards

__all__ = ["SPLITS", "summarize", "summarize_counts", "data_fingerprint", "source_fingerprints"]

SPLITS = ("train", "validation", "eval")


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


def data_fingerprint(file_hashes: dict[str, str]) -> str:
    """One hash over the hashes of the data files (the run's data fingerprint)."""
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
