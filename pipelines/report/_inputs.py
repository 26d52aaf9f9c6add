"""What the report reads, once, from a finished run folder."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.config import AuditConfig, config_from_dict
from pipelines.core.history import list_runs
from pipelines.core.rundir import RunDir
from pipelines.core.runner import load_stage_outputs
from pipelines.errors import DataError
from pipelines.fairness import RESULT_ARTIFACTS, FairnessResult

__all__ = ["RunInputs", "STAGE_ARTIFACTS", "TREND_RUNS"]

#: How many earlier runs the trend shows.
TREND_RUNS = 20

#: The artifacts of each stage that the report uses.
STAGE_ARTIFACTS: dict[str, tuple[str, ...]] = {
    "load_data": ("data_summary", "removed_rows", "audit_sample"),
    "validate_data": ("validation_summary",),
    "counterfactuals": ("twins", "counterfactual_coverage"),
    "build_variants": ("variants",),
    "predict": ("predictions", "twin_predictions", "thresholds", "performance"),
    "generate": ("answer_pairs", "generation_summary"),
    "evaluate": RESULT_ARTIFACTS,
    "mitigate": (*RESULT_ARTIFACTS, "mitigation", "tradeoff"),
}


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise DataError(f"{path}: no {what}; expected a run folder written by `fairness-audit run`.") from exc
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc}); expected the {what} written by the pipeline.") from exc


@dataclass
class RunInputs:
    """A finished run as the report sees it.

    ``stages`` holds the used artifacts of every stage that finished (a stage that was
    skipped or did not run is absent); ``result`` is the evaluation's result, or None.
    ``history`` is the earlier recorded runs of the audit (newest first), from the
    history database or, without one, from the run folders.
    """

    run: RunDir
    manifest: dict[str, Any]
    config: AuditConfig
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    result: FairnessResult | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    history_error: str | None = None

    @classmethod
    def load(cls, run_dir: str | Path, *, config: AuditConfig | None = None) -> "RunInputs":
        run = RunDir(Path(run_dir))
        manifest = _read_json(run.manifest, "run manifest")
        if config is None:
            config = config_from_dict(manifest["config"], base_dir=run.path, source=str(run.manifest))
        stages: dict[str, dict[str, Any]] = {}
        for name, wanted in STAGE_ARTIFACTS.items():
            if (manifest.get("stages") or {}).get(name, {}).get("status") == "complete":
                stages[name] = load_stage_outputs(run.stage(name), wanted)
        result = FairnessResult.from_artifacts(stages["evaluate"]) if "evaluate" in stages else None
        history: list[dict[str, Any]] = []
        error = None
        try:
            rows = list_runs(run.runs_root, manifest.get("audit") or run.audit, limit=TREND_RUNS + 5)
            started = manifest.get("started_at") or ""
            history = [r for r in rows if r.get("run_id") != run.run_id and r.get("status") == "complete"
                       and (r.get("started_at") or "") <= started]
        except Exception as exc:  # the history is optional for the report; say why it is missing
            error = f"{type(exc).__name__}: {exc}"
        return cls(run=run, manifest=manifest, config=config, stages=stages, result=result, history=history,
                   history_error=error)

    def artifact(self, stage: str, name: str) -> Any:
        """One artifact of a finished stage, or None when the stage did not finish."""
        return (self.stages.get(stage) or {}).get(name)
