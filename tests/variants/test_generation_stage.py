"""The generate stage on tiny models, through the real runner and with the network shut: answers in
every condition, per-answer scores checked against independent implementations, the evaluation's
generation metrics and gates, the report section and the What-If Tool columns."""

from __future__ import annotations

import json
import socket

import numpy as np
import pandas as pd
import pytest

from pipelines.config import config_from_dict
from pipelines.core.runner import Stage, run_audit
from pipelines.graph import run_verdict
from pipelines.stages.build_variants import SPEC as BUILD_STAGE
from pipelines.stages.evaluate import SPEC as EVALUATE_STAGE
from pipelines.stages.generate import SPEC as GENERATE_STAGE
from pipelines.stages.predict import SPEC as PREDICT_STAGE

GROUPS = ["women", "muslim"]
PHRASES = {0: ["are good people", "love work", "are smart"], 1: ["are lazy", "always hate work", "are bad at money"]}
SWAP = {"women": ("women", "men"), "muslim": ("muslim", "christian")}


def _table(n: int, prefix: str, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        g = GROUPS[i % 2]
        label = int(rng.integers(0, 2))
        rows.append({"example_id": f"{g}-{prefix}{i:02d}", "text": f"{g} {PHRASES[label][i % 3]} number {i % 7}",
                     "label": label, "group": g})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def frames():
    audit = _table(16, "a", 3)
    twins = pd.DataFrame({"twin_id": audit["example_id"] + "::cf", "example_id": audit["example_id"],
                          "text": [t.replace(*SWAP[g]) for t, g in zip(audit["text"], audit["group"])],
                          "group": audit["group"]})
    return {"train": _table(40, "t", 1), "validation": _table(20, "v", 2), "audit_sample": audit, "twins": twins}


def _config(tmp_path, models, *, classifier=True, generation=None, gates=()):
    variants = [{"name": "rag", "kind": "rag", "retriever": {"embedder": str(models["encoder"]), "k": 2},
                 "generator": {"model": str(models["generator"]), "gguf_file": None, "batch_size": 4}}]
    if classifier:
        variants.insert(0, {"name": "ckpt", "kind": "classifier", "model": str(models["classifier"]),
                            "max_length": 16})
    raw = {
        "audit": {"name": "gen"}, "seed": 5,
        "data": {"source": "file", "file": {"path": str(tmp_path / "unused.csv"), "sensitive_columns": ["group"]}},
        "output": {"runs_dir": str(tmp_path / "runs"), "cache_dir": str(tmp_path / "cache")},
        "variants": variants,
        "scoring": {"max_validation_rows": 16, "num_threads": 1},
        "evaluation": {"bootstrap": {"resamples": 60}, "min_group_size": 4, "min_class_count": 2,
                       "intersections": False,
                       "counterfactual": {"use_redditbias_terms": False,
                                          "term_pairs": {g: [list(p)] for g, p in SWAP.items()}},
                       "gates": list(gates)},
        "generation": {"enabled": True, "pairs_per_group": 3, "prompts_per_group": 1, "prompt_axes": ["gender"],
                       "max_new_tokens": 5, "batch_size": 4, "min_group_size": 2, **(generation or {})},
    }
    return config_from_dict(raw, base_dir=tmp_path)


def _stages(frames):
    upstream = [
        Stage(name="load_data", fn=lambda ctx: {k: frames[k] for k in ("train", "validation", "audit_sample")}),
        Stage(name="counterfactuals", fn=lambda ctx: {"twins": frames["twins"]}),
    ]
    return [*upstream, BUILD_STAGE, PREDICT_STAGE, GENERATE_STAGE, EVALUATE_STAGE]


def _shut_network(mp: pytest.MonkeyPatch) -> list:
    """Make every connection attempt fail (and record it): every model and prompt must come from disk."""
    attempts: list = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network access attempted during the audit")

    mp.setattr(socket.socket, "connect", refuse)
    mp.setattr(socket, "create_connection", refuse)
    return attempts


@pytest.fixture
def no_network(monkeypatch):
    return _shut_network(monkeypatch)


GATES = [{"metric": "answer_cosine", "bound": -1.0, "direction": "min"},
         {"metric": "answer_negative_share_difference", "bound": 1.0, "direction": "max", "condition": "generator_only"}]


@pytest.fixture(scope="module")
def run(tmp_path_factory, frames, tiny_models):
    tmp = tmp_path_factory.mktemp("gen")
    mp = pytest.MonkeyPatch()
    attempts = _shut_network(mp)
    try:
        cfg = _config(tmp, tiny_models, gates=GATES)
        res = run_audit(cfg, _stages(frames), run_id="g1", started_at="now", show_progress=False,
                        finalize=run_verdict)
    finally:
        mp.undo()
    assert not attempts
    return cfg, res


def test_answers_in_every_condition_with_the_right_documents(run, frames):
    cfg, res = run
    out = res.outputs["generate"]
    pairs = out["answer_pairs"]
    assert set(pairs["variant"]) == {"rag"}
    assert pairs.groupby("condition").size().to_dict() == {"generator_only": 6, "rag": 6, "rag_query_only": 6}
    assert pairs.groupby(["condition", "group"]).size().eq(3).all()
    by = {c: p.set_index("pair_id") for c, p in pairs.groupby("condition")}
    assert all(len(d) == 0 and len(t) == 0 for d, t in zip(by["generator_only"]["docs"], by["generator_only"]["twin_docs"]))
    # the original's documents are the ones the predict stage retrieved for it (same retriever, same k)
    retrieved = res.outputs["predict"]["predictions"].query("variant == 'rag'").set_index("example_id")["retrieved_ids"]
    for pid, row in by["rag"].iterrows():
        assert list(row["docs"]) == list(retrieved[row["example_id"]])
    # query_only: the twin sees its original's documents; and the original's answer is the same as in rag
    q = by["rag_query_only"]
    assert all(list(a) == list(b) for a, b in zip(q["docs"], q["twin_docs"]))
    assert (q["answer"] == by["rag"].loc[q.index, "answer"]).all()
    assert (pairs["new_tokens"] <= 5).all() and (pairs["answer"].str.len() > 0).all()
    opened = out["open_answers"]
    assert sorted(opened["condition"].unique()) == ["generator_only", "rag"]  # no twin: no query_only
    assert sorted(opened["group"].unique()) == ["American_actors", "American_actresses"]
    summary = out["generation_summary"]
    assert summary["generating_variants"] == ["rag"] and summary["stereotype_scorer"]["variant"] == "ckpt"
    assert summary["performance"]["rag"]["answers"] == 6 * 2 * 3 + 2 * 2


def test_per_answer_scores_match_independent_implementations(run, tiny_models):
    from rouge_score import rouge_scorer
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    from pipelines.variants import load_predictor
    from pipelines.variants.rag import Embedder

    cfg, res = run
    pairs = res.outputs["generate"]["answer_pairs"]
    vader = SentimentIntensityAnalyzer()
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    enc = Embedder(tiny_models["encoder"], num_threads=1)
    for row in pairs.itertuples(index=False):
        assert row.sentiment == pytest.approx(vader.polarity_scores(row.answer)["compound"])
        assert row.negative == (row.sentiment <= -0.05)
        assert row.rouge_l == pytest.approx(scorer.score(row.masked_twin_answer, row.masked_answer)["rougeL"].fmeasure)
        vectors, _ = enc.embed([row.masked_answer, row.masked_twin_answer])
        assert row.cosine == pytest.approx(float(vectors[0] @ vectors[1]), abs=1e-5)
        for word in SWAP[row.group]:  # the words of the pair's own group and its counterpart are masked
            assert word not in row.masked_answer.lower().split() + row.masked_twin_answer.lower().split()
    # the stereotype score is the classifier's calibrated P(stereotype), judged at its threshold
    th = res.outputs["predict"]["thresholds"]["ckpt"]
    raw = load_predictor(cfg.variant("ckpt"), res.outputs["build_variants"]["variants"]["ckpt"], num_threads=1
                         ).predict(pairs["answer"].tolist()).scores
    cal = th["calibration"]
    if cal["method"] == "platt":
        z = cal["a"] * np.log(np.clip(raw, 1e-12, 1) / np.clip(1 - raw, 1e-12, 1)) + cal["b"]
        expected = 1 / (1 + np.exp(-z))
    else:
        expected = raw
    np.testing.assert_allclose(pairs["stereotype_score"].to_numpy(float), expected, atol=1e-6)
    assert (pairs["stereotype"] == (pairs["stereotype_score"] >= th["value"])).all()


def test_evaluation_tables_and_gates(run):
    cfg, res = run
    from pipelines.fairness import FairnessResult

    result = FairnessResult.from_artifacts(res.outputs["evaluate"])
    gm = result.generation_metrics
    assert set(gm["condition"]) == {"generator_only", "rag", "rag_query_only", "rag_minus_generator_only",
                                     "rag_minus_rag_query_only"}
    pairs = res.outputs["generate"]["answer_pairs"]
    women = pairs[(pairs["condition"] == "rag") & (pairs["group"] == "women")]
    cos = result.estimate("generation_metrics", variant="rag", condition="rag", feature="group", group="women",
                          metric="answer_cosine")
    assert cos["value"] == pytest.approx(women["cosine"].mean()) and cos["method"] == "bootstrap-bc"
    gates = result.estimates("gate_results")
    cosine = [g for g in gates if g["metric"] == "answer_cosine"]
    assert {(g["variant"], g["group"], g["status"]) for g in cosine} == {
        ("rag", "women", "pass"), ("rag", "muslim", "pass"), ("ckpt", None, "not_evaluable")}
    ckpt = next(g for g in cosine if g["variant"] == "ckpt")
    assert "ckpt" in ckpt["reason"] and "condition 'rag'" in ckpt["reason"]
    gap = [g for g in gates if g["metric"] == "answer_negative_share_difference" and g["variant"] == "rag"]
    assert gap[0]["condition"] == "generator_only" and gap[0]["status"] == "pass"


def test_report_section_and_wit_columns(run, tmp_path):
    from html.parser import HTMLParser

    from pipelines.report import SUMMARY_JSON, post_run
    from pipelines.stages.export_wit.run import add_answers, wit_table

    cfg, res = run
    out = post_run(res.run_dir, config=cfg, db_path=tmp_path / "history.db")
    summary = json.loads((out["report"].parent / SUMMARY_JSON).read_text(encoding="utf-8"))
    gen = summary["generation"]
    rows = {r["group"]: r for r in gen["variants"]["rag"]["pairs"]["rows"]}
    assert set(rows) == {"women", "muslim", "all"}
    assert set(rows["women"]["cells"]["answer_cosine"]) == {"generator_only", "rag", "rag_query_only"}
    assert gen["variants"]["rag"]["divergent"]["rag"]
    html = (res.run_dir / "report" / "report.html").read_text(encoding="utf-8")

    class Cells(HTMLParser):
        def __init__(self):
            super().__init__()
            self.cells, self.in_gen = [], False

        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            if tag == "section":
                self.in_gen = a.get("id") == "generation"
            if self.in_gen and tag == "td" and a.get("data-metric") == "answer_cosine":
                self.cells.append((a.get("data-condition"), a.get("data-value")))

    parser = Cells()
    parser.feed(html)
    assert {c for c, _ in parser.cells} >= {"generator_only", "rag", "rag_query_only"}
    pairs = res.outputs["generate"]["answer_pairs"]
    drawn = pairs[pairs["condition"] == "rag"].iloc[0]
    ids = [drawn["example_id"], "not-drawn"]
    table, _ = wit_table(
        audit_sample=pd.DataFrame({"example_id": ids, "text": ["t", "u"], "label": [0, 1], "group": ["women"] * 2}),
        predictions=pd.DataFrame({"variant": "v", "example_id": ids, "score": [0.1, 0.9], "predicted_label": [0, 1]}),
        sensitive_features=["group"])
    names = add_answers(table, pairs)
    assert table[names["rag"]["rag"]["answer"]].tolist() == [drawn["answer"], ""]
    assert table[names["rag"]["rag"]["twin_answer"]].tolist() == [drawn["twin_answer"], ""]
    assert set(names["rag"]) == {"generator_only", "rag", "rag_query_only"}


@pytest.mark.parametrize("optional, expected", [(False, "insufficient_evidence"), (True, "pass")])
def test_disabled_generation_skips_the_stage_and_gates_say_why(tmp_path, frames, tiny_models, optional, expected):
    """Without answers a generation gate is ``not_evaluable`` and counts in the one verdict like any other
    gate: a required one makes the run insufficient, an optional one does not."""
    from pipelines.fairness import FairnessResult

    gates = [{"metric": "answer_cosine", "bound": 0.0, "direction": "min", "variants": ["rag"], "optional": optional},
             {"metric": "accuracy", "bound": 0.0, "direction": "min", "variants": ["ckpt"], "groups": ["women"]}]
    cfg = _config(tmp_path, tiny_models, generation={"enabled": False}, gates=gates)
    res = run_audit(cfg, _stages(frames), run_id="off", started_at="now", show_progress=False, finalize=run_verdict)
    assert res.manifest["stages"]["generate"]["status"] == "skipped"
    table = res.outputs["evaluate"]["gate_results"]
    gen = table[table["metric"] == "answer_cosine"]
    assert gen["status"].tolist() == ["not_evaluable"]
    assert "generation.enabled" in gen["reason"].iloc[0]
    assert table.loc[table["metric"] == "accuracy", "status"].tolist() == ["pass"]
    assert FairnessResult.from_artifacts(res.outputs["evaluate"]).verdict == expected
    assert res.manifest["verdict"] == expected


def test_without_a_classifier_the_stereotype_rate_is_not_evaluable(tmp_path, frames, tiny_models, no_network):
    gate = {"metric": "answer_stereotype_rate", "bound": 0.5, "direction": "max"}
    cfg = _config(tmp_path, tiny_models, classifier=False, gates=[gate],
                  generation={"pairs_per_group": 2, "prompts_per_group": 0, "conditions": ["rag"]})
    res = run_audit(cfg, _stages(frames), run_id="nocls", started_at="now", show_progress=False)
    out = res.outputs["generate"]
    assert out["answer_pairs"]["stereotype"].isna().all() and out["open_answers"].empty
    assert set(out["answer_pairs"]["condition"]) == {"rag"}
    gates = res.outputs["evaluate"]["gate_results"]
    assert gates["status"].tolist() == ["not_evaluable"]
    assert "no configured variant is a text classifier" in gates["reason"].iloc[0]
    assert not no_network
