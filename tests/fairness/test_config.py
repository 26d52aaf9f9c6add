"""The evaluation config section: defaults, validation and cross-section references."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from pipelines.config import AuditConfig, config_from_dict
from pipelines.errors import ConfigError
from pipelines.config.evaluation import (
    GATE_METRICS,
    GROUP_METRICS,
    MSG_UNKNOWN_FEATURE,
    MSG_UNKNOWN_VARIANT,
    EvaluationConfig,
    GateRule,
)


def _load(evaluation):
    return config_from_dict({"audit": {"name": "t"}, "evaluation": evaluation}, base_dir=Path("."))


def test_every_field_has_a_default_and_the_root_config_builds():
    cfg = AuditConfig.model_validate({"audit": {"name": "t"}})
    ev = cfg.evaluation
    assert ev.bootstrap.resamples == 1000 and ev.level == 0.95 and ev.multiplicity == "holm"
    assert ev.bias_auc.power == -5.0 and ev.bias_auc.bias_weights == (0.25, 0.25, 0.25)
    assert ev.gates == () and ev.intersections is True
    assert ev.features(("group", "axis")) == ("group", "axis")
    assert EvaluationConfig(sensitive_features=("axis",)).features(("group", "axis")) == ("axis",)


def test_gates_parse_from_yaml_shaped_dicts():
    cfg = _load({"gates": [{"metric": "fpr", "bound": 0.3, "direction": "max", "variants": ["rag"],
                            "groups": ["women"]}]})
    (gate,) = cfg.evaluation.gates
    assert isinstance(gate, GateRule) and gate.variants == ("rag",) and gate.label == "fpr <= 0.3"


def test_unknown_gate_metric_suggests_the_closest():
    with pytest.raises(ConfigError) as exc:
        _load({"gates": [{"metric": "bpsn_uac", "bound": 0.8, "direction": "min"}]})
    msg = str(exc.value)
    assert "evaluation.gates[0].metric" in msg and "did you mean 'bpsn_auc'?" in msg and "'bpsn_uac'" in msg


def test_gate_on_unknown_variant_names_it_and_suggests():
    with pytest.raises(ConfigError) as exc:
        _load({"gates": [{"metric": "fpr", "bound": 0.3, "direction": "max", "variants": ["fine_tuned"]}]})
    msg = str(exc.value)
    assert "fine_tuned" in msg and "Did you mean 'finetuned'?" in msg
    assert MSG_UNKNOWN_VARIANT.split("{")[0] in msg


@pytest.mark.parametrize("evaluation, where", [
    ({"sensitive_features": ["gruop"]}, "sensitive_features"),
    ({"gates": [{"metric": "fpr", "bound": 0.3, "direction": "max", "feature": "axs"}]}, "gates[0].feature"),
    ({"counterfactual": {"feature": "grp"}}, "counterfactual.feature"),
])
def test_unknown_sensitive_feature_is_rejected_with_suggestion(evaluation, where):
    with pytest.raises(ConfigError) as exc:
        _load(evaluation)
    msg = str(exc.value)
    assert where in msg and "Did you mean" in msg and "Sensitive features of the data: group, axis" in msg
    assert "names sensitive feature" in MSG_UNKNOWN_FEATURE


def test_check_refs_works_without_variant_names():
    class Root:
        class data:  # noqa: N801
            sensitive_features = ("group",)

    EvaluationConfig(gates=(GateRule(metric="fpr", bound=0.1, direction="max", variants=("x",)),)).check_refs(Root)


def test_intersection_feature_name_is_a_valid_gate_feature():
    cfg = _load({"gates": [{"metric": "fpr_difference", "bound": 0.3, "direction": "max", "feature": "group|axis"}]})
    assert cfg.evaluation.gates[0].feature == "group|axis"


@pytest.mark.parametrize("bad", [
    {"level": 1.2},
    {"bootstrap": {"level": 0.9}},            # the level moved to `evaluation.level`
    {"multiplicity": "sidak"},
    {"gates": [{"metric": "fpr", "bound": 20, "direction": "max"}]},          # a percent typo
    {"gates": [{"metric": "fpr", "bound": float("nan"), "direction": "max"}]},
    {"gates": [{"metric": "fpr_ratio", "bound": -0.1, "direction": "min"}]},
    {"gates": [{"metric": "accuracy_difference", "bound": 1.5, "direction": "max"}]},
    {"bootstrap": {"resamples": -1}},
    {"min_group_size": 0},
    {"ece_bins": 1},
    {"bias_auc": {"power": 0}},
    {"comparison": ["rag", "finetuned"]},
    {"gates": [{"metric": "fpr_difference", "bound": 0.1, "direction": "max", "groups": ["a"]}]},
    {"gates": [{"metric": "fpr", "bound": 0.1, "direction": "up"}]},
    {"unknown_key": 1},
])
def test_invalid_values_are_rejected(bad):
    with pytest.raises(ValidationError):
        EvaluationConfig.model_validate(bad)


def test_every_group_metric_is_gateable():
    assert set(GROUP_METRICS) <= set(GATE_METRICS)
    assert {"demographic_parity_difference", "equalized_odds_ratio", "final_bias_score", "fpr_ratio_to_overall",
            "subgroup_auc", "flip_rate", "stereotype_share"} <= set(GATE_METRICS)


def test_a_percent_typo_in_a_bound_gets_a_hint():
    with pytest.raises(ConfigError) as exc:
        _load({"gates": [{"metric": "flip_rate", "bound": 20, "direction": "max"}]})
    msg = str(exc.value)
    assert "evaluation.gates[0]" in msg and "rates are fractions in [0, 1]; did you mean 0.20?" in msg
    assert "Got 20.0 instead" in msg
    with pytest.raises(ConfigError, match="finite number"):
        _load({"gates": [{"metric": "fpr", "bound": float("inf"), "direction": "max"}]})
