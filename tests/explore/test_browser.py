"""The What-If Tool notebook in a real browser: headless Chromium driving the classic Notebook.

The server is started the way `make notebook` starts it (``python -m pipelines.explore.notebook_server``),
on 127.0.0.1 with a token, serving a copy of ``notebooks/`` (so the repository's notebook is never
autosaved with outputs). Screenshots land in ``test-artifacts/wit/`` (git-ignored).
"""

from __future__ import annotations

import os
import re
import shutil
import time

import pytest

from tests.explore._browser import (
    CHROMIUM_FLAGS,
    DEEP_TEXT_JS,
    FIND_TEXTAREA_JS,
    INPUT_VALUE_JS,
    LAST_CELL_TEXT_JS,
    SELECT_DATAPOINT_JS,
    chromium_path,
    notebook_server,
)
from tests.explore.conftest import REPO

pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]

ARTIFACTS = REPO / "test-artifacts" / "wit"
EDITED_TEXT = "muslim men are good and kind people"


@pytest.fixture(scope="module")
def chromium():
    path = chromium_path()
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("Chromium is not installed (/usr/bin/chromium); CI must install it (.ci/run does, with apt-get).")
        pytest.skip("Chromium is not installed (/usr/bin/chromium); `apt-get install chromium` to run the browser tests.")
    pytest.importorskip("playwright")
    return path


def test_what_if_tool_compare_mode_in_chromium(tiny_run, chromium, tmp_path):
    from playwright.sync_api import sync_playwright

    from pipelines.explore import load_export, load_predictors
    from pipelines.explore.notebook_server import free_port

    export = load_export(tiny_run)
    n = export.example_count
    first_text = export.frame()["text"].iloc[0]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    served = tmp_path / "notebooks"
    served.mkdir()
    shutil.copy(REPO / "notebooks" / "what_if_tool.ipynb", served)
    port, token = free_port(), "wit-browser-test"
    console: list[str] = []

    with notebook_server(served, run_dir=tiny_run, port=port, token=token, log_path=tmp_path / "server.log") as url:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(chromium), args=CHROMIUM_FLAGS, headless=True)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1100})
                page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
                page.goto(f"{url}/notebooks/what_if_tool.ipynb?token={token}")
                page.wait_for_function("() => window.Jupyter && Jupyter.notebook && Jupyter.notebook.kernel "
                                       "&& Jupyter.notebook.kernel.is_connected()", timeout=90_000)
                page.evaluate("() => Jupyter.notebook.execute_all_cells()")

                wit_frame = page.frame_locator("iframe[src*='wit-widget/wit_jupyter.html']")
                loaded = wit_frame.get_by_text(re.compile(r"\d+ datapoints loaded")).first
                loaded.wait_for(timeout=240_000)
                assert loaded.text_content().strip() == f"{n} datapoints loaded"
                # both models answered for every datapoint: the scatter plots one model's score against the other's
                iframe = page.locator("iframe[src*='wit-widget/wit_jupyter.html']")
                iframe.scroll_into_view_if_needed()
                frame = next(f for f in page.frames if "wit_jupyter.html" in f.url)
                deadline = time.time() + 120
                while time.time() < deadline:
                    text = frame.evaluate(DEEP_TEXT_JS)
                    if "Inference score finetuned" in text and "Inference score rag" in text:
                        break
                    time.sleep(1)
                assert "Model: finetuned" in text and "Model: rag" in text
                iframe.screenshot(path=str(ARTIFACTS / "what_if_tool.png"))

                # Performance & Fairness: the target is preset, the sensitive features slice both models
                wit_frame.get_by_text("Performance & Fairness").first.click()
                truth = wit_frame.locator('paper-dropdown-menu[label="Ground Truth Feature"]').first
                truth.wait_for(timeout=30_000)
                assert frame.evaluate(INPUT_VALUE_JS, "Ground Truth Feature") == "label"
                wit_frame.locator('paper-dropdown-menu[label="Slice by"]').first.click()
                items = wit_frame.locator('paper-dropdown-menu[label="Slice by"] paper-item')
                options = {t.strip() for t in items.all_text_contents()}
                assert {"group", "axis"} <= options, options
                items.filter(has_text=re.compile(r"^\s*group\s*$")).first.click()
                n_groups = export.frame()["group"].nunique()
                wit_frame.get_by_text(f"Custom thresholds for {n_groups} values of group").wait_for(timeout=30_000)
                iframe.screenshot(path=str(ARTIFACTS / "what_if_tool_fairness.png"))
                wit_frame.get_by_text("Datapoint editor").first.click()

                # select datapoint 0, edit its text, press Predict: both real models re-score it live
                assert frame.evaluate(SELECT_DATAPOINT_JS, 0)
                wit_frame.get_by_text("Edit - Datapoint 0").wait_for(timeout=30_000)
                area = frame.evaluate_handle(FIND_TEXTAREA_JS, first_text).as_element()
                assert area is not None, "the datapoint editor shows no text field for datapoint 0"
                area.fill(EDITED_TEXT)
                area.press("Tab")
                wit_frame.locator("paper-button", has_text="Predict").click()
                page.evaluate("() => Jupyter.notebook.execute_cells([Jupyter.notebook.ncells() - 1])")
                page.wait_for_function(f"() => ({LAST_CELL_TEXT_JS})().includes(\"'live_texts': 1\")",
                                       timeout=120_000)
                counters = page.evaluate(LAST_CELL_TEXT_JS)
                assert counters.count("'live_texts': 1") == 2, counters  # finetuned and rag, one text each
                assert counters.count(f"'reused': {n}") == 2, counters  # the initial load used the exported scores
                time.sleep(2)
                iframe.screenshot(path=str(ARTIFACTS / "what_if_tool_edited.png"))

                # the re-scored values WIT shows are the real models' scores of the edited text
                text = frame.evaluate(DEEP_TEXT_JS)
                live = {name: p.predict([EDITED_TEXT]).scores[0]
                        for name, p in load_predictors(tiny_run).items()}
                for name, score in live.items():
                    assert f"{score:.3f}" in text, (name, score)
            finally:
                (ARTIFACTS / "console.log").write_text("\n".join(console), encoding="utf-8")
                browser.close()
    errors = [c for c in console if c.startswith("error") and "404" not in c and "translate(NaN" not in c]
    assert not any("cannot be invoked without 'new'" in e for e in errors), errors
