"""Gates: judging rules, the verdict, and a planted bias that must fail for its group only."""

from __future__ import annotations

import pytest

from pipelines.errors import ConfigError
from pipelines.config import EvaluationConfig
from pipelines.fairness import counted, evaluate_fairness, verdict
from pipelines.fairness._gates import MSG_UNKNOWN_GROUP

from tests.fairness._synthetic import GROUPS, make_audit


def test_verdict_order():
    assert verdict(["pass", "fail", "insufficient_evidence"]) == "fail"
    assert verdict(["pass", "insufficient_evidence"]) == "insufficient_evidence"
    assert verdict(["pass", "not_evaluable"]) == "insufficient_evidence"
    assert verdict(["pass", "pass"]) == "pass"
    assert verdict([]) == "insufficient_evidence"  # nothing judged is never a pass


def test_optional_gates_not_evaluable_do_not_count():
    rows = [{"status": "pass", "optional": False}, {"status": "not_evaluable", "optional": True}]
    assert counted(rows) == ["pass"] and verdict(counted(rows)) == "pass"
    rows[1]["optional"] = False
    assert verdict(counted(rows)) == "insufficient_evidence"


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


def test_small_groups_are_judged_with_exact_intervals_and_too_small_aucs_are_insufficient():
    data = make_audit(n_per_group=40, seed=7)
    out = _run(data, [{"metric": "fpr", "bound": 0.99, "direction": "max", "groups": ["women"]},
                      {"metric": "roc_auc", "bound": 0.5, "direction": "min", "groups": ["women"]}],
               min_group_size=50)
    gates = out["gate_results"].set_index(["metric", "variant"])
    # a rate has an exact interval at any size: judged (and here clearly within 0.99)
    assert (gates.loc["fpr", "status"] == "pass").all() and (gates.loc["fpr", "method"] == "clopper-pearson").all()
    # an AUC of a group below min_group_size is not hidden: listed as insufficient, with the reason
    auc = gates.loc["roc_auc"]
    assert (auc["status"] == "insufficient_evidence").all()
    assert auc["reason"].str.contains("too small for roc_auc").all()
    assert out["fairness"]["verdict"] == "insufficient_evidence"


def test_a_variant_without_the_measurement_is_not_evaluable_never_dropped(planted):
    gates_cfg = [{"metric": "stereotype_share", "bound": 0.9, "direction": "max"},
                 {"metric": "flip_rate", "bound": 0.5, "direction": "max", "mode": "query_only"}]
    out = _run(planted, gates_cfg)
    gates = out["gate_results"]
    assert (gates.loc[gates["variant"] == "rag", "status"] == "pass").all()
    # the fine-tuned variant has no retrieval and no query_only twins: one row per gate, with the reason
    ft = gates[gates["variant"] == "finetuned"].set_index("metric")
    assert ft["status"].tolist() == ["not_evaluable", "not_evaluable"]
    assert "retrieves no documents" in ft.loc["stereotype_share", "reason"]
    assert "no counterfactual twins scored in mode 'query_only'" in ft.loc["flip_rate", "reason"]
    assert out["fairness"]["verdict"] == "insufficient_evidence"
    # optional gates may be not evaluable for some variants without holding the verdict back
    out = _run(planted, [{**g, "optional": True} for g in gates_cfg])
    assert out["fairness"]["verdict"] == "pass"


def test_a_group_without_twins_is_not_evaluable_and_says_so(planted):
    """A group in the audit sample whose examples got no twin: the flip-rate gate names the missing twins."""
    twins = planted["twin_predictions"]
    ids = set(planted["audit_sample"].loc[planted["audit_sample"]["group"] == "jewish", "example_id"])
    data = {**planted, "twin_predictions": twins[~twins["example_id"].isin(ids)]}
    gates = _run(data, [{"metric": "flip_rate", "bound": 0.5, "direction": "max"},
                        {"metric": "fpr", "bound": 0.99, "direction": "max"}])["gate_results"]
    flips = gates[(gates["metric"] == "flip_rate") & (gates["group"] == "jewish")]
    assert len(flips) == 2 and (flips["status"] == "not_evaluable").all()  # one row per variant, never dropped
    assert flips["reason"].str.contains("group 'jewish' has no counterfactual twins").all()
    fpr = gates[(gates["metric"] == "fpr") & (gates["group"] == "jewish")]
    assert (fpr["status"] == "pass").all()  # its examples are still there for the other gates


def test_gate_naming_an_unknown_group_is_a_config_error_with_suggestion(planted):
    with pytest.raises(ConfigError) as exc:
        _run(planted, [{"metric": "fpr", "bound": 0.3, "direction": "max", "groups": ["jewsh"]}])
    msg = str(exc.value)
    assert "jewsh" in msg and "Did you mean 'jewish'?" in msg and "groups" in msg
    assert MSG_UNKNOWN_GROUP.split("{")[0] in msg


def test_feature_level_gates_on_counterfactual_exposure_and_bias_score(planted):
    out = _run(planted, [{"metric": "flip_rate_difference", "bound": 0.5, "direction": "max", "variants": ["rag"]},
                         {"metric": "stereotype_share_difference", "bound": 0.5, "direction": "max",
                          "variants": ["rag"]},
                         {"metric": "final_bias_score", "bound": 0.5, "direction": "min"}])
    gates = out["gate_results"]
    assert (gates["status"] == "pass").all(), gates[["metric", "variant", "status", "reason"]]
    assert sorted(gates["metric"]) == ["final_bias_score", "final_bias_score", "flip_rate_difference",
                                       "stereotype_share_difference"]
    assert gates["group"].isna().all()
