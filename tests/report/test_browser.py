"""The report in a real browser: headless Debian Chromium driven by Playwright.

Every request the page makes is routed through ``page.route`` and recorded; only
the report file itself may load. No console errors, no dialogs (an escaped
``alert(...)`` payload must never run). A screenshot is kept under
``test-artifacts/`` (git-ignored). Without ``/usr/bin/chromium`` the test is
skipped locally and fails in CI (``CI=true``), where ``.ci/run`` installs it.
"""

from __future__ import annotations

import json
import os
import unicodedata
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.report._pdf_text import page_texts, squeeze
from tests.report.conftest import PAYLOAD_GROUP, audit_config, make_artifacts, run_from_artifacts

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run"]
ARTIFACTS = REPO / "test-artifacts"


def _need_chromium():
    if CHROMIUM.exists():
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{CHROMIUM} is missing; CI must install Debian's chromium (see .ci/run).")
    pytest.skip(f"{CHROMIUM} not installed (apt-get install -y chromium)")


def _report(tmp_path) -> Path:
    from pipelines.core.history import record_run
    from pipelines.core.rundir import history_db_path

    cfg = audit_config(tmp_path)
    arts = make_artifacts(cfg, groups=("women", PAYLOAD_GROUP), payload=True)
    for i in range(2):  # two earlier runs in the history, for the trend charts
        record_run(history_db_path(cfg.runs_dir.parent), audit=cfg.audit.name, run_id=f"old{i}",
                   started_at=f"2026-01-0{i + 1}T00:00:00+00:00", status="complete", verdict="pass",
                   key_metrics={"finetuned": {"accuracy": 0.7 + i / 20, "roc_auc": 0.8, "worst_group_gap": 0.1},
                                "rag": {"accuracy": 0.5 + i / 20, "roc_auc": 0.6, "worst_group_gap": 0.2}})
    return run_from_artifacts(cfg, arts, run_id="browser") / "report" / "report.html"


@pytest.mark.browser
def test_report_opens_offline_without_errors(tmp_path):
    _need_chromium()
    from playwright.sync_api import sync_playwright

    path = _report(tmp_path)
    url = path.resolve().as_uri()
    requests, problems, dialogs = [], [], []

    def route(r):
        requests.append(r.request.url)
        if r.request.url == url:
            r.continue_()
        else:
            r.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.route("**/*", route)
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
                    if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}") if r.url != url else None)
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(url, wait_until="load")
            page.wait_for_timeout(300)
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
            verdict = page.inner_text("#verdict-badge")
            page.eval_on_selector_all("details", "els => els.forEach(e => { e.open = true; })")
            body = page.inner_text("body")  # what a reader sees with every section expanded
            charts = page.locator("svg.chart").count()
            sections = page.eval_on_selector_all("section", "els => els.map(e => e.id)")
        finally:
            browser.close()
    assert requests == [url], f"requests that leave the file: {[r for r in requests if r != url]}"
    assert problems == []
    assert dialogs == []
    assert verdict.strip().lower().replace(" ", "_") in ("pass", "fail", "insufficient_evidence")
    assert sections[0] == "verdict" and sections[-1] == "trend"
    assert "<script>alert('xss')</script>" in body  # shown as text, not run
    assert charts >= 10
    assert (ARTIFACTS / "report.png").stat().st_size > 10_000


# A harder first screen than the default fixture: many gates (more lines above the plots) and a long
# group name (the widest label column).
MANY_GATES = [
    {"metric": "accuracy", "bound": 0.55, "direction": "min"},
    {"metric": "accuracy", "bound": 0.95, "direction": "min"},
    {"metric": "fpr", "bound": 0.2, "direction": "max"},
    {"metric": "fnr", "bound": 0.2, "direction": "max"},
    {"metric": "fpr_difference", "bound": 0.05, "direction": "max"},
    {"metric": "flip_rate", "bound": 0.1, "direction": "max"},
    {"metric": "bpsn_auc", "bound": 0.9, "direction": "min"},
    {"metric": "subgroup_auc", "bound": 0.6, "direction": "min"},
]
LONG_GROUP = "people who describe themselves as members of a very long-named community"


def _decision_report(tmp_path) -> Path:
    cfg = audit_config(tmp_path, gates=MANY_GATES)
    arts = make_artifacts(cfg, groups=("women", "men", LONG_GROUP))
    return run_from_artifacts(cfg, arts, run_id="decision") / "report" / "report.html"


@pytest.mark.browser
def test_first_viewport_shows_the_verdict_and_the_first_forest_plot(tmp_path):
    _need_chromium()
    from playwright.sync_api import sync_playwright

    url = _decision_report(tmp_path).resolve().as_uri()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(url, wait_until="load")
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "report-first-screen.png"))  # the viewport only
            boxes = {sel: page.locator(sel).first.bounding_box()
                     for sel in ("#verdict-badge", "#verdict-words", "#gate-lines", "#forest-plots svg.forest")}
            words_shown = page.locator("#verdict-words").evaluate("e => e.scrollWidth <= e.clientWidth")
            page_width = page.evaluate("document.documentElement.scrollWidth")
            # every chart label, in every section: where it starts inside its own SVG (left clipping)
            page.eval_on_selector_all("details", "els => els.forEach(e => { e.open = true; })")
            labels = page.eval_on_selector_all(
                "svg text.label",
                "els => els.map(e => ({x: e.getBBox().x, w: e.getComputedTextLength(), text: e.firstChild.nodeValue,"
                " full: e.getAttribute('data-full'), svgW: e.ownerSVGElement.viewBox.baseVal.width}))")
        finally:
            browser.close()
    for sel, box in boxes.items():
        assert box is not None, sel
        assert box["x"] >= 0 and box["y"] >= 0, (sel, box)
        assert box["x"] + box["width"] <= 1280 and box["y"] + box["height"] <= 800, (sel, box)
    assert words_shown  # the verdict sentence is not cut
    assert page_width <= 1280  # no sideways scrolling of the page
    assert len(labels) > 20 and any(lab["full"] == LONG_GROUP for lab in labels)
    for lab in labels:
        assert lab["x"] >= 0, lab  # not clipped on the left
        assert lab["text"] == lab["full"] or (lab["text"].endswith("\u2026")
                                              and lab["full"].startswith(lab["text"][:-1].rstrip())), lab


@pytest.mark.browser
def test_print_to_pdf_has_the_verdict_on_page_one(tmp_path):
    """Headless Chromium's own print-to-PDF (what a reader gets from "Save as PDF")."""
    _need_chromium()
    import subprocess

    html = _decision_report(tmp_path)
    pdf = tmp_path / "report.pdf"
    done = subprocess.run([str(CHROMIUM), "--headless", *FLAGS, "--no-pdf-header-footer",
                           f"--print-to-pdf={pdf}", html.resolve().as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and pdf.is_file(), done.stderr[-2000:]
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "report.pdf").write_bytes(pdf.read_bytes())
    summary = json.loads((html.parent / "summary.json").read_text(encoding="utf-8"))
    # NFKC: Chromium's PDFs keep ligatures ("\ufb01" for "fi"); squeeze: spaces are glyph positions
    pages = [squeeze(unicodedata.normalize("NFKC", text)).lower() for text in page_texts(pdf)]
    assert len(pages) >= 2
    first = pages[0]
    assert squeeze(summary["verdict"]["overall"].replace("_", " ")) in first
    assert squeeze(summary["verdict"]["headline"]).lower() in first  # the verdict sentence, whole
    assert squeeze(summary["verdict"]["by_gate"][0]["label"]).lower() in first  # gate lines / plot captions
    # the collapsed sections print expanded: their content is in the document, after page 1
    rest = "".join(pages[1:])
    assert summary["provenance"]["config_hash"][:12] in rest
    assert "per-groupmetrics" in rest
