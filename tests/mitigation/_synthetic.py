"""Synthetic audit and validation scores with a planted gap (small, seeded), following the stage contracts."""

from __future__ import annotations

import numpy as np
import pandas as pd

GROUPS = ("women", "black", "jewish", "lgbtq", "muslim")
AXIS = {"women": "gender", "black": "race", "jewish": "religion", "lgbtq": "orientation", "muslim": "religion"}
#: Score shift for negatives of each group: "muslim" negatives look positive more often (a higher FPR).
SHIFT = {"women": -0.05, "black": 0.0, "jewish": 0.0, "lgbtq": 0.05, "muslim": 0.25}


def _rows(prefix: str, n_per_group: int, rng: np.random.Generator) -> pd.DataFrame:
    rows = []
    for g in GROUPS:
        for i in range(n_per_group):
            rows.append({"example_id": f"{prefix}{g}-{i:05d}", "text": f"comment {i} about {g}",
                         "label": int(rng.random() < 0.5), "group": g, "axis": AXIS[g]})
    return pd.DataFrame(rows)


def _scores(frame: pd.DataFrame, rng: np.random.Generator, spread: float) -> np.ndarray:
    y = frame["label"].to_numpy()
    shift = frame["group"].map(SHIFT).to_numpy() * (1 - y)
    return np.clip(0.3 + 0.4 * y + shift + rng.normal(0, spread, len(y)), 0.001, 0.999)


def make_data(*, n_audit: int = 60, n_validation: int = 60, seed: int = 0, variants=("finetuned", "rag"),
              threshold: float = 0.5) -> dict[str, pd.DataFrame]:
    """``audit_sample``, ``predictions``, ``validation`` (the split) and ``validation_predictions``."""
    rng = np.random.default_rng(seed)
    audit = _rows("", n_audit, rng)
    validation = _rows("val-", n_validation, rng)
    preds, vals = [], []
    for k, v in enumerate(variants):
        s = _scores(audit, rng, 0.15 + 0.05 * k)
        preds.append(pd.DataFrame({"variant": v, "example_id": audit["example_id"], "score": s,
                                   "predicted_label": (s >= threshold).astype(np.int64), "threshold": threshold,
                                   "truncated": False, "raw_score": s}))
        vs = _scores(validation, rng, 0.15 + 0.05 * k)
        vals.append(pd.DataFrame({"variant": v, "example_id": validation["example_id"],
                                  "label": validation["label"], "raw_score": vs, "score": vs,
                                  "predicted_label": (vs >= threshold).astype(np.int64),
                                  "group": validation["group"], "axis": validation["axis"]}))
    return {"audit_sample": audit, "predictions": pd.concat(preds, ignore_index=True), "validation": validation,
            "validation_predictions": pd.concat(vals, ignore_index=True)}
