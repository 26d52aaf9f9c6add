"""Similarity of two answers: group-term masking, ROUGE-L and embedding cosine (LangFair's definitions).

Helpers shared by the generation metrics (text checks, column checks) live here too.
Public names are re-exported by :mod:`pipelines.fairness.generation`.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from pipelines.errors import DataError, ModelError
from pipelines.fairness.counterfactual import TermPair, TermSwapper

#: What a masked group term becomes. Both answers of a pair get the same token, so
#: a masked term neither adds to nor takes from their similarity.
MASK_TOKEN = "[MASK]"

MSG_LENGTHS = "{where}: {a} has {n_a} entries but {b} has {n_b}; they must be paired one to one."
MSG_NOT_TEXT = "{where}: entry {index} must be a string. Got {value!r} instead."
MSG_EMBED_SHAPE = "embed(texts) must return an array of shape ({n}, d) for {n} texts. Got shape {shape} instead."
MSG_EMBED_VALUES = "embed(texts) returned {problem} for text {index} ({text!r}); expected finite, non-zero vectors."
MSG_COLUMNS = "{table}: column {column!r} is missing; expected columns {expected}. Found {found}."


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
