"""Open a run's What-If Tool export and configure WitWidget in compare mode (used by the notebook)."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from pipelines.explore._errors import (
    MSG_NO_EXPORT,
    MSG_ONE_VARIANT,
    MSG_PROTOBUF,
    ExportMissingError,
    NotEnoughVariantsError,
    WitInputError,
)
from pipelines.core.rundir import STAGE_INDEX
from pipelines.explore._runs import finished_stages, read_manifest

__all__ = ["WitExport", "load_export", "require_python_protobuf", "compare_pair", "wit_config_builder",
           "what_if_tool", "PROTOBUF_ENV"]

PROTOBUF_ENV = "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION"
DEFAULT_PAIR = ("finetuned", "rag")


def require_python_protobuf() -> None:
    """Make sure protobuf runs its pure-Python implementation (witwidget's ``*_pb2`` need it).

    Sets the environment variable when protobuf is not imported yet; raises a
    :class:`WitInputError` naming the fix when it was already imported with another one.
    """
    if "google.protobuf" not in sys.modules:
        os.environ[PROTOBUF_ENV] = "python"
        return
    from google.protobuf.internal import api_implementation

    impl = api_implementation.Type()
    if impl != "python":
        raise WitInputError(MSG_PROTOBUF.format(impl=impl))


@dataclass
class WitExport:
    """A run's ``export_wit`` stage: the description JSON and the TFRecord it points to."""

    run_dir: Path
    description: dict[str, Any]
    _examples: list[Any] | None = field(default=None, repr=False)
    _frame: Any = field(default=None, repr=False)

    @property
    def examples_path(self) -> Path:
        return self.run_dir / self.description["examples_path"]

    @property
    def variants(self) -> list[str]:
        return list(self.description.get("variants") or [])

    @property
    def example_count(self) -> int:
        return int(self.description["example_count"])

    @property
    def run_id(self) -> str:
        return str(self.description.get("run_id"))

    def examples(self) -> list[Any]:
        """The ``tf.train.Example`` protos (read once)."""
        if self._examples is None:
            from pipelines.stages.export_wit.run import read_tfrecord

            self._examples = read_tfrecord(self.examples_path)
        return self._examples

    def frame(self):
        """The examples as a DataFrame, in file order (built once; treat it as read-only)."""
        if self._frame is None:
            from pipelines.stages.export_wit.run import examples_to_frame

            self._frame = examples_to_frame(self.examples())
        return self._frame

    def known_scores(self, variant: str) -> dict[str, float]:
        """``{text: exported score}`` of one variant."""
        df = self.frame()
        col = self.description["variant_features"][variant]["score"]
        return dict(zip(df[self.description["text_feature"]], df[col].astype(float)))

    def summary(self):
        """One row per fact: run, examples, target, variants with thresholds, features."""
        import pandas as pd

        d = self.description
        rows = [("run", self.run_id), ("run directory", str(self.run_dir)), ("examples", d["example_count"]),
                ("target feature", d["target_feature"]), ("label vocabulary", ", ".join(d["label_vocab"])),
                ("sensitive features", ", ".join(d["sensitive_features"])),
                ("derived features", ", ".join(d["derived_features"]))]
        for v in self.variants:
            th = d["variant_features"][v].get("threshold")
            rows.append((f"variant {v}", f"threshold {th:.3f}" if isinstance(th, (int, float)) else "threshold n/a"))
        return pd.DataFrame(rows, columns=["item", "value"])


def load_export(run_dir: str | Path, *, min_variants: int = 2) -> WitExport:
    """Read a run's What-If Tool export; check it is complete and has ``min_variants`` variants.

    Raises
    ------
    RunNotFoundError
        ``run_dir`` is not a run directory.
    ExportMissingError
        No finished ``export_wit`` stage, or its TFRecord is missing.
    NotEnoughVariantsError
        Fewer than ``min_variants`` variants (compare mode needs 2).
    """
    import json

    run_dir = Path(run_dir)
    read_manifest(run_dir)
    folder = run_dir / "export_wit"
    desc_path = folder / "wit_export.json"
    stages = ", ".join(finished_stages(run_dir)) or "none"
    if not (folder / STAGE_INDEX).is_file() or not desc_path.is_file():
        missing = "no export_wit/ folder" if not folder.is_dir() else "export_wit/ did not finish (no wit_export.json)"
        raise ExportMissingError(MSG_NO_EXPORT.format(run_dir=run_dir, missing=missing, stages=stages))
    try:
        description = json.loads(desc_path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ExportMissingError(MSG_NO_EXPORT.format(run_dir=run_dir, missing=f"{desc_path} is not JSON ({exc})",
                                                      stages=stages)) from exc
    export = WitExport(run_dir=run_dir, description=description)
    if not export.examples_path.is_file():
        raise ExportMissingError(MSG_NO_EXPORT.format(
            run_dir=run_dir, missing=f"the TFRecord {description.get('examples_path')} is missing", stages=stages))
    variants = export.variants
    if len(variants) < min_variants:
        found = (f"only variant {variants[0]!r}" if len(variants) == 1 else
                 "no variant" if not variants else f"variants {variants}")
        raise NotEnoughVariantsError(MSG_ONE_VARIANT.format(run_dir=run_dir, found=found))
    return export


def compare_pair(variants: Sequence[str]) -> tuple[str, str]:
    """The two variants to compare: fine-tuned vs RAG when both exist, else the first two."""
    if all(v in variants for v in DEFAULT_PAIR):
        return DEFAULT_PAIR
    if len(variants) < 2:
        raise NotEnoughVariantsError(MSG_ONE_VARIANT.format(run_dir="this run", found=f"variants {list(variants)}"))
    return variants[0], variants[1]


def wit_config_builder(export: WitExport, predictors: Mapping[str, Any], *, pair: tuple[str, str] | None = None,
                       reuse_exported_scores: bool = True, examples: Sequence[Any] | None = None):
    """A ``WitConfigBuilder`` in compare mode with a custom predict fn per variant.

    Returns ``(builder, {variant: WitPredictFn})``. With ``reuse_exported_scores`` an
    unedited datapoint gets the run's exported score; an edited one is scored live.
    """
    from witwidget.notebook.visualization import WitConfigBuilder

    from pipelines.explore.predictors import wit_predict_fn

    a, b = pair or compare_pair(export.variants)
    for name in (a, b):
        if name not in predictors:
            raise NotEnoughVariantsError(MSG_ONE_VARIANT.format(
                run_dir=export.run_dir, found=f"no model for variant {name!r} (loaded: {sorted(predictors)})"))
    d = export.description
    text = d["text_feature"]
    fns = {
        name: wit_predict_fn(predictors[name], text_feature=text,
                             known_scores=export.known_scores(name) if reuse_exported_scores else None)
        for name in (a, b)
    }
    exs = list(examples if examples is not None else export.examples())
    builder = (
        WitConfigBuilder(exs)
        .set_model_name(a)
        .set_custom_predict_fn(fns[a])
        .set_compare_model_name(b)
        .set_compare_custom_predict_fn(fns[b])
        .set_model_type("classification")
        .set_target_feature(d["target_feature"])
        .set_label_vocab(list(d["label_vocab"]))
    )
    return builder, fns


def what_if_tool(export: WitExport, predictors: Mapping[str, Any], *, height: int = 900,
                 pair: tuple[str, str] | None = None, reuse_exported_scores: bool = True):
    """``WitWidget`` in compare mode (fine-tuned vs RAG); returns ``(widget, predict fns)``."""
    require_python_protobuf()
    from witwidget.notebook.visualization import WitWidget

    builder, fns = wit_config_builder(export, predictors, pair=pair, reuse_exported_scores=reuse_exported_scores)
    return WitWidget(builder, height=height), fns
