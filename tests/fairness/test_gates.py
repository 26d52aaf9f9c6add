"""Gates: judging rules, the verdict, and a planted bias that must fail for its group only."""

from __future__ import annotations

import pytest

from pipelines.errors import ConfigError
from pipelines.config import EvaluationConfig
from pipelines.fairness import evaluate_fairness, judge, verdict
from pipelines.fairness._gates import MSG_UNKNOWN_GROUP

from tests.fairness._synthetic import GROUPS, make_audit


@pytest.mark.parametrize("ci, direction, expected", [
    ((0.1, 0.2), "max", "pass"),
    ((0.31, 0.4), "max", "fail"),
    ((0.2, 0.4), "max", "insufficient_evidence"),
    ((0.3, 0.4), "max", "insufficient_evidence"),  # touches the bound from above: not a clear fail
    ((0.1, 0.3), "max", "pass"),  # at the bound is allowed
    ((0.8, 0.9), "min", "pass"),
    ((0.5, 0.69), "min", "fail"),
    ((0.6, 0.8), "min", "insufficient_evidence"),
])
def test_judge_uses_the_whole_ci(ci, direction, expected):
    bound = 0.3 if direction == "max" else 0.7
    value = sum(ci) / 2
    assert judge(value=value, ci_low=ci[0], ci_high=ci[1], status="ok", bound=bound, direction=direction)[0] == expected


def test_judge_without_ci_uses_point_and_insufficient_data_is_insufficient_evidence():
    assert judge(value=0.2, ci_low=None, ci_high=None, status="ok", bound=0.3, direction="max")[0] == "pass"
    assert judge(value=0.4, ci_low=None, ci_high=None, status="ok", bound=0.3, direction="max")[0] == "fail"
    status, reason = judge(value=None, ci_low=None, ci_high=None, status="insufficient_data", bound=0.3,
                           direction="max")
    assert status == "insufficient_evidence" and "insufficient_data" in reason


def test_verdict_order():
    assert verdict(["pass", "fail", "insufficient_evidence"]) == "fail"
    assert verdict(["pass", "insufficient_evidence"]) == "insufficient_evidence"
    assert verdict(["pass", "pass"]) == "pass"
    assert verdict([]) == "pass"


@pytest.fixture(scope="module")
def planted():
    return make_audit(n_per_group=400, seed=5, extra_fpr={"jewish": 0.6})


def _run(data, gates, **cfg):
    opts = dict(bootstrap={"resamples": 300}, min_group_size=30, min_class_count=10, gates=gates)
    opts.update(cfg)
    return evaluate_fairness(audit_sample=data["audit_sample"], predictions=data["predictions"],
                             config=EvaluationConfig(**opts), data_features=("group", "axis"), seed=0,
                             twin_predictions=data["twin_predictions"], retrievals=data["retrievals"]).to_artifacts()


def test_planted_fpr_fails_for_that_group_only(planted):
    out = _run(planted, [{"metric": "fpr", "bound": 0.35, "direction": "max"}])
    gates = out["gate_results"]
    assert set(gates["variant"]) == {"finetuned", "rag"}
    assert len(gates) == 2 * len(GROUPS)
    failed = gates[gates["status"] == "fail"]
    assert set(failed["group"]) == {"jewish"} and len(failed) == 2
    assert (gates.loc[gates["group"] != "jewish", "status"] == "pass").all()
    assert out["fairness"]["verdict"] == "fail"
    assert {v: e["verdict"] for v, e in out["fairness"]["variants"].items()} == {"finetuned": "fail", "rag": "fail"}


def test_planted_fpr_fails_the_equalized_odds_disparity(planted):
    out = _run(planted, [{"metric": "equalized_odds_difference", "bound": 0.2, "direction": "max",
                          "variants": ["finetuned"]}])
    (row,) = out["gate_results"].to_dict("records")
    assert row["status"] == "fail" and row["group"] is None and row["ci_low"] > 0.2


def test_unbiased_data_passes_and_verdict_is_pass():
    data = make_audit(n_per_group=400, seed=6)
    out = _run(data, [{"metric": "fpr", "bound": 0.35, "direction": "max"},
                      {"metric": "roc_auc", "bound": 0.75, "direction": "min", "groups": ["women", "black"]}])
    assert (out["gate_results"]["status"] == "pass").all()
    assert out["fairness"]["verdict"] == "pass"


def test_small_data_gives_insufficient_evidence():
    data = make_audit(n_per_group=40, seed=7)
    out = _run(data, [{"metric": "fpr", "bound": 0.1, "direction": "max", "groups": ["women"]}],
               min_group_size=50)
    assert set(out["gate_results"]["status"]) == {"insufficient_evidence"}
    assert out["fairness"]["verdict"] == "insufficient_evidence"


def test_gates_on_counterfactual_and_exposure_metrics_skip_variants_without_them(planted):
    out = _run(planted, [{"metric": "stereotype_share", "bound": 0.9, "direction": "max"},
                         {"metric": "flip_rate", "bound": 0.5, "direction": "max", "mode": "query_only"}])
    gates = out["gate_results"]
    assert set(gates["variant"]) == {"rag"}  # the fine-tuned variant has no retrieval and no query_only twins
    assert (gates["status"] == "pass").all()


def test_gate_naming_an_unknown_group_is_a_config_error_with_suggestion(planted):
    with pytest.raises(ConfigError) as exc:
        _run(planted, [{"metric": "fpr", "bound": 0.3, "direction": "max", "groups": ["jewsh"]}])
    msg = str(exc.value)
    assert "jewsh" in msg and "Did you mean 'jewish'?" in msg and "groups" in msg
    assert MSG_UNKNOWN_GROUP.split("{")[0] in msg


def test_feature_level_gates_on_counterfactual_exposure_and_bias_score(planted):
    out = _run(planted, [{"metric": "flip_rate_difference", "bound": 0.5, "direction": "max", "variants": ["rag"]},
                         {"metric": "stereotype_share_difference", "bound": 0.5, "direction": "max"},
                         {"metric": "final_bias_score", "bound": 0.5, "direction": "min"}])
    gates = out["gate_results"]
    assert (gates["status"] == "pass").all(), gates[["metric", "variant", "status", "reason"]]
    assert sorted(gates["metric"]) == ["final_bias_score", "final_bias_score", "flip_rate_difference",
                                       "stereotype_share_difference"]
    assert gates["group"].isna().all()
