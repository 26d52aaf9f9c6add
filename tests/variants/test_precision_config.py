"""The precision and engine choice in the config, the caches' keys and the run manifest."""

import pytest

from pipelines.config import config_from_dict
from pipelines.core.runner import _cache_key, run_audit
from pipelines.errors import ConfigError
from pipelines.graph import finalize_run
from pipelines.stages.build_variants import SPEC as BUILD_STAGE
from pipelines.stages.predict import SPEC as PREDICT_STAGE
from pipelines.stages.predict.run import scoring_precisions
from pipelines.variants import _precision, effective_precision
from tests.variants.test_fast_paths import BF16, NO_BF16
from tests.variants.test_stage import _config, _upstream, frames  # noqa: F401  (fixture)


@pytest.fixture()
def on_cpu(monkeypatch):
    def use(info):
        monkeypatch.setattr(_precision, "cpu_info", lambda: info)
        monkeypatch.setattr(_precision, "_onednn_bf16", lambda: True)

    return use


def _cfg(**variant):
    return config_from_dict({"audit": {"name": "t"}, "variants": [
        {"name": "ft", "kind": "finetuned", **variant.get("ft", {})},
        {"name": "cls", "kind": "classifier", "model": "m", **variant.get("cls", {})},
        {"name": "rag", "kind": "rag", **variant.get("rag", {})},
        {"name": "logged", "kind": "predictions", "path": "scores.csv"}]}, base_dir=".")


def test_defaults_are_the_fp32_reference_on_the_fastest_fitting_engine():
    cfg = _cfg()
    assert (cfg.variant("ft").precision, cfg.variant("ft").engine) == ("fp32", "auto")
    assert (cfg.variant("cls").precision, cfg.variant("cls").engine) == ("fp32", "auto")
    g = cfg.variant("rag").generator
    assert (g.precision, g.engine, cfg.variant("rag").retriever.engine) == ("fp32", "auto", "auto")


@pytest.mark.parametrize("variant, field", [
    ({"ft": {"precision": "fp16"}}, "`variants[0].precision` should be 'fp32', 'bf16' or 'auto'. Got 'fp16'"),
    ({"cls": {"engine": "onnx"}}, "`variants[1].engine` should be 'auto', 'packed' or 'hf'. Got 'onnx'"),
    ({"rag": {"generator": {"precision": "int4"}}}, "`variants[2].generator.precision` should be 'fp32', 'bf16'"),
    ({"rag": {"retriever": {"engine": "fast"}}}, "`variants[2].retriever.engine` should be 'auto', 'packed'"),
])
def test_an_unknown_precision_or_engine_names_the_field_and_the_choices(variant, field):
    with pytest.raises(ConfigError) as err:
        _cfg(**variant)
    assert field in str(err.value)


@pytest.mark.parametrize("generator", [{"int8": True, "precision": "bf16"}, {"int8": True, "engine": "packed"}])
def test_int8_cannot_be_combined_with_bf16_or_the_packed_engine(generator):
    clash = "`precision: bf16`" if "precision" in generator else "`engine: packed`"
    with pytest.raises(ConfigError) as err:
        _cfg(rag={"generator": generator})
    assert "`variants[2].generator`: `int8: true`" in str(err.value)
    assert f"cannot be combined with {clash}; expected precision fp32 or auto" in str(err.value)
    assert _cfg(rag={"generator": {"int8": True, "precision": "auto"}}).variant("rag").generator.int8


def test_precisions_resolve_against_the_cpu_and_key_the_predict_cache(on_cpu):
    cfg = _cfg(ft={"precision": "auto"}, cls={"precision": "bf16"}, rag={"generator": {"precision": "auto"}})
    on_cpu(BF16)
    assert scoring_precisions(cfg) == {"precisions": {"ft": ["bf16"], "cls": ["bf16"], "rag": ["bf16"]}}
    key_bf16 = _cache_key(PREDICT_STAGE, cfg, {})
    on_cpu(NO_BF16)
    # no model: nothing to resolve for logged predictions; bf16 without native support runs fp32 (no warning here)
    assert scoring_precisions(cfg) == {"precisions": {"ft": ["fp32"], "cls": ["fp32"], "rag": ["fp32"]}}
    assert _cache_key(PREDICT_STAGE, cfg, {}) != key_bf16
    fp32 = _cfg()
    assert scoring_precisions(fp32)["precisions"] == {"ft": ["fp32"], "cls": ["fp32"], "rag": ["fp32"]}
    on_cpu(BF16)
    assert scoring_precisions(fp32)["precisions"]["rag"] == ["fp32"]  # fp32 asked, fp32 on any CPU
    assert effective_precision("int8") == "int8"
    assert scoring_precisions(_cfg(rag={"generator": {"int8": True}}))["precisions"]["rag"] == ["int8"]


def test_the_manifest_records_what_scored_each_variant_and_the_kb_key_has_the_embedder_path(
        tmp_path, frames, tiny_bert_dir, tiny_classifier_dir, tiny_lm_dir, on_cpu, monkeypatch):  # noqa: F811
    import pipelines.variants.retrieval as retrieval

    embedded = []
    real_kb = retrieval.build_kb_index
    monkeypatch.setattr(retrieval, "build_kb_index", lambda embedder, *a, **kw: (
        embedded.append(embedder.path["runtime"]), real_kb(embedder, *a, **kw))[1])
    on_cpu(BF16)
    cfg = _config(tmp_path, tiny_bert_dir, tiny_classifier_dir, tiny_lm_dir,
                  finetuned={"train": False, "precision": "auto"},
                  rag={"generator": {"model": str(tiny_lm_dir), "gguf_file": None, "batch_size": 4,
                                     "engine": "hf"}})
    stages = _upstream(frames) + [BUILD_STAGE, PREDICT_STAGE]
    result = run_audit(cfg, stages, run_id="r1", started_at="2026-01-01T00:00:00+00:00", finalize=finalize_run)
    paths = result.manifest["scoring_paths"]
    assert (paths["finetuned"]["precision"], paths["finetuned"]["runtime"]) == ("bf16", "torch-packed")
    assert (paths["rag"]["precision"], paths["rag"]["runtime"]) == ("fp32", "transformers")
    assert paths["rag"]["cpu"]["model"] == BF16.model and paths["finetuned"]["requested"] == "auto"
    perf = result.outputs["predict"]["performance"]
    assert perf["rag"]["path"]["runtime"] == "transformers"
    assert embedded == ["torch-packed"]
    # the same knowledge base embedded on the transformers module is another model-cache entry
    cfg_hf = _config(tmp_path, tiny_bert_dir, tiny_classifier_dir, tiny_lm_dir, finetuned={"enabled": False},
                     rag={"retriever": {"embedder": str(tiny_bert_dir), "k": 3, "engine": "hf"}})
    run_audit(cfg_hf, _upstream(frames) + [BUILD_STAGE], run_id="r2", started_at="2026-01-01T00:00:00+00:00")
    assert embedded == ["torch-packed", "transformers"]
