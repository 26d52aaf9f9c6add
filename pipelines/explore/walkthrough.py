"""Tables for the audit walkthrough notebook: one run's artifacts as tidy DataFrames.

Every method returns a DataFrame. When the stage or section behind it did not run,
the frame is empty and ``frame.attrs["missing"]`` says what is missing and how to
produce it; :func:`show` displays that message instead of an empty table.

Examples
--------
>>> from pipelines.explore.walkthrough import AuditRun
>>> run = AuditRun("reports/runs/demo/<run-id>")  # doctest: +SKIP
>>> run.group_metrics(metrics=("fpr", "tpr")).head()  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from pipelines.explore._runs import finished_stages, read_manifest, read_stage, resolve_run_dir

__all__ = ["AuditRun", "show", "METRIC_COLUMNS", "KEY_DISPARITIES"]

KEY_DISPARITIES = ("demographic_parity_difference", "equalized_odds_difference", "equal_opportunity_difference",
                   "fpr_difference", "roc_auc_difference")
METRIC_COLUMNS = ["variant", "feature", "group", "metric", "value", "ci_low", "ci_high", "n", "status"]
HINT = "re-run the audit with `fairness-audit run <config>`"


def _missing(columns: Sequence[str], message: str):
    import pandas as pd

    df = pd.DataFrame(columns=list(columns))
    df.attrs["missing"] = message
    return df


def show(frame, *, max_rows: int = 60) -> None:
    """Display a table in a notebook, or the note saying why it is empty."""
    from IPython.display import Markdown, display

    note = frame.attrs.get("missing") if hasattr(frame, "attrs") else None
    if note and frame.empty:
        display(Markdown(f"> **Not available:** {note}"))
    elif frame.empty:
        display(Markdown("*(no rows)*"))
    else:
        display(frame.head(max_rows) if len(frame) > max_rows else frame)


class AuditRun:
    """The artifacts of one run directory, read lazily and once."""

    def __init__(self, run_dir: str | Path | None = None):
        self.run_dir = resolve_run_dir(run_dir)
        self.manifest = read_manifest(self.run_dir)
        self._stages: dict[str, dict[str, Any] | None] = {}

    def stage(self, name: str) -> dict[str, Any] | None:
        if name not in self._stages:
            self._stages[name] = read_stage(self.run_dir, name)
        return self._stages[name]

    def artifact(self, stage: str, name: str) -> Any:
        out = self.stage(stage)
        return None if out is None else out.get(name)

    def _absent(self, stage: str, name: str) -> str:
        if self.stage(stage) is None:
            return (f"stage `{stage}` did not run in {self.run_dir.name} (finished: "
                    f"{', '.join(finished_stages(self.run_dir)) or 'none'}); {HINT}.")
        return f"stage `{stage}` of {self.run_dir.name} has no `{name}` artifact; {HINT} with a newer pipeline."

    # -- the run --------------------------------------------------------------
    def overview(self):
        """Run id, audit, status, verdict and reasons, config hash, data fingerprint."""
        import pandas as pd

        m = self.manifest
        rows = [("audit", m.get("audit")), ("run", m.get("run_id")), ("started", m.get("started_at")),
                ("status", m.get("status")), ("verdict", m.get("verdict")),
                ("verdict reasons", "; ".join(m.get("verdict_reasons") or [])),
                ("config", m.get("config_source")), ("config hash", (m.get("config_hash") or "")[:12]),
                ("data fingerprint", (m.get("data_fingerprint") or "")[:12]), ("seed", m.get("seed")),
                ("pipeline version", m.get("pipeline_version"))]
        return pd.DataFrame(rows, columns=["item", "value"])

    def stages(self):
        """One row per stage: status, cache hit, seconds."""
        import pandas as pd

        stages = self.manifest.get("stages") or {}
        order = [n for n in self.manifest.get("stage_order") or stages if n in stages]
        rows = [{"stage": name, "status": stages[name].get("status"), "cache_hit": stages[name].get("cache_hit"),
                 "seconds": stages[name].get("seconds")} for name in order]
        return pd.DataFrame(rows, columns=["stage", "status", "cache_hit", "seconds"])

    # -- data -----------------------------------------------------------------
    def representation(self):
        """Rows, share and label base rate per split, sensitive feature and group (``load_data.data_summary``)."""
        import pandas as pd

        cols = ["split", "feature", "group", "count", "share", "positives", "base_rate"]
        summary = self.artifact("load_data", "data_summary")
        if not isinstance(summary, dict):
            return _missing(cols, self._absent("load_data", "data_summary"))
        rows = []
        for split, entry in (summary.get("splits") or {}).items():
            rows.append({"split": split, "feature": "(all)", "group": "(all)", "count": entry.get("rows"),
                         "share": 1.0 if entry.get("rows") else None, "positives": None,
                         "base_rate": entry.get("base_rate")})
            for feature, groups in (entry.get("features") or {}).items():
                for group, g in groups.items():
                    rows.append({"split": split, "feature": feature, "group": group, "count": g.get("count"),
                                 "share": g.get("share"), "positives": g.get("positives"),
                                 "base_rate": g.get("base_rate")})
        return pd.DataFrame(rows, columns=cols)

    def removed_rows(self):
        """Rows the data stage dropped, by reason."""
        import pandas as pd

        removed = self.artifact("load_data", "removed_rows")
        if not isinstance(removed, dict):
            return _missing(["reason", "rows"], self._absent("load_data", "removed_rows"))
        by_reason = removed.get("by_reason") or {}
        return pd.DataFrame(sorted(by_reason.items()), columns=["reason", "rows"])

    def audit_sample(self):
        """The evaluated examples (``load_data.audit_sample``)."""
        sample = self.artifact("load_data", "audit_sample")
        if sample is None:
            return _missing(["example_id", "text", "label"], self._absent("load_data", "audit_sample"))
        return sample

    def validation(self):
        """TFDV's verdict on the data: schema origin, anomalies, drift and skew (``validate_data``)."""
        import pandas as pd

        s = self.artifact("validate_data", "validation_summary")
        if not isinstance(s, dict):
            return _missing(["item", "value"], self._absent("validate_data", "validation_summary"))
        schema = s.get("schema") or {}
        rows = [("blessed", s.get("blessed")), ("anomalies", s.get("anomaly_count")),
                ("drift thresholds exceeded", _join(s.get("drift_exceeded"))),
                ("skew thresholds exceeded", _join(s.get("skew_exceeded"))),
                ("schema", schema.get("origin") if isinstance(schema, dict) else schema),
                ("block on anomalies", s.get("block_on_anomalies"))]
        for split, counts in (s.get("examples_per_slice") or {}).items():
            if isinstance(counts, dict):
                rows.append((f"slices of {split}", ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))))
        return pd.DataFrame(rows, columns=["item", "value"])

    # -- evaluation -------------------------------------------------------------
    def _table(self, name: str, columns: Sequence[str]):
        table = self.artifact("evaluate", name)
        if table is None:
            return _missing(columns, self._absent("evaluate", name))
        return table

    def group_metrics(self, *, metrics: Sequence[str] | None = None, feature: str | None = None):
        """Per-group metrics with their bootstrap intervals (``evaluate.group_metrics``), long format."""
        df = self._table("group_metrics", METRIC_COLUMNS)
        if df.empty:
            return df
        if metrics is not None:
            df = df[df["metric"].isin(list(metrics))]
        if feature is not None:
            df = df[df["feature"] == feature]
        return _with_interval(df.reset_index(drop=True))

    def metric_grid(self, metric: str, *, feature: str | None = None):
        """One metric as a group x variant grid of ``value [ci_low, ci_high]`` strings."""
        df = self.group_metrics(metrics=(metric,), feature=feature)
        if df.empty:
            if not df.attrs.get("missing"):
                df.attrs["missing"] = f"no `{metric}` rows in evaluate.group_metrics"
            return df
        return df.pivot_table(index=["feature", "group"], columns="variant", values="estimate", aggfunc="first")

    def disparities(self, *, metrics: Sequence[str] | None = None):
        """Between-group disparities with intervals (``evaluate.disparities``)."""
        df = self._table("disparities", METRIC_COLUMNS)
        if df.empty:
            return df
        if metrics is not None:
            df = df[df["metric"].isin(list(metrics))]
        return _with_interval(df.reset_index(drop=True))

    def disparity_grid(self, metrics: Sequence[str] = KEY_DISPARITIES):
        """Disparities as a (feature, metric) x variant grid of ``value [ci_low, ci_high]`` strings."""
        df = self.disparities(metrics=metrics)
        if df.empty:
            if not df.attrs.get("missing"):
                df.attrs["missing"] = f"none of {list(metrics)} in evaluate.disparities"
            return df
        return df.pivot_table(index=["feature", "metric"], columns="variant", values="estimate", aggfunc="first")

    def comparison(self):
        """The paired comparisons of the variants (difference a - b per pair, ``evaluate.comparison``)."""
        df = self._table("comparison", ["a", "b", "kind", *METRIC_COLUMNS[1:]])
        return df if df.empty else _with_interval(df)

    def comparison_grid(self, *, kind: str = "disparity", metrics: Sequence[str] = KEY_DISPARITIES):
        """The paired comparison as a grid: one row per (feature, group, metric), the difference ``a - b``.

        ``kind``: ``disparity`` (between-group gaps), ``metric`` (per-group metrics) or ``agreement``.
        """
        df = self.comparison()
        if df.empty:
            return df
        df = df[df["kind"] == kind]
        if kind != "agreement":
            df = df[df["metric"].isin(list(metrics))]
        if df.empty:
            out = df.copy()
            out.attrs["missing"] = f"no `{kind}` rows for {list(metrics)} in evaluate.comparison"
            return out
        out = df.assign(group=df["group"].fillna("(all)"), metric=df["metric"].fillna(kind),
                        pair=df["a"].astype(str) + " - " + df["b"].astype(str))
        grid = out.pivot_table(index=["feature", "group", "metric"], columns="pair", values="estimate",
                               aggfunc="first")
        grid.columns.name = None
        return grid

    def counterfactual_flips(self, *, metrics: Sequence[str] = ("flip_rate", "mean_abs_delta")):
        """Counterfactual flip rates and mean |score change| per variant, mode and group."""
        df = self._table("counterfactual_metrics", ["variant", "mode", *METRIC_COLUMNS[1:]])
        if df.empty:
            if df.attrs.get("missing") is None:
                df.attrs["missing"] = ("no counterfactual twins were scored in this run (is "
                                       "`evaluation.counterfactual.enabled` true?)")
            return df
        return _with_interval(df[df["metric"].isin(list(metrics))].reset_index(drop=True))

    def flip_grid(self, *, mode: str = "full", metric: str = "flip_rate"):
        """One counterfactual metric as a (feature, group) x variant grid of ``value [ci_low, ci_high]``."""
        df = self.counterfactual_flips(metrics=(metric,))
        if df.empty:
            return df
        df = df[df["mode"] == mode]
        if df.empty:
            out = df.copy()
            out.attrs["missing"] = f"no `{mode}` counterfactual rows in this run"
            return out
        return df.pivot_table(index=["feature", "group"], columns="variant", values="estimate", aggfunc="first")

    def flipped_examples(self, *, variant: str | None = None, mode: str = "full", limit: int = 20):
        """Examples whose twin (identity terms swapped) got the other predicted label, largest score change first."""
        import pandas as pd

        cols = ["variant", "example_id", "group", "text", "twin_text", "score", "twin_score", "delta"]
        twins = self.artifact("counterfactuals", "twins")
        tp = self.artifact("predict", "twin_predictions")
        preds = self.artifact("predict", "predictions")
        if twins is None or tp is None or preds is None:
            stage = "counterfactuals" if twins is None else "predict"
            return _missing(cols, self._absent(stage, "twins" if twins is None else "twin_predictions"))
        if tp.empty:
            return _missing(cols, "no twin predictions in this run")
        t = tp[tp["mode"] == mode] if "mode" in tp.columns else tp
        if variant is not None:
            t = t[t["variant"] == variant]
        orig = preds[["variant", "example_id", "score", "predicted_label"]].rename(
            columns={"score": "score", "predicted_label": "label_orig"})
        merged = (t.rename(columns={"score": "twin_score", "predicted_label": "label_twin"})
                  .merge(orig, on=["variant", "example_id"], how="inner")
                  .merge(twins[["twin_id", "text"]].rename(columns={"text": "twin_text"}), on="twin_id", how="left"))
        sample = self.audit_sample()
        keep = ["example_id", "text"] + (["group"] if "group" in sample.columns else [])
        merged = merged.merge(sample[keep], on="example_id", how="left")
        if "group" not in merged.columns:
            merged["group"] = None
        merged = merged[merged["label_orig"] != merged["label_twin"]]
        merged["delta"] = merged["twin_score"] - merged["score"]
        merged = merged.reindex(merged["delta"].abs().sort_values(ascending=False).index)
        return pd.DataFrame(merged[cols].head(limit)).reset_index(drop=True)

    def gates(self):
        """Each gate's value, interval, bound and status (``evaluate.gate_results``)."""
        return self._table("gate_results", ["gate", "variant", "metric", "feature", "group", "bound", "direction",
                                            "value", "ci_low", "ci_high", "n", "status", "reason"])

    def verdict(self) -> str | None:
        """The run's verdict, as its manifest records it (None when the run did not finish)."""
        return self.manifest.get("verdict")

    def performance(self):
        """Throughput and latency per variant (``predict.performance``)."""
        import pandas as pd

        perf = self.artifact("predict", "performance")
        if not isinstance(perf, dict):
            return _missing(["variant"], self._absent("predict", "performance"))
        rows = []
        for v, p in perf.items():
            rows.append({"variant": v, **{k: p.get(k) for k in ("examples", "seconds", "examples_per_s",
                                                                 "latency_ms_per_example", "batch_size",
                                                                 "truncated", "build_seconds")}})
        return pd.DataFrame(rows)


def _join(value: Any) -> str:
    if not value:
        return "none"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v if not isinstance(v, dict) else v.get("feature", v)) for v in value)
    return str(value)


def _with_interval(df):
    """Add ``estimate``: ``value [ci_low, ci_high]`` (or the status when there is no value)."""
    import math

    def fmt(row) -> str:
        v = row.get("value")
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return str(row.get("status") or "n/a")
        lo, hi = row.get("ci_low"), row.get("ci_high")
        if lo is None or hi is None or (isinstance(lo, float) and math.isnan(lo)):
            return f"{v:.3f}"
        return f"{v:.3f} [{lo:.3f}, {hi:.3f}]"

    df = df.copy()
    df["estimate"] = [fmt(r) for r in df.to_dict("records")] if len(df) else []
    return df
