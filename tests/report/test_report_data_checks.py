"""The report's data section shows what the data stages found: a schema inferred from the same data,
texts shared between splits (and the run failing on them), and counterfactual coverage per group with
the config key for a group without term pairs."""

from __future__ import annotations

import json
import logging
import re

from bs4 import BeautifulSoup

from tests.report.conftest import audit_config, make_artifacts, run_from_artifacts


def _read(run_dir):
    html = (run_dir / "report" / "report.html").read_text(encoding="utf-8")
    summary = json.loads((run_dir / "report" / "summary.json").read_text(encoding="utf-8"))
    return BeautifulSoup(html, "html.parser"), summary


def _planted_leakage(*, block: bool):
    from pipelines.stages.validate_data.leakage import TextSet, leakage_report

    # eval shares "Same" exactly and "Women are strong." after normalization with train: 1 exact, 2 near
    sets = {"train": TextSet("train", ["t1", "t2", "t3"], ["women are STRONG", "Same", "x"]),
            "eval": TextSet("eval", ["e1", "e2", "e3", "e4"], ["Women are strong.", "new text", "Same", "other"])}
    return leakage_report(sets, [("rag", None, "the train split")], max_shared=0, block=block, scope="test")


def test_shared_texts_are_a_table_and_a_blocking_reason_fails_the_run(tmp_path):
    cfg = audit_config(tmp_path)
    arts = make_artifacts(cfg)
    vs = arts["validation"]["validation_summary"]
    vs["leakage"] = _planted_leakage(block=True)
    vs["blocking"] = list(vs["leakage"]["blocking"])
    soup, summary = _read(run_from_artifacts(cfg, arts))
    row = soup.select_one('#leakage tr[data-a="eval"][data-b="train"]')
    cells = [c.get_text(" ", strip=True) for c in row.find_all("td")]
    assert cells[2] == "1" and row.select_one("td[data-value]")["data-value"] == "2"
    assert "result-fail" in row.select_one("td[data-value]")["class"]
    # the knowledge base that is the train split repeats the train numbers
    kb = soup.select_one('#leakage tr[data-a="eval"][data-b="knowledge base of rag"]')
    assert kb.select_one("td[data-value]")["data-value"] == "2" and "the train split" in kb.get_text()
    text = soup.get_text(" ", strip=True)
    assert "data leakage: 2 eval text(s) also in train (1 exact" in text
    assert summary["verdict"]["overall"] == "fail"
    pairs = summary["data"]["validation"]["leakage"]["pairs"]
    assert [(p["a"], p["b"], p["exact"], p["near"], p["exceeded"]) for p in pairs][0] == ("eval", "train", 1, 2, True)


def test_shared_texts_reported_without_blocking_leave_the_verdict_to_the_gates(tmp_path):
    cfg = audit_config(tmp_path)
    arts = make_artifacts(cfg)
    arts["validation"]["validation_summary"]["leakage"] = _planted_leakage(block=False)
    soup, summary = _read(run_from_artifacts(cfg, arts))
    assert soup.select_one('#leakage tr[data-a="eval"][data-b="train"] td[data-value]')["data-value"] == "2"
    assert "data leakage:" not in soup.get_text(" ", strip=True)
    assert summary["verdict"]["overall"] == arts["evaluate"]["fairness"]["verdict"]


def test_a_schema_inferred_from_the_same_data_is_said_next_to_blessed(tmp_path):
    cfg = audit_config(tmp_path)
    arts = make_artifacts(cfg)
    vs = arts["validation"]["validation_summary"]
    vs.update({"blessed": True, "anomaly_count": 0, "anomalies": {"train": [], "eval": []}})
    where = "validate_data/schema_inferred.pbtxt in this run's folder"
    vs["schema"] = {"origin": "inferred from train", "path": None, "sha256": None, "inferred_from_same_data": True,
                    "written_to": where, "hint": f"review {where}, check it in, and set `validation.schema` to it"}
    soup, summary = _read(run_from_artifacts(cfg, arts))
    note = soup.select_one("#schema-inferred").get_text(" ", strip=True)
    assert "inferred from this same data" in note and '"blessed" here says little' in note
    assert f"written to {where}" in note and "Next: review" in note and "set `validation.schema` to it" in note
    assert summary["data"]["validation"]["schema"]["inferred_from_same_data"] is True


def test_a_curated_schema_has_no_inferred_note(tmp_path):
    cfg = audit_config(tmp_path)
    soup, _ = _read(run_from_artifacts(cfg, make_artifacts(cfg)))
    assert soup.select_one("#schema-inferred") is None and soup.select_one("#leakage") is None


def test_twin_coverage_per_group_and_the_key_for_a_group_without_terms(tmp_path):
    from pipelines.config import config_from_dict
    from pipelines.core.runner import StageContext
    from pipelines.stages.counterfactuals.run import counterfactuals

    cfg = audit_config(tmp_path)
    arts = make_artifacts(cfg)
    sample = arts["data"]["audit_sample"]
    # the real stage, with pairs for "women" only: "men" gets none and must be named with its key
    raw = cfg.model_dump(mode="json", exclude_none=True)
    raw["evaluation"]["counterfactual"] = {"term_pairs": {"women": [["women", "men"]]}, "auto_axes": False,
                                           "use_redditbias_terms": False}
    stage_cfg = config_from_dict(raw, base_dir=tmp_path)
    ctx = StageContext(config=stage_cfg, run_id="r", scratch_dir=tmp_path, cache_dir=tmp_path,
                       log=logging.getLogger("test.report.cf"), show_progress=False)
    arts["counterfactuals"] = counterfactuals(ctx, audit_sample=sample)
    soup, summary = _read(run_from_artifacts(cfg, arts))

    women = sample[sample["group"] == "women"]
    expected = sum(bool(re.search(r"\bwomen\b", t, flags=re.IGNORECASE)) for t in women["text"])
    row = soup.select_one('#twin-coverage tr[data-group="women"]')
    cells = [c.get_text(" ", strip=True) for c in row.find_all("td")]
    assert cells[1] == str(len(women)) and cells[2] == str(expected)
    assert abs(float(row.select_one("td[data-value]")["data-value"]) - expected / len(women)) < 1e-12
    assert "evaluation.counterfactual.term_pairs" in cells[4]
    men = soup.select_one('#twin-coverage tr[data-group="men"]')
    assert "no term pairs" in men.get_text() and men.find_all("td")[2].get_text(strip=True) == "0"
    line = soup.select_one('p.missing-terms[data-group="men"]').get_text(" ", strip=True)
    assert "evaluation.counterfactual.axes.men" in line and "none of its examples has a twin" in line
    assert [m["group"] for m in summary["data"]["twins"]["missing_terms"]] == ["men"]
