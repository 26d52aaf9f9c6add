"""Both notebooks execute headless (nbclient) against the tiny run, and explain bad runs plainly."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from tests.explore.conftest import REPO, kernel_env

NOTEBOOKS = REPO / "notebooks"


def execute(name: str, run_dir: Path | None, *, timeout: int = 300):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute(env=kernel_env(run_dir))
    return nb


def outputs_text(nb) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if "text" in out:
                parts.append(out["text"])
            for mime in ("text/plain", "text/markdown", "text/html"):
                if mime in out.get("data", {}):
                    parts.append(out["data"][mime])
            parts.extend(out.get("traceback", []))
    return "\n".join(parts)


def error_output(nb):
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                return out
    return None


def test_notebooks_have_a_parameters_cell_and_no_stored_outputs():
    for name in ("what_if_tool.ipynb", "audit_walkthrough.ipynb"):
        nb = nbformat.read(NOTEBOOKS / name, as_version=4)
        nbformat.validate(nb)
        params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(params) == 1 and "RUN_DIR = None" in params[0].source
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")


def test_what_if_tool_notebook_runs(tiny_run):
    nb = execute("what_if_tool.ipynb", tiny_run)
    assert error_output(nb) is None
    text = outputs_text(nb)
    assert "40 examples from" in text
    assert "finetuned" in text and "rag" in text
    widget_outputs = [o for c in nb.cells for o in c.get("outputs", [])
                      if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(widget_outputs) == 1  # the WitWidget


def test_walkthrough_notebook_runs(tiny_run):
    nb = execute("audit_walkthrough.ipynb", tiny_run)
    assert error_output(nb) is None
    text = outputs_text(nb)
    assert "tiny-run" in text
    # the tiny run configures no gates: nothing was judged, and the notebook says why
    assert "verdict: insufficient_evidence" in text
    assert "no fairness gates are configured" in text
    assert "roc_auc" in text and "demographic_parity_difference" in text
    assert "flip rate" in text and "finetuned - rag" in text
    # validate_data did not run in the tiny run: said plainly, not a traceback
    assert "stage `validate_data` did not run" in text


def test_walkthrough_tolerates_a_run_without_evaluation(tiny_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("evaluate", "counterfactuals"))
    nb = execute("audit_walkthrough.ipynb", run)
    assert error_output(nb) is None
    text = outputs_text(nb)
    assert "stage `evaluate` did not run" in text and "fairness-audit run" in text


@pytest.mark.parametrize("fixture, words", [
    ("run_without_export", ["ExportMissingError", "export_wit", "fairness-audit run"]),
    ("run_one_variant", ["NotEnoughVariantsError", "only variant 'finetuned'", "`variants`", "fairness-audit run"]),
])
def test_what_if_tool_notebook_explains_a_bad_run(request, fixture, words):
    """Execution stops at the loading cell with the helper's message alone, not a traceback from deep inside WIT."""
    run_dir = request.getfixturevalue(fixture)
    nb = nbformat.read(NOTEBOOKS / "what_if_tool.ipynb", as_version=4)
    client = NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}})
    with pytest.raises(CellExecutionError):
        client.execute(env=kernel_env(run_dir))
    err = error_output(nb)
    shown = "\n".join(err["traceback"])
    for w in words:
        assert w in shown
    assert len(err["traceback"]) == 1 and "Traceback" not in shown and "File " not in shown
    assert "witwidget" not in shown


@pytest.mark.slow
def test_notebooks_run_on_the_latest_demo_run():
    """After `make demo`: both notebooks open the latest complete demo run by default (no RUN_DIR)."""
    from pipelines.explore import ExportMissingError, RunNotFoundError, latest_run, load_export

    try:
        run_dir = latest_run()
        load_export(run_dir)
    except (RunNotFoundError, ExportMissingError) as exc:
        pytest.skip(f"no demo run with an export: {exc}")
    for name in ("audit_walkthrough.ipynb", "what_if_tool.ipynb"):
        nb = execute(name, None, timeout=900)
        assert error_output(nb) is None
        assert run_dir.name in outputs_text(nb)
