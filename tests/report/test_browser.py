"""The report in a real browser: headless Debian Chromium driven by Playwright.

Every request the page makes is routed through ``page.route`` and recorded; only
the report file itself may load. No console errors, no dialogs (an escaped
``alert(...)`` payload must never run). A screenshot is kept under
``test-artifacts/`` (git-ignored). Without ``/usr/bin/chromium`` the test is
skipped locally and fails in CI (``CI=true``), where ``.ci/run`` installs it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import REPO
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
            body = page.inner_text("body")
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
