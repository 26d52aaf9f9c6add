"""The `variants` list (named variants of four kinds) and the `scoring` section."""

import subprocess
import sys

import pytest
from pydantic import ValidationError

from pipelines.config import DEFAULT_VARIANTS, VARIANT_KINDS, config_from_dict
from pipelines.errors import ConfigError
from pipelines.variants import KINDS


def _cfg(**raw):
    return config_from_dict({"audit": {"name": "t"}, **raw}, base_dir=".")


def test_defaults_are_the_demo_pair():
    cfg = _cfg()
    assert cfg.variant_names() == ("finetuned", "rag")
    assert [v.kind for v in DEFAULT_VARIANTS] == ["finetuned", "rag"]
    assert cfg.scoring.threshold.method == "youden" and cfg.scoring.calibration.method == "platt"
    assert cfg.variant("rag").retriever.k == 4


def test_every_config_kind_has_a_variant_kind_and_back():
    assert set(VARIANT_KINDS) == set(KINDS) == {"finetuned", "classifier", "rag", "predictions"}


def test_any_number_of_variants_of_any_kind():
    cfg = _cfg(data={"source": "file", "file": {"path": "x.csv"}}, variants=[
        {"name": "ckpt-a", "kind": "classifier", "model": "a"},
        {"name": "ckpt-b", "kind": "classifier", "model": "b", "positive_index": 0},
        {"name": "prod", "kind": "predictions", "column": "prod_score"},
        {"name": "logged", "kind": "predictions", "path": "scores.parquet"},
    ])
    assert cfg.variant_names() == ("ckpt-a", "ckpt-b", "prod", "logged")
    assert cfg.passthrough_columns == ("prod_score",)


@pytest.mark.parametrize("variants, words", [
    ([{"name": "a", "kind": "fintuned"}], ["variants[0].kind", "Did you mean 'finetuned'?"]),
    ([{"name": "a"}], ["variants[0].kind", "is required"]),
    ([{"name": "a", "kind": "finetuned", "max_lenght": 32}], ["variants[0].max_lenght", "max_length"]),
    ([{"name": "a", "kind": "rag", "retriever": {"k": 0}}], ["variants[0].retriever.k", "greater than or equal"]),
    ([{"name": "a", "kind": "finetuned"}, {"name": "a", "kind": "rag"}], ["'a' appears twice"]),
    ([{"name": "a b", "kind": "finetuned"}], ["variants[0].name"]),
    ([{"name": "p", "kind": "predictions"}], ["variants[0]", "exactly one of `column`"]),
    ([{"name": "p", "kind": "predictions", "column": "s"}], ["needs `data.source: file`"]),
    ({"finetuned": {}}, ["must be a list of named variants", "moved to `scoring`"]),
])
def test_bad_variants_are_one_clear_error(variants, words):
    with pytest.raises(ConfigError) as exc:
        _cfg(variants=variants)
    for w in words:
        assert w in str(exc.value)


def test_same_answers_rejected():
    with pytest.raises(ConfigError, match="must differ"):
        _cfg(variants=[{"name": "r", "kind": "rag", "generator": {"positive_answer": "Yes", "negative_answer": " Yes"}}])


def test_validation_split_needed_for_fitted_thresholds_unless_a_variant_says_fixed():
    raw = {"data": {"split": {"validation_fraction": 0.0}}}
    with pytest.raises(ConfigError, match="validation_fraction"):
        _cfg(**raw)
    fixed = {"threshold": {"method": "fixed"}, "calibration": {"method": "none"}}
    cfg = _cfg(**raw, scoring=fixed)
    assert cfg.threshold_for("rag").method == "fixed"
    # one variant overriding the shared fixed rule with a fitted one needs the split again
    with pytest.raises(ConfigError, match="variant\\(s\\) rag fit"):
        _cfg(**raw, scoring=fixed, variants=[{"name": "ft", "kind": "finetuned"},
                                             {"name": "rag", "kind": "rag", "threshold": {"method": "youden"}}])


def test_per_variant_threshold_overrides_scoring():
    cfg = _cfg(scoring={"threshold": {"method": "f1"}},
               variants=[{"name": "a", "kind": "finetuned"}, {"name": "b", "kind": "rag",
                                                               "threshold": {"method": "fixed", "value": 0.3}}])
    assert cfg.threshold_for("a").method == "f1" and cfg.threshold_for("b").value == 0.3


def test_frozen():
    with pytest.raises(ValidationError):
        _cfg().scoring.num_threads = 4


def test_config_import_is_light():
    code = ("import sys, pipelines.variants, pipelines.config; "
            "print(sorted(m for m in ('torch', 'transformers', 'tensorflow', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
