"""No leakage between splits: duplicates removed before splitting, `data.split.group_by` keeps minimal pairs
together, and validate_data reports (and can block on) texts shared between eval, train, validation and a RAG
knowledge base."""

from __future__ import annotations

import pandas as pd
import pytest

from pipelines.config import load_config
from pipelines.core.runner import Stage, run_audit
from pipelines.graph import run_verdict
from pipelines.stages.load_data import SPEC as LOAD
from pipelines.stages.load_data.split import assign_splits
from pipelines.stages.validate_data import SPEC as VALIDATE
from pipelines.stages.validate_data.leakage import TextSet, shared_texts
from tests.conftest import file_source
from tests.foundation.test_data import _independent_normal_form


def minimal_pairs(n_pairs: int = 120) -> pd.DataFrame:
    """Each stereotyping sentence (label 1) with its less-stereotyping twin (label 0), one pair id."""
    rows = []
    for i in range(n_pairs):
        group = ("age", "disability", "nationality")[i % 3]
        a, b = {"age": ("old", "young"), "disability": ("disabled", "nondisabled"),
                "nationality": ("Mexican", "American")}[group]
        rows.append({"id": f"p{i}-more", "pair": f"p{i}", "text": f"The {a} person number {i} is lazy.",
                     "y": 1, "grp": group})
        rows.append({"id": f"p{i}-less", "pair": f"p{i}", "text": f"The {b} person number {i} is lazy.",
                     "y": 0, "grp": group})
    return pd.DataFrame(rows)


def test_group_by_keeps_every_pair_in_one_split_in_memory():
    frame = minimal_pairs().rename(columns={"id": "example_id", "y": "label"})
    split = assign_splits(frame, by=["grp", "label"], eval_fraction=0.3, validation_fraction=0.1, seed=3,
                          group_by="pair")
    assert (split.groupby(frame["pair"]).nunique() == 1).all()
    counts = split.value_counts()
    assert counts["eval"] == 2 * 36 and counts["validation"] == 2 * 12  # 30% / 10% of 120 pairs, whole pairs
    # without group_by the same data splits pairs apart (what the issue measured on CrowS-Pairs)
    loose = assign_splits(frame, by=["grp", "label"], eval_fraction=0.3, validation_fraction=0.1, seed=3)
    assert (loose.groupby(frame["pair"]).nunique() > 1).sum() > 30
    # the split depends on ids and keys, not on row order
    shuffled = frame.sample(frac=1.0, random_state=1)
    again = assign_splits(shuffled, by=["grp", "label"], eval_fraction=0.3, validation_fraction=0.1, seed=3,
                          group_by="pair")
    pd.testing.assert_series_equal(again.loc[frame.index], split)


def test_group_by_through_the_stages_and_the_leakage_report(tmp_path, write_config):
    data = tmp_path / "pairs.csv"
    minimal_pairs().to_csv(data, index=False)
    src = file_source(data, text_column="text")
    src["split"] = {"group_by": "pair"}
    cfg = load_config(write_config({"audit": {"name": "pairs"}, "data": src, "validation": {"schema": None}}))
    out = run_audit(cfg, [LOAD, VALIDATE], run_id="r", started_at="t").outputs
    examples = out["load_data"]["examples"]
    assert (examples.groupby("pair")["split"].nunique() == 1).all()
    leak = out["validate_data"]["validation_summary"]["leakage"]
    assert {(p["a"], p["b"]) for p in leak["pairs"]} >= {("eval", "train"), ("eval", "validation"),
                                                         ("validation", "train")}
    assert all(p["exact"] == 0 and p["near"] == 0 for p in leak["pairs"]) and leak["ok"]


def _planted_leak(tmp_path, write_config, **leakage):
    """Splits handed to validate_data by a stub stage: eval shares 2 exact and 1 near text with train."""
    train = pd.DataFrame({"example_id": [f"t{i}" for i in range(8)], "label": [0, 1] * 4,
                          "text": ["Women are strong.", "same words here", *[f"train only {i}" for i in range(6)]],
                          "grp": ["a", "b"] * 4})
    evl = pd.DataFrame({"example_id": [f"e{i}" for i in range(6)], "label": [0, 1] * 3,
                        "text": ["women are STRONG", "same words here", "train only 3", "new 1", "new 2", "new 3"],
                        "grp": ["a", "b"] * 3})
    val = pd.DataFrame({"example_id": ["v0", "v1"], "label": [0, 1], "text": ["val 1", "val 2"], "grp": ["a", "b"]})
    for f in (train, evl, val):
        f["n_chars"] = f["text"].str.len()
        f["n_tokens"] = f["text"].str.split().str.len()
    kb = tmp_path / "kb.csv"
    pd.DataFrame({"doc": ["New 1!", "unrelated"], "lab": [0, 1]}).to_csv(kb, index=False)
    (tmp_path / "d.csv").write_text("id,comment,y,grp\n1,a,0,a\n2,b,1,b\n", encoding="utf-8")
    cfg = load_config(write_config({
        "audit": {"name": "leak"}, "data": file_source(tmp_path / "d.csv"),
        "validation": {"schema": None, "leakage": leakage},
        "variants": [{"name": "rag", "kind": "rag", "knowledge_base": {"path": str(kb), "text_column": "doc"}}]}))
    stub = Stage(name="load_data", fn=lambda ctx: {"train": train, "validation": val, "eval": evl})
    return run_audit(cfg, [stub, VALIDATE], run_id="r", started_at="t", finalize=run_verdict)


def test_planted_duplicates_are_counted_and_can_fail_the_run(tmp_path, write_config):
    result = _planted_leak(tmp_path, write_config, max_shared=0, block=True)
    leak = result.outputs["validate_data"]["validation_summary"]["leakage"]
    pairs = {(p["a"], p["b"]): p for p in leak["pairs"]}
    assert (pairs[("eval", "train")]["exact"], pairs[("eval", "train")]["near"]) == (2, 3)
    assert [x["id"] for x in pairs[("eval", "train")]["examples"]] == ["e0", "e1", "e2"]
    assert pairs[("eval", "train")]["examples"][0]["other_id"] == "t0"
    kb = pairs[("eval", "knowledge base of rag")]
    assert (kb["exact"], kb["near"]) == (0, 1) and kb["examples"][0]["id"] == "e3"
    assert pairs[("validation", "train")]["near"] == 0
    assert not leak["ok"] and len(leak["blocking"]) == 2
    assert result.manifest["verdict"] == "fail"
    assert any("3 eval text(s) also in train" in r and "validation.leakage.max_shared" in r
               for r in result.manifest["verdict_reasons"])


def test_leakage_is_reported_but_does_not_fail_by_default(tmp_path, write_config):
    result = _planted_leak(tmp_path, write_config)
    summary = result.outputs["validate_data"]["validation_summary"]
    assert not summary["leakage"]["ok"] and summary["leakage"]["exceeded"] and summary["blocking"] == []
    assert result.manifest["verdict"] != "fail" or not any("leakage" in r for r in result.manifest["verdict_reasons"])


def test_shared_texts_agree_with_an_independent_count():
    a = ["Hello, World", "x y", "α β", "same", "Same!", "none"]
    b = ["hello world", "x  y", "ΑΒ", "same"]
    got = shared_texts(TextSet("a", range(6), a), TextSet("b", range(4), b))
    b_exact, b_near = set(b), {_independent_normal_form(t) for t in b}
    assert got["exact"] == sum(t in b_exact for t in a)
    assert got["near"] == sum(_independent_normal_form(t) in b_near for t in a)


@pytest.mark.parametrize("source", ["redditbias"])
def test_the_demo_splits_share_no_text_even_ignoring_case_and_punctuation(write_config, source):
    cfg = load_config(write_config({"audit": {"name": "demo-leak"}, "seed": 13,
                                    "data": {"audit_sample_size": 50},
                                    "validation": {"schema": None, "leakage": {"max_shared": 0, "block": True}},
                                    "variants": [{"name": "rag", "kind": "rag"}]}))
    out = run_audit(cfg, [LOAD, VALIDATE], run_id="r", started_at="t", finalize=run_verdict)
    data = out.outputs["load_data"]
    forms = {s: set(data[s]["text"].map(_independent_normal_form)) for s in ("train", "validation", "eval")}
    assert not forms["train"] & forms["eval"] and not forms["train"] & forms["validation"]
    assert not forms["validation"] & forms["eval"]
    leak = out.outputs["validate_data"]["validation_summary"]["leakage"]
    assert leak["ok"] and all(p["near"] == 0 for p in leak["pairs"])
    assert any(p["b"] == "knowledge base of rag" and p["same_as"] == "eval vs train" for p in leak["pairs"])
    assert "leakage" not in " ".join(out.manifest["verdict_reasons"])
