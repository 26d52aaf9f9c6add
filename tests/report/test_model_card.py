"""The model card: ``report/model_card.json`` (a Model Card Toolkit v0.0.2 card per variant) and
``report/model_card.md``, both built from ``summary.json`` only: their numbers must equal the summary's."""

from __future__ import annotations

import json
import re

import jsonschema
import pytest

from tests.report.conftest import audit_config, make_artifacts, run_from_artifacts

# The Model Card Toolkit's model_card.schema.json v0.0.2, written out from its field list
# (tensorflow/model-card-toolkit, model_card_toolkit/schema/v0.0.2): every object closed, so a key
# the Toolkit does not know fails validation.
_S = {"type": "string"}


def _obj(**props):
    return {"type": "object", "properties": props, "additionalProperties": False}


def _arr(item):
    return {"type": "array", "items": item}


MCT_V002 = _obj(
    schema_version=_S,
    model_details=_obj(
        name=_S, overview=_S, documentation=_S, path=_S,
        owners=_arr(_obj(name=_S, contact=_S)),
        version=_obj(name=_S, date={"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"}, diff=_S),
        licenses=_arr(_obj(identifier=_S, custom_text=_S)),
        references=_arr(_obj(reference=_S)),
        citations=_arr(_obj(style=_S, citation=_S))),
    model_parameters=_obj(
        model_architecture=_S, input_format=_S, output_format=_S,
        input_format_map=_arr(_obj(key=_S, value=_S)), output_format_map=_arr(_obj(key=_S, value=_S)),
        data=_arr(_obj(name=_S, link=_S, description=_S, sensitive=_obj(sensitive_data=_arr(_S)),
                       graphics=_obj(description=_S, collection=_arr(_obj(name=_S, image=_S)))))),
    quantitative_analysis=_obj(
        performance_metrics=_arr(_obj(type=_S, value=_S, slice=_S,
                                      confidence_interval=_obj(lower_bound=_S, upper_bound=_S))),
        graphics=_obj(description=_S, collection=_arr(_obj(name=_S, image=_S)))),
    considerations=_obj(
        users=_arr(_obj(description=_S)), use_cases=_arr(_obj(description=_S)),
        limitations=_arr(_obj(description=_S)), tradeoffs=_arr(_obj(description=_S)),
        ethical_considerations=_arr(_obj(name=_S, mitigation_strategy=_S))),
)

CARD_INFO = {"owners": [{"name": "Fairness team", "contact": "fair@example.org"}], "license": "Apache-2.0",
             "intended_uses": ["flag comments for human review"], "intended_users": ["trust & safety reviewers"],
             "out_of_scope_uses": ["automatic removal without review"],
             "ethical_considerations": [{"name": "labels reflect annotators' views",
                                         "mitigation_strategy": "double annotation"}]}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("card")
    cfg = audit_config(tmp, extra={"report": {"top_examples": 6, "model_card": CARD_INFO}})
    run_dir = run_from_artifacts(cfg, make_artifacts(cfg, groups=("women", "men | <b>others</b>")))
    report = run_dir / "report"
    return {"summary": json.loads((report / "summary.json").read_text()),
            "card": json.loads((report / "model_card.json").read_text()),
            "md": (report / "model_card.md").read_text(encoding="utf-8")}


def _estimates(v: dict) -> dict[tuple[str, str], dict]:
    """Every estimate of a summary variant section, keyed the way the card names it (independently)."""
    out = {}
    for m, e in v["overall"].items():
        out[(m, "overall")] = e
    for key in ("group_metrics", "bias_auc"):
        for r in v[key]:
            out[(r["metric"], f"{r['feature']}={r['group']}")] = r
    for r in v["disparities"]:
        out[(r["metric"], r["feature"])] = r
    for r in v["counterfactual"]:
        where = f"{r['feature']}={r['group']}" if r["group"] is not None else r["feature"]
        out[(f"{r['metric']} ({r['mode']} twins)", where)] = r
    for r in v["exposure"]:
        where = f"{r['feature']}={r['group']}" if r["group"] is not None else r["feature"]
        out[(f"retrieval {r['metric']}", where)] = r
    return out


def test_each_variant_has_a_model_card_toolkit_card(run):
    card, summary = run["card"], run["summary"]
    assert list(card["variants"]) == summary["variant_order"] == ["finetuned", "rag"]
    for name, part in card["variants"].items():
        mct = part["model_card"]
        jsonschema.validate(mct, MCT_V002)  # only the Toolkit's fields, with its types
        assert mct["schema_version"] == "0.0.2"
        assert mct["model_details"]["name"] == name
        assert mct["model_details"]["owners"] == [{"name": "Fairness team", "contact": "fair@example.org"}]
        assert mct["model_details"]["licenses"] == [{"identifier": "Apache-2.0"}]
        assert {"description": "trust & safety reviewers"} in mct["considerations"]["users"]
        risks = [r["name"] for r in mct["considerations"]["ethical_considerations"]]
        assert "labels reflect annotators' views" in risks
        assert part["verdict"] == summary["verdict"]["by_variant"][name]["verdict"]


def test_card_numbers_equal_the_summary(run):
    card, summary = run["card"], run["summary"]
    for name, part in card["variants"].items():
        expected = _estimates(summary["variants"][name])
        metrics = part["model_card"]["quantitative_analysis"]["performance_metrics"]
        assert len(metrics) >= 40
        seen = set()
        for m in metrics:
            est = expected[(m["type"], m["slice"])]
            assert float(m["value"]) == est["value"]  # exact: copied, not recomputed or rounded
            ci = m.get("confidence_interval")
            if est["ci_low"] is None:
                assert ci is None
            else:
                assert (float(ci["lower_bound"]), float(ci["upper_bound"])) == (est["ci_low"], est["ci_high"])
            seen.add((m["type"], m["slice"]))
        # every estimate with a value is in the card (but the sample size, which is not a performance metric)
        missing = {k for k, e in expected.items() if e["value"] is not None and k[0] != "count"} - seen
        assert not missing
        assert part["gates"] == [g for g in summary["verdict"]["gates"] if g["variant"] == name]


def _table_after(md: str, heading: str, start: int = 0) -> list[list[str]]:
    """The rows (cells) of the first Markdown table after ``heading`` (from ``start``)."""
    i = md.index(heading, start)
    lines = md[i:].splitlines()
    first = next(k for k, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[first + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]])
    return rows


def _f(x: float | None) -> str:
    return "n/a" if x is None else f"{x:,.3f}"


def test_markdown_has_the_sections_and_the_summary_numbers(run):
    md, summary = run["md"], run["summary"]
    heads = [line[3:] for line in md.splitlines() if line.startswith("## ")]
    assert heads == ["Model details", "Intended use", "Factors", "Metrics", "Evaluation data", "Training data",
                     "Quantitative analyses", "Ethical considerations", "Caveats and recommendations"]
    assert "flag comments for human review" in md and "automatic removal without review" in md
    for name in summary["variant_order"]:
        at = md.index(f"### {name}: ", md.index("## Quantitative analyses"))
        gates = [g for g in summary["verdict"]["gates"] if g["variant"] == name]
        rows = _table_after(md, "Gate results:", at)
        assert len(rows) == len(gates)
        for row, g in zip(rows, gates):
            assert len(row) == 5  # a group name with "|" and "<b>" does not break the table
            shown = _f(g["value"]) + (f" [{_f(g['ci_low'])}, {_f(g['ci_high'])}]" if g["ci_low"] is not None else "")
            assert row[2] == (shown if g["value"] is not None else "n/a")
        group_rows = _table_after(md, "Per group of `group`", at)
        v = summary["variants"][name]
        for row in group_rows:
            group = row[0].replace("\\|", "|").replace("&lt;", "<").replace("&gt;", ">")
            acc = next(r for r in v["group_metrics"] if r["group"] == group and r["metric"] == "accuracy")
            assert row[2] == f"{_f(acc['value'])} [{_f(acc['ci_low'])}, {_f(acc['ci_high'])}]"
    assert "<b>" not in md  # text from the data is escaped


def test_card_says_what_the_config_does_not_state(tmp_path):
    cfg = audit_config(tmp_path)
    run_dir = run_from_artifacts(cfg, make_artifacts(cfg, variants=("finetuned",), with_twins=False))
    md = (run_dir / "report" / "model_card.md").read_text(encoding="utf-8")
    assert "not stated in the audit config (report.model_card.intended_uses)" in md
    assert "not stated in the audit config (report.model_card.owners)" in md
    card = json.loads((run_dir / "report" / "model_card.json").read_text())
    jsonschema.validate(card["variants"]["finetuned"]["model_card"], MCT_V002)
    assert "owners" not in card["variants"]["finetuned"]["model_card"]["model_details"]  # never made up
