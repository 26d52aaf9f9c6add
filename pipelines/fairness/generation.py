"""Fairness metrics over generated answers, with their published definitions.

Three families, each computed per group of the audit and usable inside the
project's bootstrap:

Counterfactual similarity (LangFair, Bouchard 2024, https://arxiv.org/abs/2407.10853)
    A prompt and its group-swapped twin each get an answer. With the group words of
    both answers masked (:func:`mask_group_terms`), the two answers are compared by
    ROUGE-L F-measure (:func:`rouge_l_similarity`; LangFair's "counterfactual ROUGE-L")
    and by the cosine of their sentence embeddings (:func:`embedding_cosine`;
    LangFair's "counterfactual cosine similarity").
Sentiment parity (LangFair; Huang et al. 2020, https://arxiv.org/abs/1911.03064)
    Sentiment of each answer by VADER (:func:`vader_sentiment`). *Strict* parity is the
    Wasserstein-1 distance between two sets of sentiment scores
    (:func:`wasserstein_1`), *weak* parity the difference of their shares of negative
    answers (:class:`SentimentConvention` says which answers count as negative).
Demographic representation and stereotypical association (HELM, Liang et al. 2022,
https://arxiv.org/abs/2211.09110; ``helm/benchmark/metrics/bias_metrics.py``)
    Counts of HELM's group words (and their co-occurrences with HELM's adjective
    and profession lists) turned into a distribution over groups; the score is its
    total variation distance to the uniform distribution
    (:func:`demographic_representation`, :func:`stereotypical_association`).

The definitions were read from LangFair 0.8.1 (Apache-2.0; ``langfair/metrics/
counterfactual/metrics/{rougel,cosine,sentimentbias}.py``), rouge-score 0.1.2 and HELM
(Apache-2.0); the code here is our own.

Bootstrap
---------
:func:`pair_statistic`, :func:`sentiment_statistic` and :func:`helm_statistic` return a
:class:`GroupStatistic`: a function of resample weights. Called with a ``(b, n)``
matrix of row weights (how often each row was drawn; see
:func:`weights_from_indices` for resampled indices) it returns, per metric, a
``(b, columns)`` array, one column per group and one for all rows (group ``None``).
Its ``strata`` are the row's group codes, for a bootstrap stratified by group.

Examples
--------
>>> rouge_l_f("The women are kind", "the men are kind")
0.75
>>> masked = mask_group_terms(["The women are kind", "the men are kind"], [("women", "men")])
>>> masked
['The [MASK] are kind', 'the [MASK] are kind']
>>> rouge_l_f(*masked)
1.0
"""

from __future__ import annotations

import itertools
import re
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping, Sequence

import numpy as np
import pandas as pd

from pipelines.errors import DataError, ModelError
from pipelines.evaluation.counterfactual import TermPair, TermSwapper
from pipelines.fairness._helm_word_lists import DEMOGRAPHIC_WORDS, TARGET_WORDS

__all__ = [
    "MASK_TOKEN",
    "group_term_masker",
    "mask_group_terms",
    "rouge_tokens",
    "lcs_length",
    "rouge_l_f",
    "rouge_l_similarity",
    "embedding_cosine",
    "SentimentConvention",
    "VADER_COMPOUND",
    "LANGFAIR_VADER_NEG",
    "vader_sentiment",
    "wasserstein_1",
    "DEMOGRAPHIC_WORDS",
    "TARGET_WORDS",
    "helm_tokens",
    "demographic_representation",
    "stereotypical_association",
    "score_answer_pairs",
    "GroupStatistic",
    "paired_difference",
    "weights_from_indices",
    "pair_statistic",
    "sentiment_statistic",
    "helm_statistic",
]

#: What a masked group term becomes. Both answers of a pair get the same token, so
#: a masked term neither adds to nor takes from their similarity.
MASK_TOKEN = "[MASK]"

MSG_LENGTHS = "{where}: {a} has {n_a} entries but {b} has {n_b}; they must be paired one to one."
MSG_NOT_TEXT = "{where}: entry {index} must be a string. Got {value!r} instead."
MSG_NO_TERMS = "{where}: group {group!r} has no term pairs to mask. Groups with term pairs: {known}."
MSG_EMBED_SHAPE = "embed(texts) must return an array of shape ({n}, d) for {n} texts. Got shape {shape} instead."
MSG_EMBED_VALUES = "embed(texts) returned {problem} for text {index} ({text!r}); expected finite, non-zero vectors."
MSG_VADER_MISSING = ("VADER sentiment needs the package `vadersentiment` (3.3.2 ships its lexicon). "
                     "It is not installed: {error}")
MSG_CONVENTION = ("`{field}` of SentimentConvention must be {expected}. Got {value!r} instead.")
MSG_DEMOGRAPHIC = ("HELM demographic category must be one of {known} or a mapping of group -> words. "
                   "Got {value!r} instead.")
MSG_TARGET = "HELM target category must be one of {known} or a sequence of words. Got {value!r} instead."
MSG_COLUMNS = "{table}: column {column!r} is missing; expected columns {expected}. Found {found}."
MSG_WEIGHTS = "weights must be a (b, {n}) array of non-negative resample counts. Got {found} instead."
MSG_INDICES = "indices must be a (b, m) array of row numbers in [0, {n}). Got {found} instead."
MSG_EMPTY = "{where}: there are no rows to score."
MSG_UNPAIRED = ("paired_difference needs two statistics over the same rows, in the same order and groups, "
                "with metrics in common. Got {a} and {b}.")
MSG_SCORES = "{where}: column {column!r} must hold finite numbers; row {row} holds {value!r}."


# -- masking ---------------------------------------------------------------------------------

def group_term_masker(pairs: Sequence[TermPair | tuple[str, str]], *, mask: str = MASK_TOKEN) -> TermSwapper:
    """A :class:`TermSwapper` that replaces both sides of every term pair by ``mask``.

    Matching is the twins' own: case-insensitive, longest term first, on word
    boundaries (a hyphen counts as part of a word).

    Examples
    --------
    >>> group_term_masker([("women", "men"), ("she", "he")]).swap("He said women rule")[0]
    '[MASK] said [MASK] rule'
    """
    terms: list[TermPair] = []
    for p in pairs:
        pair = p if isinstance(p, TermPair) else TermPair(str(p[0]), str(p[1]))
        terms.append(TermPair(pair.source.lower(), mask, pair.origin))
        terms.append(TermPair(pair.target.lower(), mask, pair.origin))
    return TermSwapper(terms)


def mask_group_terms(texts: Sequence[str], pairs: Sequence[TermPair | tuple[str, str]], *,
                     mask: str = MASK_TOKEN) -> list[str]:
    """Mask the group terms of ``pairs`` (sources and targets) in every text.

    LangFair masks ("neutralizes") group words before its lexical counterfactual
    metrics, so that the words that were swapped on purpose do not count as a
    difference between the two answers.
    """
    masker = group_term_masker(pairs, mask=mask)
    return [masker.swap(t)[0] for t in _texts(texts, where="mask_group_terms")]


# -- ROUGE-L ---------------------------------------------------------------------------------

_NON_ALNUM = re.compile(r"[^a-z0-9]+")
_VALID_TOKEN = re.compile(r"^[a-z0-9]+$")


def rouge_tokens(text: str, *, stemmer: Callable[[str], str] | None = None) -> list[str]:
    """Tokens as rouge-score 0.1.2 makes them (``rouge_score/tokenize.py``).

    Lower-case, every run of characters other than ``a-z0-9`` becomes a space, split
    on spaces; with a ``stemmer``, tokens longer than 3 characters are stemmed.

    Examples
    --------
    >>> rouge_tokens("The [MASK] isn't 2 kind!")
    ['the', 'mask', 'isn', 't', '2', 'kind']
    """
    tokens = _NON_ALNUM.sub(" ", text.lower()).split()
    if stemmer is not None:
        tokens = [stemmer(t) if len(t) > 3 else t for t in tokens]
    return [t for t in tokens if _VALID_TOKEN.match(t)]


def lcs_length(a: Sequence[Any], b: Sequence[Any]) -> int:
    """Length of the longest common subsequence of two token sequences.

    Bit-parallel (Allison and Dix 1986; Hyyro 2004): one machine-word operation per
    token of ``b`` for every 64 tokens of ``a``, instead of a ``len(a) x len(b)`` table.

    Examples
    --------
    >>> lcs_length("the cat sat on the mat".split(), "the cat lay on a mat".split())
    4
    """
    if not a or not b:
        return 0
    masks: dict[Any, int] = {}
    for i, token in enumerate(a):
        masks[token] = masks.get(token, 0) | (1 << i)
    full = (1 << len(a)) - 1
    v = full
    for token in b:
        u = v & masks.get(token, 0)
        v = ((v + u) | (v - u)) & full
    return len(a) - v.bit_count()


def rouge_l_f(a: str, b: str, *, stemmer: Callable[[str], str] | None = None) -> float:
    """ROUGE-L F-measure of two texts (symmetric), as rouge-score's ``rougeL`` ``fmeasure``.

    ``P = LCS / len(b)``, ``R = LCS / len(a)``, ``F = 2PR / (P + R)``; 0 when either text
    has no tokens (rouge-score's convention, which LangFair inherits).

    LangFair's counterfactual ROUGE-L uses ``RougeScorer(["rougeL"], use_stemmer=True)``,
    i.e. Porter stemming. Pass ``stemmer=nltk.stem.porter.PorterStemmer().stem`` for that;
    the default compares unstemmed tokens (no nltk needed).

    Examples
    --------
    >>> rouge_l_f("a b c d", "a c")  # LCS 2, P = 2/2, R = 2/4, F = 2/3
    0.6666666666666666
    """
    ta, tb = rouge_tokens(a, stemmer=stemmer), rouge_tokens(b, stemmer=stemmer)
    if not ta or not tb:
        return 0.0
    lcs = lcs_length(ta, tb)
    precision, recall = lcs / len(tb), lcs / len(ta)
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def rouge_l_similarity(texts_a: Sequence[str], texts_b: Sequence[str], *,
                       stemmer: Callable[[str], str] | None = None) -> np.ndarray:
    """:func:`rouge_l_f` of each pair ``(texts_a[i], texts_b[i])``; shape ``(n,)``."""
    a, b = _paired(texts_a, texts_b, where="rouge_l_similarity")
    return np.asarray([rouge_l_f(x, y, stemmer=stemmer) for x, y in zip(a, b)], dtype=np.float64)


# -- embedding cosine ------------------------------------------------------------------------

def embedding_cosine(texts_a: Sequence[str], texts_b: Sequence[str], *,
                     embed: Callable[[list[str]], Any]) -> np.ndarray:
    """Cosine similarity of the embeddings of each pair; shape ``(n,)``.

    LangFair's counterfactual cosine similarity (with ``all-MiniLM-L6-v2`` as its
    recommended encoder). ``embed`` maps a list of texts to an ``(len, d)`` array; it is
    called once, on ``texts_a + texts_b``. Vectors need not be normalised: the cosine
    divides by their norms.

    Examples
    --------
    >>> def embed(texts):  # bag of words over {a, b, c}
    ...     return np.array([[t.split().count(w) for w in "abc"] for t in texts], dtype=float)
    >>> embedding_cosine(["a b"], ["a c"], embed=embed).round(6).tolist()
    [0.5]
    """
    a, b = _paired(texts_a, texts_b, where="embedding_cosine")
    n = len(a)
    if n == 0:
        return np.zeros(0)
    vectors = np.asarray(embed(a + b), dtype=np.float64)
    if vectors.ndim != 2 or vectors.shape[0] != 2 * n:
        raise ModelError(MSG_EMBED_SHAPE.format(n=2 * n, shape=vectors.shape))
    norms = np.linalg.norm(vectors, axis=1)
    bad = ~np.isfinite(norms) | (norms == 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        problem = "a zero vector" if np.isfinite(norms[i]) else "a non-finite vector"
        raise ModelError(MSG_EMBED_VALUES.format(problem=problem, index=i, text=(a + b)[i][:60]))
    cos = np.einsum("ij,ij->i", vectors[:n], vectors[n:]) / (norms[:n] * norms[n:])
    return np.clip(cos, -1.0, 1.0)


# -- sentiment -------------------------------------------------------------------------------

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


# -- HELM bias metrics -----------------------------------------------------------------------

# HELM tokenizes with nltk's word_tokenize on lower-cased text. For HELM's single-word
# lists this regex gives the same counts: word runs, kept whole across inner hyphens and
# slashes ("mother-in-law", "his/her" are one token, as in nltk), split at apostrophes
# ("women's" -> "women", "s"; nltk: "women", "'s") and at every other punctuation mark.
_HELM_TOKEN = re.compile(r"\w+(?:[-/]\w+)*")


def helm_tokens(text: str) -> list[str]:
    """Lower-cased word tokens, counted the way HELM's ``word_tokenize`` counts its list words.

    Examples
    --------
    >>> helm_tokens("Her mother-in-law's son, and his/her dad.")
    ['her', 'mother-in-law', 's', 'son', 'and', 'his/her', 'dad']
    """
    return _HELM_TOKEN.findall(text.lower())


def _demographic_words(demographic: str | Mapping[str, Sequence[str]]) -> dict[str, tuple[str, ...]]:
    if isinstance(demographic, str):
        if demographic not in DEMOGRAPHIC_WORDS:
            raise ValueError(MSG_DEMOGRAPHIC.format(known=sorted(DEMOGRAPHIC_WORDS), value=demographic))
        return dict(DEMOGRAPHIC_WORDS[demographic])
    if not isinstance(demographic, Mapping) or not demographic:
        raise ValueError(MSG_DEMOGRAPHIC.format(known=sorted(DEMOGRAPHIC_WORDS), value=demographic))
    return {str(g): tuple(str(w).lower() for w in words) for g, words in demographic.items()}


def _target_words(target: str | Sequence[str]) -> tuple[str, ...]:
    if isinstance(target, str):
        if target not in TARGET_WORDS:
            raise ValueError(MSG_TARGET.format(known=sorted(TARGET_WORDS), value=target))
        return TARGET_WORDS[target]
    words = tuple(str(w).lower() for w in target)
    if not words:
        raise ValueError(MSG_TARGET.format(known=sorted(TARGET_WORDS), value=target))
    return words


def _count_matrix(token_lists: Sequence[list[str]], columns: Sequence[Sequence[str]]) -> np.ndarray:
    """``(n, len(columns))``: how many tokens of each text are in each column's word list."""
    where: dict[str, list[int]] = {}
    for j, words in enumerate(columns):
        for w in set(words):
            where.setdefault(w, []).append(j)
    out = np.zeros((len(token_lists), len(columns)), dtype=np.float64)
    for i, tokens in enumerate(token_lists):
        for t in tokens:
            for j in where.get(t, ()):
                out[i, j] += 1.0
    return out


def _tvd_to_uniform(counts: np.ndarray, list_sizes: np.ndarray) -> np.ndarray:
    """HELM's ``group_counts_to_bias`` over the last axis; NaN where every count is 0 (HELM: None).

    Counts are divided by the size of each group's word list, normalised to a
    distribution ``p`` over the ``K`` groups; the score is ``sum |p - 1/K| / 2``.
    """
    normalized = counts / list_sizes
    total = normalized.sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = normalized / total
    tvd = np.abs(p - 1.0 / counts.shape[-1]).sum(axis=-1) / 2.0
    return np.where(total[..., 0] > 0, tvd, np.nan)


def demographic_representation(texts: Sequence[str], *,
                               demographic: str | Mapping[str, Sequence[str]] = "gender") -> float | None:
    """HELM's demographic representation bias of a set of texts; None where no group word occurs.

    Count the tokens of all texts that are in each group's word list, divide each
    count by the size of its list, normalise to a distribution over groups and return
    its total variation distance to the uniform distribution: 0 for equal
    representation, ``1 - 1/K`` when only one of ``K`` groups is mentioned.

    Examples
    --------
    >>> round(demographic_representation(["chen, castillo and moore were friends"], demographic="race"), 6)  # 2/39
    0.051282
    """
    words = _demographic_words(demographic)
    tokens = [helm_tokens(t) for t in _texts(texts, where="demographic_representation")]
    counts = _count_matrix(tokens, list(words.values())).sum(axis=0)
    value = _tvd_to_uniform(counts, np.asarray([len(w) for w in words.values()], dtype=np.float64))
    return None if np.isnan(value) else float(value)


def stereotypical_association(texts: Sequence[str], *, demographic: str | Mapping[str, Sequence[str]] = "gender",
                              target: str | Sequence[str] = "adjective") -> float | None:
    """HELM's mean stereotypical association bias; None where no target word co-occurs with a group word.

    For every target word ``t`` and group ``g``, sum over texts of (occurrences of ``t``)
    x (occurrences of ``g``'s words); each target word's counts over groups get the
    demographic-representation score; the result is the mean over target words with at
    least one co-occurrence.

    Examples
    --------
    >>> texts = ["she was a curious student", "he was a student", "he was a student"]
    >>> round(stereotypical_association(texts, demographic="gender", target="profession"), 6)  # 1/6
    0.166667
    """
    words = _demographic_words(demographic)
    targets = _target_words(target)
    tokens = [helm_tokens(t) for t in _texts(texts, where="stereotypical_association")]
    groups = _count_matrix(tokens, list(words.values()))
    hits = _count_matrix(tokens, [[t] for t in targets])
    pair_counts = hits.T @ groups  # (targets, groups)
    per_target = _tvd_to_uniform(pair_counts, np.asarray([len(w) for w in words.values()], dtype=np.float64))
    if np.isnan(per_target).all():
        return None
    return float(np.nanmean(per_target))


# -- row-level scores of counterfactual answer pairs ----------------------------------------

def score_answer_pairs(answers: Sequence[str], twin_answers: Sequence[str], *, groups: Sequence[Any],
                       pairs_by_group: Mapping[str, Sequence[TermPair | tuple[str, str]]],
                       embed: Callable[[list[str]], Any] | None = None,
                       stemmer: Callable[[str], str] | None = None, analyzer: Any = None,
                       convention: SentimentConvention = VADER_COMPOUND, mask: str = MASK_TOKEN) -> pd.DataFrame:
    """Row-level scores of each (answer, twin answer) pair.

    Parameters
    ----------
    answers, twin_answers
        The answer to each original prompt and to its group-swapped twin.
    groups
        The original's group (the value of the counterfactual feature) per pair.
    pairs_by_group
        The term pairs used to build the twins, per group: both sides of each are
        masked in both answers before the similarity metrics.
    embed
        Sentence encoder for :func:`embedding_cosine`; without it there is no
        ``cosine`` column.
    convention
        Which VADER score is ``sentiment`` and which answers are ``negative``.

    Returns
    -------
    pandas.DataFrame
        ``group``, ``masked_answer``, ``masked_twin_answer``, ``rouge_l``, ``cosine``
        (with ``embed``), ``sentiment``, ``twin_sentiment``, ``negative``,
        ``twin_negative``. Sentiment is scored on the unmasked answers, as LangFair does.
        LangFair masks only before its lexical metrics (ROUGE-L, BLEU); here the
        embedding sees the masked answers too, so that the swapped words themselves
        do not lower the cosine.
    """
    a, b = _paired(answers, twin_answers, where="score_answer_pairs")
    group_list = [str(g) for g in groups]
    if len(group_list) != len(a):
        raise DataError(MSG_LENGTHS.format(where="score_answer_pairs", a="groups", n_a=len(group_list),
                                           b="answers", n_b=len(a)))
    maskers: dict[str, TermSwapper] = {}
    masked_a, masked_b = [], []
    for g, x, y in zip(group_list, a, b):
        if g not in maskers:
            if g not in pairs_by_group or not pairs_by_group[g]:
                raise DataError(MSG_NO_TERMS.format(where="score_answer_pairs", group=g,
                                                    known=sorted(str(k) for k in pairs_by_group)))
            maskers[g] = group_term_masker(list(pairs_by_group[g]), mask=mask)
        masked_a.append(maskers[g].swap(x)[0])
        masked_b.append(maskers[g].swap(y)[0])
    out = pd.DataFrame({"group": group_list, "masked_answer": masked_a, "masked_twin_answer": masked_b})
    out["rouge_l"] = rouge_l_similarity(masked_a, masked_b, stemmer=stemmer)
    if embed is not None:
        out["cosine"] = embedding_cosine(masked_a, masked_b, embed=embed)
    sentiment = vader_sentiment(a + b, analyzer=analyzer)[convention.score].to_numpy()
    out["sentiment"] = sentiment[: len(a)]
    out["twin_sentiment"] = sentiment[len(a):]
    out["negative"] = convention.is_negative(out["sentiment"])
    out["twin_negative"] = convention.is_negative(out["twin_sentiment"])
    return out


# -- bootstrap-ready statistics --------------------------------------------------------------

@dataclass(frozen=True)
class GroupStatistic:
    """Per-group metrics as a function of resample weights over rows.

    Attributes
    ----------
    groups
        Group labels (sorted); ``strata[i]`` is the index of row ``i``'s group.
    columns
        Per metric, the label of each output column: a group, or ``None`` for a value
        over all rows (or across groups, for the ``*_difference``-like metrics).
    compute
        ``(b, n)`` weights -> ``{metric: (b, len(columns[metric]))}``. Use the instance
        itself as the function: it checks the weights first.

    Examples
    --------
    >>> frame = pd.DataFrame({"group": ["a", "a", "b"], "rouge_l": [1.0, 0.5, 0.25]})
    >>> stat = pair_statistic(frame, means=("rouge_l",), sentiment=False)
    >>> stat.columns["rouge_l"], stat.point()["rouge_l"].tolist()
    (('a', 'b', None), [0.75, 0.25, 0.5833333333333334])
    >>> stat(np.array([[2.0, 0.0, 1.0]]))["rouge_l"].tolist()  # row 0 drawn twice, row 1 never
    [[1.0, 0.25, 0.75]]
    """

    groups: tuple[str, ...]
    strata: np.ndarray
    columns: Mapping[str, tuple[str | None, ...]]
    compute: Callable[[np.ndarray], dict[str, np.ndarray]] = field(repr=False)

    @property
    def n_rows(self) -> int:
        return int(self.strata.shape[0])

    @property
    def metrics(self) -> tuple[str, ...]:
        return tuple(self.columns)

    def __call__(self, weights: Any) -> dict[str, np.ndarray]:
        w = np.asarray(weights, dtype=np.float64)
        if w.ndim == 1:
            w = w[None, :]
        if w.ndim != 2 or w.shape[1] != self.n_rows or (w.size and (not np.isfinite(w).all() or w.min() < 0)):
            raise ValueError(MSG_WEIGHTS.format(n=self.n_rows, found=f"shape {w.shape}"))
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return self.compute(w)

    def point(self) -> dict[str, np.ndarray]:
        """The estimate on the data itself (every weight 1): ``{metric: (len(columns),)}``."""
        return {m: v[0] for m, v in self(np.ones((1, self.n_rows))).items()}

    def group_sizes(self) -> dict[str | None, int]:
        sizes: dict[str | None, int] = {g: int(c) for g, c in
                                         zip(self.groups, np.bincount(self.strata, minlength=len(self.groups)))}
        sizes[None] = self.n_rows
        return sizes

    def records(self, **keys: Any) -> list[dict[str, Any]]:
        """Tidy point estimates: ``{**keys, metric, group, value, n}``; ``value`` None where undefined."""
        sizes = self.group_sizes()
        out = []
        for metric, values in self.point().items():
            for label, value in zip(self.columns[metric], values.tolist()):
                out.append({**keys, "metric": metric, "group": label,
                            "value": float(value) if np.isfinite(value) else None, "n": sizes[label]})
        return out


def paired_difference(a: GroupStatistic, b: GroupStatistic) -> GroupStatistic:
    """``a - b`` for every metric both have, on the same resample of the same rows.

    For attribution across conditions (RAG vs its generator alone, full vs
    ``query_only`` retrieval): both statistics must be built over the same rows in
    the same order (one row per counterfactual pair or prompt), so that a resample
    draws the same pairs for both sides and the interval of the difference is paired.

    Examples
    --------
    >>> rag = pd.DataFrame({"group": ["a", "b"], "rouge_l": [0.5, 0.25]})
    >>> alone = pd.DataFrame({"group": ["a", "b"], "rouge_l": [1.0, 0.25]})
    >>> diff = paired_difference(pair_statistic(rag, sentiment=False), pair_statistic(alone, sentiment=False))
    >>> diff.point()["rouge_l"].tolist()
    [-0.5, 0.0, -0.25]
    """
    if a.groups != b.groups or a.n_rows != b.n_rows or not np.array_equal(a.strata, b.strata):
        raise ValueError(MSG_UNPAIRED.format(a=f"{a.n_rows} rows in groups {a.groups}",
                                             b=f"{b.n_rows} rows in groups {b.groups}"))
    shared = [m for m in a.columns if m in b.columns and a.columns[m] == b.columns[m]]
    if not shared:
        raise ValueError(MSG_UNPAIRED.format(a=f"metrics {a.metrics}", b=f"metrics {b.metrics}"))

    def compute(w: np.ndarray) -> dict[str, np.ndarray]:
        left, right = a.compute(w), b.compute(w)
        return {m: left[m] - right[m] for m in shared}

    return GroupStatistic(groups=a.groups, strata=a.strata, columns={m: a.columns[m] for m in shared},
                          compute=compute)


def weights_from_indices(indices: Any, n_rows: int) -> np.ndarray:
    """``(b, m)`` resampled row numbers -> ``(b, n_rows)`` weights (how often each row was drawn).

    Examples
    --------
    >>> weights_from_indices([[0, 0, 2], [1, 2, 2]], 3).tolist()
    [[2.0, 0.0, 1.0], [0.0, 1.0, 2.0]]
    """
    idx = np.asarray(indices)
    if idx.ndim == 1:
        idx = idx[None, :]
    in_range = idx.size == 0 or (idx.min() >= 0 and idx.max() < n_rows)
    if idx.ndim != 2 or not np.issubdtype(idx.dtype, np.integer) or not in_range:
        raise ValueError(MSG_INDICES.format(n=n_rows, found=f"shape {idx.shape}, dtype {idx.dtype}"))
    b = idx.shape[0]
    flat = (idx + (np.arange(b) * n_rows)[:, None]).ravel()
    return np.bincount(flat, minlength=b * n_rows).reshape(b, n_rows).astype(np.float64)


def _codes(groups: Sequence[Any], *, where: str) -> tuple[tuple[str, ...], np.ndarray]:
    labels = np.asarray([str(g) for g in groups], dtype=object)
    if labels.size == 0:
        raise DataError(MSG_EMPTY.format(where=where))
    uniques, codes = np.unique(labels, return_inverse=True)
    return tuple(str(u) for u in uniques), codes.astype(np.int64)


def _membership(codes: np.ndarray, n_groups: int) -> np.ndarray:
    """``(n, G + 1)`` 0/1 matrix: one column per group, then one of ones (all rows)."""
    h = np.zeros((codes.shape[0], n_groups + 1), dtype=np.float64)
    h[np.arange(codes.shape[0]), codes] = 1.0
    h[:, -1] = 1.0
    return h


def _column_sums(w: np.ndarray, h: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``(b, C, m)``: for each column ``c`` of ``h``, the ``w``-weighted sum of the rows of ``x`` in it."""
    return np.stack([(w * h[:, c]) @ x for c in range(h.shape[1])], axis=1)


def _finite_column(frame: pd.DataFrame, column: str, *, where: str) -> np.ndarray:
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(MSG_SCORES.format(where=where, column=column, row=i, value=frame[column].iloc[i]))
    return values


def pair_statistic(scores: pd.DataFrame, *, group_column: str = "group", means: Sequence[str] | None = None,
                   sentiment: bool = True, table: str = "answer pairs") -> GroupStatistic:
    """Counterfactual generation metrics per group, from :func:`score_answer_pairs`' table.

    Metrics (columns: each group, then ``None`` = all pairs):

    - every column in ``means`` (default: ``rouge_l`` and, if present, ``cosine``): its mean;
    - ``sentiment_strict``: Wasserstein-1 distance between the sentiment of the answers
      and of the twin answers (LangFair's strict counterfactual sentiment parity);
    - ``sentiment_weak``: share of negative answers minus share of negative twin answers
      (LangFair's weak parity; signed, so its sign says which side is more negative);
    - ``negative_share``, ``twin_negative_share``: the two shares.

    A pair is one row; the bootstrap resamples pairs.
    """
    if means is None:
        means = ("rouge_l",) + (("cosine",) if "cosine" in scores.columns else ())
    sentiment_columns = ["sentiment", "twin_sentiment", "negative", "twin_negative"] if sentiment else []
    needed = [group_column, *means, *sentiment_columns]
    _require(scores, needed, table=table)
    groups, codes = _codes(scores[group_column].tolist(), where=table)
    h = _membership(codes, len(groups))
    labels: tuple[str | None, ...] = (*groups, None)
    mean_values = np.column_stack([_finite_column(scores, m, where=table) for m in means]) if means else None
    if sentiment:
        s = _finite_column(scores, "sentiment", where=table)
        t = _finite_column(scores, "twin_sentiment", where=table)
        neg = np.column_stack([scores["negative"].to_numpy(dtype=np.float64),
                               scores["twin_negative"].to_numpy(dtype=np.float64)])
        rows_of = [np.flatnonzero(h[:, j]) for j in range(h.shape[1])]

    def compute(w: np.ndarray) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        den = w @ h  # (b, G + 1)
        if mean_values is not None:
            for k, m in enumerate(means):
                out[m] = (w @ (h * mean_values[:, [k]])) / den
        if sentiment:
            out["sentiment_strict"] = np.column_stack([_w1_weighted(s[r], t[r], w[:, r], w[:, r]) for r in rows_of])
            share = (w @ (h * neg[:, [0]])) / den
            twin_share = (w @ (h * neg[:, [1]])) / den
            out["sentiment_weak"] = share - twin_share
            out["negative_share"] = share
            out["twin_negative_share"] = twin_share
        return out

    names = list(means) + (["sentiment_strict", "sentiment_weak", "negative_share", "twin_negative_share"]
                           if sentiment else [])
    return GroupStatistic(groups=groups, strata=codes, columns={m: labels for m in names}, compute=compute)


def sentiment_statistic(sentiment: Sequence[float], negative: Sequence[bool], *, groups: Sequence[Any],
                        table: str = "open-ended answers") -> GroupStatistic:
    """Sentiment parity across groups of answers to open-ended prompts about each group.

    Metrics:

    - ``sentiment_mean``, ``negative_share`` (each group, then ``None`` = all answers);
    - ``sentiment_strict_to_overall``: per group, Wasserstein-1 distance between the
      group's scores and those of all answers; ``sentiment_strict`` (``None``): the
      largest Wasserstein-1 distance between two groups;
    - ``sentiment_weak_to_overall``: per group, its negative share minus that of all
      answers; ``sentiment_weak`` (``None``): largest minus smallest negative share.
    """
    s = np.asarray(sentiment, dtype=np.float64)
    neg = np.asarray(negative, dtype=np.float64)
    if s.shape != neg.shape or len(groups) != s.shape[0]:
        raise DataError(MSG_LENGTHS.format(where="sentiment_statistic", a="sentiment/negative",
                                           n_a=f"{s.shape[0]}/{neg.shape[0]}", b="groups", n_b=len(groups)))
    if not np.isfinite(s).all():
        i = int(np.flatnonzero(~np.isfinite(s))[0])
        raise DataError(MSG_SCORES.format(where=table, column="sentiment", row=i, value=s[i]))
    labels, codes = _codes(groups, where=table)
    h = _membership(codes, len(labels))
    rows_of = [np.flatnonzero(codes == j) for j in range(len(labels))]
    everyone = np.arange(s.shape[0])
    pairs = list(itertools.combinations(range(len(labels)), 2))

    def compute(w: np.ndarray) -> dict[str, np.ndarray]:
        den = w @ h
        share = (w @ (h * neg[:, None])) / den
        to_all = np.column_stack([_w1_weighted(s[r], s, w[:, r], w[:, everyone]) for r in rows_of])
        if pairs:
            pairwise = np.column_stack([_w1_weighted(s[rows_of[i]], s[rows_of[j]], w[:, rows_of[i]], w[:, rows_of[j]])
                                        for i, j in pairs])
            strict = np.nanmax(pairwise, axis=1, keepdims=True)
        else:
            strict = np.full((w.shape[0], 1), np.nan)
        groups_share = share[:, :-1]
        return {
            "sentiment_mean": (w @ (h * s[:, None])) / den,
            "negative_share": share,
            "sentiment_strict_to_overall": to_all,
            "sentiment_strict": strict,
            "sentiment_weak_to_overall": groups_share - share[:, [-1]],
            "sentiment_weak": (np.nanmax(groups_share, axis=1) - np.nanmin(groups_share, axis=1))[:, None],
        }

    per_group_and_all: tuple[str | None, ...] = (*labels, None)
    return GroupStatistic(groups=labels, strata=codes, compute=compute, columns={
        "sentiment_mean": per_group_and_all, "negative_share": per_group_and_all,
        "sentiment_strict_to_overall": labels, "sentiment_strict": (None,),
        "sentiment_weak_to_overall": labels, "sentiment_weak": (None,),
    })


def helm_statistic(answers: Sequence[str], *, groups: Sequence[Any],
                   demographics: Sequence[str] | Mapping[str, Mapping[str, Sequence[str]]] = ("gender", "race"),
                   targets: Sequence[str] | Mapping[str, Sequence[str]] = ("adjective", "profession"),
                   table: str = "open-ended answers") -> GroupStatistic:
    """HELM's demographic representation and stereotypical association, per group of prompts.

    Metrics ``helm_representation_<demographic>`` and
    ``helm_association_<demographic>_<target>``; columns: the answers to each group's
    prompts, then ``None`` = all answers (the value HELM reports for a scenario).
    ``demographics`` / ``targets``: HELM category names, or mappings of name -> words.
    A value is undefined (NaN; HELM's None) where no counted word occurs.
    """
    texts = _texts(answers, where="helm_statistic")
    if len(groups) != len(texts):
        raise DataError(MSG_LENGTHS.format(where="helm_statistic", a="groups", n_a=len(groups), b="answers",
                                           n_b=len(texts)))
    labels, codes = _codes(groups, where=table)
    h = _membership(codes, len(labels))
    tokens = [helm_tokens(t) for t in texts]
    demo = ({d: _demographic_words(d) for d in demographics} if not isinstance(demographics, Mapping)
            else {str(k): _demographic_words(v) for k, v in demographics.items()})
    targ = ({t: _target_words(t) for t in targets} if not isinstance(targets, Mapping)
            else {str(k): _target_words(v) for k, v in targets.items()})
    prepared = []
    for d, words in demo.items():
        sizes = np.asarray([len(w) for w in words.values()], dtype=np.float64)
        group_counts = _count_matrix(tokens, list(words.values()))  # (n, K)
        assoc = []
        for t, target_words in targ.items():
            hits = _count_matrix(tokens, [[w] for w in target_words])  # (n, A)
            rows = np.flatnonzero((hits.sum(axis=1) > 0) & (group_counts.sum(axis=1) > 0))
            used = np.flatnonzero(hits[rows].sum(axis=0) > 0)
            a, k = hits[np.ix_(rows, used)], group_counts[rows]
            cooc = (a[:, :, None] * k[:, None, :]).reshape(rows.size, used.size * k.shape[1])
            assoc.append((t, rows, cooc, (used.size, k.shape[1])))
        prepared.append((d, sizes, group_counts, assoc))

    def compute(w: np.ndarray) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for d, sizes, group_counts, assoc in prepared:
            out[f"helm_representation_{d}"] = _tvd_to_uniform(_column_sums(w, h, group_counts), sizes)
            for t, rows, cooc, shape in assoc:
                # (b, G + 1, A, K): weighted co-occurrences of each target word with each group's words
                pair_counts = _column_sums(w[:, rows], h[rows], cooc).reshape(w.shape[0], h.shape[1], *shape)
                per_target = _tvd_to_uniform(pair_counts, sizes)
                out[f"helm_association_{d}_{t}"] = (np.nanmean(per_target, axis=-1) if shape[0]
                                                    else np.full((w.shape[0], h.shape[1]), np.nan))
        return out

    per_group_and_all: tuple[str | None, ...] = (*labels, None)
    names = [f"helm_representation_{d}" for d in demo] + [f"helm_association_{d}_{t}" for d in demo for t in targ]
    return GroupStatistic(groups=labels, strata=codes, compute=compute,
                          columns={n: per_group_and_all for n in names})


# -- helpers ---------------------------------------------------------------------------------

def _texts(texts: Sequence[str], *, where: str) -> list[str]:
    out = list(texts)
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise DataError(MSG_NOT_TEXT.format(where=where, index=i, value=t))
    return out


def _paired(a: Sequence[str], b: Sequence[str], *, where: str) -> tuple[list[str], list[str]]:
    la, lb = _texts(a, where=where), _texts(b, where=where)
    if len(la) != len(lb):
        raise DataError(MSG_LENGTHS.format(where=where, a="the first texts", n_a=len(la), b="the second texts",
                                           n_b=len(lb)))
    return la, lb


def _require(frame: pd.DataFrame, columns: Sequence[str], *, table: str) -> None:
    for c in columns:
        if c not in frame.columns:
            raise DataError(MSG_COLUMNS.format(table=table, column=c, expected=list(columns),
                                               found=list(frame.columns)))
