"""The ``generate`` stage spec: the audit sample, its twins, the built variants and their thresholds in;
the answers of every generating variant, scored per answer, out."""

from pipelines.core.runner import Stage
from pipelines.stages.generate.run import OUTPUTS, generate, prompt_fingerprints
from pipelines.variants import effective_precision

__all__ = ["SPEC"]

SPEC = Stage(
    name="generate",
    fn=generate,
    inputs={"audit_sample": "load_data.audit_sample", "twins": "counterfactuals.twins",
            "variants": "build_variants.variants", "thresholds": "predict.thresholds"},
    optional_inputs=("twins",),
    outputs=OUTPUTS,
    config_sections=("generation", "variants", "data"),
    # the term pairs that mask group words, and the threads (bf16/fp32 sums differ slightly with threads)
    # and what `generation.precision` resolves to on this CPU (auto: bf16 on one machine, fp32 on another)
    config_values=lambda cfg: {"counterfactual": cfg.evaluation.counterfactual.model_dump(mode="json"),
                               "num_threads": cfg.scoring.num_threads,
                               "precision": effective_precision(cfg.generation.precision)},
    version="2",
    enabled=lambda cfg: cfg.generation.enabled and bool(cfg.variants),
    external_inputs=prompt_fingerprints,
)
