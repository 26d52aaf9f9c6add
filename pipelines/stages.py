"""The stage graph of one audit run.

::

    load_data --> validate_data (TFDV)
        |--> counterfactuals
        |--> build_variants --> predict --> evaluate --> export_wit
                                                    \\--> report
"""

from __future__ import annotations

from typing import Any

from pipelines.config import AuditConfig
from pipelines.runner import Stage

__all__ = ["build_stages", "verdict_of", "data_fingerprint_of"]


def build_stages(config: AuditConfig, *, previous_runs: list[dict[str, Any]] | tuple = ()) -> list[Stage]:
    """Every stage, in order; the runner skips those whose inputs are disabled.

    ``previous_runs`` (read from the history before the run) is handed to the
    report through the ``history`` stage, so that no stage reads the disk.
    """
    from pipelines.data.stage import LOAD_DATA_STAGE
    from pipelines.evaluation.stage import COUNTERFACTUALS_STAGE, EVALUATE_STAGE
    from pipelines.report import report_stages
    from pipelines.validation.stage import VALIDATE_DATA_STAGE
    from pipelines.variants.stage import BUILD_STAGE, PREDICT_STAGE
    from pipelines.wit.export import EXPORT_WIT_STAGE

    return [LOAD_DATA_STAGE, VALIDATE_DATA_STAGE, COUNTERFACTUALS_STAGE, BUILD_STAGE, PREDICT_STAGE,
            EVALUATE_STAGE, EXPORT_WIT_STAGE, *report_stages(list(previous_runs))]


def verdict_of(outputs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Manifest keys added once every stage has finished: the verdict and what it rests on."""
    fairness = outputs.get("evaluate", {}).get("fairness")
    validation = outputs.get("validate_data", {}).get("validation_summary") or {}
    verdict = "pass"
    reasons: list[str] = []
    if isinstance(fairness, dict) and fairness.get("verdict"):
        verdict = fairness["verdict"]
        reasons.append(f"fairness gates: {verdict}")
    else:
        reasons.append("no fairness gates were evaluated")
    if validation.get("block_on_anomalies") and not validation.get("blessed", True):
        verdict = "fail"
        reasons.append("data validation found anomalies or drift and block_on_anomalies is set")
    return {"verdict": verdict, "verdict_reasons": reasons}


def data_fingerprint_of(outputs: dict[str, dict[str, Any]]) -> str | None:
    summary = outputs.get("load_data", {}).get("data_summary")
    return summary.get("fingerprint") if isinstance(summary, dict) else None
