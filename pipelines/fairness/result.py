"""The one result of a fairness evaluation: tidy tables, settings, gate results and the verdict.

:class:`FairnessResult` is what the evaluation returns and what every reader uses
(the report, the notebooks, the history's key metrics). It is stored as the
``evaluate`` stage's artifacts (:meth:`FairnessResult.to_artifacts`) and read back
with :meth:`FairnessResult.from_artifacts`; there is no other schema to guess.

Tables (one row per estimand; ``value``/``ci_low``/``ci_high`` are null unless
``status`` is ``ok``):

============================  ============================================================
``group_metrics``             variant, feature, group, metric, value, ci_low, ci_high, n, status
                              (the per-group metrics and the bias AUCs; feature ``overall``
                              and group ``all`` is the whole sample)
``disparities``               variant, feature, group (null), metric, ... (between-group
                              differences and ratios, equalized odds, the final bias score)
``comparison``                a, b, kind, feature, group, metric, ... (paired ``a - b``;
                              kinds ``metric``, ``disparity``, ``agreement``, ``counterfactual``)
``counterfactual_metrics``    variant, mode, feature, group, metric, ... (flip rates)
``exposure_metrics``          variant, feature, group, metric, ... (what retrieval shows)
``generation_metrics``        variant, condition, feature, group, metric, ... (metrics of generated
                              answers, ``docs/generation.md``; conditions ``<a>_minus_<b>`` are
                              paired differences for attribution)
``gate_results``              one row per gate x variant (x group for group metrics)
============================  ============================================================

``fairness.json`` holds the settings, the group sizes, notes, the counterfactual
coverage, the verdicts, and the same numbers nested by variant for JSON readers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

__all__ = [
    "FairnessResult",
    "RESULT_ARTIFACTS",
    "TABLE_COLUMNS",
    "GATE_COLUMNS",
    "SCHEMA_VERSION",
    "PASS",
    "FAIL",
    "INSUFFICIENT",
    "NOT_EVALUABLE",
    "GATE_STATUSES",
    "verdict",
    "counted",
    "describe_gate",
]

SCHEMA_VERSION = 4

PASS = "pass"
FAIL = "fail"
INSUFFICIENT = "insufficient_evidence"
NOT_EVALUABLE = "not_evaluable"
GATE_STATUSES = (PASS, FAIL, INSUFFICIENT, NOT_EVALUABLE)

#: ``method`` names the interval; ``events``/``trials`` are a proportion's counts (effective counts for
#: clustered shares), null for other metrics.
TABLE_COLUMNS = ("variant", "feature", "group", "metric", "value", "ci_low", "ci_high", "n", "status", "method",
                 "events", "trials")
GATE_COLUMNS = ("gate", "gate_index", "variant", "metric", "feature", "group", "mode", "condition", "bound",
                "direction", "value", "ci_low", "ci_high", "n", "events", "trials", "status", "reason", "method",
                "p_pass", "p_fail", "near_bound", "multiplicity", "optional")
_TABLES: dict[str, tuple[str, ...]] = {
    "group_metrics": TABLE_COLUMNS,
    "disparities": TABLE_COLUMNS,
    "comparison": ("a", "b", "kind", *TABLE_COLUMNS[1:]),
    "counterfactual_metrics": ("variant", "mode", *TABLE_COLUMNS[1:]),
    "exposure_metrics": TABLE_COLUMNS,
    "generation_metrics": ("variant", "condition", *TABLE_COLUMNS[1:]),
    "gate_results": GATE_COLUMNS,
}
#: The ``evaluate`` stage's artifacts.
RESULT_ARTIFACTS: tuple[str, ...] = ("fairness", *_TABLES)


def verdict(statuses: Iterable[str]) -> str:
    """The one rule that combines gate results: ``fail`` if any fails, else ``insufficient_evidence``
    if any is undecided or not evaluable, or if there is nothing to judge, else ``pass``.

    Pass it the statuses that count (:func:`counted`: a ``not_evaluable`` result of an
    ``optional`` gate does not).

    >>> verdict(["pass", "insufficient_evidence"]), verdict(["pass", "fail"]), verdict(["pass", "not_evaluable"])
    ('insufficient_evidence', 'fail', 'insufficient_evidence')
    >>> verdict(["pass", "pass"]), verdict([])
    ('pass', 'insufficient_evidence')
    """
    statuses = list(statuses)
    if FAIL in statuses:
        return FAIL
    if not statuses or any(s != PASS for s in statuses):
        return INSUFFICIENT
    return PASS


def counted(gates: Iterable[Mapping[str, Any]]) -> list[str]:
    """The statuses of gate results that count in the verdict (all but optional gates' ``not_evaluable``)."""
    return [g["status"] for g in gates if not (g.get("optional") and g["status"] == NOT_EVALUABLE)]


def describe_gate(g: Mapping[str, Any]) -> str:
    """One gate result in words: ``"<gate> for <group>: <value> [<ci>]"`` (the gate label names
    the variant-free rule; callers prefix the variant where it is not implied).

    >>> describe_gate({"gate": "accuracy >= 0.9", "group": "men", "value": 0.81, "ci_low": 0.7, "ci_high": 0.9})
    'accuracy >= 0.9 for men: 0.810 [0.700, 0.900]'
    >>> describe_gate({"gate": "flip_rate <= 0.1", "group": None, "feature": None, "value": None})
    'flip_rate <= 0.1: no estimate'
    """
    label = g.get("gate") or g.get("label")
    where = f" for {g['group']}" if g.get("group") else (f" ({g['feature']})" if g.get("feature") else "")
    if g.get("value") is None:
        return f"{label}{where}: no estimate"
    ci = f" [{g['ci_low']:.3f}, {g['ci_high']:.3f}]" if g.get("ci_low") is not None else ""
    return f"{label}{where}: {g['value']:.3f}{ci}"


def _frame(records: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame([{c: r.get(c) for c in columns} for r in records], columns=list(columns))


def _cell(rec: Mapping[str, Any]) -> dict[str, Any]:
    return {k: rec.get(k) for k in ("value", "ci_low", "ci_high", "n", "status", "method")}


def _nest(records: Iterable[Mapping[str, Any]], keys: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for r in records:
        node = out
        for k in keys[:-1]:
            node = node.setdefault(str(r[k]), {})
        node[str(r[keys[-1]])] = _cell(r)
    return out


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts with None for missing values (parquet round trips turn None into NaN)."""
    if frame is None or frame.empty:
        return []
    clean = frame.astype(object).where(frame.notna(), None)
    return clean.to_dict("records")


@dataclass(frozen=True)
class FairnessResult:
    """Everything the evaluation found; see the module docstring for the tables.

    Views: :meth:`estimates`, :meth:`estimate`, :meth:`variant_verdict`, :meth:`gates_of`.
    """

    variants: tuple[str, ...]
    comparisons: tuple[tuple[str, str], ...]
    settings: Mapping[str, Any]
    examples: int
    groups: Mapping[str, Mapping[str, int]]
    notes: tuple[str, ...]
    counterfactual_coverage: Mapping[str, Any] | None
    group_metrics: pd.DataFrame
    disparities: pd.DataFrame
    comparison: pd.DataFrame
    counterfactual_metrics: pd.DataFrame
    exposure_metrics: pd.DataFrame
    generation_metrics: pd.DataFrame
    gate_results: pd.DataFrame
    verdict: str = PASS

    # -- building ----------------------------------------------------------------------------
    @classmethod
    def from_records(cls, *, records: Mapping[str, Sequence[Mapping[str, Any]]], **meta: Any) -> "FairnessResult":
        """Build from tidy records per table (the evaluation's own path)."""
        tables = {name: _frame(records.get(name, ()), cols) for name, cols in _TABLES.items()}
        return cls(**meta, **tables, verdict=verdict(counted(records.get("gate_results", ()))))

    # -- storage -----------------------------------------------------------------------------
    def to_artifacts(self) -> dict[str, Any]:
        """``{artifact: value}`` for the ``evaluate`` stage: ``fairness`` (JSON) and the tables."""
        return {"fairness": self.to_json(), **{name: getattr(self, name) for name in _TABLES}}

    @classmethod
    def from_artifacts(cls, artifacts: Mapping[str, Any]) -> "FairnessResult":
        """The result read back from the ``evaluate`` stage's artifacts (as the runner loads them)."""
        meta = artifacts["fairness"]
        if meta.get("schema_version") != SCHEMA_VERSION:
            from pipelines.errors import DataError

            raise DataError(f"evaluate/fairness.json: schema_version {meta.get('schema_version')!r}; this version "
                            f"of the pipeline reads {SCHEMA_VERSION}. Re-run the audit to evaluate it again.")
        return cls(
            variants=tuple(meta["variants_evaluated"]),
            comparisons=tuple((c["a"], c["b"]) for c in meta["comparisons"]),
            settings=meta["settings"], examples=int(meta["examples"]), groups=meta["groups"],
            notes=tuple(meta["notes"]), counterfactual_coverage=meta["counterfactual_coverage"],
            verdict=meta["verdict"], **{name: artifacts[name] for name in _TABLES})

    # -- views -------------------------------------------------------------------------------
    @property
    def features(self) -> list[str]:
        return list(self.settings["features"])

    def variant_verdict(self, variant: str) -> str | None:
        """The variant's own verdict over its gates (None when no gate applies to it)."""
        statuses = counted(_records(self.gates_of(variant)))
        return verdict(statuses) if statuses else None

    def gates_of(self, variant: str | None = None) -> pd.DataFrame:
        g = self.gate_results
        return g if variant is None else g[g["variant"] == variant]

    def estimates(self, table: str, **where: Any) -> list[dict[str, Any]]:
        """Rows of ``table`` matching ``column=value`` filters, as dicts (None for missing)."""
        frame = getattr(self, table)
        mask = pd.Series(True, index=frame.index)
        for col, value in where.items():
            mask &= frame[col].isna() if value is None else (frame[col] == value)
        return _records(frame[mask])

    def estimate(self, table: str, **where: Any) -> dict[str, Any] | None:
        """The one row of ``table`` matching the filters, or None."""
        rows = self.estimates(table, **where)
        return rows[0] if rows else None

    # -- the JSON view -----------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        gm = _records(self.group_metrics)
        disp = _records(self.disparities)
        cf = _records(self.counterfactual_metrics)
        ex = _records(self.exposure_metrics)
        gen = _records(self.generation_metrics)
        comp = _records(self.comparison)
        gates = _records(self.gate_results)
        from pipelines.config.evaluation import BIAS_AUC_METRICS

        per_variant: dict[str, Any] = {}
        for v in self.variants:
            own = counted(g for g in gates if g["variant"] == v)
            mine = [r for r in gm if r["variant"] == v]
            d = [r for r in disp if r["variant"] == v]
            c = [r for r in cf if r["variant"] == v]
            e = [r for r in ex if r["variant"] == v]
            g = [r for r in gen if r["variant"] == v]
            per_variant[v] = {
                "verdict": verdict(own) if own else None,
                "metrics": _nest([r for r in mine if r["metric"] not in BIAS_AUC_METRICS],
                                 ["feature", "group", "metric"]),
                "disparities": _nest([r for r in d if r["metric"] != "final_bias_score"], ["feature", "metric"]),
                "bias_auc": {
                    f: {"groups": _nest([r for r in mine if r["feature"] == f and r["metric"] in BIAS_AUC_METRICS],
                                        ["group", "metric"]),
                        "final_bias_score": next((_cell(r) for r in d if r["feature"] == f
                                                  and r["metric"] == "final_bias_score"), None)}
                    for f in self.features
                },
                "counterfactual": {
                    "groups": _nest([r for r in c if r["group"] is not None], ["mode", "feature", "group", "metric"]),
                    "disparities": _nest([r for r in c if r["group"] is None], ["mode", "feature", "metric"]),
                } if c else None,
                "exposure": {
                    "groups": _nest([r for r in e if r["group"] is not None], ["feature", "group", "metric"]),
                    "disparities": _nest([r for r in e if r["group"] is None], ["feature", "metric"]),
                } if e else None,
                "generation": {
                    "groups": _nest([r for r in g if r["group"] is not None], ["condition", "feature", "group", "metric"]),
                    "disparities": _nest([r for r in g if r["group"] is None], ["condition", "feature", "metric"]),
                } if g else None,
            }
        comparisons = []
        for a, b in self.comparisons:
            mine = [r for r in comp if r["a"] == a and r["b"] == b]
            comparisons.append({
                "a": a, "b": b, "difference": "a - b",
                "agreement_rate": _nest([r for r in mine if r["kind"] == "agreement"], ["feature", "group"]),
                "metrics": _nest([r for r in mine if r["kind"] == "metric"], ["feature", "group", "metric"]),
                "disparities": _nest([r for r in mine if r["kind"] == "disparity"], ["feature", "metric"]),
                "counterfactual": _nest([r for r in mine if r["kind"] == "counterfactual" and r["group"] is not None],
                                        ["feature", "group", "metric"]),
            })
        return {
            "schema_version": SCHEMA_VERSION,
            "settings": dict(self.settings),
            "examples": self.examples,
            "groups": dict(self.groups),
            "notes": list(self.notes),
            "variants_evaluated": list(self.variants),
            "variants": per_variant,
            "comparisons": comparisons,
            "counterfactual_coverage": self.counterfactual_coverage,
            "gates": gates,
            "verdict": self.verdict,
        }
