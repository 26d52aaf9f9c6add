"""Rebuild a run's model variants from its build artifacts, for live re-scoring in the What-If Tool.

:func:`load_predictors` reads the run's ``manifest.json`` (the validated config it
ran with), ``build_variants/variants.json`` (each variant's model folders in the
model cache) and ``predict/thresholds.json`` (the calibration fitted on the
validation split), and builds each predictor with the variants package's own
:func:`pipelines.variants.load_predictor`. The predictors it returns apply
the run's calibration, so they reproduce the ``predictions`` table's ``score``.

:func:`wit_predict_fn` turns a predictor into the function WIT calls with a list
of ``tf.train.Example``: it returns ``[[P(negative), P(positive)], ...]``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from pipelines.explore._errors import MSG_NO_BUILD, PredictorsUnavailableError
from pipelines.explore._runs import read_manifest, read_stage

__all__ = ["load_predictors", "CalibratedPredictor", "WitPredictFn", "wit_predict_fn", "calibrator_from_description"]


def calibrator_from_description(description: Mapping[str, Any] | None) -> tuple[Callable[[np.ndarray], np.ndarray], bool]:
    """Rebuild the score calibration recorded in ``predict/thresholds.json``.

    Returns ``(map, exact)``. Platt scaling, isotonic regression (from its recorded
    knots) and no calibration are rebuilt exactly. A description without what is
    needed (runs written before isotonic knots were recorded) gives the identity map
    with ``exact=False``: live scores are then raw, uncalibrated scores.
    """
    from pipelines.variants import Calibrator

    method = (description or {}).get("method", "none")
    if method in (None, "none"):
        return Calibrator("none"), True
    if method == "platt":
        return Calibrator("platt", {"a": float(description["a"]), "b": float(description["b"])}), True
    if method == "isotonic" and description.get("x_knots") and description.get("y_knots"):
        return Calibrator("isotonic", {"x_knots": list(description["x_knots"]),
                                       "y_knots": list(description["y_knots"])}), True
    return Calibrator("none"), False


@dataclass
class CalibratedPredictor:
    """A variant's predictor with the run's calibration applied to its scores (same interface)."""

    inner: Any
    calibrate: Callable[[np.ndarray], np.ndarray]
    calibration: dict[str, Any] = field(default_factory=dict)
    calibration_exact: bool = True
    threshold: float | None = None

    @property
    def name(self) -> str:
        return self.inner.name

    def identity(self) -> dict[str, Any]:
        return {**self.inner.identity(), "calibration": dict(self.calibration)}

    def predict(self, texts: Sequence[str], **kwargs: Any):
        from pipelines.variants import Predictions

        raw = self.inner.predict(texts, **kwargs)
        scores = np.clip(np.asarray(self.calibrate(raw.scores), dtype=np.float64), 0.0, 1.0)
        return Predictions(scores=scores, truncated=raw.truncated, extras={**raw.extras, "raw_score": list(raw.scores)})


def load_predictors(run_dir: str | Path, *, calibrated: bool = True, names: Sequence[str] | None = None
                    ) -> dict[str, Any]:
    """The run's variants as predictors, ``{name: Predictor}``, in the order the run built them.

    Parameters
    ----------
    run_dir
        A run directory (``reports/runs/<audit>/<run-id>``).
    calibrated
        Apply the calibration the run fitted (so scores match its ``predictions`` table).
    names
        Only these variants (default: every variant the run built).

    Raises
    ------
    PredictorsUnavailableError
        The run has no finished ``build_variants`` stage, a model folder is gone, or the
        run's config cannot be read back.

    Examples
    --------
    >>> preds = load_predictors("reports/runs/demo/<run-id>")  # doctest: +SKIP
    >>> preds["finetuned"].predict(["women are bad drivers"]).scores  # doctest: +SKIP
    array([0.71])
    """
    from pipelines.config import config_from_dict
    from pipelines.errors import AuditError
    from pipelines.variants import load_predictor, variant_kind

    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    try:
        cfg = config_from_dict(manifest.get("config") or {}, base_dir=run_dir, source=str(run_dir / "manifest.json"))
    except AuditError as exc:  # the run predates a config change
        raise PredictorsUnavailableError(MSG_NO_BUILD.format(
            run_dir=run_dir, problem=f"its recorded config no longer validates ({exc})")) from exc
    build = read_stage(run_dir, "build_variants")
    if build is None or not isinstance(build.get("variants"), dict):
        raise PredictorsUnavailableError(MSG_NO_BUILD.format(
            run_dir=run_dir, problem="stage `build_variants` did not finish in this run"))
    built: dict[str, Any] = build["variants"]
    predict = read_stage(run_dir, "predict", artifacts=["thresholds"]) or {}
    thresholds = predict.get("thresholds") if isinstance(predict.get("thresholds"), dict) else {}
    index = {spec.name: i for i, spec in enumerate(cfg.variants)}
    scorable = [n for n in built if n in index and variant_kind(cfg.variants[index[n]]).scores_texts]
    wanted = list(names) if names is not None else scorable
    unknown = [n for n in wanted if n not in built]
    if unknown:
        raise PredictorsUnavailableError(MSG_NO_BUILD.format(
            run_dir=run_dir, problem=f"variant(s) {unknown} were not built (built: {sorted(built)})"))
    unscorable = [n for n in wanted if n not in scorable]
    if unscorable:
        raise PredictorsUnavailableError(MSG_NO_BUILD.format(
            run_dir=run_dir, problem=f"variant(s) {unscorable} hold logged scores and cannot score new texts"))

    out: dict[str, Any] = {}
    for name in wanted:
        try:
            pred = load_predictor(cfg.variants[index[name]], built[name], num_threads=cfg.scoring.num_threads,
                                  index=index[name])
        except AuditError as exc:
            raise PredictorsUnavailableError(MSG_NO_BUILD.format(run_dir=run_dir, problem=str(exc))) from exc
        if not calibrated:
            out[name] = pred
            continue
        th = thresholds.get(name) or {}
        desc = th.get("calibration") or {"method": "none"}
        cal, exact = calibrator_from_description(desc)
        if not exact:
            warnings.warn(f"variant `{name}`: calibration {desc.get('method')!r} cannot be rebuilt from the run's "
                          "thresholds.json; live scores are uncalibrated and will differ from the exported ones.",
                          stacklevel=2)
        out[name] = CalibratedPredictor(pred, cal, calibration=dict(desc), calibration_exact=exact,
                                        threshold=th.get("value"))
    return out


class WitPredictFn:
    """The function WIT calls: ``tf.train.Example`` list -> ``[[P(negative), P(positive)], ...]``.

    Parameters
    ----------
    predictor
        Any :class:`~pipelines.variants.Predictor` (scores are P(positive)).
    text_feature
        The feature holding the text.
    known_scores
        ``{text: score}`` already computed by the run (the exported scores). An
        unedited datapoint is answered from it; an edited one (new text) is scored
        live by the model. Empty: every call runs the model.

    ``live_calls`` / ``live_texts`` count what went to the model, ``reused`` what did not.
    """

    def __init__(self, predictor: Any, *, text_feature: str = "text", known_scores: Mapping[str, float] | None = None):
        self.predictor = predictor
        self.text_feature = text_feature
        self.known_scores = dict(known_scores or {})
        self.live_calls = 0
        self.live_texts = 0
        self.reused = 0

    def texts(self, examples: Sequence[Any]) -> list[str]:
        out = []
        for ex in examples:
            feat = ex.features.feature.get(self.text_feature)
            values = feat.bytes_list.value if feat is not None else []
            out.append(values[0].decode("utf-8") if values else "")
        return out

    def __call__(self, examples: Sequence[Any]) -> list[list[float]]:
        texts = self.texts(examples)
        scores = np.full(len(texts), np.nan)
        todo = []
        for i, t in enumerate(texts):
            if t in self.known_scores:
                scores[i] = self.known_scores[t]
            else:
                todo.append(i)
        self.reused += len(texts) - len(todo)
        if todo:
            # an edited text that is empty cannot be scored; WIT shows 0.5/0.5 for it rather than failing the batch
            live = [i for i in todo if texts[i].strip()]
            for i in set(todo) - set(live):
                scores[i] = 0.5
            if live:
                self.live_calls += 1
                self.live_texts += len(live)
                got = self.predictor.predict([texts[i] for i in live]).scores
                scores[live] = np.asarray(got, dtype=np.float64)
        return [[float(1.0 - s), float(s)] for s in scores]


def wit_predict_fn(predictor: Any, *, text_feature: str = "text", known_scores: Mapping[str, float] | None = None
                   ) -> WitPredictFn:
    """See :class:`WitPredictFn`."""
    return WitPredictFn(predictor, text_feature=text_feature, known_scores=known_scores)
