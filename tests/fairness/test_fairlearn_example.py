"""fairlearn's documented 18-row example ("Performing a fairness assessment"), reproduced exactly.

The expected numbers are the ones printed in fairlearn's user guide (by_group, difference,
ratio, difference/ratio to overall, demographic parity); they are also recomputed by hand.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.fairness._sliced import SlicedSettings, sliced_evaluation

Y_TRUE = [0, 1, 1, 1, 1, 0, 1, 0, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1]
Y_PRED = [0, 0, 1, 0, 1, 1, 1, 0, 0, 1, 1, 1, 1, 0, 0, 1, 1, 0]
SF = ["b", "b", "a", "b", "b", "c", "c", "c", "a", "a", "c", "a", "b", "c", "c", "b", "c", "c"]

# MetricFrame(...).by_group in the user guide
BY_GROUP = {
    "a": {"tpr": 0.5, "fpr": 1.0, "selection_rate": 0.75, "count": 4},
    "b": {"tpr": 0.6, "fpr": 0.0, "selection_rate": 0.5, "count": 6},
    "c": {"tpr": 0.4, "fpr": 2 / 3, "selection_rate": 0.5, "count": 8},
}
DIFFERENCE = {"tpr": 0.2, "fpr": 1.0, "selection_rate": 0.25}
RATIO = {"tpr": 2 / 3, "fpr": 0.0, "selection_rate": 2 / 3}
DIFFERENCE_TO_OVERALL = {"tpr": 0.1, "fpr": 2 / 3, "selection_rate": 0.194444}
RATIO_TO_OVERALL = {"tpr": 0.8, "fpr": 0.0, "selection_rate": 0.740741}


@pytest.fixture(scope="module")
def result():
    settings = SlicedSettings(features=("sf",), min_group_size=1, min_class_count=1, resamples=0)
    y = np.array(Y_TRUE)
    pred = np.array(Y_PRED)
    return sliced_evaluation(y=y, scores={"m": pred.astype(float)}, preds={"m": pred},
                             sensitive=pd.DataFrame({"sf": SF}), settings=settings)


def _groups(result, metric):
    return {r["group"]: r["value"] for r in result["group_metrics"] if r["metric"] == metric and r["feature"] == "sf"}


def _disp(result, name):
    return next(r["value"] for r in result["disparities"] if r["metric"] == name and r["feature"] == "sf")


@pytest.mark.parametrize("metric", ["tpr", "fpr", "selection_rate", "count"])
def test_by_group_matches_user_guide(result, metric):
    got = _groups(result, metric)
    assert got == pytest.approx({g: v[metric] for g, v in BY_GROUP.items()}, abs=1e-6)


def test_by_group_matches_hand_count(result):
    # group a: rows 2, 8, 9, 11 -> y (1, 1, 0, 0), pred (1, 0, 1, 1): TPR 1/2, FPR 2/2, selection 3/4
    y, p, sf = np.array(Y_TRUE), np.array(Y_PRED), np.array(SF)
    for g in "abc":
        m = sf == g
        assert _groups(result, "tpr")[g] == pytest.approx(((p == 1) & (y == 1) & m).sum() / ((y == 1) & m).sum())
        assert _groups(result, "fpr")[g] == pytest.approx(((p == 1) & (y == 0) & m).sum() / ((y == 0) & m).sum())


@pytest.mark.parametrize("metric", ["tpr", "fpr", "selection_rate"])
def test_differences_and_ratios_match_user_guide(result, metric):
    assert _disp(result, f"{metric}_difference") == pytest.approx(DIFFERENCE[metric], abs=1e-6)
    assert _disp(result, f"{metric}_ratio") == pytest.approx(RATIO[metric], abs=1e-6)
    assert _disp(result, f"{metric}_difference_to_overall") == pytest.approx(DIFFERENCE_TO_OVERALL[metric], abs=1e-6)
    assert _disp(result, f"{metric}_ratio_to_overall") == pytest.approx(RATIO_TO_OVERALL[metric], abs=1e-6)


def test_named_disparities_match_user_guide(result):
    # demographic_parity_difference(...) -> 0.25 and demographic_parity_ratio(...) -> 0.66666...
    assert _disp(result, "demographic_parity_difference") == pytest.approx(0.25)
    assert _disp(result, "demographic_parity_ratio") == pytest.approx(2 / 3)
    # equalized odds = the larger of the TPR and FPR differences (0.2, 1.0), the smaller ratio (2/3, 0)
    assert _disp(result, "equalized_odds_difference") == pytest.approx(1.0)
    assert _disp(result, "equalized_odds_ratio") == pytest.approx(0.0)
    assert _disp(result, "equal_opportunity_difference") == pytest.approx(0.2)


def test_named_disparities_match_fairlearn_functions(result):
    from fairlearn.metrics import (demographic_parity_difference, demographic_parity_ratio,
                                   equalized_odds_difference, equalized_odds_ratio)

    kw = dict(y_true=Y_TRUE, y_pred=Y_PRED, sensitive_features=SF)
    assert _disp(result, "demographic_parity_difference") == pytest.approx(demographic_parity_difference(**kw))
    assert _disp(result, "demographic_parity_ratio") == pytest.approx(demographic_parity_ratio(**kw))
    assert _disp(result, "equalized_odds_difference") == pytest.approx(equalized_odds_difference(**kw))
    assert _disp(result, "equalized_odds_ratio") == pytest.approx(equalized_odds_ratio(**kw))


def test_overall_matches_user_guide(result):
    overall = {r["metric"]: r["value"] for r in result["group_metrics"] if r["feature"] == "overall"}
    assert overall["accuracy"] == pytest.approx(8 / 18)  # the guide's overall accuracy 0.444...
    assert overall["tpr"] == pytest.approx(0.5)
    assert overall["selection_rate"] == pytest.approx(10 / 18)
