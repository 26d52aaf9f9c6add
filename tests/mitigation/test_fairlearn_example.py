"""fairlearn's own ThresholdOptimizer documentation example (its class docstring, fairlearn 0.9), through the stage.

The docstring fits a LogisticRegression on ten one-feature rows and post-processes it with
``constraints="false_negative_rate_parity"``, ``objective="balanced_accuracy_score"``,
``prefit=True``, ``predict_method="predict_proba"``. Here the logistic model's P(positive) becomes
a variant's validation and audit scores, and the mitigate stage fits and applies the thresholds.
The stage must give fairlearn's own per-group rules and predictions; the decisions are also
checked by hand.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.stages.mitigate.run import mitigate

sklearn_linear = pytest.importorskip("sklearn.linear_model")
postprocessing = pytest.importorskip("fairlearn.postprocessing")

X = [[0], [1], [2], [3], [4], [5], [6], [7], [8], [9]]
Y = [1, 1, 1, 1, 0, 0, 1, 0, 0, 0]
SF = ["a", "b", "a", "a", "b", "a", "b", "b", "a", "b"]


@pytest.fixture(scope="module")
def fairlearn_example():
    """The docstring's code, as written there."""
    unmitigated_lr = sklearn_linear.LogisticRegression().fit(X, Y)
    postprocess_est = postprocessing.ThresholdOptimizer(
        estimator=unmitigated_lr, constraints="false_negative_rate_parity", objective="balanced_accuracy_score",
        prefit=True, predict_method="predict_proba")
    postprocess_est.fit(X, Y, sensitive_features=SF)
    return unmitigated_lr, postprocess_est


def _stage_inputs(scores: np.ndarray):
    ids = [f"ex{i:02d}" for i in range(len(X))]  # example_id order = the docstring's row order
    sample = pd.DataFrame({"example_id": ids, "text": [f"row {i}" for i in range(len(X))], "label": Y,
                           "group": SF, "axis": "x"})
    predictions = pd.DataFrame({"variant": "logistic", "example_id": ids, "score": scores,
                                "predicted_label": (scores >= 0.5).astype(int), "threshold": 0.5})
    validation_predictions = pd.DataFrame({"variant": "logistic", "example_id": ids, "label": Y, "raw_score": scores,
                                           "score": scores, "predicted_label": (scores >= 0.5).astype(int),
                                           "group": SF, "axis": "x"})
    return sample, predictions, validation_predictions


@pytest.fixture(scope="module")
def stage_output(fairlearn_example, tmp_path_factory):
    from tests.mitigation.conftest import mitigation_config, stage_context

    lr, _ = fairlearn_example
    scores = lr.predict_proba(X)[:, 1]
    tmp = tmp_path_factory.mktemp("doc")
    cfg = mitigation_config(
        tmp, mitigation={"constraint": "false_negative_rate_parity", "objective": "balanced_accuracy",
                         "feature": "group"},
        evaluation={"min_group_size": 1, "min_class_count": 1, "bootstrap": {"resamples": 20}},
        variants=[{"name": "logistic", "kind": "predictions", "path": "scores.csv"}])
    sample, predictions, validation_predictions = _stage_inputs(scores)
    out = mitigate(stage_context(cfg, tmp), audit_sample=sample, predictions=predictions,
                   validation_predictions=validation_predictions, validation=None)
    return cfg, out


def test_stage_fits_fairlearns_rules(fairlearn_example, stage_output):
    _, est = fairlearn_example
    _, out = stage_output
    expected = est.interpolated_thresholder_.interpolation_dict
    policy = out["mitigation"]["variants"]["logistic"]["policy"]
    assert sorted(policy) == sorted(expected) == ["a", "b"]
    for g, rule in expected.items():
        assert policy[g]["p0"] == pytest.approx(rule.p0)
        assert policy[g]["p1"] == pytest.approx(rule.p1)
        assert policy[g]["operator0"] == rule.operation0.operator
        assert policy[g]["threshold0"] == pytest.approx(rule.operation0.threshold)


def test_stage_predicts_what_fairlearn_predicts(fairlearn_example, stage_output):
    _, est = fairlearn_example
    cfg, out = stage_output
    mitigated = out["mitigated_predictions"].sort_values("example_id")
    assert mitigated["variant"].unique().tolist() == ["logistic+thresholds"]
    expected = est.predict(X, sensitive_features=SF, random_state=cfg.seed)
    assert mitigated["predicted_label"].tolist() == expected.tolist()
    assert mitigated["positive_probability"].to_numpy() == pytest.approx(
        est._pmf_predict(X, sensitive_features=SF)[:, 1])


def test_decisions_by_hand(stage_output):
    # The fitted rules are deterministic here: a -> score > 0.579, b -> score > 0.197 (P(positive) of the
    # logistic model: 0.963 0.926 0.859 0.747 0.589 0.411 0.253 0.141 0.074 0.037). Group a's positives
    # (rows 0, 2, 3) and group b's (rows 1, 6) are all predicted positive, so both FNRs are 0 (parity);
    # of the negatives only row 4 (b, 0.589) is: balanced accuracy 0.5 * 5/5 + 0.5 * 4/5 = 0.9.
    _, out = stage_output
    mitigated = out["mitigated_predictions"].sort_values("example_id")
    assert mitigated["predicted_label"].tolist() == [1, 1, 1, 1, 1, 0, 1, 0, 0, 0]
    chosen = out["tradeoff"][out["tradeoff"]["chosen"]].iloc[0]
    assert chosen["validation_objective"] == pytest.approx(0.9)
    assert chosen["validation_gap"] == pytest.approx(0.0)
    fnr = out["group_metrics"]
    fnr = fnr[(fnr["variant"] == "logistic+thresholds") & (fnr["metric"] == "fnr") & (fnr["feature"] == "group")]
    assert dict(zip(fnr["group"], fnr["value"])) == pytest.approx({"a": 0.0, "b": 0.0})
