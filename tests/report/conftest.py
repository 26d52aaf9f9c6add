"""Fixtures for the report tests: well-formed stage artifacts without real models.

``make_artifacts`` builds what the stages would write (one dict of artifacts per
stage) from a small synthetic dataset: the data summary with the real
``summarize``, a TFDV-shaped validation summary, twins, predictions of two variants
with a known quality, and the real evaluation (``evaluate_fairness``) run on those
predictions. ``run_from_artifacts`` writes them into a run folder through the real
runner (stub stages that return them) and renders the report after the run, as the
CLI does.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.config import config_from_dict

PAYLOAD_TEXTS = (
    "<script>alert('xss')</script> women are awful",
    "<img src=x onerror=alert(1)> men are fine",
    "plain comment about women & men </td></tr></table>",
    "\"><svg onload=alert(2)> women",
)
PAYLOAD_GROUP = "<b onmouseover=alert(3)>grp</b>"

GATES = [
    {"metric": "accuracy", "bound": 0.55, "direction": "min"},
    {"metric": "fpr_difference", "bound": 0.9, "direction": "max"},
    {"metric": "flip_rate", "bound": 0.5, "direction": "max"},
]


def audit_config(tmp_path, *, name: str = "unit", gates=GATES, resamples: int = 50, top: int = 6, extra=None):
    raw = {
        "audit": {"name": name, "description": "A <i>synthetic</i> audit & its report"},
        "seed": 3,
        "data": {"source": "file", "file": {"path": str(tmp_path / "data.csv"), "sensitive_columns": ["group"]}},
        "evaluation": {"min_group_size": 10, "min_class_count": 3, "bootstrap": {"resamples": resamples},
                       "intersections": False, "gates": list(gates),
                       "counterfactual": {"feature": "group", "use_redditbias_terms": False}},
        "report": {"top_examples": top},
        "output": {"runs_dir": str(tmp_path / "runs"), "cache_dir": str(tmp_path / "cache")},
    }
    if extra:
        raw.update(extra)
    return config_from_dict(raw, base_dir=tmp_path, source=str(tmp_path / "audit.yaml"))


def _sample(groups, n_per: int, rng, payload: bool) -> pd.DataFrame:
    rows = []
    k = 0
    for g in groups:
        for i in range(n_per):
            label = int(i % 2)
            text = f"comment {k} about {g} number {i}"
            if payload:
                text = PAYLOAD_TEXTS[i % len(PAYLOAD_TEXTS)] + f" ({k})"
            rows.append({"example_id": f"{g}-{i:03d}", "text": text, "label": label, "group": g, "split": "eval",
                         "n_chars": len(text), "n_tokens": len(text.split()), "source_file": "data.csv"})
            k += 1
    return pd.DataFrame(rows)


def make_artifacts(config, *, groups=("women", "men"), n_per: int = 40, variants=("finetuned", "rag"),
                   payload: bool = False, with_twins: bool = True, with_eval: bool = True, quality=None,
                   seed: int = 0) -> dict:
    """Stage artifacts as the runner would hand them to the report stage."""
    from pipelines.stages.load_data.summary import summarize

    rng = np.random.default_rng(seed)
    sample = _sample(groups, n_per, rng, payload)
    train = sample.assign(split="train", example_id=sample["example_id"] + "-t")
    examples = pd.concat([train, sample], ignore_index=True)
    summary = summarize(examples, sensitive_features=("group",))
    summary.update({"source": "file", "sensitive_features": ["group"], "audit_sample_rows": len(sample),
                    "fingerprint": "f" * 64, "file_sha256": {"file": "a" * 64}, "removed_rows": 3})
    data = {
        "examples": examples, "train": train, "validation": train.head(0), "eval": sample, "audit_sample": sample,
        "removed_rows": {"total": 3, "rows_read": len(examples) + 3, "kept": len(examples),
                         "by_reason": {"empty_text": 1, "label_not_in_positive_or_negative": 2},
                         "by_file": {"data.csv": {"empty_text": 1, "label_not_in_positive_or_negative": 2}}},
        "data_summary": summary,
    }
    validation = {"validation_summary": {
        "anomalies": {"train": [], "eval": [{"feature": "n_tokens", "severity": "ERROR",
                                             "short_description": "Out-of-range values <script>x</script>",
                                             "description": "Unexpectedly large value: 99.", "types": ["INT_TYPE"]}],
                      "validation": []},
        "drift": [{"feature": "group", "measure": "L_INFTY", "value": 0.01, "threshold": 0.05, "exceeded": False},
                  {"feature": "n_tokens", "measure": "JENSEN_SHANNON_DIVERGENCE", "value": 0.2, "threshold": 0.1,
                   "exceeded": True}],
        "skew": [], "anomaly_count": 1, "blessed": False, "block_on_anomalies": False,
        "schema": {"origin": "curated", "path": "schemas/x.pbtxt", "sha256": "b" * 64},
        "examples_per_slice": {},
    }}
    twins = sample[sample.index % 3 == 0].copy()
    twins = pd.DataFrame({"twin_id": twins["example_id"] + "::cf", "example_id": twins["example_id"],
                          "text": twins["text"].str.replace("women", "men"), "group": twins["group"],
                          "swaps": "women->men", "n_swaps": 1})
    counterfactuals = {"twins": twins, "counterfactual_coverage": {"twins": len(twins)}} if with_twins else None
    quality = quality or {"finetuned": 0.85, "rag": 0.65}
    pred_frames, twin_frames, retr = [], [], []
    for v in variants:
        q = quality.get(v, 0.7)
        y = sample["label"].to_numpy()
        noise = rng.uniform(0, 1, len(y))
        score = np.where(noise < q, np.where(y == 1, 0.55 + 0.4 * noise, 0.45 - 0.4 * noise),
                         np.where(y == 1, 0.3 * noise, 1 - 0.3 * noise)).clip(0, 1)
        pred_frames.append(pd.DataFrame({"variant": v, "example_id": sample["example_id"], "score": score,
                                         "predicted_label": (score >= 0.5).astype(np.int64), "threshold": 0.5,
                                         "truncated": False}))
        if with_twins:
            orig = dict(zip(sample["example_id"], score))
            ts = np.array([orig[e] for e in twins["example_id"]])
            ts = np.where(np.arange(len(ts)) % 4 == 0, 1 - ts, ts)  # every 4th twin flips
            modes = ("full", "query_only") if v == "rag" else ("full",)
            for m in modes:
                twin_frames.append(pd.DataFrame({"variant": v, "mode": m, "twin_id": twins["twin_id"],
                                                 "example_id": twins["example_id"], "score": ts,
                                                 "predicted_label": (ts >= 0.5).astype(np.int64)}))
        if v == "rag":
            for eid, g in zip(sample["example_id"], sample["group"]):
                for rank in (1, 2):
                    retr.append({"variant": v, "example_id": eid, "rank": rank, "doc_id": f"d{rank}",
                                 "similarity": 0.9 / rank, "doc_group": g if rank == 1 else groups[0],
                                 "doc_label": rank % 2})
    predictions = pd.concat(pred_frames, ignore_index=True)
    twin_predictions = pd.concat(twin_frames, ignore_index=True) if twin_frames else None
    retrievals = pd.DataFrame(retr, columns=["variant", "example_id", "rank", "doc_id", "similarity", "doc_group",
                                             "doc_label"])
    predict = {
        "predictions": predictions,
        "twin_predictions": twin_predictions if twin_predictions is not None else pd.DataFrame(
            columns=["variant", "mode", "twin_id", "example_id", "score", "predicted_label"]),
        "retrievals": retrievals,
        "thresholds": {v: {"value": 0.5, "method": "fixed", "split": "validation"} for v in variants},
        "performance": {v: {"examples": len(sample), "seconds": 1.0 + i, "examples_per_s": len(sample) / (1.0 + i),
                            "latency_ms_per_example": 1000 * (1.0 + i) / len(sample), "batch_size": 8,
                            "truncated": 0, "build_seconds": 100.0 * (i + 1),
                            "twin_modes": (["full", "query_only"] if v == "rag" else ["full"]) if with_twins else []}
                        for i, v in enumerate(variants)},
    }
    built = {"variants": {v: {"kind": "rag" if v == "rag" else "finetuned", "model_dir": f"/cache/{v}",
                              "weights_sha256": f"{i}" * 64,
                              "config_sha256": "c" * 64, "build_seconds": 100.0 * (i + 1)}
                          for i, v in enumerate(variants)}}
    evaluate = None
    if with_eval:
        from pipelines.fairness import evaluate_fairness

        evaluate = evaluate_fairness(audit_sample=sample, predictions=predictions, config=config.evaluation,
                                     data_features=("group",), seed=config.seed,
                                     twins=twins if with_twins else None, twin_predictions=twin_predictions,
                                     retrievals=retrievals if "rag" in variants else None,
                                     variant_order=tuple(variants)).to_artifacts()
    return {"data": data, "validation": validation, "counterfactuals": counterfactuals, "variants": built,
            "predict": predict, "evaluate": evaluate}


STAGE_ORDER = ("load_data", "validate_data", "counterfactuals", "build_variants", "predict", "evaluate")
_KEYS = {"load_data": "data", "validate_data": "validation", "counterfactuals": "counterfactuals",
         "build_variants": "variants", "predict": "predict", "evaluate": "evaluate"}


def run_from_artifacts(config, arts: dict, *, run_id: str = "r1", started_at: str = "2026-11-27T00:00:00+00:00",
                       stages: tuple[str, ...] = STAGE_ORDER):
    """A finished run folder holding ``arts`` (stub stages through the real runner), with its report."""
    from pipelines.core.runner import Stage, run_audit
    from pipelines.graph import data_fingerprint_of, run_verdict
    from pipelines.report import post_run

    def stub(name):
        part = arts[_KEYS[name]]
        return Stage(name=name, fn=lambda ctx: dict(part), cache=False)

    chosen = [stub(n) for n in stages if arts.get(_KEYS[n]) is not None]
    result = run_audit(config, chosen, run_id=run_id, started_at=started_at, show_progress=False,
                       data_fingerprint=data_fingerprint_of, finalize=run_verdict)
    post_run(result.run_dir, config=config)
    return result.run_dir


@pytest.fixture
def artifacts_for():
    return make_artifacts
