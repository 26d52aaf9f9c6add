"""The ``mitigation:`` config section: defaults, references to other sections, one-line errors."""

from __future__ import annotations

import pytest

from pipelines.config import DEMO_CONFIG, load_config
from pipelines.config.mitigation import CONSTRAINTS, MitigationConfig
from pipelines.errors import ConfigError
from tests.mitigation.conftest import mitigation_config


def test_defaults_are_off_and_name_the_evaluations_metrics():
    cfg = MitigationConfig()
    assert cfg.enabled is False and cfg.verdict_on == "deployed"
    assert cfg.gap_metric == "equalized_odds_difference" and cfg.fairlearn_objective == "accuracy_score"
    assert MitigationConfig(constraint="demographic_parity").gap_metric == "demographic_parity_difference"
    assert MitigationConfig(objective="balanced_accuracy").fairlearn_objective == "balanced_accuracy_score"


def test_every_constraint_maps_to_an_evaluated_disparity():
    from pipelines.config.evaluation import DISPARITIES

    assert set(CONSTRAINTS.values()) <= set(DISPARITIES)


def test_demo_enables_mitigation_with_enough_validation_rows():
    cfg = load_config(DEMO_CONFIG)
    assert cfg.mitigation.enabled and cfg.mitigation.constraint == "equalized_odds"
    assert cfg.scoring.max_validation_rows >= 300


def test_unknown_variant_and_feature_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"`mitigation.variants` names variant 'finetund'.*Did you mean 'finetuned'"):
        mitigation_config(tmp_path, mitigation={"variants": ["finetund"]})
    with pytest.raises(ConfigError, match=r"`mitigation.feature` names sensitive feature 'grop'.*group, axis"):
        mitigation_config(tmp_path, mitigation={"feature": "grop"})


def test_bad_values_name_the_field(tmp_path):
    with pytest.raises(ConfigError, match=r"mitigation.tolerances` must list tolerances in \(0, 1\]"):
        mitigation_config(tmp_path, mitigation={"tolerances": [0.0, 0.1]})
    with pytest.raises(ConfigError, match=r"mitigation.constraint"):
        mitigation_config(tmp_path, mitigation={"constraint": "equal_odds"})
    with pytest.raises(ConfigError, match=r"validation_fraction` is 0"):
        mitigation_config(tmp_path, data={"split": {"validation_fraction": 0.0}},
                          scoring={"threshold": {"method": "fixed"}, "calibration": {"method": "none"}})


def test_feature_defaults_to_the_first_evaluated_one(tmp_path):
    cfg = mitigation_config(tmp_path, evaluation={"sensitive_features": ["axis"]})
    assert cfg.mitigation.feature_for(cfg.evaluation.features(cfg.data.sensitive_features)) == "axis"
    assert cfg.mitigation.variants_for(cfg.variant_names()) == ("finetuned", "rag")
    only = mitigation_config(tmp_path, mitigation={"variants": ["rag"]})
    assert only.mitigation.variants_for(only.variant_names()) == ("rag",)
