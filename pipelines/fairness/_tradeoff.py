"""Deterministic per-group thresholds under a tolerance on the constrained gap (the trade-off sweep).

fairlearn 0.9's ``ThresholdOptimizer`` satisfies its constraint exactly (gap 0 on the
data it is fitted on), usually by randomizing between two thresholds. To show what a
looser constraint would cost, this module finds, for a tolerance ``tol``, the single
threshold per group (no randomization) that maximizes the objective on the
validation sample subject to every constrained rate lying within a band of width
``tol`` across groups (so the validation gap, max - min over groups, is at most
``tol``). Every candidate threshold of every group is enumerated; the band's lower
edges are the groups' own rates (one rate: exact) or a 0.01 grid when there are more
than :data:`MAX_EDGES` of them per rate (equalized odds: two rates), so a returned
rule always satisfies the tolerance and is optimal up to that grid.

Rule: predict 1 when ``score > threshold`` (fairlearn's operator), with thresholds
halfway between consecutive validation scores; ``-inf`` selects everyone, ``+inf``
no one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

__all__ = ["GroupCurve", "group_curves", "rates_of", "objective_of", "gap_of", "best_within", "best_single_threshold",
           "expected_counts", "point_on", "sweep", "MAX_EDGES"]

#: More distinct rates than this per constrained rate: band edges on a grid of this many points.
MAX_EDGES = 101

#: constraint -> the rates that must agree across groups.
_CONSTRAINT_RATES: dict[str, tuple[str, ...]] = {
    "equalized_odds": ("tpr", "fpr"),
    "demographic_parity": ("selection_rate",),
    "true_positive_rate_parity": ("tpr",),
    "false_negative_rate_parity": ("fnr",),
    "false_positive_rate_parity": ("fpr",),
}


@dataclass(frozen=True)
class GroupCurve:
    """Every deterministic threshold of one group with its confusion counts (arrays of one length)."""

    thresholds: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    positives: int
    negatives: int

    @property
    def n(self) -> int:
        return self.positives + self.negatives


def _curve(scores: np.ndarray, labels: np.ndarray) -> GroupCurve:
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    values, first = np.unique(-s, return_index=True)  # distinct scores, descending
    desc = -values
    selected = np.concatenate([[0], np.append(first[1:], len(s))])  # rows with score > threshold
    tp_cum = np.concatenate([[0], np.cumsum(y)])
    tp = tp_cum[selected]
    fp = selected - tp
    mids = (desc[:-1] + desc[1:]) / 2.0
    thresholds = np.concatenate([[np.inf], mids, [-np.inf]])
    return GroupCurve(thresholds=thresholds, tp=tp.astype(np.float64), fp=fp.astype(np.float64),
                      positives=int(y.sum()), negatives=int(len(y) - y.sum()))


def group_curves(scores: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> dict[str, GroupCurve]:
    """One :class:`GroupCurve` per group value (sorted by name)."""
    groups = np.asarray(groups).astype(str)
    return {g: _curve(np.asarray(scores)[groups == g], np.asarray(labels)[groups == g]) for g in sorted(set(groups))}


def rates_of(tp, fp, positives, negatives) -> dict[str, np.ndarray]:
    """TPR, FPR, FNR and selection rate from (expected) counts."""
    tp, fp = np.asarray(tp, dtype=np.float64), np.asarray(fp, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        tpr = tp / positives
        fpr = fp / negatives
    return {"tpr": tpr, "fpr": fpr, "fnr": 1.0 - tpr, "selection_rate": (tp + fp) / (positives + negatives)}


def objective_of(objective: str, tp, fp, *, positives: float, negatives: float) -> np.ndarray:
    """Accuracy or balanced accuracy of (summed) counts over ``positives`` and ``negatives`` rows."""
    tp, fp = np.asarray(tp, dtype=np.float64), np.asarray(fp, dtype=np.float64)
    tn = negatives - fp
    if objective == "accuracy":
        return (tp + tn) / (positives + negatives)
    if objective == "balanced_accuracy":
        return 0.5 * tp / positives + 0.5 * tn / negatives
    raise ValueError(f"objective must be 'accuracy' or 'balanced_accuracy'. Got {objective!r} instead.")


def _edges(values: Sequence[np.ndarray]) -> np.ndarray:
    found = np.unique(np.concatenate([v[np.isfinite(v)] for v in values]))
    return found if len(found) <= MAX_EDGES else np.linspace(0.0, 1.0, MAX_EDGES)


def gap_of(constraint: str, chosen_rates: Mapping[str, Mapping[str, float]]) -> float:
    """The constrained gap: the largest (max - min over groups) of the constraint's rates."""
    names = _CONSTRAINT_RATES[constraint]
    return float(max(max(r[n] for r in chosen_rates.values()) - min(r[n] for r in chosen_rates.values())
                     for n in names))


def best_within(curves: Mapping[str, GroupCurve], *, constraint: str, objective: str, tolerance: float
                ) -> dict[str, object] | None:
    """The best deterministic per-group thresholds whose validation gap is at most ``tolerance``.

    Returns ``{"thresholds": {group: t}, "objective": value, "gap": value, "rates": {group: {...}}}``
    on the fitted data, or None when no choice of single thresholds meets the tolerance.
    """
    names = _CONSTRAINT_RATES[constraint]
    P = sum(c.positives for c in curves.values())
    N = sum(c.negatives for c in curves.values())
    rates = {g: rates_of(c.tp, c.fp, c.positives, c.negatives) for g, c in curves.items()}
    # both objectives are sums over groups: each group's choice adds its own term (plus a constant,
    # the other groups' negatives counted as true negatives, which is the same in every band)
    share = {g: objective_of(objective, c.tp, c.fp, positives=P, negatives=N) for g, c in curves.items()}
    edges = [_edges([rates[g][n] for g in curves]) for n in names]
    boxes = int(np.prod([len(e) for e in edges]))
    eps = 1e-12
    total = np.zeros(boxes)
    pick: dict[str, np.ndarray] = {}
    for g in curves:
        # inside[box, cand]: every constrained rate of the candidate lies in the box's band (one dim at a time)
        inside = np.ones((1, len(curves[g].thresholds)), dtype=bool)
        for e, n in zip(edges, names):
            r = rates[g][n][None, :]
            in_dim = (r >= e[:, None] - eps) & (r <= e[:, None] + tolerance + eps)  # (edges, cands)
            inside = (inside[:, None, :] & in_dim[None, :, :]).reshape(-1, in_dim.shape[1])
        value = np.where(inside, share[g][None, :], -np.inf)
        pick[g] = np.argmax(value, axis=1)
        total = total + value[np.arange(boxes), pick[g]]
    if not np.isfinite(total).any():
        return None
    best = int(np.argmax(total))
    chosen = {g: int(pick[g][best]) for g in curves}
    tp = sum(curves[g].tp[i] for g, i in chosen.items())
    fp = sum(curves[g].fp[i] for g, i in chosen.items())
    chosen_rates = {g: {n: float(rates[g][n][i]) for n in ("tpr", "fpr", "fnr", "selection_rate")}
                    for g, i in chosen.items()}
    return {"thresholds": {g: float(curves[g].thresholds[i]) for g, i in chosen.items()},
            "objective": float(objective_of(objective, tp, fp, positives=P, negatives=N)),
            "gap": gap_of(constraint, chosen_rates), "rates": chosen_rates}


def best_single_threshold(scores: np.ndarray, labels: np.ndarray, *, objective: str) -> float:
    """The one threshold (``score > t``) for everyone that maximizes the objective on these rows."""
    c = _curve(scores, labels)
    value = objective_of(objective, c.tp, c.fp, positives=c.positives, negatives=c.negatives)
    return float(c.thresholds[int(np.argmax(value))])


def expected_counts(probability: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Expected true and false positives of a randomized rule (``probability`` of predicting 1 per row)."""
    p = np.asarray(probability, dtype=np.float64)
    y = np.asarray(labels).astype(bool)
    return float(p[y].sum()), float(p[~y].sum())


def point_on(probability: np.ndarray, labels: np.ndarray, groups: np.ndarray, *, constraint: str, objective: str
             ) -> dict[str, float]:
    """The (expected) objective and constrained gap of a rule on rows: ``{"objective", "gap"}`` (every group
    counts, however small: these are the numbers an optimizer sees on the rows it is fitted on)."""
    y = np.asarray(labels, dtype=np.int64)
    g = np.asarray(groups).astype(str)
    p = np.asarray(probability, dtype=np.float64)
    per_group = {}
    for name in sorted(set(g)):
        m = g == name
        tp, fp = expected_counts(p[m], y[m])
        r = rates_of(tp, fp, int(y[m].sum()), int((1 - y[m]).sum()))
        per_group[name] = {k: float(v) for k, v in r.items()}
    tp, fp = expected_counts(p, y)
    return {"objective": float(objective_of(objective, tp, fp, positives=int(y.sum()), negatives=int((1 - y).sum()))),
            "gap": gap_of(constraint, per_group)}


def sweep(*, val_scores: np.ndarray, val_labels: np.ndarray, val_groups: np.ndarray, audit_scores: np.ndarray,
          audit_groups: np.ndarray, constraint: str, objective: str, tolerances: Sequence[float]
          ) -> list[dict[str, object]]:
    """Deterministic rules along the tolerance sweep, fitted on validation and applied to the audit rows.

    Returns one point per rule: ``kind`` (``single_threshold``: one threshold for everyone that
    maximizes the objective; ``relaxed``: per-group thresholds within ``tolerance``; a tolerance
    of 1 is the unconstrained per-group optimum), ``tolerance``, ``thresholds`` (per group),
    ``validation_objective``, ``validation_gap`` and ``audit_labels`` (0/1 per audit row).
    A tolerance that single thresholds cannot meet gives a point with ``feasible: False``.
    """
    val_groups = np.asarray(val_groups).astype(str)
    audit_groups = np.asarray(audit_groups).astype(str)
    audit_scores = np.asarray(audit_scores, dtype=np.float64)

    def labels_for(thresholds: Mapping[str, float], scores: np.ndarray, groups: np.ndarray) -> np.ndarray:
        t = np.array([thresholds.get(x, np.inf) for x in groups], dtype=np.float64)
        return (scores > t).astype(np.int64)

    points: list[dict[str, object]] = []
    single = best_single_threshold(val_scores, val_labels, objective=objective)
    every = {g: single for g in sorted(set(val_groups) | set(audit_groups))}
    points.append({"kind": "single_threshold", "tolerance": None, "feasible": True, "thresholds": every,
                   **_validation(labels_for(every, np.asarray(val_scores), val_groups), val_labels, val_groups,
                                 constraint, objective),
                   "audit_labels": labels_for(every, audit_scores, audit_groups)})
    curves = group_curves(val_scores, val_labels, val_groups)
    for tol in sorted(set(tolerances) | {1.0}):
        found = best_within(curves, constraint=constraint, objective=objective, tolerance=tol)
        if found is None:
            points.append({"kind": "relaxed", "tolerance": float(tol), "feasible": False, "thresholds": None,
                           "validation_objective": None, "validation_gap": None, "audit_labels": None})
            continue
        th = found["thresholds"]
        points.append({"kind": "relaxed", "tolerance": float(tol), "feasible": True, "thresholds": th,
                       "validation_objective": found["objective"], "validation_gap": found["gap"],
                       "audit_labels": labels_for(th, audit_scores, audit_groups)})
    return points


def _validation(labels: np.ndarray, y: np.ndarray, groups: np.ndarray, constraint: str, objective: str
                ) -> dict[str, float]:
    on = point_on(labels, y, groups, constraint=constraint, objective=objective)
    return {"validation_objective": on["objective"], "validation_gap": on["gap"]}
