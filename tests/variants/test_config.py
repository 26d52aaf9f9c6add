import subprocess
import sys

import pytest
from pydantic import ValidationError

from pipelines.config import config_from_dict
from pipelines.errors import ConfigError
from pipelines.variants.config import VariantsConfig


def test_defaults_enable_both_variants():
    cfg = VariantsConfig()
    assert cfg.names() == ("finetuned", "rag")
    assert cfg.threshold.method == "youden"
    assert cfg.calibration.method == "platt"
    assert cfg.rag.retriever.k == 4


@pytest.mark.parametrize("raw, names", [
    ({"rag": {"enabled": False}}, ("finetuned",)),
    ({"finetuned": {"enabled": False}}, ("rag",)),
    ({"finetuned": {"enabled": False}, "rag": {"enabled": False}}, ()),
])
def test_names_follow_enabled_flags(raw, names):
    assert VariantsConfig.model_validate(raw).names() == names


def test_unknown_key_is_rejected_with_suggestion():
    with pytest.raises(ConfigError) as exc:
        config_from_dict({"audit": {"name": "t"}, "variants": {"finetuned": {"max_lenght": 32}}}, base_dir=".")
    assert "max_lenght" in str(exc.value) and "max_length" in str(exc.value)


def test_same_answers_rejected():
    with pytest.raises(ValidationError, match="must differ"):
        VariantsConfig.model_validate({"rag": {"generator": {"positive_answer": "Yes", "negative_answer": " Yes"}}})


def test_check_refs_needs_validation_split_for_fitted_thresholds():
    raw = {"audit": {"name": "t"}, "data": {"split": {"validation_fraction": 0.0}}}
    with pytest.raises(ConfigError, match="validation_fraction"):
        config_from_dict(raw, base_dir=".")
    raw["variants"] = {"threshold": {"method": "fixed"}, "calibration": {"method": "none"}}
    assert config_from_dict(raw, base_dir=".").variants.threshold.method == "fixed"


def test_frozen():
    with pytest.raises(ValidationError):
        VariantsConfig().num_threads = 4


def test_config_import_is_light():
    code = ("import sys, pipelines.variants, pipelines.variants.config; "
            "print(sorted(m for m in ('torch', 'transformers', 'tensorflow', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
