"""The build_variants and predict stages on tiny models, through the real runner."""

import logging

import numpy as np
import pandas as pd
import pytest

from pipelines.config import config_from_dict
from pipelines.errors import DataError, ModelError
from pipelines.core.runner import Stage, StageContext, run_audit
from pipelines.stages.build_variants import SPEC as BUILD_STAGE
from pipelines.stages.build_variants.run import build_variants as build_variants_stage
from pipelines.stages.predict import SPEC as PREDICT_STAGE
from pipelines.stages.predict.run import predict as predict_stage

GROUPS = ["women", "black", "jewish", "muslim"]
NEG = ["are lazy", "always hate work", "are bad at money", "never work"]
POS = ["are good people", "love work", "are smart", "are all good"]


def _table(n, prefix, seed):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        g = GROUPS[i % 4]
        label = int(rng.integers(0, 2))
        phrase = (NEG if label else POS)[int(rng.integers(0, 4))]
        rows.append({"example_id": f"{g}-{prefix}{i}", "text": f"{g} {phrase}", "label": label, "group": g,
                     "axis": "gender" if g == "women" else "race-religion"})
    return pd.DataFrame(rows)


@pytest.fixture()
def frames():
    audit = _table(12, "a", 3)
    twins = pd.DataFrame({
        "twin_id": [f"{e}~t" for e in audit["example_id"][:8]],
        "example_id": audit["example_id"][:8].values,
        "text": [t.replace("women", "men").replace("black", "white").replace("jewish", "gay").replace("muslim", "lgbtq")
                 for t in audit["text"][:8]],
    })
    return {"train": _table(40, "t", 1), "validation": _table(20, "v", 2), "audit_sample": audit, "twins": twins}


def _config(tmp_path, tiny_bert_dir, tiny_classifier_dir, tiny_lm_dir, *, beam=None, finetuned=None, rag=None,
            threshold=None, calibration=None):
    """The tiny finetuned + rag pair; ``{"enabled": False}`` drops one, ``{"train": False}`` makes the first a
    ``classifier`` variant; ``threshold``/``calibration`` go to ``scoring``."""
    finetuned, rag = dict(finetuned or {}), dict(rag or {})
    variants = []
    if finetuned.pop("enabled", True):
        base = {"name": "finetuned", "kind": "finetuned", "model": str(tiny_bert_dir), "max_length": 16,
                "batch_size": 5, "training": {"epochs": 1, "batch_size": 8, "learning_rate": 1e-3, "max_rows": 30}}
        if not finetuned.pop("train", True):
            base = {"name": "finetuned", "kind": "classifier", "model": str(tiny_classifier_dir), "max_length": 16,
                    "batch_size": 5}
        variants.append({**base, **finetuned})
    if rag.pop("enabled", True):
        variants.append({"name": "rag", "kind": "rag", "retriever": {"embedder": str(tiny_bert_dir), "k": 3},
                         "generator": {"model": str(tiny_lm_dir), "gguf_file": None, "batch_size": 4}, **rag})
    scoring = {"max_validation_rows": 16}
    if threshold:
        threshold = dict(threshold)
        scoring["max_validation_rows"] = threshold.pop("max_validation_rows", 16)
        scoring["threshold"] = threshold
    if calibration:
        scoring["calibration"] = calibration
    raw = {
        **({"beam": beam} if beam else {}),
        "audit": {"name": "tiny"},
        "seed": 5,
        "output": {"runs_dir": str(tmp_path / "runs"), "cache_dir": str(tmp_path / "cache")},
        "variants": variants,
        "scoring": scoring,
    }
    return config_from_dict(raw, base_dir=tmp_path)


def _upstream(frames):
    return [
        Stage(name="load_data", fn=lambda ctx: {k: frames[k] for k in ("train", "validation", "audit_sample")}),
        Stage(name="counterfactuals", fn=lambda ctx: {"twins": frames["twins"]}),
    ]


def _ctx(cfg, tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    return StageContext(config=cfg, run_id="t", scratch_dir=scratch, cache_dir=cfg.cache_dir,
                        log=logging.getLogger("test"), show_progress=False)


@pytest.fixture()
def counters(monkeypatch):
    import pipelines.variants.finetuned as ft
    import pipelines.variants.retrieval as retrieval

    calls = {"train": 0, "embed_kb": 0}
    real_train, real_kb = ft.train_classifier, retrieval.build_kb_index

    def train(*a, **kw):
        calls["train"] += 1
        return real_train(*a, **kw)

    def kb(*a, **kw):
        calls["embed_kb"] += 1
        return real_kb(*a, **kw)

    monkeypatch.setattr(ft, "train_classifier", train)
    monkeypatch.setattr(retrieval, "build_kb_index", kb)
    return calls


def test_full_run_writes_the_contract(tmp_path, frames, tiny_bert_dir, tiny_classifier_dir, tiny_lm_dir, counters):
    cfg = _config(tmp_path, tiny_bert_dir, tiny_classifier_dir, tiny_lm_dir)
    res = run_audit(cfg, [*_upstream(frames), BUILD_STAGE, PREDICT_STAGE], run_id="r1", started_at="now",
                    show_progress=False)
    out = res.outputs["predict"]
    audit, train = frames["audit_sample"], frames["train"]
    k = 3

    variants = res.outputs["build_variants"]["variants"]
    assert set(variants) == {"finetuned", "rag"}
    for v in variants.values():
        assert len(v["weights_sha256"]) == 64 and len(v["config_sha256"]) == 64 and v["build_seconds"] >= 0
    assert variants["finetuned"]["training_metrics"]["rows"] == 30
    assert str(cfg.cache_dir / "models") in variants["finetuned"]["model_dir"]
    assert variants["rag"]["knowledge_base"]["docs"] == 40

    pred = out["predictions"]
    for col in ("variant", "example_id", "score", "predicted_label", "threshold", "truncated", "retrieved_ids",
                "retrieved_similarities"):
        assert col in pred.columns
    assert len(pred) == 2 * len(audit)
    ids = {v: g["example_id"].tolist() for v, g in pred.groupby("variant")}
    assert ids["finetuned"] == ids["rag"] == audit["example_id"].tolist()  # paired comparison
    assert pred["score"].between(0, 1).all()
    assert (pred["predicted_label"] == (pred["score"] >= pred["threshold"]).astype(int)).all()
    rag_rows = pred[pred["variant"] == "rag"]
    assert all(len(x) == k for x in rag_rows["retrieved_ids"])
    assert pred.loc[pred["variant"] == "finetuned", "retrieved_ids"].isna().all()

    retr = out["retrievals"]
    assert list(retr.columns) == ["variant", "example_id", "rank", "doc_id", "similarity", "doc_group", "doc_label"]
    assert len(retr) == k * len(audit) and sorted(retr["rank"].unique()) == [1, 2, 3]
    by_id = train.set_index("example_id")
    assert (retr["doc_label"].astype(int).values == by_id.loc[retr["doc_id"], "label"].values).all()
    assert (retr["doc_group"].values == by_id.loc[retr["doc_id"], "group"].values).all()
    first = retr[retr["rank"] == 1].set_index("example_id")["doc_id"]
    assert first.to_dict() == {e: ids[0] for e, ids in zip(rag_rows["example_id"], rag_rows["retrieved_ids"])}

    tw = out["twin_predictions"]
    counts = tw.groupby(["variant", "mode"]).size().to_dict()
    assert counts == {("finetuned", "full"): 8, ("rag", "full"): 8, ("rag", "query_only"): 8}
    assert tw["score"].between(0, 1).all()

    th = out["thresholds"]
    for name in ("finetuned", "rag"):
        assert th[name]["split"] == "validation" and th[name]["method"] == "youden"
        assert th[name]["calibration"]["method"] in ("platt", "none")
        assert th[name]["validation_rows"] == 16
        assert pred.loc[pred["variant"] == name, "threshold"].iloc[0] == th[name]["value"]
    perf = out["performance"]
    for name in ("finetuned", "rag"):
        p = perf[name]
        assert p["examples"] == 12 and p["seconds"] > 0 and p["examples_per_s"] > 0
        # seconds are rounded to 1 ms and latency to 0.01 ms: allow that rounding on tiny timings
        assert p["latency_ms_per_example"] == pytest.approx(1000 * p["seconds"] / 12, rel=0.02, abs=0.06)
        for key in ("batch_size", "truncated", "build_seconds"):
            assert key in p
    assert counters == {"train": 1, "embed_kb": 1}

    # A second run that changes only the threshold method rebuilds nothing: the model cache hits.
    cfg2 = _config(tmp_path, tiny_bert_dir, tiny_classifier_dir, tiny_lm_dir,
                   threshold={"method": "f1", "max_validation_rows": 16})
    res2 = run_audit(cfg2, [*_upstream(frames), BUILD_STAGE, PREDICT_STAGE], run_id="r2", started_at="now",
                     show_progress=False)
    assert res2.manifest["stages"]["build_variants"]["cache_hit"] is False
    assert counters == {"train": 1, "embed_kb": 1}
    assert res2.outputs["build_variants"]["variants"] == variants
    assert res2.outputs["predict"]["thresholds"]["rag"]["method"] == "f1"
    np.testing.assert_allclose(res2.outputs["predict"]["predictions"]["score"], pred["score"], atol=1e-9)


def test_query_only_keeps_original_documents(tmp_path, frames, tiny_bert_dir, tiny_classifier_dir, tiny_lm_dir):
    from pipelines.variants import load_predictor

    cfg = _config(tmp_path, tiny_bert_dir, tiny_classifier_dir, tiny_lm_dir, calibration={"method": "none"},
                  finetuned={"enabled": False})
    ctx = _ctx(cfg, tmp_path)
    built = build_variants_stage(ctx, train=frames["train"])["variants"]
    out = predict_stage(ctx, audit_sample=frames["audit_sample"], twins=frames["twins"],
                        validation=frames["validation"], variants=built)
    tw = out["twin_predictions"].set_index(["mode", "twin_id"])["score"]
    pred = load_predictor(cfg.variant("rag"), built["rag"])
    audit_docs = out["predictions"].set_index("example_id")["retrieved_ids"]
    doc_pos = {d: i for i, d in enumerate(pred.kb.docs["doc_id"])}
    twins = frames["twins"]
    orig_idx = np.array([[doc_pos[d] for d in audit_docs[e]] for e in twins["example_id"]])
    q_only, _ = pred.score_with_docs(list(twins["text"]), orig_idx)
    np.testing.assert_allclose(tw["query_only"].loc[twins["twin_id"]].values, q_only, atol=1e-5)
    full = pred.predict(list(twins["text"]))
    np.testing.assert_allclose(tw["full"].loc[twins["twin_id"]].values, full.scores, atol=1e-5)


def test_zero_twins_and_fixed_threshold(tmp_path, frames, tiny_bert_dir, tiny_classifier_dir, tiny_lm_dir):
    cfg = _config(tmp_path, tiny_bert_dir, tiny_classifier_dir, tiny_lm_dir, rag={"enabled": False},
                  finetuned={"model": str(tiny_classifier_dir), "train": False},
                  threshold={"method": "fixed", "value": 0.5}, calibration={"method": "none"})
    ctx = _ctx(cfg, tmp_path)
    built = build_variants_stage(ctx, train=frames["train"])["variants"]
    assert built["finetuned"]["trained"] is False and built["finetuned"]["model_dir"] == str(tiny_classifier_dir)
    assert built["finetuned"]["kind"] == "classifier"
    empty = frames["twins"].iloc[0:0]
    out = predict_stage(ctx, audit_sample=frames["audit_sample"], twins=empty, validation=frames["validation"],
                        variants=built)
    assert len(out["twin_predictions"]) == 0 and "mode" in out["twin_predictions"].columns
    assert out["thresholds"]["finetuned"]["value"] == 0.5
    assert len(out["retrievals"]) == 0
    p = out["predictions"]
    assert (p["score"] == p["raw_score"]).all()


def test_bad_inputs_are_clear_errors(tmp_path, frames, tiny_bert_dir, tiny_classifier_dir, tiny_lm_dir):
    cfg = _config(tmp_path, tiny_bert_dir, tiny_classifier_dir, tiny_lm_dir, rag={"enabled": False},
                  finetuned={"model": str(tiny_classifier_dir), "train": False})
    ctx = _ctx(cfg, tmp_path)
    built = build_variants_stage(ctx, train=frames["train"])["variants"]
    audit = frames["audit_sample"].copy()
    audit.loc[2, "text"] = None
    with pytest.raises(DataError, match=r"input `audit_sample`.*positions 2 \(example_id jewish-a2\)"):
        predict_stage(ctx, audit_sample=audit, twins=frames["twins"], validation=frames["validation"],
                      variants=built)
    with pytest.raises(DataError, match="input `twins`: column 'text'"):
        predict_stage(ctx, audit_sample=frames["audit_sample"], twins=frames["twins"].drop(columns="text"),
                      validation=frames["validation"], variants=built)
    bad_twins = frames["twins"].assign(example_id="nope")
    with pytest.raises(DataError, match="not in `audit_sample`"):
        predict_stage(ctx, audit_sample=frames["audit_sample"], twins=bad_twins, validation=frames["validation"],
                      variants=built)


def test_missing_model_folder_names_the_field(tmp_path, frames, tiny_bert_dir, tiny_classifier_dir, tiny_lm_dir):
    cfg = _config(tmp_path, tiny_bert_dir, tiny_classifier_dir, tiny_lm_dir, rag={"enabled": False},
                  finetuned={"model": str(tmp_path / "gone")})
    with pytest.raises(ModelError, match=r"does not exist .configured as `variants\[0\].model`"):
        build_variants_stage(_ctx(cfg, tmp_path), train=frames["train"])


def test_long_texts_are_counted_in_performance(tmp_path, frames, tiny_bert_dir, tiny_classifier_dir, tiny_lm_dir):
    cfg = _config(tmp_path, tiny_bert_dir, tiny_classifier_dir, tiny_lm_dir, rag={"enabled": False},
                  finetuned={"model": str(tiny_classifier_dir), "train": False, "max_length": 8})
    ctx = _ctx(cfg, tmp_path)
    audit = frames["audit_sample"].copy()
    audit.loc[[0, 5], "text"] = "women are lazy and bad at money and always hate work"
    built = build_variants_stage(ctx, train=frames["train"])["variants"]
    out = predict_stage(ctx, audit_sample=audit, twins=None, validation=frames["validation"],
                        variants=built)
    assert out["performance"]["finetuned"]["truncated"] == 2
    assert out["predictions"]["truncated"].tolist() == [i in (0, 5) for i in range(12)]


def test_cleared_model_cache_is_a_clear_error(tmp_path, frames, tiny_bert_dir, tiny_classifier_dir, tiny_lm_dir):
    import shutil

    cfg = _config(tmp_path, tiny_bert_dir, tiny_classifier_dir, tiny_lm_dir, rag={"enabled": False})
    ctx = _ctx(cfg, tmp_path)
    built = build_variants_stage(ctx, train=frames["train"])["variants"]
    shutil.rmtree(built["finetuned"]["model_dir"])
    with pytest.raises(ModelError, match=r"is gone .*Delete .*stages/build_variants"):
        predict_stage(ctx, audit_sample=frames["audit_sample"], twins=None, validation=frames["validation"],
                      variants=built)
