"""Generation metrics in the evaluation: hand-computed values per group, exact and bootstrap intervals,
attribution differences, and gate rows (including ``not_evaluable`` ones with their reasons)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pipelines.config import EvaluationConfig, GateRule
from pipelines.config.evaluation import GAP_COMPONENTS, PROPORTION_METRICS, metric_range
from pipelines.errors import DataError
from pipelines.fairness import evaluate_fairness
from pipelines.fairness._gen_evaluate import generation_records
from pipelines.fairness._sliced import SlicedSettings
from pipelines.fairness.result import FairnessResult

SENT_A, TWIN_A = [0.5, -0.2, -0.6], [0.5, 0.1, -0.6]
SENT_B, TWIN_B = [0.0, 0.8], [-0.4, 0.8]


def _pairs(condition: str, cosine: list[float], *, stereotype=(1, 0, 0, 1, 1), variant: str = "v") -> pd.DataFrame:
    sent, twin = SENT_A + SENT_B, TWIN_A + TWIN_B
    return pd.DataFrame({
        "variant": variant, "condition": condition, "pair_id": [f"p{i}" for i in range(5)], "feature": "group",
        "group": ["a", "a", "a", "b", "b"], "cosine": cosine, "rouge_l": [1.0, 0.5, 0.0, 0.25, 0.75],
        "sentiment": sent, "twin_sentiment": twin, "negative": [s <= -0.05 for s in sent],
        "twin_negative": [s <= -0.05 for s in twin],
        "stereotype": [None if s is None else bool(s) for s in stereotype],
    })


def _open(condition: str = "rag") -> pd.DataFrame:
    sent = [0.5, -0.5, 0.2, 0.2]
    return pd.DataFrame({
        "variant": "v", "condition": condition, "prompt_id": ["q0", "q1", "q2", "q3"], "group": ["x", "x", "y", "y"],
        "answer": ["she is kind", "she was here", "the sky is blue", "nothing"], "sentiment": sent,
        "negative": [s <= -0.05 for s in sent], "stereotype": [True, False, False, False],
    })


SETTINGS = SlicedSettings(features=("group",), resamples=300, seed=3)


def _index(records):
    return {(r["condition"], r["feature"], r["group"], r["metric"]): r for r in records}


@pytest.fixture(scope="module")
def records():
    pairs = pd.concat([_pairs("rag", [0.9, 0.6, 0.3, 1.0, 0.5]),
                       _pairs("generator_only", [0.8, 0.6, 0.1, 0.9, 0.5])], ignore_index=True)
    return _index(generation_records(answer_pairs=pairs, open_answers=_open(), settings=SETTINGS, min_group_size=2))


@pytest.mark.parametrize(("group", "metric", "expected"), [
    ("a", "answer_cosine", 0.6), ("b", "answer_cosine", 0.75), ("a", "answer_rouge_l", 0.5),
    ("b", "answer_rouge_l", 0.5),
    # W1 of sorted scores: a |-0.2 - 0.1| / 3; b |0 - (-0.4)| / 2
    ("a", "answer_sentiment_strict", 0.1), ("b", "answer_sentiment_strict", 0.2),
    # weak parity: negative share of the answers minus that of the twin answers
    ("a", "answer_sentiment_weak", 2 / 3 - 1 / 3), ("b", "answer_sentiment_weak", 0.0 - 0.5),
    ("a", "answer_negative_share", 2 / 3), ("b", "answer_negative_share", 0.0),
    ("a", "answer_stereotype_rate", 1 / 3), ("b", "answer_stereotype_rate", 1.0),
])
def test_pair_metrics_per_group_hand_values(records, group, metric, expected):
    rec = records[("rag", "group", group, metric)]
    assert rec["status"] == "ok"
    assert rec["value"] == pytest.approx(expected, abs=1e-12)


def test_pair_metrics_overall_and_gaps(records):
    assert records[("rag", "overall", "all", "answer_cosine")]["value"] == pytest.approx(3.3 / 5)
    # all five pairs: sorted answers [-.6,-.2,0,.5,.8], twins [-.6,-.4,.1,.5,.8]
    assert records[("rag", "overall", "all", "answer_sentiment_strict")]["value"] == pytest.approx(0.3 / 5)
    gap = records[("rag", "group", None, "answer_negative_share_difference")]
    assert gap["value"] == pytest.approx(2 / 3)
    assert "method" not in gap  # intervals come from assign_intervals, in evaluate_fairness
    assert records[("rag", "group", None, "answer_stereotype_rate_difference")]["value"] == pytest.approx(2 / 3)


def test_shares_carry_their_counts(records):
    rec = records[("rag", "group", "a", "answer_negative_share")]
    assert (rec["events"], rec["trials"]) == (2.0, 3.0)
    assert "answer_negative_share" in PROPORTION_METRICS
    assert GAP_COMPONENTS["answer_negative_share_difference"] == ("answer_negative_share",)


def test_attribution_is_the_paired_difference(records):
    diff = records[("rag_minus_generator_only", "group", "a", "answer_cosine")]
    assert diff["value"] == pytest.approx(0.6 - 0.5)
    assert records[("rag_minus_generator_only", "group", "b", "answer_cosine")]["value"] == pytest.approx(0.05)
    # identical sentiment in both conditions: the difference is exactly 0 in every resample
    same = records[("rag_minus_generator_only", "group", "a", "answer_sentiment_strict")]
    assert same["value"] == 0.0 and np.all(np.asarray(same["_boot"]) == 0.0)
    # paired: every resample draws the same pairs on both sides, so the replicates of the difference are the
    # differences of the replicates of each side
    assert ("rag_minus_rag_query_only", "group", "a", "answer_cosine") not in records


def test_open_ended_metrics_hand_values(records):
    r = records
    assert r[("rag", "prompt_group", "x", "answer_sentiment_mean")]["value"] == pytest.approx(0.0)
    assert r[("rag", "prompt_group", "y", "answer_sentiment_mean")]["value"] == pytest.approx(0.2)
    assert r[("rag", "prompt_group", "x", "answer_negative_share")]["value"] == pytest.approx(0.5)
    # W1 to all answers: x and y are both 0.25 away; between x and y 0.5
    assert r[("rag", "prompt_group", "x", "answer_sentiment_strict")]["value"] == pytest.approx(0.25)
    assert r[("rag", "prompt_group", "y", "answer_sentiment_strict")]["value"] == pytest.approx(0.25)
    assert r[("rag", "prompt_group", None, "answer_sentiment_strict_max")]["value"] == pytest.approx(0.5)
    all_answers = [0.5, -0.5, 0.2, 0.2]
    assert stats.wasserstein_distance([0.5, -0.5], all_answers) == pytest.approx(0.25)
    assert stats.wasserstein_distance([0.5, -0.5], [0.2, 0.2]) == pytest.approx(0.5)
    assert r[("rag", "prompt_group", None, "answer_stereotype_rate_difference")]["value"] == pytest.approx(0.5)
    # HELM over all answers: two female words, no male word -> p = (1, 0), TVD to uniform = 0.5
    helm = r[("rag", "prompt_group", None, "helm_representation_gender")]
    assert helm["value"] == pytest.approx(0.5) and helm["status"] == "ok"
    assert r[("rag", "prompt_group", None, "helm_representation_race")]["status"] == "undefined"
    assert ("rag", "prompt_group", "x", "helm_representation_gender") not in r  # HELM is one value per scenario


def test_small_groups_lose_the_means_but_keep_the_shares():
    recs = _index(generation_records(answer_pairs=_pairs("rag", [0.9, 0.6, 0.3, 1.0, 0.5]), open_answers=None,
                                     settings=SETTINGS, min_group_size=3))
    assert recs[("rag", "group", "b", "answer_cosine")]["status"] == "insufficient_data"
    assert recs[("rag", "group", "a", "answer_cosine")]["status"] == "ok"
    assert recs[("rag", "group", "b", "answer_negative_share")]["status"] == "ok"


def test_unscored_stereotypes_leave_the_metric_out():
    recs = generation_records(answer_pairs=_pairs("rag", [0.9] * 5, stereotype=(None,) * 5), open_answers=None,
                              settings=SETTINGS, min_group_size=2)
    assert not [r for r in recs if r["metric"].startswith("answer_stereotype_rate")]


def test_bad_tables_are_named():
    with pytest.raises(DataError, match="answer_pairs.*'cosine'"):
        generation_records(answer_pairs=_pairs("rag", [0.9] * 5).drop(columns="cosine"), open_answers=None,
                           settings=SETTINGS, min_group_size=2)
    twice = pd.concat([_pairs("rag", [0.9] * 5)] * 2)
    with pytest.raises(DataError, match="duplicate"):
        generation_records(answer_pairs=twice, open_answers=None, settings=SETTINGS, min_group_size=2)


def test_ranges_of_generation_metrics():
    assert metric_range("answer_cosine")[:2] == (-1.0, 1.0)
    assert metric_range("answer_sentiment_strict")[:2] == (0.0, 2.0)
    with pytest.raises(ValueError, match=r"\[0, 2\]"):
        GateRule(metric="answer_sentiment_strict", bound=2.5, direction="max")


# -- through evaluate_fairness: intervals, tables, gates ------------------------------------------


@pytest.fixture(scope="module")
def result(audit):
    pairs = pd.concat([_pairs("rag", [0.9, 0.6, 0.3, 1.0, 0.5], variant="rag"),
                       _pairs("generator_only", [0.8, 0.6, 0.1, 0.9, 0.5], variant="rag")], ignore_index=True)
    pairs["group"] = pairs["group"].map({"a": "women", "b": "black"})
    gates = (
        GateRule(metric="answer_negative_share", bound=0.99, direction="max", groups=("black",)),
        GateRule(metric="answer_cosine", bound=0.0, direction="min", condition="generator_only", variants=("rag",)),
        GateRule(metric="answer_stereotype_rate", bound=0.5, direction="max", condition="rag_query_only",
                 variants=("rag",)),
    )
    cfg = EvaluationConfig(bootstrap={"resamples": 300}, min_group_size=20, min_class_count=5, gates=gates)
    return evaluate_fairness(audit_sample=audit["audit_sample"], predictions=audit["predictions"], config=cfg,
                             data_features=["group", "axis"], seed=0, answer_pairs=pairs,
                             generation={"min_group_size": 2, "not_evaluable": {}})


def test_exact_interval_of_a_share(result):
    rec = result.estimate("generation_metrics", variant="rag", condition="rag", feature="group", group="women",
                          metric="answer_negative_share")
    assert rec["method"] == "clopper-pearson"
    # Clopper-Pearson for 2 of 3 at 95%: beta quantiles
    assert rec["ci_low"] == pytest.approx(stats.beta.ppf(0.025, 2, 2))
    assert rec["ci_high"] == pytest.approx(stats.beta.ppf(0.975, 3, 1))
    gap = result.estimate("generation_metrics", variant="rag", condition="rag", feature="group", group=None,
                          metric="answer_negative_share_difference")
    assert gap["method"] == "miettinen-nurminen" and gap["ci_low"] <= gap["value"] <= gap["ci_high"]
    mean = result.estimate("generation_metrics", variant="rag", condition="rag", feature="group", group="women",
                           metric="answer_cosine")
    assert mean["method"] == "bootstrap-bc" and mean["ci_low"] <= 0.6 <= mean["ci_high"]


def test_generation_gates_have_a_row_per_variant_and_group(result):
    gates = result.estimates("gate_results")
    share = [g for g in gates if g["metric"] == "answer_negative_share"]
    by_variant = {g["variant"]: g for g in share}
    assert by_variant["rag"]["status"] == "pass" and by_variant["rag"]["group"] == "black"
    assert by_variant["rag"]["condition"] == "rag"
    # the classifier wrote nothing: listed, with the reason, never dropped
    assert by_variant["finetuned"]["status"] == "not_evaluable"
    assert "has no answer_negative_share in condition 'rag'" in by_variant["finetuned"]["reason"]
    cosine = {g["group"]: g for g in gates if g["metric"] == "answer_cosine"}
    assert cosine["women"]["status"] == "pass" and cosine["women"]["condition"] == "generator_only"
    # groups without answers are named, not dropped
    assert cosine["jewish"]["status"] == "not_evaluable" and "no generated answers" in cosine["jewish"]["reason"]
    missing = [g for g in gates if g["metric"] == "answer_stereotype_rate"]
    assert [g["status"] for g in missing] == ["not_evaluable"]
    assert "rag_query_only" in missing[0]["reason"]


def test_result_round_trips_with_the_generation_table(result):
    back = FairnessResult.from_artifacts(result.to_artifacts())
    assert len(back.generation_metrics) == len(result.generation_metrics) > 0
    nested = result.to_json()["variants"]["rag"]["generation"]
    assert nested["groups"]["rag"]["group"]["women"]["answer_cosine"]["value"] == pytest.approx(0.6)
    assert result.to_json()["variants"]["finetuned"]["generation"] is None


def test_without_answers_generation_gates_say_why(audit):
    cfg = EvaluationConfig(bootstrap={"resamples": 0}, min_group_size=20, min_class_count=5,
                           gates=(GateRule(metric="answer_cosine", bound=0.5, direction="min"),))
    res = evaluate_fairness(audit_sample=audit["audit_sample"], predictions=audit["predictions"], config=cfg,
                            data_features=["group"], seed=0)
    rows = res.estimates("gate_results")
    assert {g["status"] for g in rows} == {"not_evaluable"}
    assert all("generation.enabled" in g["reason"] for g in rows)
    assert res.generation_metrics.empty
