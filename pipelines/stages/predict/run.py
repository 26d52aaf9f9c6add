"""The predict stage: every variant scores the same texts; thresholds and calibration from validation.

Each variant scores the audit sample, the counterfactual twins (in each of its
kind's twin modes) and a stratified sample of the validation split, in process or
with ``beam.inference: true`` through one ``RunInference`` pass
(:mod:`pipelines.stages.predict.beam`). Calibration and the decision threshold are
fitted on the validation scores, then applied to the audit sample and the twins.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from pipelines.core.rundir import CacheDir
from pipelines.core.runner import StageContext
from pipelines.core.sampling import label_sample
from pipelines.core.tables import require_columns
from pipelines.errors import DataError
from pipelines.variants import (
    ScoreSets,
    ScoringRequest,
    VariantKind,
    check_texts,
    choose_threshold,
    effective_precision,
    fit_calibrator,
    load_predictor,
    offline,
    set_threads,
    variant_kind,
)

__all__ = ["predict", "scoring_precisions", "PREDICTION_COLUMNS", "TWIN_PREDICTION_COLUMNS", "RETRIEVAL_COLUMNS",
           "VALIDATION_PREDICTION_COLUMNS"]

TWIN_COLUMNS = ("twin_id", "example_id", "text")
SAMPLE_COLUMNS = ("example_id", "text", "label")
PREDICTION_COLUMNS = ("variant", "example_id", "score", "predicted_label", "threshold", "truncated", "raw_score")
TWIN_PREDICTION_COLUMNS = ("variant", "mode", "twin_id", "example_id", "score", "predicted_label", "truncated",
                           "raw_score")
RETRIEVAL_COLUMNS = ("variant", "example_id", "rank", "doc_id", "similarity", "doc_group", "doc_label")
#: The validation sample's scores (the sensitive features follow these columns).
VALIDATION_PREDICTION_COLUMNS = ("variant", "example_id", "label", "raw_score", "score", "predicted_label")


def _require(df: pd.DataFrame | None, columns: tuple[str, ...], *, artifact: str) -> pd.DataFrame:
    if df is None:
        raise DataError(f"input `{artifact}` is missing.")
    require_columns(df.columns, f"input `{artifact}`", {c: f"needed by {artifact}" for c in columns})
    return df


def _request(ctx: StageContext, audit_sample: pd.DataFrame, twins: pd.DataFrame | None,
             validation: pd.DataFrame) -> ScoringRequest:
    """Check the inputs and gather the texts every variant scores."""
    _require(audit_sample, SAMPLE_COLUMNS, artifact="audit_sample")
    if audit_sample["example_id"].duplicated().any():
        raise DataError("input `audit_sample`: column `example_id` has duplicates; expected unique ids.")
    check_texts(list(audit_sample["text"]), where="input `audit_sample`", ids=list(audit_sample["example_id"]))
    if twins is None:
        twins = pd.DataFrame({c: pd.Series(dtype=str) for c in TWIN_COLUMNS})
    _require(twins, TWIN_COLUMNS, artifact="twins")
    check_texts(list(twins["text"]), where="input `twins`", ids=list(twins["twin_id"]))
    pos = {eid: i for i, eid in enumerate(audit_sample["example_id"])}
    unknown = [e for e in twins["example_id"] if e not in pos]
    if unknown:
        raise DataError(f"input `twins`: {len(unknown)} twin(s) refer to example_id(s) not in `audit_sample` "
                        f"(e.g. {unknown[0]!r}).")
    _require(validation, SAMPLE_COLUMNS, artifact="validation")
    val = label_sample(validation, ctx.config.scoring.max_validation_rows, ctx.seed)
    check_texts(list(val["text"]), where="input `validation`", ids=list(val["example_id"]))
    return ScoringRequest(audit=audit_sample.reset_index(drop=True), twins=twins.reset_index(drop=True),
                          twin_rows=np.array([pos[e] for e in twins["example_id"]], dtype=np.int64),
                          validation=val)


def scoring_precisions(config: Any) -> dict[str, Any]:
    """``{variant: [precision it runs at on this CPU, ...]}`` for the variants that ask for one (keys the cache)."""
    out = {}
    for i, spec in enumerate(config.variants):
        asked = variant_kind(spec, index=i).precisions()
        if asked:
            out[spec.name] = [effective_precision(p) for p in asked]
    return {"precisions": out}


def _score(ctx: StageContext, kind: VariantKind, built: dict[str, Any], request: ScoringRequest
           ) -> tuple[ScoreSets, dict[str, Any] | None]:
    """Score one variant: in process, or on Beam when configured and the kind scores texts.

    The in-process path adds ``"path"`` (precision, runtime, CPU) to the timing, when the predictor has one.
    """
    cfg = ctx.config
    hint = str(CacheDir(ctx.cache_dir).stage_root("build_variants"))
    if cfg.beam.inference and kind.scores_texts:
        from pipelines.stages.predict.beam import score_on_beam

        return score_on_beam(ctx, kind, built, request)
    predictor = load_predictor(kind.spec, built, num_threads=cfg.scoring.num_threads, index=kind.index,
                               cache_hint=hint)
    sets = kind.score(predictor, request, progress=ctx.progress)
    path = getattr(predictor, "path", None)
    if path is not None:
        sets.timing["path"] = path
    return sets, None


def predict(ctx: StageContext, *, audit_sample: pd.DataFrame, twins: pd.DataFrame | None,
            validation: pd.DataFrame, variants: dict[str, Any]) -> dict[str, Any]:
    """Score the audit sample and twins with every variant; thresholds and calibration from validation."""
    offline()
    cfg = ctx.config
    set_threads(cfg.scoring.num_threads)
    request = _request(ctx, audit_sample, twins, validation)
    val_labels = request.validation["label"].astype(int).to_numpy()
    audit_ids = request.audit["example_id"].astype(str).tolist()

    pred_frames, twin_frames, val_frames, retrieval_rows = [], [], [], []
    thresholds: dict[str, Any] = {}
    performance: dict[str, Any] = {}
    for i, spec in enumerate(cfg.variants):
        if spec.name not in variants:
            raise DataError(f"input `variants`: no build entry for variant {spec.name!r}; found {sorted(variants)}.")
        kind = variant_kind(spec, index=i)
        built = variants[spec.name]
        sets, beam_info = _score(ctx, kind, built, request)
        rule = cfg.threshold_for(spec.name)
        cal = fit_calibrator(cfg.calibration_for(spec.name).method, sets.validation.scores, val_labels)
        th = choose_threshold(cal(sets.validation.scores), val_labels, method=rule.method, value=rule.value)
        th["calibration"] = cal.describe()
        th["raw_validation_score_range"] = ([float(sets.validation.scores.min()), float(sets.validation.scores.max())]
                                            if len(sets.validation) else None)
        thresholds[spec.name] = th
        t = th["value"]
        score = cal(sets.audit.scores)
        frame = pd.DataFrame({
            "variant": spec.name,
            "example_id": audit_ids,
            "score": score,
            "predicted_label": (score >= t).astype(np.int64),
            "threshold": float(t),
            "truncated": sets.audit.truncated.astype(bool),
            "raw_score": sets.audit.scores,
        })
        for column, values in kind.columns(sets.audit).items():
            frame[column] = values
        pred_frames.append(frame)
        val_frames.append(_validation_frame(spec.name, request.validation, sets.validation.scores, cal, t,
                                            features=cfg.data.sensitive_features))
        retrieval_rows += kind.retrievals(built, audit_ids, sets.audit)
        for mode, twin_scores in sets.twins.items():
            rows = request.twins.iloc[twin_scores.rows]
            s = cal(twin_scores.predictions.scores)
            twin_frames.append(pd.DataFrame({
                "variant": spec.name, "mode": mode, "twin_id": rows["twin_id"].astype(str).values,
                "example_id": rows["example_id"].astype(str).values, "score": s,
                "predicted_label": (s >= t).astype(np.int64),
                "truncated": twin_scores.predictions.truncated.astype(bool),
                "raw_score": twin_scores.predictions.scores,
            }))
        timing = sets.timing
        performance[spec.name] = {
            **timing["audit"],
            "kind": spec.kind,
            "batch_size": sets.batch_size,
            "truncated": int(sets.audit.truncated.sum()),
            "build_seconds": built.get("build_seconds"),
            "twins": timing["twins"],
            "twin_modes": sorted(sets.twins),
            "validation": timing["validation"],
            "num_threads": cfg.scoring.num_threads,
            **({"path": timing["path"]} if "path" in timing else {}),
            **({"beam": beam_info} if beam_info is not None else {}),
        }
        ctx.log.info("%s: %d examples in %.1f s (%.1f/s)", spec.name, len(request.audit), timing["audit"]["seconds"],
                     timing["audit"]["examples_per_s"] or 0)
    return {"predictions": _concat(pred_frames, PREDICTION_COLUMNS),
            "twin_predictions": _concat(twin_frames, TWIN_PREDICTION_COLUMNS),
            "retrievals": _retrievals(retrieval_rows), "thresholds": thresholds, "performance": performance,
            "validation_predictions": _concat(val_frames, VALIDATION_PREDICTION_COLUMNS)}


def _validation_frame(name: str, validation: pd.DataFrame, raw: np.ndarray, cal: Any, threshold: float, *,
                      features: tuple[str, ...]) -> pd.DataFrame:
    """The validation sample's scores, in-sample: the calibration and threshold were fitted on these rows."""
    score = cal(raw)
    frame = pd.DataFrame({
        "variant": name,
        "example_id": validation["example_id"].astype(str).to_numpy(),
        "label": validation["label"].astype(np.int64).to_numpy(),
        "raw_score": np.asarray(raw, dtype=np.float64),
        "score": np.asarray(score, dtype=np.float64),
        "predicted_label": (score >= threshold).astype(np.int64),
    })
    for f in features:
        if f in validation.columns:
            frame[f] = validation[f].to_numpy()
    return frame


def _concat(frames: list[pd.DataFrame], columns: tuple[str, ...]) -> pd.DataFrame:
    if not frames:
        return pd.DataFrame(columns=list(columns))
    extra = [c for f in frames for c in f.columns if c not in columns]
    every = [*columns, *dict.fromkeys(extra)]
    # a kind's own columns are None for the other kinds' rows (not NaN, which parquet cannot mix with lists)
    frames = [f.assign(**{c: [None] * len(f) for c in every if c not in f.columns}) for f in frames]
    return pd.concat([f[every] for f in frames], ignore_index=True)


def _retrievals(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(RETRIEVAL_COLUMNS))
    frame["doc_label"] = frame["doc_label"].astype("Int64")
    frame["rank"] = frame["rank"].astype(np.int64)
    frame["similarity"] = frame["similarity"].astype(np.float64)
    return frame
