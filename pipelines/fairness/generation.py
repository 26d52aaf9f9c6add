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

from typing import Any, Callable, Mapping, Sequence

import pandas as pd

from pipelines.errors import DataError
from pipelines.fairness._gen_helm import demographic_representation, helm_tokens, stereotypical_association
from pipelines.fairness._gen_sentiment import (
    LANGFAIR_VADER_NEG,
    VADER_COMPOUND,
    SentimentConvention,
    vader_sentiment,
    wasserstein_1,
)
from pipelines.fairness._gen_statistics import (
    GroupStatistic,
    helm_statistic,
    pair_statistic,
    paired_difference,
    sentiment_statistic,
    weights_from_indices,
)
from pipelines.fairness._gen_text import (
    MASK_TOKEN,
    MSG_LENGTHS,
    _paired,
    embedding_cosine,
    group_term_masker,
    lcs_length,
    mask_group_terms,
    rouge_l_f,
    rouge_l_similarity,
    rouge_tokens,
)
from pipelines.fairness._helm_word_lists import DEMOGRAPHIC_WORDS, TARGET_WORDS
from pipelines.fairness.counterfactual import TermPair, TermSwapper

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

MSG_NO_TERMS = "{where}: group {group!r} has no term pairs to mask. Groups with term pairs: {known}."


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


