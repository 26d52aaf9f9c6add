"""The stage graph of one audit run, the one verdict function and the exit-code map.

::

    load_data --> validate_data (TFDV)
        |--> counterfactuals
        |--> build_variants --> predict --> generate --> evaluate
                                       |--> mitigate (per-group thresholds, when configured)
                                       \\--> export_wit (What-If Tool)

After the run, :mod:`pipelines.report` renders the report from the finished manifest
and the evaluation's result, and records the run in the history.

The verdict of a run is decided here and nowhere else (:func:`run_verdict`): it is
the fairness gates' verdict (:func:`pipelines.fairness.verdict`: fail if any gate fails,
else insufficient evidence if any is undecided or not evaluable, else pass), turned into
a failure when data validation found problems and ``validation.block_on_anomalies`` is
set. The CLI maps it to an exit code with :data:`EXIT_CODES`; the report and the
history read it from the manifest.
"""

from __future__ import annotations

from typing import Any, Mapping

from pipelines.core.runner import Stage
from pipelines.fairness import FAIL, GATE_STATUSES, INSUFFICIENT, NOT_EVALUABLE, PASS, counted, describe_gate, verdict
from pipelines.fairness.mitigation import mitigated_gate_records
from pipelines.stages import (
    build_variants,
    counterfactuals,
    evaluate,
    export_wit,
    generate,
    load_data,
    mitigate,
    predict,
    validate_data,
)

__all__ = ["STAGES", "VERDICTS", "EXIT_CODES", "EXIT_ERROR", "run_verdict", "finalize_run", "scoring_paths",
           "data_fingerprint_of", "exit_code", "preflight"]

#: Every stage, in run order (the runner skips those a config disables).
STAGES: tuple[Stage, ...] = (load_data.SPEC, validate_data.SPEC, counterfactuals.SPEC, build_variants.SPEC,
                             predict.SPEC, generate.SPEC, evaluate.SPEC, mitigate.SPEC, export_wit.SPEC)

VERDICTS: tuple[str, ...] = (PASS, FAIL, INSUFFICIENT)

#: A finished audit's exit code is its verdict; 2 is an error (nothing finished).
EXIT_CODES: dict[str, int] = {PASS: 0, FAIL: 1, INSUFFICIENT: 3}
EXIT_ERROR = 2


def exit_code(verdict_name: str | None) -> int:
    """The exit code of a finished run's verdict (2 for anything else)."""
    return EXIT_CODES.get(verdict_name or "", EXIT_ERROR)


def run_verdict(outputs: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The run's verdict and what it rests on, from the stages' outputs (added to the manifest).

    The fairness result's verdict (:func:`pipelines.fairness.verdict` over its gate
    results), turned into ``fail`` when data validation found problems and
    ``validation.block_on_anomalies`` is set. Without an evaluation, or without gates,
    nothing was judged: ``insufficient_evidence``, never a pass by default.

    Returns ``{"verdict": ..., "verdict_reasons": [...], "verdict_attention": [...]}``: the
    attention list names every gate result that did not pass (failed first, then undecided,
    then not evaluable), one line each, so a scheduled run's log says which gate held it back.
    """
    fairness = outputs.get("evaluate", {}).get("fairness")
    validation = outputs.get("validate_data", {}).get("validation_summary") or {}
    reasons: list[str] = []
    attention: list[str] = []
    if isinstance(fairness, Mapping):
        overall = fairness["verdict"]
        gates, judged = _mitigation_gates(outputs, fairness.get("gates") or [])
        if judged:
            overall = verdict(counted(gates))
            reasons.append(judged)
        attention = _attention(gates)
        if gates:
            tally = {s: sum(g["status"] == s for g in gates) for s in GATE_STATUSES}
            reasons.append(f"fairness gates: {overall} ({len(gates)} results: "
                           + ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in tally.items() if n) + ")")
        else:
            reasons.append("no fairness gates are configured (`evaluation.gates` is empty), so nothing was judged")
    else:
        overall = INSUFFICIENT
        reasons.append("the evaluation did not run (no variant was scored), so no fairness gate was judged")
    if validation.get("block_on_anomalies") and not validation.get("blessed", True):
        overall = FAIL
        reasons.append("data validation found anomalies or drift and `validation.block_on_anomalies` is set")
    for reason in validation.get("blocking") or []:  # e.g. texts shared between splits (validation.leakage)
        overall = FAIL
        reasons.append(reason)
    return {"verdict": overall, "verdict_reasons": reasons, "verdict_attention": attention}


def scoring_paths(outputs: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """``{variant: {"precision", "runtime", "requested", "reason", "cpu", "torch"}}``: what scored each variant.

    Read from the predict stage's ``performance`` artifact; variants without a
    model (logged predictions) and Beam-scored variants have no entry.
    """
    perf = (outputs.get("predict") or {}).get("performance") or {}
    return {name: entry["path"] for name, entry in perf.items() if isinstance(entry, Mapping) and "path" in entry}


def finalize_run(outputs: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """What the manifest gets once every stage has finished: :func:`run_verdict` and :func:`scoring_paths`."""
    return {**run_verdict(outputs), "scoring_paths": scoring_paths(outputs)}


def _attention(gates: list[Mapping[str, Any]]) -> list[str]:
    order = {FAIL: 0, INSUFFICIENT: 1, NOT_EVALUABLE: 2}
    held = sorted((g for g in gates if g["status"] != PASS), key=lambda g: order.get(g["status"], 3))
    lines = []
    for g in held:
        status = g["status"].replace("_", " ").upper()
        optional = " (optional gate: does not count)" if g.get("optional") and g["status"] == NOT_EVALUABLE else ""
        reason = f" -- {g['reason']}" if g.get("reason") else ""
        lines.append(f"{status}: {g['variant']} {describe_gate(g)}{reason}{optional}")
    return lines


def _mitigation_gates(outputs: Mapping[str, Mapping[str, Any]], gates: list[Mapping[str, Any]]
                      ) -> tuple[list[Mapping[str, Any]], str | None]:
    """The gate results the verdict rests on when `mitigation.verdict_on` says to gate the mitigated twins."""
    mitigation = outputs.get("mitigate", {}).get("mitigation")
    if not isinstance(mitigation, Mapping) or mitigation.get("verdict_on", "deployed") == "deployed":
        return gates, None
    picked = mitigated_gate_records(mitigation, gates)
    return picked, (f"`mitigation.verdict_on: {mitigation['verdict_on']}`: the verdict judges the per-group-threshold "
                    f"twins' gates{' and the deployed variants' if mitigation['verdict_on'] == 'both' else ''}")


def data_fingerprint_of(outputs: Mapping[str, Mapping[str, Any]]) -> str | None:
    summary = outputs.get("load_data", {}).get("data_summary")
    return summary.get("fingerprint") if isinstance(summary, Mapping) else None


def preflight(cfg: Any) -> list[Exception]:
    """Every problem the enabled stages can find without compute (their ``preflight`` hooks), in run order.

    ``fairness-audit validate`` lists them; ``run`` stops on them before the first stage.
    """
    from pipelines.errors import AuditError

    problems: list[Exception] = []
    for stage in STAGES:
        if stage.preflight is None or not stage.enabled(cfg):
            continue
        try:
            problems.extend(stage.preflight(cfg))
        except AuditError as exc:
            problems.append(exc)
    return problems
