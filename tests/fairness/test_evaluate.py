"""The whole evaluation: input checks, JSON structure, counterfactuals, exposure, comparison."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipelines.errors import DataError
from pipelines.config import EvaluationConfig
from pipelines.fairness import evaluate_fairness
from pipelines.fairness._inputs import MSG_MISSING_COLUMN, MSG_NOT_COVERED, MSG_SCORE_RANGE

FEATURES = ("group", "axis")


@pytest.fixture(scope="module")
def result(audit):
    cfg = EvaluationConfig(bootstrap={"resamples": 100}, min_group_size=20, min_class_count=5)
    return evaluate_fairness(audit_sample=audit["audit_sample"], predictions=audit["predictions"], config=cfg,
                             data_features=FEATURES, seed=0, twins=audit["twins"],
                             twin_predictions=audit["twin_predictions"], retrievals=audit["retrievals"],
                             variant_order=("finetuned", "rag")).to_artifacts()


def _run(audit, **changes):
    kw = dict(audit_sample=audit["audit_sample"], predictions=audit["predictions"],
              config=EvaluationConfig(bootstrap={"resamples": 0}), data_features=FEATURES, seed=0)
    kw.update(changes)
    return evaluate_fairness(**kw).to_artifacts()


def test_missing_prediction_column_names_table_column_and_found(audit):
    with pytest.raises(DataError) as exc:
        _run(audit, predictions=audit["predictions"].drop(columns=["score"]))
    msg = str(exc.value)
    assert msg.startswith("predictions: column 'score' is missing") and "Found" in msg and "'variant'" in msg
    assert MSG_MISSING_COLUMN.split("{")[1].startswith("table}")


def test_missing_sensitive_feature_in_audit_sample(audit):
    with pytest.raises(DataError, match="audit_sample: column 'axis' is missing"):
        _run(audit, audit_sample=audit["audit_sample"].drop(columns=["axis"]))


def test_variant_not_covering_the_audit_sample_is_an_error(audit):
    preds = audit["predictions"]
    preds = preds[~((preds["variant"] == "rag") & (preds["example_id"] == "women-00003"))]
    with pytest.raises(DataError) as exc:
        _run(audit, predictions=preds)
    assert "'rag'" in str(exc.value) and "women-00003" in str(exc.value)
    assert "every variant must score exactly the audit sample" in MSG_NOT_COVERED


def test_scores_outside_unit_interval_and_non_binary_labels(audit):
    bad = audit["predictions"].copy()
    bad.loc[0, "score"] = 1.5
    with pytest.raises(DataError, match="must hold probabilities"):
        _run(audit, predictions=bad)
    assert "[0, 1]" in MSG_SCORE_RANGE
    bad = audit["predictions"].copy()
    bad.loc[0, "predicted_label"] = 2
    with pytest.raises(DataError, match="predicted_label"):
        _run(audit, predictions=bad)


def test_twin_predictions_missing_mode_column(audit):
    with pytest.raises(DataError, match="twin_predictions: column 'mode' is missing"):
        _run(audit, twin_predictions=audit["twin_predictions"].drop(columns=["mode"]))


def test_fairness_json_structure_is_stable_and_serializable(result):
    f = result["fairness"]
    assert set(f) == {"schema_version", "settings", "examples", "groups", "notes", "variants_evaluated", "variants",
                      "comparisons", "counterfactual_coverage", "gates", "verdict"}
    assert f["variants_evaluated"] == ["finetuned", "rag"]
    for v in ("finetuned", "rag"):
        entry = f["variants"][v]
        assert set(entry) == {"verdict", "metrics", "disparities", "bias_auc", "counterfactual", "exposure",
                              "generation"}
        assert entry["verdict"] is None  # no gates
        assert entry["generation"] is None  # no answers were generated
        cell = entry["metrics"]["group"]["women"]["fpr"]
        assert set(cell) == {"value", "ci_low", "ci_high", "n", "status", "method"}
        assert set(entry["metrics"]) == {"overall", "group", "axis"}
        assert "equalized_odds_difference" in entry["disparities"]["group"]
        assert set(entry["bias_auc"]["group"]["groups"]["black"]) == {"subgroup_auc", "bpsn_auc", "bnsp_auc"}
        assert entry["bias_auc"]["group"]["final_bias_score"]["status"] == "ok"
    assert f["variants"]["finetuned"]["exposure"] is None
    assert set(f["variants"]["rag"]["counterfactual"]["groups"]) == {"full", "query_only", "full_minus_query_only"}
    assert f["comparisons"][0]["a"] == "finetuned" and f["comparisons"][0]["b"] == "rag"
    assert f["verdict"] == "insufficient_evidence" and f["gates"] == []  # nothing judged is never a pass
    json.dumps(f, allow_nan=False)
    cols = ["variant", "feature", "group", "metric", "value", "ci_low", "ci_high", "n", "status", "method", "events",
            "trials"]
    assert list(result["group_metrics"].columns) == cols


def test_comparison_is_the_difference_of_the_two_variants(result):
    f = result["fairness"]
    a = f["variants"]["finetuned"]["metrics"]["group"]["muslim"]["fpr"]["value"]
    b = f["variants"]["rag"]["metrics"]["group"]["muslim"]["fpr"]["value"]
    assert f["comparisons"][0]["metrics"]["group"]["muslim"]["fpr"]["value"] == pytest.approx(a - b)
    da = f["variants"]["finetuned"]["disparities"]["group"]["tpr_difference"]["value"]
    db = f["variants"]["rag"]["disparities"]["group"]["tpr_difference"]["value"]
    assert f["comparisons"][0]["disparities"]["group"]["tpr_difference"]["value"] == pytest.approx(da - db)


def test_agreement_rate_matches_hand_count(result, audit):
    p = audit["predictions"].pivot(index="example_id", columns="variant", values="predicted_label")
    expected = (p["finetuned"] == p["rag"]).mean()
    got = result["fairness"]["comparisons"][0]["agreement_rate"]["overall"]["all"]
    assert got["value"] == pytest.approx(expected)
    assert got["ci_low"] <= got["value"] <= got["ci_high"]


def test_counterfactual_flip_rate_and_delta_match_pandas(result, audit):
    tp = audit["twin_predictions"].merge(audit["predictions"][["variant", "example_id", "score", "predicted_label"]],
                                         on=["variant", "example_id"], suffixes=("", "_orig"))
    tp = tp.merge(audit["audit_sample"][["example_id", "group"]], on="example_id")
    tp["flip"] = tp["predicted_label"] != tp["predicted_label_orig"]
    tp["abs_delta"] = (tp["score"] - tp["score_orig"]).abs()
    cf = result["counterfactual_metrics"].set_index(["variant", "mode", "feature", "group", "metric"])["value"]
    for (v, mode, g), part in tp.groupby(["variant", "mode", "group"]):
        assert cf[(v, mode, "group", g, "flip_rate")] == pytest.approx(part["flip"].mean())
        assert cf[(v, mode, "group", g, "mean_abs_delta")] == pytest.approx(part["abs_delta"].mean())
    full = tp[(tp["variant"] == "rag") & (tp["mode"] == "full")].set_index("twin_id")
    q = tp[(tp["variant"] == "rag") & (tp["mode"] == "query_only")].set_index("twin_id")
    expected = (full["abs_delta"] - q["abs_delta"]).mean()
    assert cf[("rag", "full_minus_query_only", "overall", "all", "mean_abs_delta")] == pytest.approx(expected)


def test_exposure_shares_match_pandas(result, audit):
    r = audit["retrievals"].merge(audit["audit_sample"][["example_id", "group"]], on="example_id")
    ex = result["exposure_metrics"].set_index(["variant", "feature", "group", "metric"])["value"]
    for g, part in r.groupby("group"):
        assert ex[("rag", "group", g, "same_group_share")] == pytest.approx((part["doc_group"] == g).mean())
        assert ex[("rag", "group", g, "stereotype_share")] == pytest.approx((part["doc_label"] == 1).mean())
    shares = r.groupby("group").apply(lambda d: (d["doc_label"] == 1).mean())
    assert ex[("rag", "group", None, "stereotype_share_difference")] == pytest.approx(shares.max() - shares.min())


def test_exposure_ignores_documents_without_group_or_label(audit):
    retr = audit["retrievals"].copy()
    retr.loc[retr["rank"] == 0, "doc_group"] = None
    retr.loc[retr["rank"] == 0, "doc_label"] = np.nan
    out = _run(audit, retrievals=retr)
    r = retr[retr["rank"] > 0].merge(audit["audit_sample"][["example_id", "group"]], on="example_id")
    ex = out["exposure_metrics"].set_index(["variant", "feature", "group", "metric"])["value"]
    part = r[r["group"] == "women"]
    assert ex[("rag", "group", "women", "same_group_share")] == pytest.approx((part["doc_group"] == "women").mean())
    assert ex[("rag", "group", "women", "stereotype_share")] == pytest.approx((part["doc_label"] == 1).mean())


def test_coverage_counts_examples_with_a_twin(audit):
    twins = audit["twins"][audit["twins"]["group"] != "black"]
    out = _run(audit, twins=twins)
    cov = out["fairness"]["counterfactual_coverage"]
    assert cov["groups"]["black"]["coverage"] == 0.0 and cov["groups"]["women"]["coverage"] == 1.0
    assert cov["coverage"] == pytest.approx(0.8)


def test_single_variant_has_no_comparison(audit):
    preds = audit["predictions"][audit["predictions"]["variant"] == "finetuned"]
    out = _run(audit, predictions=preds)
    assert out["fairness"]["comparisons"] == [] and out["comparison"].empty


def test_explicit_comparison_order_flips_the_sign(audit, result):
    out = _run(audit, config=EvaluationConfig(bootstrap={"resamples": 0}, baseline="finetuned",
                                              min_group_size=20, min_class_count=5))
    ours = out["fairness"]["comparisons"][0]["metrics"]["group"]["women"]["tpr"]["value"]
    theirs = result["fairness"]["comparisons"][0]["metrics"]["group"]["women"]["tpr"]["value"]
    assert out["fairness"]["comparisons"][0]["a"] == "rag" and ours == pytest.approx(-theirs)


def test_without_resamples_only_the_exact_and_analytic_intervals_remain(audit):
    cfg = EvaluationConfig(bootstrap={"resamples": 0}, min_group_size=20, min_class_count=5,
                           gates=[{"metric": "accuracy", "bound": 0.99, "direction": "min"},
                                  {"metric": "brier", "bound": 0.5, "direction": "max"}])
    out = _run(audit, config=cfg)
    gm = out["group_metrics"]
    ok = gm["status"] == "ok"
    analytic = gm["metric"].isin(["accuracy", "fpr", "tpr", "roc_auc", "bpsn_auc"])
    assert gm.loc[ok & analytic, "ci_low"].notna().all()
    assert gm.loc[ok & gm["metric"].isin(["brier", "ece", "balanced_accuracy"]), "ci_low"].isna().all()
    gates = out["gate_results"].set_index("metric")
    assert set(gates.loc["accuracy", "status"]) == {"fail"}   # exact intervals need no resamples
    assert set(gates.loc["brier", "status"]) == {"insufficient_evidence"}  # never the point estimate alone
    assert gates.loc["brier", "reason"].str.contains("no bootstrap resamples").all()


def test_twin_prediction_of_unknown_example_is_a_data_error(audit):
    tp = audit["twin_predictions"].copy()
    tp.loc[0, "example_id"] = "nobody-1"
    with pytest.raises(DataError, match="nobody-1"):
        _run(audit, twin_predictions=tp)


def test_an_interval_is_never_widened_to_contain_its_point():
    from pipelines.fairness._calibrate import assign_intervals
    from pipelines.fairness._sliced import make_record

    rng = np.random.default_rng(0)
    boot = rng.normal(0.75, 0.05, 2000)  # a biased statistic: every replicate above the point
    rec = make_record(point=0.5, boot=boot, status="ok", level=0.9, metric="brier_difference")
    assign_intervals([rec], level=0.9, proportion_method="clopper-pearson")
    assert rec["method"] == "bootstrap-bc" and rec["ci_low"] > 0.5  # not stretched down to 0.5
    rec = make_record(point=float("nan"), boot=None, status="ok", level=0.9, metric="x")
    assert rec["status"] == "undefined" and rec["value"] is None


def test_counterfactual_comparison_is_paired_on_twins(result, audit):
    tp = audit["twin_predictions"]
    tp = tp[tp["mode"] == "full"].merge(audit["predictions"][["variant", "example_id", "predicted_label"]],
                                        on=["variant", "example_id"], suffixes=("", "_orig"))
    flips = (tp["predicted_label"] != tp["predicted_label_orig"]).groupby(tp["variant"]).mean()
    got = result["fairness"]["comparisons"][0]["counterfactual"]["overall"]["all"]["flip_rate"]
    assert got["value"] == pytest.approx(flips["finetuned"] - flips["rag"])
    table = result["comparison"]
    assert (table["kind"] == "counterfactual").sum() > 0
    assert result["counterfactual_metrics"]["variant"].isin(["finetuned", "rag"]).all()
