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

    def run_inference(self, batch: Sequence[Any], model, inference_args=None) -> Iterable[Any]:
        """Score a batch in input order.

        An element is a text, or a ``(text, retrieval_query)`` pair: the text scored
        with the documents retrieved for the query (RAG ``query_only`` twins; the
        predictor must have ``predict_with_retrieval_of``).
        """
        batch = list(batch)
        plain = [i for i, e in enumerate(batch) if isinstance(e, str)]
        pinned = [i for i, e in enumerate(batch) if not isinstance(e, str)]
        results: dict[int, dict[str, Any]] = {}
        if plain:
            self._collect(results, plain, model.predict([batch[i] for i in plain]))
        if pinned:
            texts, queries = zip(*(batch[i] for i in pinned))
            self._collect(results, pinned, model.predict_with_retrieval_of(list(texts), list(queries)))
        for i, element in enumerate(batch):
            yield PredictionResult(element, results[i])

    @staticmethod
    def _collect(results: dict[int, dict[str, Any]], positions: list[int], predictions) -> None:
        for j, i in enumerate(positions):
            extras = {k: v[j] for k, v in predictions.extras.items()}
            results[i] = {"score": float(predictions.scores[j]), "truncated": bool(predictions.truncated[j]), **extras}

    def batch_elements_kwargs(self):
        return dict(self._batching)

    def get_metrics_namespace(self) -> str:
        return "fairness_audit"
