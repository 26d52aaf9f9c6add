"""The build_variants stage: every variant's models in the model cache, and their identities.

Each kind builds what it needs (a fine-tuned classifier, a generator converted from
GGUF, an embedded knowledge base, ...) into the model cache, keyed by what it was
built from, so a re-run with the same inputs neither retrains nor re-embeds.
"""

from __future__ import annotations

from typing import Any, Mapping

import pandas as pd

from pipelines.config import AuditConfig
from pipelines.core.artifacts import hash_files
from pipelines.core.rundir import CacheDir
from pipelines.core.runner import StageContext
from pipelines.variants import BuildContext, ModelCache, offline, set_threads, variant_kind

__all__ = ["build_variants", "model_fingerprints", "cached_models_problems"]


def build_variants(ctx: StageContext, *, train: pd.DataFrame) -> dict[str, Any]:
    """Build (or find in the model cache) every variant; return ``{"variants": {name: build entry}}``."""
    cfg = ctx.config
    offline()
    set_threads(cfg.scoring.num_threads)
    build = BuildContext(cache=ModelCache(CacheDir(ctx.cache_dir).models), seed=ctx.seed, resolve=cfg.resolve,
                         num_threads=cfg.scoring.num_threads, data_features=tuple(cfg.data.sensitive_features),
                         log=ctx.log, progress=ctx.progress)
    out: dict[str, Any] = {}
    for i, spec in enumerate(cfg.variants):
        out[spec.name] = {"kind": spec.kind, **variant_kind(spec, index=i).build(build, train=train)}
    return {"variants": out}


def model_fingerprints(config: AuditConfig) -> Mapping[str, str]:
    """Hashes of the files each variant's build reads from outside the run (they key the stage cache)."""
    out: dict[str, str] = {}
    for i, spec in enumerate(config.variants):
        try:
            files = variant_kind(spec, index=i).external_files(config.resolve)
        except Exception:  # an unresolvable path is reported properly by the stage itself
            out[f"{spec.name}.unresolvable"] = "unresolvable"
            continue
        for label, paths in files.items():
            out[f"{spec.name}.{label}"] = hash_files(paths) if paths else "missing"
    return out


def cached_models_problems(config: AuditConfig, outputs: Mapping[str, Any]) -> list[str]:
    """Problems of the model-cache folders that a cached ``variants`` artifact names (empty: none).

    A stage-cache hit of this stage is used only while every model-cache entry it points to is
    present and matches the file hashes recorded when it was built; otherwise the stage runs
    again and the model cache rebuilds what is damaged.
    """
    from pathlib import Path

    from pipelines.variants.cache import ENTRY_FILE, entry_problems

    built = outputs.get("variants") or {}
    problems: list[str] = []
    for i, spec in enumerate(config.variants):
        if spec.name not in built:
            problems.append(f"variants.json: no build entry for variant {spec.name!r}")
            continue
        for folder in variant_kind(spec, index=i).model_folders(built[spec.name]):
            folder = Path(folder)
            if (folder / ENTRY_FILE).is_file() or folder.is_symlink():
                problems += entry_problems(folder)
            elif not folder.is_dir():
                problems.append(f"{folder}: gone")
    return problems
