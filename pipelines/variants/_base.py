"""The one predictor interface shared by every variant (no torch here)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Protocol, Sequence, runtime_checkable

import numpy as np

from pipelines.errors import DataError, ModelError

__all__ = ["Predictor", "Predictions", "Progress", "no_progress", "check_texts", "check_scores"]

Progress = Callable[..., Iterable[Any]]

MSG_BAD_TEXTS = (
    "{where}: `text` must be a non-empty string for every row. Got {n} missing or empty "
    "value(s), at positions {positions}{ids}."
)
MSG_NAN_SCORES = (
    "variant `{variant}` produced {n} non-finite score(s) (NaN or inf) for {where}, at positions {positions}. "
    "The model's weights or inputs are broken; expected P(positive) in [0, 1]."
)


def no_progress(iterable: Iterable[Any] | None = None, **_: Any) -> Iterable[Any]:
    class _Bar:
        def __init__(self, it):
            self.it = it

        def __iter__(self):
            return iter(self.it if self.it is not None else ())

        def update(self, n: int = 1) -> None:
            pass

        def close(self) -> None:
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    return _Bar(iterable)


@dataclass
class Predictions:
    """Scores for a batch of texts, aligned with the input order.

    ``scores``: P(positive) per text, float64 in [0, 1]. ``truncated``: whether
    the text was cut to the model's maximum length. ``extras``: per-text
    variant-specific values (RAG: ``retrieved_ids``, ``retrieved_similarities``,
    ``retrieved_index``).
    """

    scores: np.ndarray
    truncated: np.ndarray
    extras: dict[str, list[Any]] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(len(self.scores))


@runtime_checkable
class Predictor(Protocol):
    """A batch of texts in, P(positive) per text out."""

    name: str

    def identity(self) -> dict[str, Any]:
        """Kind, model folder(s) and hashes of weights and config, for the manifest."""

    def predict(self, texts: Sequence[str], *, progress: Progress = no_progress) -> Predictions:
        """Score ``texts``; raise DataError on missing/empty texts, ModelError on non-finite scores."""


def check_texts(texts: Sequence[Any], *, where: str, ids: Sequence[Any] | None = None) -> list[str]:
    """Return ``texts`` as a list of str; raise DataError naming the bad rows."""
    bad = []
    out = []
    for i, t in enumerate(texts):
        if t is None or (isinstance(t, float) and math.isnan(t)) or not isinstance(t, str) or not t.strip():
            bad.append(i)
        else:
            out.append(t)
    if bad:
        shown = ", ".join(map(str, bad[:10])) + (" ..." if len(bad) > 10 else "")
        id_part = ""
        if ids is not None:
            id_part = " (example_id " + ", ".join(str(ids[i]) for i in bad[:10]) + ")"
        raise DataError(MSG_BAD_TEXTS.format(where=where, n=len(bad), positions=shown, ids=id_part))
    return out


def check_scores(scores: np.ndarray, *, variant: str, where: str) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(scores))
    if bad.size:
        shown = ", ".join(map(str, bad[:10].tolist())) + (" ..." if bad.size > 10 else "")
        raise ModelError(MSG_NAN_SCORES.format(variant=variant, n=int(bad.size), where=where, positions=shown))
    return np.clip(scores, 0.0, 1.0)
