"""The report's first screen: the verdict, one line per gate that needs attention, a forest plot per
gate whose points, intervals and bound are the summary's numbers, and every other section collapsed.
Labels of any length fit their column (shortened, with the full name as a tooltip)."""

from __future__ import annotations

import json

import pytest
from bs4 import BeautifulSoup

from pipelines.report import SECTIONS
from pipelines.report._svg import text_width
from tests.report.conftest import audit_config, make_artifacts, run_from_artifacts

LONG_GROUP = "people who describe themselves as members of a very long-named community"

# one gate of each outcome on the synthetic data (finetuned ~0.85 accurate, rag ~0.65):
GATES = [
    {"metric": "accuracy", "bound": 0.55, "direction": "min"},              # passes for finetuned
    {"metric": "accuracy", "bound": 0.95, "direction": "min"},              # fails
    {"metric": "fpr_difference", "bound": 0.9, "direction": "max"},
    {"metric": "flip_rate", "bound": 0.5, "direction": "max"},
]


GATES_LABELS = ["accuracy >= 0.55", "accuracy >= 0.95", "fpr_difference <= 0.9", "flip_rate <= 0.5"]


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("first")
    cfg = audit_config(tmp, gates=GATES)
    run_dir = run_from_artifacts(cfg, make_artifacts(cfg, groups=("women", LONG_GROUP)))
    html = (run_dir / "report" / "report.html").read_text(encoding="utf-8")
    summary = json.loads((run_dir / "report" / "summary.json").read_text(encoding="utf-8"))
    return BeautifulSoup(html, "html.parser"), summary


def _expected_status(results: list[dict]) -> str:
    """The gate's status from its results, written out independently of pipelines.report._verdict."""
    counted = [r["result"] for r in results if not (r.get("optional") and r["result"] == "not_evaluable")]
    if "fail" in counted:
        return "fail"
    if "insufficient_evidence" in counted:
        return "insufficient_evidence"
    if "not_evaluable" in counted or not counted:
        return "not_evaluable"
    return "pass"


def _unit(r: dict) -> str:
    return str(r["group"]) if r["group"] is not None else (f"{r['feature']} (gap)" if r["feature"] else "overall")


def test_only_the_verdict_is_open_and_every_detail_section_is_collapsed(page):
    soup, _ = page
    sections = soup.find_all("section")
    assert [s["data-section"] for s in sections] == [sid for sid, _ in SECTIONS]
    verdict = sections[0]
    assert "detail" not in verdict["class"]
    for decision in ("#verdict-badge", "#verdict-words", "#gate-lines", "#forest-plots"):
        assert verdict.select_one(decision).find_parent("details") is None, decision  # never behind a click
    assert verdict.select("svg.forest")  # the pictures are on the first screen, not behind a click
    for section in sections[1:]:
        details = section.find("details", recursive=False)
        assert details is not None and not details.has_attr("open"), section["data-section"]
        assert details.find("summary").find("h2")  # the heading stays visible when collapsed


def test_verdict_headline_is_whole_and_counts_the_gates(page):
    soup, summary = page
    shown = soup.select_one("#verdict-words").get_text()
    by_gate: dict[int, list[dict]] = {}
    for g in summary["verdict"]["gates"]:
        by_gate.setdefault(g["gate_index"], []).append(g)
    status = {i: _expected_status(rs) for i, rs in by_gate.items()}
    failed = [GATES_LABELS[i] for i in sorted(status) if status[i] == "fail"]
    assert shown.startswith(f"{len(failed)} of {len(GATES)} gates failed: {', '.join(failed)}")
    assert "..." not in shown


def test_one_line_per_gate_that_needs_attention(page):
    soup, summary = page
    gates = summary["verdict"]["gates"]
    by_gate: dict[int, list[dict]] = {}
    for g in gates:
        by_gate.setdefault(g["gate_index"], []).append(g)
    assert sorted(by_gate) == list(range(len(GATES)))
    expected = {i: _expected_status(rs) for i, rs in by_gate.items()}
    assert "fail" in expected.values() and "pass" in expected.values()  # the fixture covers both
    lines = {int(li["data-gate-index"]): li for li in soup.select("#gate-lines > li")}
    attention = {i for i, rs in by_gate.items() if expected[i] != "pass" or any(r["near_bound"] for r in rs)}
    assert set(lines) == attention
    for i, li in lines.items():
        assert li["data-status"] == expected[i]
        for part in li.select("span.part"):
            mine = [r for r in by_gate[i] if r["variant"] == part["data-variant"]]
            assert part["data-status"] == _expected_status(mine)
            for r in mine:
                if r["result"] == "fail":  # a failed unit is named with its value
                    assert str(r["group"] if r["group"] is not None else r["feature"]) in part.get_text()
                    assert f"{r['value']:.3f}" in part.get_text()
    # severity first: fail lines before the others
    statuses = [li["data-status"] for li in soup.select("#gate-lines > li")]
    assert statuses == sorted(statuses, key=lambda s: s != "fail")
    clean = {int(a["href"].split("-")[1]) for a in soup.select("#gate-pass a")}
    assert clean == set(by_gate) - attention


def test_forest_plot_points_are_the_gate_results(page):
    soup, summary = page
    gates = summary["verdict"]["gates"]
    plots = soup.select("#forest-plots svg.forest")
    assert sorted(int(p["data-gate-index"]) for p in plots) == list(range(len(GATES)))
    for plot in plots:
        index = int(plot["data-gate-index"])
        mine = [g for g in gates if g["gate_index"] == index]
        units = plot.select("g.unit")
        assert len(units) == len(mine)
        bound = GATES[index]["bound"]
        assert float(plot["data-bound"]) == bound
        lines = plot.select("line.bound")
        assert {ln["data-variant"] for ln in lines} == {g["variant"] for g in mine}  # a panel per variant
        bound_x = {ln["data-variant"]: float(ln["data-x"]) for ln in lines}
        for g in mine:
            el = plot.select_one(f'g.unit[data-variant="{g["variant"]}"][data-group="{_unit(g)}"]')
            assert el is not None, (index, g["variant"], _unit(g))
            assert el["data-result"] == g["result"]
            if g["value"] is None:
                assert el.get("data-value") is None and "n/a" in el.get_text()
                continue
            assert float(el["data-value"]) == g["value"]  # exact: the summary's number
            if g["ci_low"] is not None:
                assert (float(el["data-ci-low"]), float(el["data-ci-high"])) == (g["ci_low"], g["ci_high"])
                assert float(el["data-x1"]) <= float(el["data-x"]) <= float(el["data-x2"])
                # the interval is drawn on the side of the bound where its numbers are
                assert (float(el["data-x1"]) < bound_x[g["variant"]]) == (g["ci_low"] < bound)
                assert (float(el["data-x2"]) > bound_x[g["variant"]]) == (g["ci_high"] > bound)
            assert (float(el["data-x"]) < bound_x[g["variant"]]) == (g["value"] < bound)
            assert el.select_one(".point") is not None
        # the plot says in words what it shows (screen readers, text search)
        desc = plot.find("desc").get_text()
        assert all(g["variant"] in desc for g in mine)


def test_long_group_names_are_shortened_with_the_full_name_kept(page):
    soup, _ = page
    labels = [t for t in soup.select("svg text.label") if t.get("data-full") == LONG_GROUP]
    assert len(labels) >= 3  # forest plots and per-group charts
    for t in labels:
        shown = t.find(string=True, recursive=False)
        assert shown != LONG_GROUP and shown.endswith("\u2026") and LONG_GROUP.startswith(shown[:-1].rstrip())
        assert t.find("title").get_text() == LONG_GROUP  # the tooltip
        # the label ends at x (text-anchor end) and its estimated width fits left of it
        assert text_width(shown) <= float(t["x"]) - 4
