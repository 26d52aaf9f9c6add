"""The Beam model handler (imports Beam at module level; import it lazily)."""

from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence

from apache_beam.ml.inference.base import ModelHandler, PredictionResult

__all__ = ["PredictorModelHandler"]


class PredictorModelHandler(ModelHandler):
    """Loads a predictor once per worker with ``factory()`` and scores batches of texts."""

    def __init__(self, factory: Callable[[], Any], *, min_batch_size: int = 8, max_batch_size: int = 64):
        super().__init__()
        self._factory = factory
        self._batching = {"min_batch_size": min_batch_size, "max_batch_size": max_batch_size}

    def load_model(self):
        return self._factory()

    def run_inference(self, batch: Sequence[str], model, inference_args=None) -> Iterable[Any]:
        predictions = model.predict(list(batch))
        for i, text in enumerate(batch):
            extras = {k: v[i] for k, v in predictions.extras.items()}
            yield PredictionResult(text, {"score": float(predictions.scores[i]),
                                          "truncated": bool(predictions.truncated[i]), **extras})

    def batch_elements_kwargs(self):
        return dict(self._batching)

    def get_metrics_namespace(self) -> str:
        return "fairness_audit"
