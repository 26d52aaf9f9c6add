"""Synthetic audit data that follows the stage contracts (small, seeded)."""

from __future__ import annotations

import numpy as np
import pandas as pd

GROUPS = ("women", "black", "jewish", "lgbtq", "muslim")
AXIS = {"women": "gender", "black": "race", "jewish": "religion", "lgbtq": "orientation", "muslim": "religion"}


def make_audit(n_per_group: int = 200, *, seed: int = 0, extra_fpr: dict[str, float] | None = None,
               variants: tuple[str, ...] = ("finetuned", "rag")) -> dict[str, pd.DataFrame]:
    """An audit sample plus predictions, twin predictions and retrievals that follow the contracts.

    ``extra_fpr`` plants extra false positives: for a group, that share of its negatives is
    flipped to a positive decision (and a high score) in every variant.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for g in GROUPS:
        for i in range(n_per_group):
            rows.append({"example_id": f"{g}-{i:05d}", "text": f"some comment {i} about {g}",
                         "label": int(rng.random() < 0.5), "group": g, "axis": AXIS[g]})
    sample = pd.DataFrame(rows)
    y = sample["label"].to_numpy()
    preds, twin_rows, retr = [], [], []
    for k, v in enumerate(variants):
        score = np.clip(0.25 + 0.5 * y + rng.normal(0, 0.2, len(y)), 0, 1)
        label = (score >= 0.5).astype(int)
        for g, extra in (extra_fpr or {}).items():
            m = (sample["group"].to_numpy() == g) & (y == 0) & (label == 0)
            idx = np.flatnonzero(m)
            flip = idx[rng.random(len(idx)) < extra]
            label[flip] = 1
            score[flip] = rng.uniform(0.5, 1.0, len(flip))
        preds.append(pd.DataFrame({"variant": v, "example_id": sample["example_id"], "score": score,
                                   "predicted_label": label, "threshold": 0.5, "truncated": False}))
        modes = ("full", "query_only") if v == "rag" else ("full",)
        for mode in modes:
            tscore = np.clip(score + rng.normal(0, 0.05 if mode == "full" else 0.02, len(y)), 0, 1)
            twin_rows.append(pd.DataFrame({"variant": v, "mode": mode, "twin_id": sample["example_id"] + "::cf",
                                           "example_id": sample["example_id"], "score": tscore,
                                           "predicted_label": (tscore >= 0.5).astype(int)}))
        if v == "rag":
            for rank in range(4):
                same = rng.random(len(y)) < 0.6
                other = rng.choice(GROUPS, len(y))
                doc_group = np.where(same, sample["group"], other)
                retr.append(pd.DataFrame({"variant": v, "example_id": sample["example_id"], "rank": rank,
                                          "doc_id": [f"d{rank}-{i}" for i in range(len(y))],
                                          "similarity": rng.random(len(y)), "doc_group": doc_group,
                                          "doc_label": (rng.random(len(y)) < 0.5).astype(float)}))
    return {
        "audit_sample": sample,
        "predictions": pd.concat(preds, ignore_index=True),
        "twin_predictions": pd.concat(twin_rows, ignore_index=True),
        "retrievals": pd.concat(retr, ignore_index=True) if retr else None,
        "twins": pd.DataFrame({"twin_id": sample["example_id"] + "::cf", "example_id": sample["example_id"],
                               "text": sample["text"], "group": sample["group"], "axis": sample["axis"],
                               "swaps": "x->y", "n_swaps": 1}),
    }

