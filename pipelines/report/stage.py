"""The ``report`` stage and the ``history`` stage that hands it the earlier runs.

``report`` is a pure function of its inputs: every upstream stage's artifacts
(``"stage.*"`` inputs, all optional, so the report renders whatever exists),
the earlier runs of the audit (from the ``history`` stage), ``ctx.config``,
``ctx.run_id`` and ``ctx.input_hashes``. It writes ``report.html`` and
``summary.json``. What only the finished manifest knows (start time, stage
timings and cache hits, the final status) is added after the run by
:func:`pipelines.report.finalize`.

The ``history`` stage is built per run by :func:`history_stage` around the rows
the CLI read from the history database *before* the run; the stage only returns
them, so nothing here reads the disk.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from pipelines.report._render import render_html
from pipelines.report._summary import build_summary
from pipelines.runner import Stage, StageContext

__all__ = ["report_stage", "REPORT_STAGE", "history_stage", "report_stages", "HISTORY_STAGE_NAME", "REPORT_INPUTS"]

HISTORY_STAGE_NAME = "history"

#: Report inputs: parameter -> every artifact of an upstream stage.
REPORT_INPUTS: dict[str, str] = {
    "data": "load_data.*",
    "validation": "validate_data.*",
    "counterfactuals": "counterfactuals.*",
    "variants": "build_variants.*",
    "predict": "predict.*",
    "evaluate": "evaluate.*",
    "history": f"{HISTORY_STAGE_NAME}.*",
}

MSG_BAD_HISTORY = ("input `history`: expected the `runs` artifact of the `history` stage to be a list of run rows "
                   "(dicts with `run_id`). Got {found} instead.")


def report_stage(
    ctx: StageContext,
    *,
    data: Mapping[str, Any] | None = None,
    validation: Mapping[str, Any] | None = None,
    counterfactuals: Mapping[str, Any] | None = None,
    variants: Mapping[str, Any] | None = None,
    predict: Mapping[str, Any] | None = None,
    evaluate: Mapping[str, Any] | None = None,
    history: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the run's HTML report and ``summary.json``.

    Returns ``{"report": Path(report.html), "summary": dict}``; the runner stores them as
    ``report/report.html`` and ``report/summary.json``.
    """
    from pipelines.errors import StageError
    from pipelines.runner import package_versions

    runs = (history or {}).get("runs") if history else None
    if runs is not None and (not isinstance(runs, list) or not all(isinstance(r, Mapping) and "run_id" in r for r in runs)):
        raise StageError(MSG_BAD_HISTORY.format(found=type(runs).__name__ if not isinstance(runs, list) else "a list "
                                                "with rows lacking `run_id`"))
    summary = build_summary(
        config=ctx.config, run_id=ctx.run_id, data=data, validation=validation, counterfactuals=counterfactuals,
        variants=variants, predict=predict, evaluate=evaluate, history=runs, input_hashes=ctx.input_hashes,
        packages=package_versions(),
    )
    html = render_html(summary)
    path = Path(ctx.scratch_dir) / "report.html"
    path.write_text(html, encoding="utf-8")
    ctx.log.info("report: verdict %s, %d variant(s), %d part(s) missing", summary["verdict"]["overall"],
                 len(summary["variants"]), len(summary["missing"]))
    return {"report": path, "summary": summary}


REPORT_STAGE = Stage(
    name="report",
    fn=report_stage,
    inputs=dict(REPORT_INPUTS),
    optional_inputs=tuple(REPORT_INPUTS),
    config_sections=("audit", "report", "data", "evaluation", "variants"),
    version="1",
    # The page names this run (run id) and its package versions, which are not in the cache key;
    # rendering takes well under a second, so it is never taken from the cache.
    cache=False,
)


def history_stage(previous_runs: Sequence[Mapping[str, Any]] | None) -> Stage:
    """A stage that returns ``previous_runs`` (read by the CLI before the run) as its ``runs`` artifact.

    Its output is hashed like any artifact, so the report's inputs record exactly
    which history it was drawn against.
    """
    rows = [dict(r) for r in (previous_runs or [])]

    def _history(ctx: StageContext) -> dict[str, Any]:
        return {"runs": [dict(r) for r in rows]}

    return Stage(name=HISTORY_STAGE_NAME, fn=_history, version="1", cache=False)


def report_stages(previous_runs: Sequence[Mapping[str, Any]] | None = None) -> list[Stage]:
    """The two stages to append at the end of the stage graph: ``history`` then ``report``."""
    return [history_stage(previous_runs), REPORT_STAGE]
