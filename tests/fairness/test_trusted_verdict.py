"""The verdict through the whole evaluation (issue #12): every gate accounted for, intervals from the
calibrated methods, multiplicity, groups listed rather than dropped, and decisions that do not depend on the
bootstrap seed."""

from __future__ import annotations

import pandas as pd
import pytest
from scipy import stats

from pipelines.config import EvaluationConfig
from pipelines.fairness import evaluate_fairness
from pipelines.fairness.intervals import equalized_odds_gate, proportion_interval
from tests.fairness._synthetic import GROUPS, make_audit

DEMO_GATES = [
    {"metric": "fpr", "bound": 0.45, "direction": "max"},
    {"metric": "equalized_odds_difference", "bound": 0.30, "direction": "max"},
    {"metric": "bpsn_auc", "bound": 0.60, "direction": "min"},
    {"metric": "flip_rate", "bound": 0.20, "direction": "max"},
    {"metric": "stereotype_share_difference", "bound": 0.30, "direction": "max", "variants": ["rag"]},
]


@pytest.fixture(scope="module")
def audit():
    return make_audit(n_per_group=60, seed=3)


def _evaluate(audit, *, seed=0, resamples=200, **cfg):
    config = EvaluationConfig(bootstrap={"resamples": resamples}, min_group_size=20, min_class_count=5, **cfg)
    return evaluate_fairness(audit_sample=audit["audit_sample"], predictions=audit["predictions"], config=config,
                             data_features=("group", "axis"), seed=seed, twins=audit["twins"],
                             twin_predictions=audit["twin_predictions"], retrievals=audit["retrievals"],
                             variant_order=("finetuned", "rag"))


def test_the_demo_gates_decide_the_same_for_every_bootstrap_seed(audit):
    runs = [_evaluate(audit, seed=s, gates=DEMO_GATES) for s in range(10)]
    first = runs[0].gate_results[["gate", "variant", "group", "status", "ci_low", "ci_high"]]
    for r in runs[1:]:
        assert r.verdict == runs[0].verdict
        pd.testing.assert_frame_equal(r.gate_results[["gate", "variant", "group", "status", "ci_low", "ci_high"]],
                                      first)
    # ...because none of these gates resamples: their methods are exact or analytic
    assert set(runs[0].gate_results["method"]) <= {"clopper-pearson", "delong-logit",
                                                    "miettinen-nurminen pairwise (IUT / Bonferroni)"}


def test_rate_intervals_are_exact_and_valid_at_zero_events(audit):
    res = _evaluate(audit)
    gm = res.group_metrics
    row = gm[(gm["variant"] == "finetuned") & (gm["metric"] == "fpr") & (gm["group"] == "women")].iloc[0]
    low, high = proportion_interval(events=row["events"], trials=row["trials"], method="clopper-pearson")
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((float(low), float(high)))
    assert row["value"] == pytest.approx(row["events"] / row["trials"])
    # Clopper-Pearson from the beta quantiles, independently
    x, n = row["events"], row["trials"]
    assert row["ci_high"] == pytest.approx(stats.beta.ppf(0.975, x + 1, n - x))
    # zero events: the interval still has width (0/54 -> [0, 0.066]), it does not collapse to [0, 0]
    low, high = proportion_interval(events=0, trials=54)
    assert float(low) == 0.0 and float(high) == pytest.approx(0.0660, abs=1e-4)


def test_a_gap_interval_is_the_gate_decisions_and_contains_the_point(audit):
    res = _evaluate(audit, gates=[{"metric": "equalized_odds_difference", "bound": 0.3, "direction": "max"}])
    gm = res.group_metrics
    for v in ("finetuned", "rag"):
        rows = gm[(gm["variant"] == v) & (gm["feature"] == "group")].set_index(["metric", "group"])
        d = equalized_odds_gate(tp=[rows.loc[("tpr", g), "events"] for g in GROUPS],
                                positives=[rows.loc[("tpr", g), "trials"] for g in GROUPS],
                                fp=[rows.loc[("fpr", g), "events"] for g in GROUPS],
                                negatives=[rows.loc[("fpr", g), "trials"] for g in GROUPS], bound=0.3)
        disp = res.estimate("disparities", variant=v, feature="group", metric="equalized_odds_difference")
        gate = res.estimate("gate_results", variant=v)
        assert disp["method"] == "miettinen-nurminen"
        assert (disp["ci_low"], disp["ci_high"]) == pytest.approx((float(d.low[0]), float(d.high[0])))
        assert (gate["ci_low"], gate["ci_high"], gate["status"]) == (disp["ci_low"], disp["ci_high"],
                                                                      str(d.status[0]))
        assert disp["ci_low"] <= disp["value"] <= disp["ci_high"]


def test_multiplicity_adjusts_fail_and_never_pass(audit):
    gates = [{"metric": "fpr", "bound": 0.25, "direction": "max"}]
    none = _evaluate(audit, gates=gates, multiplicity="none").gate_results
    holm = _evaluate(audit, gates=gates, multiplicity="holm").gate_results
    bonf = _evaluate(audit, gates=gates, multiplicity="bonferroni").gate_results
    assert (holm["status"] == "pass").sum() == (none["status"] == "pass").sum() == (bonf["status"] == "pass").sum()
    assert (none["status"] == "fail").sum() >= (holm["status"] == "fail").sum() >= (bonf["status"] == "fail").sum()
    assert ((holm["p_fail"] >= none["p_fail"] - 1e-12) | holm["p_fail"].isna()).all()
    assert set(holm["multiplicity"].dropna()) == {"holm"}


def test_every_configured_gate_has_a_row_and_absent_groups_are_listed(audit):
    config = EvaluationConfig(bootstrap={"resamples": 50}, min_group_size=20, min_class_count=5,
                              gates=[{"metric": "fpr", "bound": 0.9, "direction": "max"},
                                     {"metric": "fpr_difference", "bound": 0.9, "direction": "max"},
                                     {"metric": "flip_rate", "bound": 0.9, "direction": "max"}])
    res = evaluate_fairness(audit_sample=audit["audit_sample"], predictions=audit["predictions"], config=config,
                            data_features=("group", "axis"), seed=0, variant_order=("finetuned", "rag"),
                            expected_groups={"group": [*GROUPS, "roma"]})  # the data has a group the sample lacks
    g = res.gate_results
    assert res.groups["group"]["roma"] == 0
    roma = g[(g["metric"] == "fpr") & (g["group"] == "roma")]
    assert list(roma["status"]) == ["not_evaluable"] * 2 and roma["reason"].str.contains("no examples").all()
    gap = g[g["metric"] == "fpr_difference"]
    assert set(gap["status"]) <= {"insufficient_evidence", "fail"}  # roma could widen the gap: never a pass
    assert gap["reason"].str.contains("roma").all()
    flips = g[g["metric"] == "flip_rate"]  # no twins were given: one row per variant, not zero rows
    assert list(flips["status"]) == ["not_evaluable", "not_evaluable"] and len(flips) == 2
    assert res.verdict == "insufficient_evidence"
