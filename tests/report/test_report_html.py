"""The report stage: sections in order, verdict, numbers that match summary.json and an
independent computation, absent parts, and escaping of dataset text."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from bs4 import BeautifulSoup
from sklearn.metrics import accuracy_score, roc_auc_score

from pipelines.report import SECTIONS, SUMMARY_VERSION
from pipelines.report._render import fmt
from tests.report.conftest import PAYLOAD_GROUP, audit_config, make_artifacts, run_from_artifacts


def _read(run_dir):
    html = (run_dir / "report" / "report.html").read_text(encoding="utf-8")
    summary = json.loads((run_dir / "report" / "summary.json").read_text(encoding="utf-8"))  # strict JSON
    return BeautifulSoup(html, "html.parser"), summary, html


def _render(tmp_path, cfg=None, run_id="r1", stages=None, **kwargs):
    cfg = cfg or audit_config(tmp_path)
    arts = make_artifacts(cfg, **kwargs)
    run_dir = run_from_artifacts(cfg, arts, run_id=run_id, **({"stages": stages} if stages else {}))
    soup, summary, html = _read(run_dir)
    return soup, summary, arts, html


def _float(cell) -> float:
    return float(cell["data-value"])


def test_sections_come_in_order_with_the_verdict_first(tmp_path):
    soup, summary, _, _ = _render(tmp_path)
    ids = [s["data-section"] for s in soup.find_all("section")]
    assert ids == [sid for sid, _ in SECTIONS] == summary["sections"]
    assert ids[0] == "verdict"
    assert summary["summary_version"] == SUMMARY_VERSION
    assert soup.find("meta", attrs={"name": "summary-version"})["content"] == str(SUMMARY_VERSION)
    # the per-variant parts come in the order inside each variant
    art = soup.select_one('article.variant[data-variant="rag"]')
    headings = [h.get_text(" ", strip=True) for h in art.find_all("h4")]
    order = ["Per-group metrics", "Disparities", "Unintended-bias AUCs", "Counterfactual flip rates", "Retrieval exposure"]
    positions = [next(i for i, h in enumerate(headings) if h.startswith(o)) for o in order]
    assert positions == sorted(positions)


def test_verdict_matches_the_gates(tmp_path):
    soup, summary, arts, _ = _render(tmp_path)
    fairness = arts["evaluate"]["fairness"]
    assert summary["verdict"]["overall"] == fairness["verdict"]
    badge = soup.select_one("#verdict-badge")
    assert badge["data-verdict"] == fairness["verdict"]
    rows = soup.select("#gates tbody tr")
    assert len(rows) == len(fairness["gates"]) == len(summary["verdict"]["gates"])
    for row, gate in zip(rows, fairness["gates"]):
        cells = [c.get_text(" ", strip=True) for c in row.find_all("td")]
        assert cells[0] == gate["gate"] and cells[1] == gate["variant"]
        assert cells[5].startswith(gate["status"].replace("_", " "))
    for name, v in summary["verdict"]["by_variant"].items():
        own = [g["status"] for g in fairness["gates"] if g["variant"] == name]
        expected = "fail" if "fail" in own else "insufficient_evidence" if any(s != "pass" for s in own) else "pass"
        assert v["verdict"] == expected
        assert soup.select_one(f'#verdict-by-variant tr[data-variant="{name}"] .badge')["data-verdict"] == expected


@pytest.mark.parametrize("gates, verdict, words, headline", [
    ([{"metric": "accuracy", "bound": 0.0, "direction": "min"}], "pass", "PASS: all 4 gate result(s) passed",
     "The 1 gate passed for every variant and group, intervals included."),
    ([{"metric": "accuracy", "bound": 0.99, "direction": "min", "variants": ["rag"]}], "fail",
     "FAIL: 2 of 2 gate result(s) failed: rag accuracy >= 0.99 for men: 0.675 [",
     "1 of 1 gate failed: accuracy >= 0.99."),
    ([{"metric": "accuracy", "bound": 0.99, "direction": "min", "variants": ["rag"]},
      {"metric": "accuracy", "bound": 0.0, "direction": "min"},
      {"metric": "flip_rate", "bound": 0.25, "direction": "max"}], "fail", "FAIL: 2 of 10 gate result(s) failed",
     "1 of 3 gates failed: accuracy >= 0.99; 1 undecided; 1 passed."),
    ([], "insufficient_evidence", "no fairness gates are configured", "No gate was judged: "),
])
def test_verdict_in_plain_words(tmp_path, gates, verdict, words, headline):
    soup, summary, _, _ = _render(tmp_path, cfg=audit_config(tmp_path, gates=gates))
    assert summary["verdict"]["overall"] == verdict
    assert soup.select_one("#verdict-badge")["data-verdict"] == verdict
    assert words in summary["verdict"]["plain_words"]
    assert words in soup.select_one("#verdict-plain").get_text()  # one click away
    # the first screen: a short, whole sentence counted per gate (the badge says the verdict)
    shown = soup.select_one("#verdict-words").get_text()
    assert shown == summary["verdict"]["headline"] and shown.startswith(headline)
    assert "..." not in shown
    for name, v in summary["verdict"]["by_variant"].items():
        li = soup.select_one(f'ul.variant-words li[data-variant="{name}"]').get_text()
        assert li == v["plain_words"]
        expected = {"pass": "passes all", "fail": "fails", "no_gates": "no gate was judged",
                    "insufficient_evidence": "undecided"}[v["verdict"]]
        assert expected in li


def test_key_numbers_match_summary_and_an_independent_computation(tmp_path):
    soup, summary, arts, _ = _render(tmp_path)
    sample = arts["data"]["audit_sample"]
    preds = arts["predict"]["predictions"]
    for name in ("finetuned", "rag"):
        p = preds[preds["variant"] == name].set_index("example_id").loc[sample["example_id"]]
        y = sample["label"].to_numpy()
        km = summary["key_metrics"][name]
        assert km["accuracy"] == pytest.approx(accuracy_score(y, p["predicted_label"]))
        assert km["roc_auc"] == pytest.approx(roc_auc_score(y, p["score"]))
        acc = {g: accuracy_score(y[(sample["group"] == g).to_numpy()], p["predicted_label"][(sample["group"] == g).to_numpy()])
               for g in ("men", "women")}
        assert km["worst_group_gap"] == pytest.approx(abs(acc["men"] - acc["women"]))
        tw = arts["predict"]["twin_predictions"]
        tw = tw[(tw["variant"] == name) & (tw["mode"] == "full")]
        flips = (tw["predicted_label"].to_numpy() != p.loc[tw["example_id"], "predicted_label"].to_numpy()).mean()
        assert km["flip_rate"] == pytest.approx(flips)
        perf = arts["predict"]["performance"][name]
        assert km["latency_ms_per_example"] == pytest.approx(perf["latency_ms_per_example"])
        assert km["build_seconds"] == pytest.approx(perf["build_seconds"])
    # the side-by-side table shows exactly the summary's numbers
    comp = summary["comparisons"][0]
    assert (comp["a"], comp["b"]) == ("finetuned", "rag")
    acc_row = next(r for r in comp["rows"] if r["metric"] == "accuracy")
    assert acc_row["difference"] == pytest.approx(summary["key_metrics"]["finetuned"]["accuracy"]
                                                  - summary["key_metrics"]["rag"]["accuracy"])
    # the paired-bootstrap CI of the difference, from the evaluation's comparison table
    assert acc_row["difference_ci_low"] <= acc_row["difference"] <= acc_row["difference_ci_high"]
    for row in comp["rows"]:
        tr = soup.select_one(f'#comparison-table-1 tr[data-metric="{row["metric"]}"]')
        for side in ("a", "b"):
            cell = tr.select_one(f'td[data-variant="{comp[side]}"]')
            ci = row.get(f"{side}_ci")
            shown = fmt(row[side]) + (f"[{fmt(ci[0])}, {fmt(ci[1])}]" if ci else "")
            assert cell.get_text(strip=True) == shown
            if ci:  # the variant's own interval brackets its value
                assert ci[0] <= row[side] <= ci[1]
            if row[side] is not None:
                assert _float(cell) == pytest.approx(row[side])
    # per-group cells show the evaluation's values
    for name, section in summary["variants"].items():
        for rec in section["group_metrics"]:
            if rec["metric"] not in ("accuracy", "fpr") or rec["feature"] != "group":
                continue
            cell = soup.select_one(f'article[data-variant="{name}"] table.group-metrics '
                                   f'tr[data-group="{rec["group"]}"] td[data-metric="{rec["metric"]}"]')
            assert _float(cell) == pytest.approx(rec["value"])
            assert cell.get_text(" ", strip=True).startswith(fmt(rec["value"]))
    # the interval charts: one point per group, a CI bar around it
    fig = soup.select_one('article[data-variant="finetuned"] figure[data-metric="accuracy"]')
    assert len(fig.select("circle.point")) == 2 and len(fig.select("line.ci")) == 2
    # data section
    assert int(soup.select_one("#data-rows")["data-value"]) == summary["data"]["rows"] == 160
    assert int(soup.select_one("#removed-total")["data-value"]) == 3
    eval_rate = soup.select_one('table.representation td[data-split="eval"]')
    assert _float(eval_rate) == pytest.approx(sample["label"].mean())
    assert [a.get_text(" ", strip=True) for a in soup.select("#anomalies td:nth-of-type(2)")] == ["n_tokens"]
    assert "yes" in soup.select_one("#drift").get_text()


def test_rag_exposure_and_examples(tmp_path):
    soup, summary, arts, _ = _render(tmp_path)
    rag = summary["variants"]["rag"]
    same = [r for r in rag["exposure"] if r["metric"] == "same_group_share" and r["group"] == "women"]
    # fixture: rank 1 is the query's own group, rank 2 is always "women"
    assert same[0]["value"] == pytest.approx(1.0)
    assert soup.select_one('article[data-variant="rag"] table.exposure') is not None
    assert soup.select_one('article[data-variant="finetuned"] table.exposure') is None
    flips = summary["examples"]["counterfactual_flips"]["finetuned"]
    assert 0 < len(flips) <= 6 and all(f["flipped"] for f in flips)
    assert len(soup.select('table.flips[data-variant="finetuned"] tbody tr')) == len(flips)


def test_report_without_evaluation_renders_and_says_what_is_missing(tmp_path):
    soup, summary, arts, _ = _render(tmp_path, variants=("finetuned",), with_twins=False, with_eval=False)
    assert [s["data-section"] for s in soup.find_all("section")] == [sid for sid, _ in SECTIONS]
    missing = {m["section"] for m in summary["missing"]}
    assert {"evaluation", "trend"} <= missing
    assert {li["data-missing"] for li in soup.select("#missing li")} == missing
    # no metric is recomputed by the report: without the evaluation there are none
    assert summary["variants"] == {} and summary["key_metrics"] == {} and summary["comparisons"] == []
    # nothing was evaluated, so nothing can pass
    assert summary["verdict"]["overall"] == "insufficient_evidence" and not summary["verdict"]["gates_evaluated"]
    assert "the evaluation did not run" in summary["verdict"]["plain_words"]


def test_report_with_only_the_data_stage(tmp_path):
    soup, summary, _, _ = _render(tmp_path, with_eval=False, stages=("load_data",))
    assert [s["data-section"] for s in soup.find_all("section")] == [sid for sid, _ in SECTIONS]
    assert {"variants", "evaluation", "data.validation"} <= {m["section"] for m in summary["missing"]}
    assert soup.select("table.representation tr[data-group]")  # the data section still renders
    assert summary["variants"] == {} and summary["comparisons"] == []


def test_dataset_text_and_group_names_never_become_markup(tmp_path):
    soup, summary, _, html = _render(tmp_path, groups=("women", PAYLOAD_GROUP), payload=True)
    assert not re.search(r"<\s*script", html, re.I)
    assert soup.find_all("script") == []
    assert soup.find_all(["img", "b", "i", "iframe", "object", "embed", "link"]) == []
    for el in soup.find_all(True):
        assert not any(attr.lower().startswith("on") for attr in el.attrs), el.name
        for attr in ("href", "src", "xlink:href"):
            assert not str(el.get(attr, "")).lower().startswith(("javascript:", "http")), el
    # the only SVGs are the report's own charts and legend keys; the payload's <svg onload> stayed text
    assert all({"chart", "key"} & set(svg.get("class", [])) for svg in soup.find_all("svg"))
    text = soup.get_text()
    shown = [e["text"] for items in summary["examples"]["counterfactual_flips"].values() for e in items]
    shown += [e["text"] for groups in summary["examples"]["worst_errors"].values() for items in groups.values()
              for e in items]
    assert any("<script>" in t for t in shown) and any("onerror" in t for t in shown)
    for t in shown:
        assert t in text  # shown verbatim, as text
    assert PAYLOAD_GROUP in text
    # the group name also reaches the SVG charts, as text
    assert any(PAYLOAD_GROUP in t.get_text() for t in soup.select("svg text"))
    assert "A <i>synthetic</i> audit" in text
    assert PAYLOAD_GROUP in summary["data"]["splits"]["eval"]["groups"]["group"]


def test_summary_is_strict_json_and_deterministic(tmp_path):
    from pipelines.report import write_report

    cfg = audit_config(tmp_path)
    run_dir = run_from_artifacts(cfg, make_artifacts(cfg))
    a = (run_dir / "report" / "summary.json").read_text()
    write_report(run_dir, config=cfg)  # rendering again changes nothing
    assert (run_dir / "report" / "summary.json").read_text() == a
    for name, km in json.loads(a)["key_metrics"].items():
        assert all(v is None or np.isfinite(v) for v in km.values())


def test_import_is_light():
    import subprocess
    import sys

    from tests.conftest import REPO

    code = ("import sys; import pipelines.report, pipelines.core.history; "
            "print([m for m in ('tensorflow', 'tensorflow_data_validation', 'torch', 'transformers', "
            "'apache_beam') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "[]"


def test_single_variant_without_twins_but_with_the_evaluation(tmp_path):
    soup, summary, arts, _ = _render(tmp_path, variants=("finetuned",), with_twins=False)
    missing = {m["section"] for m in summary["missing"]}
    assert {"counterfactuals", "exposure", "comparison"} <= missing and "evaluation" not in missing
    assert summary["key_metrics"]["finetuned"]["flip_rate"] is None
    assert "No counterfactual twins" in soup.select_one('article[data-variant="finetuned"]').get_text()
    assert summary["examples"]["counterfactual_flips"] == {}
    assert summary["examples"]["worst_errors"]["finetuned"]  # errors per group still shown


def test_a_variant_scored_on_beam_says_its_timings_are_not_comparable(tmp_path):
    cfg = audit_config(tmp_path)
    arts = make_artifacts(cfg)
    args = ["--runner=DirectRunner", "--direct_running_mode=multi_processing", "--direct_num_workers=2"]
    arts["predict"]["performance"]["rag"]["beam"] = {"pipeline_args": args, "elements": 123, "seconds": 9.5,
                                                     "threads_per_worker": 1}
    soup, summary, _ = _read(run_from_artifacts(cfg, arts))
    notes = soup.select("[data-beam-variant]")
    assert [n["data-beam-variant"] for n in notes] == ["rag"]  # only the variant that ran on Beam
    text = notes[0].get_text(" ", strip=True)
    assert " ".join(args) in text and "123 texts" in text and "not comparable" in text
    assert summary["variants"]["rag"]["performance"]["beam"]["elements"] == 123
