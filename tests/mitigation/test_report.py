"""The report's mitigation section and summary key, on a run made by the real runner (stub upstream stages, the
real mitigate stage), parsed as HTML; and the What-If Tool export's mitigated columns."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pipelines.fairness import RESULT_ARTIFACTS, FairnessResult
from tests.report.conftest import audit_config, make_artifacts

bs4 = pytest.importorskip("bs4")


def _validation_predictions(sample: pd.DataFrame, predictions: pd.DataFrame) -> pd.DataFrame:
    """Validation scores: the audit rows' scores under other ids (the stub run has no separate validation split)."""
    frames = []
    for v, part in predictions.groupby("variant"):
        part = part.set_index("example_id").loc[sample["example_id"]]
        frames.append(pd.DataFrame({"variant": v, "example_id": "val-" + sample["example_id"],
                                    "label": sample["label"].to_numpy(), "raw_score": part["score"].to_numpy(),
                                    "score": part["score"].to_numpy(),
                                    "predicted_label": part["predicted_label"].to_numpy(),
                                    "group": sample["group"].to_numpy()}))
    return pd.concat(frames, ignore_index=True)


def _run(tmp_path, *, mitigation=None, verdict_on="deployed", one_label_group=None):
    from pipelines.core.runner import Stage, run_audit
    from pipelines.graph import data_fingerprint_of, run_verdict
    from pipelines.report import post_run
    from pipelines.stages.mitigate import SPEC

    extra = {"mitigation": {"enabled": True, "verdict_on": verdict_on, "tolerances": [0.05, 0.2]}} \
        if mitigation else None
    cfg = audit_config(tmp_path, gates=[{"metric": "equalized_odds_difference", "bound": 0.3, "direction": "max"},
                                        {"metric": "flip_rate", "bound": 0.5, "direction": "max"}], extra=extra)
    arts = make_artifacts(cfg, n_per=60, quality={"finetuned": 0.85, "rag": 0.6})
    sample = arts["data"]["audit_sample"]
    # plant a gap: men's negatives score high for rag
    p = arts["predict"]["predictions"]
    men_neg = p["example_id"].isin(sample.loc[(sample["group"] == "men") & (sample["label"] == 0), "example_id"])
    p.loc[men_neg & (p["variant"] == "rag"), "score"] = np.clip(p.loc[men_neg & (p["variant"] == "rag"), "score"]
                                                                + 0.3, 0, 1)
    p["predicted_label"] = (p["score"] >= 0.5).astype(np.int64)
    arts["predict"]["validation_predictions"] = vp = _validation_predictions(sample, p)
    if one_label_group:  # (variant, group): every validation label 1, so no thresholds can be fitted for it
        v, g = one_label_group
        vp.loc[(vp["variant"] == v) & (vp["group"] == g), "label"] = 1
    from pipelines.fairness import evaluate_fairness

    arts["evaluate"] = evaluate_fairness(audit_sample=sample, predictions=p, config=cfg.evaluation,
                                         data_features=("group",), seed=cfg.seed,
                                         variant_order=("finetuned", "rag")).to_artifacts()
    keys = {"load_data": "data", "build_variants": "variants", "predict": "predict", "evaluate": "evaluate"}
    stages = [Stage(name=n, fn=(lambda part: (lambda ctx: dict(part)))(arts[k]), cache=False)
              for n, k in keys.items()]
    if mitigation:
        stages.append(SPEC)
    result = run_audit(cfg, stages, run_id="r1", started_at="2026-12-01T00:00:00+00:00", show_progress=False,
                       data_fingerprint=data_fingerprint_of, finalize=run_verdict)
    post_run(result.run_dir, config=cfg)
    summary = json.loads((result.run_dir / "report" / "summary.json").read_text())
    soup = bs4.BeautifulSoup((result.run_dir / "report" / "report.html").read_text(), "html.parser")
    return result, summary, soup


@pytest.fixture(scope="module")
def mitigated_run(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("mitigated"), mitigation=True)


def test_summary_has_before_after_and_difference_from_the_stage(mitigated_run):
    result, summary, _ = mitigated_run
    from pipelines.core.runner import load_stage_outputs

    stage = load_stage_outputs(result.run_dir / "mitigate")
    fr = FairnessResult.from_artifacts({k: stage[k] for k in RESULT_ARTIFACTS})
    mit = summary["mitigation"]
    assert mit["order"] == ["finetuned", "rag"] and mit["verdict_on"] == "deployed"
    for v in ("finetuned", "rag"):
        eo = mit["variants"][v]["equalized_odds"]
        assert eo["before"]["value"] == pytest.approx(fr.estimate(
            "disparities", variant=v, feature="group", metric="equalized_odds_difference")["value"])
        assert eo["after"]["value"] == pytest.approx(fr.estimate(
            "disparities", variant=v + "+thresholds", feature="group", metric="equalized_odds_difference")["value"])
        cost = mit["variants"][v]["accuracy_cost"]
        assert cost["difference"]["value"] == pytest.approx(cost["after"]["value"] - cost["before"]["value"])
        assert cost["difference"]["ci_low"] <= cost["difference"]["value"] <= cost["difference"]["ci_high"]
        assert {p["kind"] for p in mit["variants"][v]["tradeoff"]} == {"deployed", "fairlearn", "single_threshold",
                                                                       "relaxed"}
    assert "group at prediction time" in mit["caveat"]
    # the verdict is still the deployed models' (the evaluate stage's gates)
    assert result.manifest["verdict"] == summary["verdict"]["overall"]


def test_html_shows_each_variants_gap_before_and_after_with_intervals(mitigated_run):
    _, summary, soup = mitigated_run
    section = soup.find("section", id="mitigation")
    assert section is not None
    caveat = " ".join(section.find(id="mitigation-caveat").get_text(" ").split())
    assert "Per-group thresholds need each example's group at prediction time" in caveat
    assert "disparate treatment" in caveat
    for v in ("finetuned", "rag"):
        table = section.find("table", class_="mitigation-summary", attrs={"data-variant": v})
        row = table.find("tr", attrs={"data-metric": "equalized_odds_difference"})
        cells = {td["data-which"]: td for td in row.find_all("td", attrs={"data-which": True})}
        want = summary["mitigation"]["variants"][v]["equalized_odds"]
        for which in ("before", "after", "difference"):
            assert float(cells[which]["data-value"]) == pytest.approx(want[which]["value"])
            assert cells[which].find("span", class_="ci") is not None  # the interval is shown
        acc = table.find("tr", attrs={"data-metric": "accuracy"})
        assert "accuracy cost" in acc.get_text()
        svg = section.find("figure", class_="tradeoff", attrs={"data-variant": v}).find("svg")
        assert svg.find(class_="point-chosen") is not None and svg.find(class_="point-deployed") is not None
        assert len(svg.find_all(class_="point-relaxed")) >= 1


def test_without_mitigation_the_section_says_so(tmp_path):
    _, summary, soup = _run(tmp_path, mitigation=False)
    assert summary["mitigation"] is None
    assert soup.find(id="mitigation-off") is not None
    assert not any(m["section"] == "mitigation" for m in summary["missing"])


def test_gating_the_mitigated_twins_changes_the_verdict_source(tmp_path):
    result, summary, soup = _run(tmp_path, mitigation=True, verdict_on="mitigated")
    assert any("verdict_on: mitigated" in r for r in result.manifest["verdict_reasons"])
    assert "judges the mitigated twins" in " ".join(soup.find("section", id="mitigation").get_text(" ").split())


def test_a_variant_that_cannot_be_mitigated_is_named_with_why_and_the_run_completes(tmp_path):
    result, summary, soup = _run(tmp_path, mitigation=True, verdict_on="mitigated", one_label_group=("rag", "men"))
    assert result.manifest["status"] == "complete"
    assert summary["mitigation"]["order"] == ["finetuned"]
    (why,) = summary["mitigation"]["not_mitigated"]["rag"]
    assert "group 'men' of `group` has" in why
    box = soup.find("section", id="mitigation").find(class_="not-mitigated", attrs={"data-variant": "rag"})
    text = " ".join(box.get_text(" ").split())
    assert "rag was not mitigated" in text and "group 'men'" in text and "not evaluable" in text
    # the verdict judges the twins: rag's missing twin is not evaluable, so the run cannot pass
    assert result.manifest["verdict"] != "pass"
    assert any("rag+thresholds" in line and "NOT EVALUABLE" in line for line in result.manifest["verdict_attention"])


def test_wit_table_gets_one_mitigated_column_pair_per_variant(mitigated_run):
    from pipelines.core.runner import load_stage_outputs
    from pipelines.stages.export_wit.run import add_mitigated, wit_table

    result, _, _ = mitigated_run
    data = load_stage_outputs(result.run_dir / "load_data")
    preds = load_stage_outputs(result.run_dir / "predict")["predictions"]
    mitigated = load_stage_outputs(result.run_dir / "mitigate")["mitigated_predictions"]
    table, names = wit_table(audit_sample=data["audit_sample"], predictions=preds, sensitive_features=("group",))
    described = add_mitigated(table, mitigated)
    assert set(described) == {"finetuned", "rag"}
    for v in names:
        want = mitigated[mitigated["source_variant"] == v].set_index("example_id").loc[table["example_id"]]
        assert table[f"mitigated_label_{v}"].tolist() == want["predicted_label"].tolist()
        assert described[v]["twin"] == f"{v}+thresholds"
