"""The verdict per configured gate: what the report's first screen and the model card show.

The evaluation judges every gate x variant (x group) and the summary keeps each of
those results (``verdict.gates``). A reader first wants one line per *gate*: did it
hold, where did it fail, where is the evidence too thin. :func:`gate_summaries`
groups the results by the gate they belong to (``gate_index``, the gate's position in
the config) without judging anything again: a gate's status follows the pipeline's
own rule (:func:`pipelines.fairness.verdict`) applied to that gate's results.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from pipelines.fairness import FAIL, INSUFFICIENT, NOT_EVALUABLE, PASS, verdict

__all__ = ["gate_summaries", "headline", "STATUS_WORDS", "bound_text"]

#: How a status reads in a sentence.
STATUS_WORDS = {PASS: "pass", FAIL: "fail", INSUFFICIENT: "undecided", NOT_EVALUABLE: "not evaluable"}


def bound_text(direction: str | None, bound: Any, *, symbols: bool = False) -> str:
    """``"<= 0.45"`` for a ``max`` gate, ``">= 0.6"`` for a ``min`` gate (``symbols``: ``"\u2264 0.45"``)."""
    op = {"max": "\u2264" if symbols else "<=", "min": "\u2265" if symbols else ">="}.get(str(direction), "vs")
    return f"{op} {bound:g}" if isinstance(bound, (int, float)) else f"{op} {bound}"


def _counted(results: Sequence[Mapping[str, Any]]) -> list[str]:
    # the same rule as pipelines.fairness.counted, on the summary's key names
    return [r["result"] for r in results if not (r.get("optional") and r["result"] == NOT_EVALUABLE)]


def _status(results: Sequence[Mapping[str, Any]]) -> str:
    counted = _counted(results)
    if not counted:
        return NOT_EVALUABLE  # only an optional gate's unmeasurable results: shown, but they do not count
    status = verdict(counted)
    if status == INSUFFICIENT and INSUFFICIENT not in counted:
        return NOT_EVALUABLE
    return status


def _unit(r: Mapping[str, Any]) -> str:
    if r.get("group") is not None:
        return str(r["group"])
    return f"{r['feature']} gap" if r.get("feature") else "overall"


def _value(r: Mapping[str, Any]) -> str:
    if r.get("value") is None:
        return "no estimate"
    if r.get("ci_low") is not None and r.get("ci_high") is not None:
        return f"{r['value']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]"
    return f"{r['value']:.3f}"


def _variant_words(results: Sequence[Mapping[str, Any]]) -> str:
    """``"fail: jewish 0.519 [0.378, 0.657]; undecided: lgbtq, muslim"`` or ``"all 5 pass"``."""
    if all(r["result"] == PASS for r in results):
        near = [_unit(r) for r in results if r.get("near_bound")]
        words = f"all {len(results)} pass" if len(results) > 1 else f"passes ({_value(results[0])})"
        return words + (f" (near the bound: {', '.join(near)})" if near else "")
    parts = []
    for status in (FAIL, INSUFFICIENT, NOT_EVALUABLE):
        mine = [r for r in results if r["result"] == status]
        if not mine:
            continue
        if status == FAIL or len(results) == 1:
            units = ", ".join(f"{_unit(r)} {_value(r)}" for r in mine)
        else:
            units = ", ".join(_unit(r) for r in mine)
        parts.append(f"{STATUS_WORDS[status]}: {units}")
    passed = sum(r["result"] == PASS for r in results)
    if passed:
        parts.append(f"{passed} pass")
    return "; ".join(parts)


def gate_summaries(gates: Sequence[Mapping[str, Any]], variant_order: Sequence[str]) -> list[dict[str, Any]]:
    """One entry per configured gate, in config order, from the summary's gate results.

    Each entry has the gate's ``index``, ``label``, ``metric``, ``bound``, ``direction``,
    ``feature``, ``mode`` and ``optional``; its ``status`` (``fail`` if a result failed,
    else ``insufficient_evidence`` if one is undecided, else ``not_evaluable`` if one
    could not be measured, else ``pass``); ``counts`` per result status plus
    ``near_bound``; the ``variants`` it judged; ``attention`` (anything but a clean pass);
    ``by_variant`` (``variant``, its ``status`` and ``words``) and ``line``, the gate in one sentence.

    >>> g = {"gate_index": 0, "label": "FPR <= 0.4", "metric": "fpr", "bound": 0.4, "direction": "max",
    ...      "feature": "group", "mode": None, "optional": False, "variant": "v", "near_bound": False}
    >>> rows = [{**g, "group": "a", "result": "pass", "value": 0.1, "ci_low": 0.0, "ci_high": 0.3},
    ...         {**g, "group": "b", "result": "fail", "value": 0.7, "ci_low": 0.5, "ci_high": 0.8}]
    >>> s = gate_summaries(rows, ["v"])[0]
    >>> s["status"], s["line"]
    ('fail', 'v: fail: b 0.700 [0.500, 0.800]; 1 pass')
    """
    grouped: dict[int, list[Mapping[str, Any]]] = {}
    for g in gates:
        grouped.setdefault(int(g["gate_index"]), []).append(g)
    rank = {name: i for i, name in enumerate(variant_order)}
    out = []
    for index, results in sorted(grouped.items()):
        first = results[0]
        variants = sorted({r["variant"] for r in results}, key=lambda v: (rank.get(v, len(rank)), str(v)))
        status = _status(results)
        counts: dict[str, int] = {s: sum(r["result"] == s for r in results) for s in (PASS, FAIL, INSUFFICIENT,
                                                                                         NOT_EVALUABLE)}
        counts["near_bound"] = sum(bool(r.get("near_bound")) for r in results)
        parts = [{"variant": v, "status": _status([r for r in results if r["variant"] == v]),
                  "words": _variant_words([r for r in results if r["variant"] == v])} for v in variants]
        line = " · ".join(f"{p['variant']}: {p['words']}" for p in parts)
        out.append({"index": index, "label": first["label"], "metric": first["metric"], "bound": first["bound"],
                    "direction": first["direction"], "feature": first["feature"], "mode": first["mode"],
                    "optional": bool(first.get("optional")), "status": status, "counts": counts,
                    "results": len(results), "variants": variants,
                    "attention": status != PASS or counts["near_bound"] > 0, "line": line, "by_variant": parts})
    return out


#: Gate labels named in the headline; the gate lines below it name the rest.
HEADLINE_LABELS = 3


def _named(gates: Sequence[Mapping[str, Any]]) -> str:
    labels = [str(g["label"]) for g in gates]
    shown = ", ".join(labels[:HEADLINE_LABELS])
    return shown + (f" and {len(labels) - HEADLINE_LABELS} more" if len(labels) > HEADLINE_LABELS else "")


def headline(overall: str, by_gate: Sequence[Mapping[str, Any]], reasons: Sequence[str] = ()) -> str:
    """The verdict in one short, complete sentence, counted per configured gate (the first screen's
    line beside the badge; the gate lines under it say where and by how much).

    ``by_gate`` is :func:`gate_summaries`' output; ``reasons`` (the manifest's) explain a verdict that
    no gate decided (no gates configured, blocking data anomalies, no evaluation).

    >>> gates = [{"label": "FPR <= 0.4", "status": "fail"}, {"label": "AUC >= 0.7", "status": "pass"},
    ...          {"label": "flips <= 0.2", "status": "insufficient_evidence"}]
    >>> headline("fail", gates)
    '1 of 3 gates failed: FPR <= 0.4; 1 undecided; 1 passed.'
    >>> headline("pass", gates[1:2])
    'The 1 gate passed for every variant and group, intervals included.'
    """
    n = len(by_gate)
    mine = {s: [g for g in by_gate if g["status"] == s] for s in (PASS, FAIL, INSUFFICIENT, NOT_EVALUABLE)}
    if not n:
        return ("No gate was judged: " + "; ".join(reasons) + ".") if reasons else "No gate was judged."
    gates = f"{n} gate{'s' if n != 1 else ''}"
    if overall == PASS and len(mine[PASS]) == n:
        return f"{'All ' if n > 1 else 'The '}{gates} passed for every variant and group, intervals included."
    rest = []
    if mine[INSUFFICIENT]:
        rest.append(f"{len(mine[INSUFFICIENT])} undecided")
    if mine[NOT_EVALUABLE]:
        rest.append(f"{len(mine[NOT_EVALUABLE])} not evaluable")
    if mine[PASS]:
        rest.append(f"{len(mine[PASS])} passed")
    if mine[FAIL]:
        return f"{len(mine[FAIL])} of {gates} failed: {_named(mine[FAIL])}" + "".join(f"; {r}" for r in rest) + "."
    if overall == FAIL:  # failed for a reason outside the gates (e.g. blocking data anomalies)
        return "Failed: " + "; ".join(reasons) + f". Of the {gates}: " + ", ".join(rest) + "."
    head = f"No gate failed, but the evidence does not decide {len(mine[INSUFFICIENT]) + len(mine[NOT_EVALUABLE])}"
    head += f" of {gates}"
    undecided = mine[INSUFFICIENT] + mine[NOT_EVALUABLE]
    return head + f": {_named(undecided)}" + (f"; {len(mine[PASS])} passed." if mine[PASS] else ".")
