"""The report's data, examples, provenance and trend sections, built from a run's inputs."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from pipelines.core.artifacts import to_jsonable
from pipelines.report._inputs import TREND_RUNS, RunInputs

__all__ = ["data_section", "examples_section", "provenance_section", "trend_section"]


def data_section(inputs: RunInputs, missing: list[dict[str, str]]) -> dict[str, Any] | None:
    """Sizes, group representation and base rates per split; removed rows; TFDV findings and shared texts;
    counterfactual coverage per group."""
    summary = inputs.artifact("load_data", "data_summary")
    if summary is None:
        missing.append({"section": "data", "reason": "stage load_data did not finish: no data summary."})
        return None
    removed = inputs.artifact("load_data", "removed_rows") or {}
    splits = {}
    for split, entry in summary["splits"].items():
        splits[split] = {
            "rows": entry["rows"],
            "base_rate": entry["base_rate"],
            "groups": {feature: {str(g): {"count": v["count"], "share": v["share"], "positives": v["positives"],
                                          "base_rate": v["base_rate"]} for g, v in groups.items()}
                       for feature, groups in entry["features"].items()},
        }
    out: dict[str, Any] = {
        "source": summary.get("source"),
        "rows": summary["rows"],
        "sensitive_features": list(summary["sensitive_features"]),
        "audit_sample_rows": summary.get("audit_sample_rows"),
        "encodings": summary.get("encodings") or {},
        "splits": splits,
        "removed_rows": {
            "total": removed.get("total"),
            "rows_read": removed.get("rows_read"),
            "kept": removed.get("kept"),
            "by_reason": dict(removed.get("by_reason") or {}),
            "by_file": dict(removed.get("by_file") or {}),
        },
        "validation": None,
        "twins": _twins(inputs),
    }
    vs = inputs.artifact("validate_data", "validation_summary")
    if vs is None:
        missing.append({"section": "data.validation",
                        "reason": "stage validate_data did not finish: no TFDV anomalies, drift or skew."})
        return out

    def anomaly(a: Mapping[str, Any]) -> dict[str, Any]:
        return {k: a.get(k) for k in ("feature", "severity", "short_description", "description")} | {
            "types": list(a.get("types") or [])}

    def distance(d: Mapping[str, Any]) -> dict[str, Any]:
        return {k: d[k] for k in ("feature", "measure", "value", "threshold", "exceeded")}

    schema = vs.get("schema") or {}
    out["validation"] = {
        "blessed": vs.get("blessed"),
        "block_on_anomalies": vs.get("block_on_anomalies"),
        "anomaly_count": vs.get("anomaly_count"),
        "anomalies": {split: [anomaly(a) for a in items] for split, items in sorted(vs["anomalies"].items())},
        "drift": [distance(d) for d in vs.get("drift") or []],
        "skew": [distance(d) for d in vs.get("skew") or []],
        "schema": {k: schema.get(k) for k in ("origin", "path", "sha256", "inferred_from_same_data", "written_to",
                                              "hint")},
        "examples_per_slice": vs.get("examples_per_slice") or {},
        "leakage": _leakage(vs.get("leakage")),
        "blocking": list(vs.get("blocking") or []),
    }
    return out


def _leakage(leakage: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Texts shared between splits (and knowledge bases), as the validate_data stage counted them."""
    if not isinstance(leakage, Mapping):
        return None
    keys = ("a", "b", "a_rows", "b_rows", "exact", "near", "same_as", "source", "examples")
    exceeded = {(e["a"], e["b"]) for e in leakage.get("exceeded") or []}
    return {"max_shared": leakage.get("max_shared"), "block": leakage.get("block"), "ok": leakage.get("ok"),
            "scope": leakage.get("scope"),
            "pairs": [{k: p.get(k) for k in keys} | {"exceeded": (p.get("a"), p.get("b")) in exceeded}
                      for p in leakage.get("pairs") or []]}


def _twins(inputs: RunInputs) -> dict[str, Any] | None:
    """Counterfactual coverage per group, and each group without term pairs with the config key to set."""
    cov = inputs.artifact("counterfactuals", "counterfactual_coverage")
    if not isinstance(cov, Mapping) or not isinstance(cov.get("groups"), Mapping):
        return None
    groups = {str(g): {"examples": e.get("examples"), "twins": e.get("twins"), "coverage": e.get("coverage"),
                       "terms_from": list(e.get("terms_from") or [])} for g, e in sorted(cov["groups"].items())}
    return {"feature": cov.get("feature"), "examples": cov.get("examples"), "twins": cov.get("twins"),
            "coverage": cov.get("coverage"), "groups": groups,
            "missing_terms": [{k: m.get(k) for k in ("group", "examples", "config_key", "message")}
                              for m in cov.get("missing_terms") or []]}


def _by_id(frame: Any, key: str) -> dict[str, Mapping[str, Any]]:
    if frame is None or key not in frame.columns:
        return {}
    return {str(r[key]): r for r in frame.to_dict("records")}


def examples_section(inputs: RunInputs, *, variant_names: Sequence[str], feature: str | None,
                     top: int) -> dict[str, Any]:
    """The largest counterfactual changes and the most confident errors per group, per variant."""
    out: dict[str, Any] = {"counterfactual_flips": {}, "worst_errors": {}}
    preds = inputs.artifact("predict", "predictions")
    if top <= 0 or preds is None:
        return out
    sample = _by_id(inputs.artifact("load_data", "audit_sample"), "example_id")
    twins = _by_id(inputs.artifact("counterfactuals", "twins"), "twin_id")
    tw = inputs.artifact("predict", "twin_predictions")
    for name in variant_names:
        orig = {str(r["example_id"]): r for r in preds[preds["variant"] == name].to_dict("records")}
        if tw is not None and len(tw):
            rows = tw[(tw["variant"] == name) & (tw["mode"] == "full")]
            items = []
            for r in rows.to_dict("records"):
                o = orig.get(str(r["example_id"]))
                if o is None:
                    continue
                s = sample.get(str(r["example_id"])) or {}
                items.append({
                    "example_id": str(r["example_id"]), "twin_id": str(r["twin_id"]),
                    "group": s.get(feature) if feature else None, "label": s.get("label"), "text": s.get("text"),
                    "twin_text": (twins.get(str(r["twin_id"])) or {}).get("text"),
                    "score": float(o["score"]), "twin_score": float(r["score"]),
                    "delta": float(r["score"]) - float(o["score"]),
                    "flipped": int(o["predicted_label"]) != int(r["predicted_label"]),
                })
            items.sort(key=lambda d: (not d["flipped"], -abs(d["delta"]), d["twin_id"]))
            out["counterfactual_flips"][name] = items[:top]
        if orig and sample and feature:
            by_group: dict[str, list[dict[str, Any]]] = {}
            for eid, o in orig.items():
                s = sample.get(eid)
                if s is None or int(o["predicted_label"]) == int(s["label"]):
                    continue
                by_group.setdefault(str(s.get(feature)), []).append({
                    "example_id": eid, "group": str(s.get(feature)), "label": int(s["label"]), "text": s.get("text"),
                    "score": float(o["score"]), "predicted_label": int(o["predicted_label"]),
                    "error": abs(float(o["score"]) - int(s["label"])),
                })
            per_group = max(1, top // max(len(by_group), 1))
            out["worst_errors"][name] = {g: sorted(items, key=lambda d: (-d["error"], d["example_id"]))[:per_group]
                                         for g, items in sorted(by_group.items())}
    return out


def provenance_section(inputs: RunInputs) -> dict[str, Any]:
    """Where every number comes from: config, data and model hashes, packages, stage timings."""
    from pipelines import __version__

    manifest = inputs.manifest
    summary = inputs.artifact("load_data", "data_summary") or {}
    models = {}
    for name, ident in ((inputs.artifact("build_variants", "variants") or {}).items()):
        models[name] = {
            "kind": ident.get("kind"),
            "model_dir": ident.get("model_dir"),
            "weights_sha256": ident.get("weights_sha256"),
            "config_sha256": ident.get("config_sha256"),
            "embedder_weights_sha256": (ident.get("embedder") or {}).get("weights_sha256"),
            "knowledge_base_key": (ident.get("knowledge_base") or {}).get("key"),
            "build_seconds": ident.get("build_seconds"),
        }
    stages = manifest.get("stages") or {}
    order = list(manifest.get("stage_order") or stages)
    return {
        "run_id": manifest.get("run_id"),
        "audit": manifest.get("audit"),
        "config_source": manifest.get("config_source"),
        "config_hash": manifest.get("config_hash"),
        "seed": manifest.get("seed"),
        "pipeline_version": manifest.get("pipeline_version") or __version__,
        "data_fingerprint": manifest.get("data_fingerprint"),
        "data_files_sha256": dict(summary.get("file_sha256") or {}),
        "models": models,
        "packages": dict(manifest.get("packages") or {}),
        "config": manifest.get("config") or {},
        "started_at": manifest.get("started_at"),
        "finished_at": manifest.get("finished_at"),
        "status": manifest.get("status"),
        "python": manifest.get("python"),
        "platform": manifest.get("platform"),
        "stages": [{"stage": name, "status": stages[name].get("status"), "cache_hit": stages[name].get("cache_hit"),
                    "seconds": stages[name].get("seconds")} for name in order if name in stages],
        "stage_outputs": {name: dict(stages[name].get("outputs") or {}) for name in order
                          if name in stages and stages[name].get("outputs")},
    }


def trend_section(inputs: RunInputs, *, verdict: str, key_metrics: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The earlier finished runs (oldest first, at most :data:`TREND_RUNS` in all) followed by this run."""
    prev = sorted(inputs.history, key=lambda r: (r.get("started_at") or "", r.get("run_id") or ""))
    prev = prev[-(TREND_RUNS - 1):]
    out = [{"run_id": r.get("run_id"), "started_at": r.get("started_at"), "status": r.get("status"),
            "verdict": r.get("verdict"), "key_metrics": to_jsonable(r.get("key_metrics") or {}), "current": False}
           for r in prev]
    out.append({"run_id": inputs.manifest.get("run_id"), "started_at": inputs.manifest.get("started_at"),
                "status": inputs.manifest.get("status"), "verdict": verdict,
                "key_metrics": to_jsonable(dict(key_metrics)), "current": True})
    return out
