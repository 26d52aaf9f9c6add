"""The HTML fairness report, the machine-readable ``summary.json``, and the steps around a run.

Public API
----------
REPORT_STAGE, report_stage
    The ``report`` stage: a pure function of every upstream stage's artifacts.
history_stage(previous_runs), report_stages(previous_runs)
    The ``history`` stage (hands the earlier runs to the report) and both stages in order.
previous_runs(config)
    Read the earlier runs of an audit from the history database (call before the run).
finalize(run_dir), record_run_dir(run_dir), post_run(run_dir)
    After the run: re-render the report with the finished manifest, record the run in
    ``<runs_root>/../history.sqlite``; ``post_run`` does both.
build_summary, render_html
    The building blocks (summary dict -> HTML), usable without the runner.

Importing this package is light: jinja2, markupsafe and the runner spec; no TF, torch
or pandas.
"""

from pipelines.report._post import finalize, post_run, previous_runs, record_run_dir
from pipelines.report._render import render_html
from pipelines.report._summary import SECTIONS, SUMMARY_VERSION, build_summary
from pipelines.report.stage import REPORT_STAGE, history_stage, report_stage, report_stages

__all__ = [
    "REPORT_STAGE",
    "report_stage",
    "history_stage",
    "report_stages",
    "previous_runs",
    "finalize",
    "record_run_dir",
    "post_run",
    "build_summary",
    "render_html",
    "SECTIONS",
    "SUMMARY_VERSION",
]
