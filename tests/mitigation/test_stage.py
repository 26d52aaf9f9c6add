"""The mitigate stage on synthetic scores with a planted FPR gap: evaluated exactly like the deployed model,
paired differences, gates, reproducible draws, small validation groups, and the run's verdict."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.errors import DataError
from pipelines.fairness import RESULT_ARTIFACTS, FairnessResult, counted, evaluate_fairness, verdict
from pipelines.graph import STAGES, run_verdict
from pipelines.stages.mitigate import SPEC
from pipelines.stages.mitigate.run import MITIGATION_ARTIFACTS, TRADEOFF_COLUMNS, mitigate
from tests.mitigation._synthetic import make_data

GATES = [{"metric": "fpr", "bound": 0.5, "direction": "max", "variants": ["rag"]},
         {"metric": "equalized_odds_difference", "bound": 0.3, "direction": "max"},
         {"metric": "flip_rate", "bound": 0.2, "direction": "max"}]


@pytest.fixture(scope="module")
def data():
    return make_data(n_audit=60, n_validation=60, seed=0)


def _run(cfg, ctx, data, **kw):
    return mitigate(ctx, audit_sample=data["audit_sample"], predictions=data["predictions"],
                    validation_predictions=data["validation_predictions"], validation=data["validation"], **kw)


@pytest.fixture(scope="module")
def output(data, tmp_path_factory):
    from tests.mitigation.conftest import mitigation_config, stage_context

    tmp = tmp_path_factory.mktemp("stage")
    cfg = mitigation_config(tmp, evaluation={"gates": GATES})
    return cfg, _run(cfg, stage_context(cfg, tmp), data)


def test_spec_sits_after_predict_and_evaluate_and_declares_its_outputs():
    names = [s.name for s in STAGES]
    assert names.index("predict") < names.index("evaluate") < names.index("mitigate") < names.index("export_wit")
    assert SPEC.inputs["validation_predictions"] == "predict.validation_predictions"
    assert set(SPEC.outputs) == set(RESULT_ARTIFACTS) | set(MITIGATION_ARTIFACTS)
    assert "mitigation" in SPEC.config_sections


def test_deployed_numbers_are_the_evaluate_stages(output, data):
    cfg, out = output
    result = FairnessResult.from_artifacts({k: out[k] for k in RESULT_ARTIFACTS})
    alone = evaluate_fairness(audit_sample=data["audit_sample"], predictions=data["predictions"],
                              config=cfg.evaluation, data_features=("group", "axis"), seed=cfg.seed,
                              variant_order=("finetuned", "rag"))
    for table in ("group_metrics", "disparities"):
        for v in ("finetuned", "rag"):
            mine = pd.DataFrame(result.estimates(table, variant=v)).sort_values(["feature", "group", "metric"])
            theirs = pd.DataFrame(alone.estimates(table, variant=v)).sort_values(["feature", "group", "metric"])
            pd.testing.assert_frame_equal(mine.reset_index(drop=True), theirs.reset_index(drop=True))


def test_deployed_gates_are_the_evaluate_stages_with_the_datas_groups(data, tmp_path):
    """The evaluate stage itself on the same inputs: every re-evaluated gate result of the deployed variants is
    identical, including a group the data has but the audit sample lacks ('asian': not evaluable)."""
    from pipelines.stages.evaluate.run import evaluate
    from tests.mitigation._synthetic import AXIS, GROUPS
    from tests.mitigation.conftest import mitigation_config, stage_context

    summary = {"splits": {"all": {"features": {"group": {g: {} for g in (*GROUPS, "asian")},
                                               "axis": {a: {} for a in set(AXIS.values())}}}}}
    cfg = mitigation_config(tmp_path, evaluation={"gates": GATES})
    ctx = stage_context(cfg, tmp_path)
    out = _run(cfg, ctx, data, data_summary=summary)
    theirs = evaluate(ctx, audit_sample=data["audit_sample"], twins=None, predictions=data["predictions"],
                      twin_predictions=None, retrievals=None, data_summary=summary)["gate_results"]
    theirs = theirs[theirs["metric"] != "flip_rate"]  # not re-evaluated (and without twins: not evaluable)
    mine = out["gate_results"][~out["gate_results"]["variant"].str.endswith("+thresholds")]
    keys = ["variant", "gate_index", "feature", "group"]
    mine, theirs = (t.sort_values(keys, na_position="first").reset_index(drop=True) for t in (mine, theirs))
    pd.testing.assert_frame_equal(mine, theirs, check_dtype=False)  # stacking pairs can make a column object
    asian = mine[mine["group"] == "asian"]
    assert len(asian) == 1 and asian["status"].tolist() == ["not_evaluable"]  # the rag fpr gate
    twin_asian = out["gate_results"].query("variant == 'rag+thresholds' and group == 'asian'")
    assert twin_asian["status"].tolist() == ["not_evaluable"]


def test_twin_is_evaluated_with_intervals_and_paired_difference(output):
    _, out = output
    result = FairnessResult.from_artifacts({k: out[k] for k in RESULT_ARTIFACTS})
    assert result.comparisons == (("finetuned+thresholds", "finetuned"), ("rag+thresholds", "rag"))
    for v in ("finetuned", "rag"):
        twin = v + "+thresholds"
        before = result.estimate("disparities", variant=v, feature="group", metric="equalized_odds_difference")
        after = result.estimate("disparities", variant=twin, feature="group", metric="equalized_odds_difference")
        diff = result.estimate("comparison", a=twin, b=v, kind="disparity", feature="group",
                               metric="equalized_odds_difference")
        assert after["ci_low"] <= after["value"] <= after["ci_high"]
        assert diff["value"] == pytest.approx(after["value"] - before["value"])
        assert diff["ci_low"] <= diff["value"] <= diff["ci_high"]
        # the planted gap (muslim negatives score high) is what the thresholds close
        assert after["value"] < before["value"]
        acc = result.estimate("comparison", a=twin, b=v, kind="metric", feature="overall", metric="accuracy")
        assert acc["ci_low"] <= acc["value"] <= acc["ci_high"]


def test_mitigated_predictions_keep_the_scores_and_follow_the_rule(output, data):
    _, out = output
    mp = out["mitigated_predictions"]
    assert list(mp.columns[:6]) == ["variant", "source_variant", "example_id", "score", "predicted_label",
                                    "positive_probability"]
    for v in ("finetuned", "rag"):
        part = mp[mp["source_variant"] == v].set_index("example_id")
        deployed = data["predictions"][data["predictions"]["variant"] == v].set_index("example_id")
        assert part["score"].to_numpy() == pytest.approx(deployed.loc[part.index, "score"].to_numpy())
        p = part["positive_probability"].to_numpy()
        lab = part["predicted_label"].to_numpy()
        assert ((p >= 1 - 1e-12) <= (lab == 1)).all() and ((p <= 1e-12) <= (lab == 0)).all()


def test_gates_follow_their_variants_and_skip_counterfactual_gates(output):
    _, out = output
    gates = out["gate_results"]
    by = gates.groupby("variant")["gate"].apply(set).to_dict()
    assert by["finetuned+thresholds"] == {"equalized_odds_difference <= 0.3"}
    assert by["rag+thresholds"] == {"equalized_odds_difference <= 0.3", "fpr <= 0.5"}
    assert "flip_rate" not in set(gates["metric"])
    assert out["mitigation"]["skipped_gate_indices"] == [2]
    # numbered as in `evaluation.gates` (finetuned's evaluation has only the second gate)
    index = {(r["variant"], r["metric"]) for r in gates[["variant", "metric"]].to_dict("records")}
    assert index >= {("finetuned", "equalized_odds_difference"), ("rag", "fpr")}
    assert set(gates.loc[gates["metric"] == "equalized_odds_difference", "gate_index"]) == {1}
    assert set(gates.loc[gates["metric"] == "fpr", "gate_index"]) == {0}


def test_draws_are_seeded(data, tmp_path):
    from tests.mitigation.conftest import mitigation_config, stage_context

    labels = {}
    for seed in (3, 3, 4):
        cfg = mitigation_config(tmp_path, seed=seed)
        out = _run(cfg, stage_context(cfg, tmp_path), data)
        labels.setdefault(seed, []).append(out["mitigated_predictions"]["predicted_label"].to_numpy())
        probs = out["mitigated_predictions"]["positive_probability"].to_numpy()
    assert (labels[3][0] == labels[3][1]).all()
    differ = labels[3][0] != labels[4][0]
    assert differ.any()  # equalized odds randomizes here ...
    fixed = (probs <= 1e-12) | (probs >= 1 - 1e-12)
    assert not (differ & fixed).any()  # ... but only rows whose probability is strictly between 0 and 1 change


def test_chosen_rule_meets_the_constraint_on_validation(output):
    _, out = output
    chosen = out["tradeoff"][out["tradeoff"]["chosen"]]
    assert len(chosen) == 2
    assert (chosen["validation_gap"].abs() < 1e-9).all()  # fairlearn's rule: equal rates in expectation
    relaxed = out["tradeoff"][(out["tradeoff"]["kind"] == "relaxed") & out["tradeoff"]["feasible"]]
    assert (relaxed["validation_gap"] <= relaxed["tolerance"] + 1e-9).all()


def test_tradeoff_audit_numbers_match_the_evaluation(output):
    _, out = output
    result = FairnessResult.from_artifacts({k: out[k] for k in RESULT_ARTIFACTS})
    t = out["tradeoff"]
    for v in ("finetuned", "rag"):
        for kind, name in (("deployed", v), ("fairlearn", v + "+thresholds")):
            row = t[(t["variant"] == v) & (t["kind"] == kind)].iloc[0]
            assert row["audit_gap"] == pytest.approx(result.estimate(
                "disparities", variant=name, feature="group", metric="equalized_odds_difference")["value"])
            assert row["audit_accuracy"] == pytest.approx(result.estimate(
                "group_metrics", variant=name, feature="overall", metric="accuracy")["value"])


def test_small_validation_groups_warn_with_the_rows_needed(tmp_path, caplog):
    from tests.mitigation.conftest import mitigation_config, stage_context

    data = make_data(n_audit=40, n_validation=20, seed=1)
    cfg = mitigation_config(tmp_path)
    out = _run(cfg, stage_context(cfg, tmp_path), data)
    warns = out["mitigation"]["variants"]["finetuned"]["warnings"]
    assert len(warns) == 5 and all("fewer than `evaluation.min_group_size` (30)" in w for w in warns)
    # 5 equal groups of 20 in a validation sample (= split) of 100: 30 rows per group needs 150 rows, but
    # group 'jewish' has only 5 negatives, and 10 of them (`min_class_count`) needs 10 * 100 / 5 = 200
    counts = data["validation_predictions"].query("variant == 'finetuned' and group == 'jewish'")["label"]
    assert (counts == 0).sum() == 5
    assert all("About 200 validation rows would be needed" in w and "the sample has 100" in w
               and "more than the validation split's 100 rows" in w for w in warns)
    assert any("About 200 validation rows" in r.getMessage() for r in caplog.records)
    strict = mitigation_config(tmp_path, mitigation={"on_small_groups": "error"})
    with pytest.raises(DataError, match="scoring.max_validation_rows"):
        _run(strict, stage_context(strict, tmp_path), data)


def test_a_group_with_one_label_leaves_the_variant_unmitigated_and_the_run_goes_on(data, tmp_path, caplog):
    """No thresholds can be fitted for a variant whose validation group has one label: that variant is not
    mitigated (logged, kept with the reason), the other is, and under `verdict_on: mitigated` its twin's gates
    are not evaluable with that reason, so the verdict cannot pass on a mitigation that never ran."""
    from tests.mitigation.conftest import mitigation_config, stage_context

    vp = data["validation_predictions"]
    broken = {**data, "validation_predictions": vp.assign(
        label=np.where((vp["group"] == "jewish") & (vp["variant"] == "rag"), 1, vp["label"]))}
    cfg = mitigation_config(tmp_path, evaluation={"gates": GATES})
    out = _run(cfg, stage_context(cfg, tmp_path), broken)
    meta = out["mitigation"]
    assert meta["mitigated_variants"] == ["finetuned"]
    (why,) = meta["not_mitigated"]["rag"]
    assert "group 'jewish' of `group` has" in why and "positive and 0 negative" in why
    assert meta["variants"]["rag"]["not_mitigated"] == [why]
    assert any("variant 'rag' is not mitigated" in r.getMessage() for r in caplog.records)
    assert set(out["mitigated_predictions"]["variant"]) == {"finetuned+thresholds"}
    # the twin gates of rag: one per re-evaluated gate that applies to rag (fpr names rag; flip_rate is skipped)
    rag_twin = [g for g in meta["twin_gates"] if g["variant"] == "rag+thresholds"]
    assert [(g["gate_index"], g["status"]) for g in rag_twin] == [(0, "not_evaluable"), (1, "not_evaluable")]
    assert all(why in g["reason"] for g in rag_twin)
    fin_twin = [g for g in meta["twin_gates"] if g["variant"] == "finetuned+thresholds"]
    assert fin_twin and all(g["status"] != "not_evaluable" for g in fin_twin)

    deployed = evaluate_fairness(audit_sample=broken["audit_sample"], predictions=broken["predictions"],
                                 config=cfg.evaluation, data_features=("group", "axis"), seed=cfg.seed,
                                 variant_order=("finetuned", "rag")).to_json()["gates"]
    passing = [{**g, "status": "pass"} for g in deployed]  # as if the evaluate stage had passed every gate
    assert {g["variant"] for g in passing} == {"finetuned", "rag"}
    fairness = {"gates": passing, "verdict": "pass"}
    runs = {on: run_verdict({"evaluate": {"fairness": fairness},
                             "mitigate": {"mitigation": {**meta, "verdict_on": on}}}) for on in ("deployed",
                                                                                                 "mitigated", "both")}
    assert runs["deployed"]["verdict"] == "pass"  # the deployed gates alone: mitigation is beside the verdict
    for on in ("mitigated", "both"):  # rag's deployed gates must not stand in for its missing twin
        assert runs[on]["verdict"] == "insufficient_evidence"
        assert any("rag+thresholds" in line and "no per-group thresholds could be fitted" in line
                   for line in runs[on]["verdict_attention"])

    strict = mitigation_config(tmp_path, mitigation={"on_small_groups": "error"})
    with pytest.raises(DataError, match="group 'jewish' of `group` has .* positive and 0 negative"):
        _run(strict, stage_context(strict, tmp_path), broken)


def test_no_variant_mitigated_still_gives_complete_artifacts(data, tmp_path):
    from tests.mitigation.conftest import mitigation_config, stage_context

    vp = data["validation_predictions"]
    broken = {**data, "validation_predictions": vp.assign(label=np.where(vp["group"] == "jewish", 0, vp["label"]))}
    cfg = mitigation_config(tmp_path, evaluation={"gates": GATES})
    out = _run(cfg, stage_context(cfg, tmp_path), broken)
    assert set(out) == set(SPEC.outputs)
    assert out["mitigation"]["mitigated_variants"] == [] and set(out["mitigation"]["not_mitigated"]) == {
        "finetuned", "rag"}
    assert out["tradeoff"].empty and list(out["tradeoff"].columns) == list(TRADEOFF_COLUMNS)
    assert out["mitigated_predictions"].empty
    assert {g["status"] for g in out["mitigation"]["twin_gates"]} == {"not_evaluable"}


def test_verdict_stays_the_deployed_models_unless_configured(output):
    _, out = output
    deployed_gates = [g for g in out["fairness"]["gates"] if not g["variant"].endswith("+thresholds")]
    fairness = {"gates": deployed_gates, "verdict": verdict(counted(deployed_gates))}
    mitigation = out["mitigation"]
    deployed = run_verdict({"evaluate": {"fairness": fairness}, "mitigate": {"mitigation": mitigation}})
    assert deployed["verdict"] == "fail"  # the deployed models fail the equalized-odds gate
    twins = [g["status"] for g in mitigation["twin_gates"]]
    assert "fail" not in twins
    gated = run_verdict({"evaluate": {"fairness": fairness},
                         "mitigate": {"mitigation": {**mitigation, "verdict_on": "mitigated"}}})
    assert gated["verdict"] != "fail"
    assert any("verdict_on: mitigated" in r for r in gated["verdict_reasons"])
    # the attention list follows the gates the verdict rests on: the deployed failure is not among them
    assert any(line.startswith("FAIL: ") for line in deployed["verdict_attention"])
    assert not any(line.startswith("FAIL: ") for line in gated["verdict_attention"])
    assert all("+thresholds" in line for line in gated["verdict_attention"])
    both = run_verdict({"evaluate": {"fairness": fairness},
                        "mitigate": {"mitigation": {**mitigation, "verdict_on": "both"}}})
    assert both["verdict"] == "fail"
