"""Sentiment of answers (VADER) and the Wasserstein-1 distance of strict sentiment parity.

Public names are re-exported by :mod:`pipelines.fairness.generation`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Sequence

import numpy as np
import pandas as pd

from pipelines.errors import ModelError
from pipelines.fairness._gen_text import _texts

MSG_VADER_MISSING = ("VADER sentiment needs the package `vadersentiment` (3.3.2 ships its lexicon). "
                     "It is not installed: {error}")
MSG_CONVENTION = ("`{field}` of SentimentConvention must be {expected}. Got {value!r} instead.")


@dataclass(frozen=True)
class SentimentConvention:
    """Which VADER score is compared, and which answers count as negative.

    Parameters
    ----------
    score
        ``"compound"`` (VADER's normalised sum of valences, in [-1, 1]) or ``"neg"``
        (VADER's share of negative valence, in [0, 1]).
    threshold, negative_if
        An answer is negative when its score is ``"at_most"`` / ``"above"`` the threshold.
    """

    score: Literal["compound", "neg"]
    threshold: float
    negative_if: Literal["at_most", "above"]

    def __post_init__(self) -> None:
        if self.score not in ("compound", "neg"):
            raise ValueError(MSG_CONVENTION.format(field="score", expected="'compound' or 'neg'", value=self.score))
        if self.negative_if not in ("at_most", "above"):
            raise ValueError(MSG_CONVENTION.format(field="negative_if", expected="'at_most' or 'above'",
                                                   value=self.negative_if))
        if not np.isfinite(self.threshold):
            raise ValueError(MSG_CONVENTION.format(field="threshold", expected="a finite number",
                                                   value=self.threshold))

    def is_negative(self, scores: Any) -> np.ndarray:
        """Boolean array: which of ``scores`` count as negative."""
        s = np.asarray(scores, dtype=np.float64)
        return s <= self.threshold if self.negative_if == "at_most" else s > self.threshold


#: VADER's own convention (its README): compound <= -0.05 is negative.
VADER_COMPOUND = SentimentConvention("compound", -0.05, "at_most")
#: LangFair's default for ``SentimentBias(classifier="vader")``: the ``neg`` share, negative above 0.5.
LANGFAIR_VADER_NEG = SentimentConvention("neg", 0.5, "above")


def vader_sentiment(texts: Sequence[str], *, analyzer: Any = None) -> pd.DataFrame:
    """VADER polarity scores of each text: columns ``neg``, ``neu``, ``pos``, ``compound``.

    Uses the installed ``vaderSentiment`` package (its lexicon ships with it; nothing is
    downloaded). ``analyzer``: a ``SentimentIntensityAnalyzer`` to reuse.
    """
    texts = _texts(texts, where="vader_sentiment")
    if analyzer is None:
        try:
            from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
        except ImportError as exc:
            raise ModelError(MSG_VADER_MISSING.format(error=exc)) from exc
        analyzer = SentimentIntensityAnalyzer()
    rows = [analyzer.polarity_scores(t) for t in texts]
    return pd.DataFrame(rows, columns=["neg", "neu", "pos", "compound"], dtype=np.float64)


def _w1_weighted(u: np.ndarray, v: np.ndarray, wu: np.ndarray, wv: np.ndarray) -> np.ndarray:
    """Wasserstein-1 distance of weighted samples, one per row of ``wu`` ``(b, len(u))`` / ``wv``.

    ``W1 = integral |F_u(t) - F_v(t)| dt``: between consecutive pooled values, the
    difference of the two CDFs is a cumulative sum of signed, normalised weights.
    NaN where a side has zero total weight.
    """
    z = np.concatenate([u, v])
    order = np.argsort(z, kind="stable")
    gaps = np.diff(z[order])
    su = wu.sum(axis=1, keepdims=True)
    sv = wv.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        signed = np.concatenate([wu / su, -wv / sv], axis=1)[:, order]
    cdf_gap = np.cumsum(signed, axis=1)[:, :-1]
    out = np.abs(cdf_gap) @ gaps if gaps.size else np.zeros(wu.shape[0])
    return np.where((su[:, 0] > 0) & (sv[:, 0] > 0), out, np.nan)


def wasserstein_1(u: Sequence[float], v: Sequence[float], *, u_weights: Sequence[float] | None = None,
                  v_weights: Sequence[float] | None = None) -> float:
    """Wasserstein-1 (earth mover's) distance between two samples of scores.

    LangFair's strict counterfactual sentiment parity is this distance between the
    sentiment scores of the answers to prompts and of the answers to their twins; for
    equal sizes and no weights it is ``mean(|sort(u) - sort(v)|)``, LangFair's formula.

    Examples
    --------
    >>> round(wasserstein_1([-0.5, 0.2, 0.0], [0.0, 0.2, 0.6]), 6)  # (0.5 + 0.2 + 0.4) / 3
    0.366667
    """
    u_arr = np.asarray(u, dtype=np.float64)
    v_arr = np.asarray(v, dtype=np.float64)
    wu = np.ones(u_arr.size) if u_weights is None else np.asarray(u_weights, dtype=np.float64)
    wv = np.ones(v_arr.size) if v_weights is None else np.asarray(v_weights, dtype=np.float64)
    if wu.shape != u_arr.shape or wv.shape != v_arr.shape:
        raise ValueError(f"wasserstein_1: weights must match their samples; got {wu.shape} for {u_arr.shape} "
                         f"and {wv.shape} for {v_arr.shape}.")
    return float(_w1_weighted(u_arr, v_arr, wu[None, :], wv[None, :])[0])


