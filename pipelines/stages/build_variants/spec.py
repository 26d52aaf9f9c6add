"""The ``build_variants`` stage spec: the train split in; each variant's build entry out."""

from pipelines.core.runner import Stage
from pipelines.stages.build_variants.run import build_variants, cached_models_problems, model_fingerprints

__all__ = ["SPEC", "model_preflight"]


def model_preflight(cfg) -> list[Exception]:
    """Every file a variant reads from outside the run exists; a model folder is complete (config, weights,
    tokenizer: ``check_model_dir``). Found through each kind's ``external_files``, without loading a model."""
    import os
    from pathlib import Path

    from pipelines.errors import AuditError, ModelError
    from pipelines.variants import check_model_dir, variant_kind

    problems: list[Exception] = []
    for i, spec in enumerate(cfg.variants):
        try:
            files = variant_kind(spec, index=i).external_files(cfg.resolve)
        except AuditError as exc:
            problems.append(exc)
            continue
        for label, paths in files.items():
            if not paths:
                problems.append(ModelError(f"variants[{i}] ({spec.name}): the {label} files were not found (nothing "
                                           f"at the configured path; check the {label} path of variants[{i}])."))
                continue
            root = Path(os.path.commonpath([str(p) for p in paths]))
            if root.is_dir() and label not in ("knowledge_base", "scores"):
                try:
                    check_model_dir(root, field=f"variants[{i}].{label}",
                                    allow_pickle=bool(getattr(spec, "allow_pickle", False)))
                except AuditError as exc:
                    problems.append(exc)
    return problems

SPEC = Stage(
    name="build_variants",
    fn=build_variants,
    inputs={"train": "load_data.train"},
    outputs=("variants",),
    config_sections=("variants", "scoring", "data"),
    version="2",
    enabled=lambda cfg: bool(cfg.variants),
    external_inputs=model_fingerprints,
    # a stage-cache hit names model-cache folders: they must still match their recorded hashes
    verify_cached=cached_models_problems,
    preflight=model_preflight,
)
