"""Metrics over generated answers, checked against hand-computed values and reference packages."""

from __future__ import annotations

import doctest
import math
import random

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.errors import DataError, ModelError
from pipelines.fairness.counterfactual import TermPair
from pipelines.fairness import generation as gen
from pipelines.fairness.generation import (
    LANGFAIR_VADER_NEG,
    VADER_COMPOUND,
    demographic_representation,
    embedding_cosine,
    helm_statistic,
    helm_tokens,
    lcs_length,
    mask_group_terms,
    pair_statistic,
    paired_difference,
    rouge_l_f,
    rouge_l_similarity,
    rouge_tokens,
    score_answer_pairs,
    sentiment_statistic,
    stereotypical_association,
    vader_sentiment,
    wasserstein_1,
    weights_from_indices,
)


def test_docstring_examples():
    from pipelines.fairness import _gen_helm, _gen_sentiment, _gen_statistics, _gen_text

    attempted = 0
    for module in (gen, _gen_text, _gen_sentiment, _gen_helm, _gen_statistics):
        result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
        assert result.failed == 0, module.__name__
        attempted += result.attempted
    assert attempted >= 10


# -- masking ---------------------------------------------------------------------------------

def test_masking_covers_both_sides_case_insensitively_on_word_boundaries():
    pairs = [("women", "men"), ("she", "he"), ("jewish people", "christian people")]
    texts = ["She said Women are kind", "He said MEN are kind", "Jewish   people and christian people",
             "the mention of womenfolk and shell stays"]
    assert mask_group_terms(texts, pairs) == [
        "[MASK] said [MASK] are kind",
        "[MASK] said [MASK] are kind",
        "[MASK] and [MASK]",
        "the mention of womenfolk and shell stays",
    ]


def test_masking_accepts_term_pairs_and_a_custom_token():
    out = mask_group_terms(["black women"], [TermPair("black", "white"), TermPair("women", "men")], mask="X")
    assert out == ["X X"]


# -- ROUGE-L ---------------------------------------------------------------------------------

def test_rouge_tokens_follow_rouge_score_rules():
    # lower-case, non-alphanumerics become spaces; stemming only for tokens longer than 3 characters
    assert rouge_tokens("Don't STOP-believing, 42!") == ["don", "t", "stop", "believing", "42"]
    assert rouge_tokens("cats are running", stemmer=lambda t: t[:-1]) == ["cat", "are", "runnin"]
    assert rouge_tokens("…") == []


@pytest.mark.parametrize("a, b, expected", [
    ("the cat sat on the mat".split(), "the cat lay on a mat".split(), 4),  # the cat on mat
    (list("ABCBDAB"), list("BDCABA"), 4),  # CLRS' example: BCBA
    ([], ["a"], 0),
    (["a", "a"], ["a"], 1),
    (list("x" * 70 + "y"), list("y" + "x" * 70), 70),  # more than one 64-bit word
])
def test_lcs_length_hand_values(a, b, expected):
    assert lcs_length(a, b) == expected
    assert lcs_length(b, a) == expected


def _lcs_table(a, b):
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            table[i][j] = table[i - 1][j - 1] + 1 if a[i - 1] == b[j - 1] else max(table[i - 1][j], table[i][j - 1])
    return table[-1][-1]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from("abcd"), max_size=80), st.lists(st.sampled_from("abcde"), max_size=80))
def test_lcs_length_equals_dynamic_programming(a, b):
    assert lcs_length(a, b) == _lcs_table(a, b)


@pytest.mark.parametrize("a, b, expected", [
    # 6 tokens each, LCS "the cat on mat" = 4: P = R = 4/6, F = 2/3
    ("The cat sat on the mat.", "the cat lay on a mat", 2 / 3),
    # LCS 2: P = 2/2 (of the second), R = 2/4, F = 2 * 1 * 0.5 / 1.5 = 2/3
    ("a b c d", "a c", 2 / 3),
    # LCS 1 ("b"): P = 1/3, R = 1/2, F = 2 * (1/6) / (5/6) = 0.4
    ("a b", "b c d", 0.4),
    ("same words", "Same, words!", 1.0),
    ("", "anything", 0.0),  # rouge-score: 0 when a side has no tokens
    ("", "", 0.0),
])
def test_rouge_l_f_hand_values(a, b, expected):
    assert rouge_l_f(a, b) == pytest.approx(expected)
    assert rouge_l_f(b, a) == pytest.approx(expected)  # F is symmetric


def test_rouge_l_similarity_checks_pairing():
    assert rouge_l_similarity(["a b", "c"], ["a b", "d"]).tolist() == [1.0, 0.0]
    with pytest.raises(DataError, match="paired one to one"):
        rouge_l_similarity(["a"], ["a", "b"])
    with pytest.raises(DataError, match="entry 1 must be a string"):
        rouge_l_similarity(["a", None], ["a", "b"])


def _random_texts(rng: random.Random, n: int) -> list[str]:
    vocab = ["the", "women", "men", "are", "running", "runs", "kind", "kindly", "[MASK]", "people", "said", "good",
             "generalization", "it's", "42", "Rules!", "-", "caresses", "ponies"]
    return [" ".join(rng.choice(vocab) for _ in range(rng.randint(0, 25))) for _ in range(n)]


def test_rouge_l_matches_rouge_score_package():
    nltk = pytest.importorskip("nltk")  # rouge-score imports nltk's Porter stemmer
    rouge_scorer = pytest.importorskip("rouge_score.rouge_scorer")
    rng = random.Random(7)
    a, b = _random_texts(rng, 300), _random_texts(rng, 300)
    plain = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    stemmed = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)  # LangFair's setting
    porter = nltk.stem.porter.PorterStemmer()
    want_plain = [plain.score(x, y)["rougeL"].fmeasure for x, y in zip(a, b)]
    want_stemmed = [stemmed.score(x, y)["rougeL"].fmeasure for x, y in zip(a, b)]
    np.testing.assert_allclose(rouge_l_similarity(a, b), want_plain, rtol=0, atol=1e-12)
    np.testing.assert_allclose(rouge_l_similarity(a, b, stemmer=porter.stem), want_stemmed, rtol=0, atol=1e-12)
    assert len(set(np.round(want_plain, 6))) > 20  # the texts exercise many different values


# -- embedding cosine ------------------------------------------------------------------------

def _bag_of_words(texts):
    vocab = ["a", "b", "c", "[mask]"]
    return np.array([[t.lower().split().count(w) for w in vocab] for t in texts], dtype=float)


def test_embedding_cosine_hand_values():
    # (1,1,0,0).(1,0,1,0) / (sqrt2 sqrt2) = 1/2; (2,0,0,0).(1,0,0,0) = 1; (0,1,0,0).(0,0,1,0) = 0
    got = embedding_cosine(["a b", "a a", "b"], ["a c", "a", "c"], embed=_bag_of_words)
    np.testing.assert_allclose(got, [0.5, 1.0, 0.0], atol=1e-12)


def test_embedding_cosine_calls_embed_once_and_checks_its_output():
    calls = []

    def embed(texts):
        calls.append(list(texts))
        return _bag_of_words(texts)

    embedding_cosine(["a", "b"], ["c", "a"], embed=embed)
    assert calls == [["a", "b", "c", "a"]]
    with pytest.raises(ModelError, match=r"shape \(2, d\)"):
        embedding_cosine(["a"], ["b"], embed=lambda texts: np.ones((3, 4)))
    with pytest.raises(ModelError, match="zero vector for text 1"):
        embedding_cosine(["a"], ["zzz"], embed=_bag_of_words)


# -- sentiment -------------------------------------------------------------------------------

def test_vader_scores_hand_computed():
    pytest.importorskip("vaderSentiment")
    scores = vader_sentiment(["I hate this.", "This is good.", ""])
    assert list(scores.columns) == ["neg", "neu", "pos", "compound"]
    # VADER lexicon: hate -2.7, good 1.9; compound = x / sqrt(x^2 + 15)
    assert scores["compound"].tolist() == [round(-2.7 / math.sqrt(2.7 ** 2 + 15), 4),
                                           round(1.9 / math.sqrt(1.9 ** 2 + 15), 4), 0.0]
    # neg share: a sentiment word adds |valence| + 1 = 3.7, the 2 neutral words 1 each: 3.7 / 5.7
    assert scores["neg"].iloc[0] == round(3.7 / 5.7, 3)


def test_vader_sentiment_equals_the_reference_analyzer():
    vader = pytest.importorskip("vaderSentiment.vaderSentiment")
    texts = _random_texts(random.Random(3), 50) + ["Women are GREAT!!", "men are not bad :("]
    ref = vader.SentimentIntensityAnalyzer()
    got = vader_sentiment(texts)
    for i, t in enumerate(texts):
        assert got.iloc[i].to_dict() == pytest.approx(ref.polarity_scores(t))


def test_sentiment_conventions():
    # VADER: negative when compound <= -0.05; LangFair (VADER "neg"): negative when neg > 0.5
    assert VADER_COMPOUND.is_negative([-0.05, -0.0499, -1, 0.3]).tolist() == [True, False, True, False]
    assert LANGFAIR_VADER_NEG.is_negative([0.5, 0.51, 0.0]).tolist() == [False, True, False]
    with pytest.raises(ValueError, match="`score` of SentimentConvention"):
        gen.SentimentConvention("pos", 0.0, "above")


def test_wasserstein_hand_values():
    # equal sizes: mean |sort(u) - sort(v)| = (|-0.5 - 0| + |0 - 0.2| + |0.2 - 0.6|) / 3
    assert wasserstein_1([-0.5, 0.2, 0.0], [0.0, 0.2, 0.6]) == pytest.approx(1.1 / 3)
    assert wasserstein_1([0, 1], [0.5, 0.5]) == pytest.approx(0.5)
    assert wasserstein_1([0.3], [0.3, 0.3]) == pytest.approx(0.0)
    # weights 3:1 on {0, 1} vs all mass at 1: |F_u - F_v| = 0.75 on [0, 1)
    assert wasserstein_1([0, 1], [1], u_weights=[3, 1]) == pytest.approx(0.75)
    assert math.isnan(wasserstein_1([0, 1], [1], u_weights=[0, 0]))


def test_wasserstein_matches_scipy():
    from scipy.stats import wasserstein_distance

    rng = np.random.default_rng(0)
    for _ in range(50):
        u, v = rng.normal(size=rng.integers(1, 30)), rng.uniform(-1, 1, size=rng.integers(1, 30))
        wu, wv = rng.integers(0, 4, size=u.size) + 0.5, rng.integers(1, 3, size=v.size).astype(float)
        assert wasserstein_1(u, v, u_weights=wu, v_weights=wv) == pytest.approx(
            wasserstein_distance(u, v, u_weights=wu, v_weights=wv), abs=1e-12)


# -- HELM ------------------------------------------------------------------------------------

# HELM's own test cases (helm/benchmark/metrics/test_bias_metrics.py), worked out by hand:
# race lists have 20 (Asian), 16 (Hispanic), 20 (White) names.
@pytest.mark.parametrize("texts, expected", [
    ([""], None),
    (["Hi, this is a text!"], None),
    # one group mentioned: p = (1, 0, 0), |p - 1/3| sums to 4/3, TVD = 2/3
    (["chen was a student in their class"], 2 / 3),
    ([" cHen was a student in their class"], 2 / 3),
    # two groups: normalised (1/20, 1/16, 0) -> p = (4/9, 5/9, 0) -> TVD = (1/9 + 2/9 + 1/3) / 2 = 1/3
    (["chen and", "castillo were friends"], 1 / 3),
    # (1/20, 1/16, 1/20) -> p = (4/13, 5/13, 4/13) -> TVD = (1/39 + 2/39 + 1/39) / 2 = 2/39
    (["chen, castillo and moore were friends"], 2 / 39),
])
def test_demographic_representation_race(texts, expected):
    got = demographic_representation(texts, demographic="race")
    assert got == (None if expected is None else pytest.approx(expected))


@pytest.mark.parametrize("texts, expected", [
    (["wOman was happy"], 1 / 2),
    (["Her daughter was happy"], 1 / 2),
    (["Their daughters and sons were happy"], 0.0),
    (["his/her mother's son"], 0.0),  # "his/her" is one token, as in nltk: female 1 (mother), male 1 (son)
])
def test_demographic_representation_gender(texts, expected):
    assert demographic_representation(texts, demographic="gender") == pytest.approx(expected)


def test_stereotypical_association_hand_values():
    # one co-occurrence (chen, curious): TVD 2/3
    assert stereotypical_association(["chen was a curious student"], demographic="race",
                                     target="adjective") == pytest.approx(2 / 3)
    # "student" co-occurs with chen and castillo: normalised (1/20, 1/16, 0) -> 1/3
    assert stereotypical_association(["chen was a curious student", "castillo was a student"], demographic="race",
                                     target="profession") == pytest.approx(1 / 3)
    # student: female 1, male 2 -> p = (1/3, 2/3) -> TVD 1/6
    assert stereotypical_association(["she was a curious student", "he was a student", "he was a student"],
                                     demographic="gender", target="profession") == pytest.approx(1 / 6)
    # co-occurrence is a product of counts within one text: nurse x (she, she, he) = (2, 1) -> p = (2/3, 1/3);
    # doctor x he = (0, 1) -> 1/2; mean over the two targets = (1/6 + 1/2) / 2 = 1/3
    assert stereotypical_association(["she and she and he, a nurse", "he is a doctor"],
                                     target="profession") == pytest.approx(1 / 3)
    assert stereotypical_association(["she is tall"], target="profession") is None


def test_helm_accepts_custom_word_lists():
    words = {"a": ["muslim", "muslims"], "b": ["christian"]}
    # a: 2 / 2 words, b: 1 / 1 word -> p = (1/2, 1/2)
    assert demographic_representation(["Muslims and muslim, Christian"], demographic=words) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="HELM demographic category"):
        demographic_representation(["x"], demographic="religion")


def test_helm_tokens_count_list_words_like_nltk():
    nltk_tok = pytest.importorskip("nltk.tokenize")
    tokenizer = nltk_tok.NLTKWordTokenizer()  # word_tokenize without its sentence splitter (needs punkt data)
    words = {w for g in gen.DEMOGRAPHIC_WORDS.values() for ws in g.values() for w in ws}
    words |= {w for ws in gen.TARGET_WORDS.values() for w in ws}
    sentences = [
        "She's a doctor; her son (a nurse) isn't.", "His/her mother-in-law said \"no\" to the man--and woman.",
        "Women's rights: he, him & himself... Chen, Garcia-Lopez and Moore!", "A kind, curious boy@girl #son",
        "the actress' uncle's nephews were 3 brave firefighters.",
    ]
    for s in sentences:
        ours = [t for t in helm_tokens(s) if t in words]
        theirs = [t for t in tokenizer.tokenize(s.lower()) if t in words]
        assert ours == theirs, s


# -- row-level pair scores -------------------------------------------------------------------

def test_score_answer_pairs():
    pytest.importorskip("vaderSentiment")
    scores = score_answer_pairs(
        ["The women are kind.", "Men are bad."], ["The men are kind.", "Women are bad, really bad."],
        groups=["women", "women"], pairs_by_group={"women": [("women", "men")]}, embed=_bag_of_words)
    assert scores["masked_answer"].tolist() == ["The [MASK] are kind.", "[MASK] are bad."]
    assert scores["masked_twin_answer"].tolist() == ["The [MASK] are kind.", "[MASK] are bad, really bad."]
    # pair 2: tokens (mask are bad) vs (mask are bad really bad): LCS 3, P = 3/5, R = 1 -> F = 0.75
    np.testing.assert_allclose(scores["rouge_l"], [1.0, 0.75])
    # bag of words over (a, b, c, [mask]): pair 1 (0,0,0,1) both -> 1; pair 2 (0,0,0,1) both -> 1
    np.testing.assert_allclose(scores["cosine"], [1.0, 1.0])
    # VADER on the unmasked answers: kind 1.9 -> 0.5267 (x / sqrt(x^2 + 15), rounded); bad -2.5 -> -0.5423
    assert scores["sentiment"].tolist() == [0.5267, -0.5423]
    assert scores["negative"].tolist() == [False, True]
    assert scores["twin_negative"].tolist() == [False, True]


def test_score_answer_pairs_names_a_group_without_term_pairs():
    with pytest.raises(DataError, match="group 'muslim' has no term pairs"):
        score_answer_pairs(["a"], ["b"], groups=["muslim"], pairs_by_group={"women": [("women", "men")]})


# -- bootstrap-ready statistics --------------------------------------------------------------

@pytest.fixture
def pair_scores() -> pd.DataFrame:
    return pd.DataFrame({
        "group": ["a", "a", "a", "b"],
        "rouge_l": [1.0, 0.5, 0.0, 0.25],
        "sentiment": [-0.5, 0.2, 0.0, 0.3],
        "twin_sentiment": [0.0, 0.2, 0.6, -0.3],
    }).assign(negative=lambda f: VADER_COMPOUND.is_negative(f["sentiment"]),
              twin_negative=lambda f: VADER_COMPOUND.is_negative(f["twin_sentiment"]))


def test_pair_statistic_hand_values(pair_scores):
    stat = pair_statistic(pair_scores)
    assert stat.groups == ("a", "b")
    assert stat.strata.tolist() == [0, 0, 0, 1]
    point = stat.point()
    assert stat.columns["rouge_l"] == ("a", "b", None)
    np.testing.assert_allclose(point["rouge_l"], [0.5, 0.25, 1.75 / 4])
    # a: sorted (-0.5, 0, 0.2) vs (0, 0.2, 0.6) -> 1.1/3; b: |0.3 - (-0.3)| = 0.6;
    # all: sorted (-0.5, 0, 0.2, 0.3) vs (-0.3, 0, 0.2, 0.6) -> (0.2 + 0 + 0 + 0.3) / 4
    np.testing.assert_allclose(point["sentiment_strict"], [1.1 / 3, 0.6, 0.125])
    # negative answers (compound <= -0.05): a 1/3 vs twins 0; b 0 vs 1; all 1/4 vs 1/4
    np.testing.assert_allclose(point["negative_share"], [1 / 3, 0, 0.25])
    np.testing.assert_allclose(point["twin_negative_share"], [0, 1, 0.25])
    np.testing.assert_allclose(point["sentiment_weak"], [1 / 3, -1, 0])


def test_pair_statistic_weights_are_resample_counts(pair_scores):
    stat = pair_statistic(pair_scores)
    # row 0 twice, row 1 never: a = (-0.5, -0.5, 0) vs (0, 0, 0.6) -> (0.5 + 0.5 + 0.6) / 3
    got = stat(np.array([[2.0, 0.0, 1.0, 1.0]]))
    np.testing.assert_allclose(got["sentiment_strict"][0, 0], 1.6 / 3)
    np.testing.assert_allclose(got["rouge_l"][0, 0], 2 / 3)


def test_statistic_of_weights_equals_statistic_of_the_expanded_sample(pair_scores):
    rng = np.random.default_rng(1)
    stat = pair_statistic(pair_scores)
    for _ in range(20):
        counts = rng.integers(0, 4, size=len(pair_scores))
        counts[[0, 3]] = np.maximum(counts[[0, 3]], 1)  # keep both groups
        expanded = pair_scores.loc[pair_scores.index.repeat(counts)].reset_index(drop=True)
        want = pair_statistic(expanded).point()
        got = stat(counts[None, :].astype(float))
        for metric in want:
            np.testing.assert_allclose(got[metric][0], want[metric], atol=1e-12, err_msg=metric)


def test_pair_statistic_records_are_tidy(pair_scores):
    records = pair_statistic(pair_scores).records(variant="rag", condition="full")
    rec = next(r for r in records if r["metric"] == "sentiment_weak" and r["group"] == "b")
    assert rec == {"variant": "rag", "condition": "full", "metric": "sentiment_weak", "group": "b", "value": -1.0,
                   "n": 1}
    assert {r["group"] for r in records} == {"a", "b", None}
    assert len(records) == 5 * 3  # rouge_l and 4 sentiment metrics (no cosine column), 3 columns each


def test_pair_statistic_errors(pair_scores):
    with pytest.raises(DataError, match="column 'cosine' is missing"):
        pair_statistic(pair_scores, means=("rouge_l", "cosine"))
    bad = pair_scores.assign(rouge_l=[1.0, np.nan, 0.0, 0.25])
    with pytest.raises(DataError, match="'rouge_l' must hold finite numbers; row 1"):
        pair_statistic(bad)
    stat = pair_statistic(pair_scores)
    with pytest.raises(ValueError, match=r"\(b, 4\) array"):
        stat(np.ones((2, 3)))
    with pytest.raises(ValueError, match="non-negative"):
        stat(-np.ones((1, 4)))


def test_sentiment_statistic_hand_values():
    s = [-0.5, 0.5, 0.0, 0.0]
    stat = sentiment_statistic(s, VADER_COMPOUND.is_negative(s), groups=["a", "a", "b", "b"])
    point = stat.point()
    np.testing.assert_allclose(point["sentiment_mean"], [0, 0, 0], atol=1e-12)
    np.testing.assert_allclose(point["negative_share"], [0.5, 0, 0.25])
    # a vs b: sorted (-0.5, 0.5) vs (0, 0) -> (0.5 + 0.5) / 2
    np.testing.assert_allclose(point["sentiment_strict"], [0.5])
    # a vs all: |F_a - F_all| = 0.25 on [-0.5, 0) and on [0, 0.5) -> 0.25; b likewise
    np.testing.assert_allclose(point["sentiment_strict_to_overall"], [0.25, 0.25])
    np.testing.assert_allclose(point["sentiment_weak_to_overall"], [0.25, -0.25])
    np.testing.assert_allclose(point["sentiment_weak"], [0.5])
    assert stat.columns["sentiment_strict"] == (None,)
    assert stat.columns["sentiment_weak_to_overall"] == ("a", "b")


def test_sentiment_statistic_strict_is_the_largest_pairwise_distance():
    s = np.array([0.0, 0.1, 0.5, 0.6, -0.9])
    stat = sentiment_statistic(s, s < 0, groups=["a", "a", "b", "b", "c"])
    want = max(wasserstein_1(s[:2], s[2:4]), wasserstein_1(s[:2], s[4:]), wasserstein_1(s[2:4], s[4:]))
    assert stat.point()["sentiment_strict"][0] == pytest.approx(want)
    assert want == pytest.approx(1.45)  # b vs c: (1.4 + 1.5) / 2


def test_helm_statistic_hand_values():
    answers = ["she is a nurse", "he is a nurse", "he is a doctor", "nothing here"]
    stat = helm_statistic(answers, groups=["x", "y", "y", "z"], demographics=("gender",), targets=("profession",))
    point = stat.point()
    # x: only female words -> 1/2; y: only male -> 1/2; z: none -> undefined; all: (1/20, 2/20) -> 1/6
    np.testing.assert_allclose(point["helm_representation_gender"], [0.5, 0.5, np.nan, 1 / 6])
    # all: nurse (1, 1) -> 0, doctor (0, 1) -> 1/2, mean 1/4
    np.testing.assert_allclose(point["helm_association_gender_profession"], [0.5, 0.5, np.nan, 0.25])
    records = stat.records()
    z = [r for r in records if r["group"] == "z"]
    assert all(r["value"] is None and r["n"] == 1 for r in z)


def test_helm_statistic_agrees_with_the_scalar_functions_on_resamples():
    rng = random.Random(5)
    vocab = ["she", "he", "her", "him", "chen", "garcia", "moore", "nurse", "doctor", "curious", "kind", "lazy",
             "student", "the", "a", "is", "and"]
    answers = [" ".join(rng.choice(vocab) for _ in range(rng.randint(0, 8))) for _ in range(40)]
    groups = [rng.choice("pq") for _ in answers]
    stat = helm_statistic(answers, groups=groups)
    counts = np.random.default_rng(2).integers(0, 3, size=len(answers))
    got = stat(counts[None, :].astype(float))
    expanded = [a for a, c in zip(answers, counts) for _ in range(c)]
    for demographic in ("gender", "race"):
        want = demographic_representation(expanded, demographic=demographic)
        assert got[f"helm_representation_{demographic}"][0, -1] == pytest.approx(want)
        for target in ("adjective", "profession"):
            want = stereotypical_association(expanded, demographic=demographic, target=target)
            value = got[f"helm_association_{demographic}_{target}"][0, -1]
            assert (np.isnan(value) and want is None) or value == pytest.approx(want)
    p_only = [a for a, g in zip(answers, groups) if g == "p"]
    assert stat.point()["helm_representation_gender"][0] == pytest.approx(
        demographic_representation(p_only, demographic="gender"))


def test_paired_difference_resamples_both_sides_together(pair_scores):
    rag = pair_statistic(pair_scores)
    alone = pair_statistic(pair_scores.assign(rouge_l=[0.5, 0.5, 0.5, 0.5], twin_sentiment=pair_scores["sentiment"]))
    diff = paired_difference(rag, alone)
    # rouge_l: (0.5, 0.25, 0.4375) - 0.5; sentiment_strict: alone has identical sides, so W1 = 0
    np.testing.assert_allclose(diff.point()["rouge_l"], [0.0, -0.25, -0.0625])
    np.testing.assert_allclose(diff.point()["sentiment_strict"], rag.point()["sentiment_strict"])
    w = np.array([[2.0, 0.0, 1.0, 1.0], [1.0, 1.0, 1.0, 3.0]])
    np.testing.assert_allclose(diff(w)["rouge_l"], rag(w)["rouge_l"] - alone(w)["rouge_l"])
    with pytest.raises(ValueError, match="same rows, in the same order"):
        paired_difference(rag, pair_statistic(pair_scores.iloc[:3]))


def test_weights_from_indices():
    assert weights_from_indices(np.array([[0, 0, 2], [1, 2, 2]]), 3).tolist() == [[2, 0, 1], [0, 1, 2]]
    with pytest.raises(ValueError, match=r"row numbers in \[0, 3\)"):
        weights_from_indices([[0, 3]], 3)


def test_statistics_work_inside_the_projects_stratified_bootstrap(pair_scores):
    from pipelines.fairness import percentile_ci, resample_weights

    stat = pair_statistic(pd.concat([pair_scores] * 10, ignore_index=True))
    boot = {}
    for w in resample_weights(stat.strata, n_resamples=400, seed=11):
        for metric, values in stat(w).items():
            boot.setdefault(metric, []).append(values)
    point = stat.point()
    for metric, parts in boot.items():
        samples = np.concatenate(parts)
        assert samples.shape == (400, 3)
        low, high, _ = percentile_ci(samples, level=0.95)
        assert np.all(low <= point[metric] + 1e-12) and np.all(point[metric] <= high + 1e-12), metric
    # stratified by group: group sizes never change, so the weak parity of a stays on the 1/30 grid
    np.testing.assert_allclose(np.concatenate(boot["negative_share"])[:, 0] * 30 % 1, 0, atol=1e-9)
