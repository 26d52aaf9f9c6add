"""The ``predictions`` kind: scores that already exist (a data column, or a file keyed by example id)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from pipelines.errors import DataError, ModelError
from pipelines.variants._base import Predictions, Progress, no_progress
from pipelines.variants.interface import (
    BuildContext,
    ScoreSets,
    ScoringRequest,
    TwinScores,
    VariantKind,
    model_files,
    rate,
)

__all__ = ["PredictionsKind", "LoggedScores"]


class LoggedScores:
    """A "predictor" over scores that already exist: looked up by id, never computed."""

    kind = "predictions"

    def __init__(self, *, name: str, scores: Mapping[str, float], column: str | None, source: str):
        self.name = name
        self.scores = dict(scores)
        self.column = column
        self.source = source

    def identity(self) -> dict[str, Any]:
        return {"kind": self.kind, "source": self.source, "scores": len(self.scores)}

    def lookup(self, table: Any, *, key: str, where: str, required: bool = True) -> tuple[np.ndarray, Predictions]:
        """Scores of ``table``'s rows: ``(positions found, predictions)``; all rows when ``required``."""
        ids = [str(v) for v in table[key]]
        if self.column is not None and self.column in getattr(table, "columns", ()):
            values = {str(i): v for i, v in zip(ids, table[self.column])}
        else:
            values = self.scores
        found = np.array([i for i, e in enumerate(ids) if e in values and values[e] is not None
                          and not (isinstance(values[e], float) and np.isnan(values[e]))], dtype=np.int64)
        if required and len(found) < len(ids):
            missing = [ids[i] for i in sorted(set(range(len(ids))) - set(found.tolist()))]
            raise DataError(f"variant `{self.name}` ({self.source}): no score for {len(missing)} row(s) of {where} "
                            f"(e.g. {', '.join(map(repr, missing[:3]))}); every variant must score the same "
                            "examples.")
        try:
            raw = np.array([float(values[ids[i]]) for i in found], dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise DataError(f"variant `{self.name}` ({self.source}): scores must be numbers in [0, 1] ({exc}).") \
                from exc
        bad = (raw < 0) | (raw > 1) | ~np.isfinite(raw)
        if bad.any():
            raise DataError(f"variant `{self.name}` ({self.source}): scores must be probabilities in [0, 1]. "
                            f"Found {raw[bad][0]!r} for {ids[found[bad][0]]!r}.")
        return found, Predictions(raw, np.zeros(len(found), dtype=bool))

    def predict(self, texts: Any, **_: Any) -> Predictions:
        raise ModelError(f"variant `{self.name}` holds logged scores ({self.source}); it cannot score new texts.")


class PredictionsKind(VariantKind):
    """Scores that already exist, from a column of the data or a file keyed by example id."""

    kind = "predictions"
    scores_texts = False

    def external_files(self, resolve: Callable[[str], Path]) -> dict[str, list[Path]]:
        return {"scores": model_files(resolve(self.spec.path))} if self.spec.path else {}

    def model_folders(self, built: Mapping[str, Any]) -> list[Path]:
        return []

    def build(self, ctx: BuildContext, *, train: Any) -> dict[str, Any]:
        from pipelines.core.artifacts import file_sha256

        spec = self.spec
        if spec.column is not None:
            return {"kind": self.kind, "source": f"data column {spec.column!r}", "column": spec.column,
                    "training_metrics": None, "build_seconds": 0.0}
        path = ctx.resolve(spec.path)
        scores = self._read(path)
        return {"kind": self.kind, "source": str(path), "path": str(path), "sha256": file_sha256(path),
                "scores": len(scores), "training_metrics": None, "build_seconds": 0.0}

    def _read(self, path: Path) -> dict[str, float]:
        from pipelines.core.tables import read_table, require_columns

        spec = self.spec
        table, _ = read_table(path, fmt=spec.format, encoding="utf-8", encoding_fallback=None,
                              columns=[spec.id_column, spec.score_column], encoding_field=self.field("path"))
        require_columns(table.columns, path, {spec.id_column: f"id ({self.field('id_column')})",
                                              spec.score_column: f"score ({self.field('score_column')})"})
        ids = table[spec.id_column].astype(str)
        dup = ids[ids.duplicated()]
        if len(dup):
            raise DataError(f"{path}: column {spec.id_column!r} ({self.field('id_column')}) must be unique. "
                            f"Found {len(dup)} duplicate(s), e.g. {dup.iloc[0]!r}.")
        return dict(zip(ids, table[spec.score_column].tolist()))

    def predictor(self, built: Mapping[str, Any], *, num_threads: int = 2) -> LoggedScores:
        if built.get("column"):
            return LoggedScores(name=self.name, scores={}, column=built["column"], source=built["source"])
        path = Path(built["path"])
        if not path.is_file():
            raise ModelError(f"variant `{self.name}`: scores file {path} is gone (`{self.field('path')}`).")
        return LoggedScores(name=self.name, scores=self._read(path), column=None, source=str(path))

    def score(self, predictor: LoggedScores, request: ScoringRequest, *,
              progress: Progress = no_progress) -> ScoreSets:
        t0 = time.perf_counter()
        _, audit = predictor.lookup(request.audit, key="example_id", where="the audit sample")
        _, val = predictor.lookup(request.validation, key="example_id", where="the validation sample")
        twins: dict[str, TwinScores] = {}
        if predictor.column is None and len(request.twins):
            rows, found = predictor.lookup(request.twins, key="twin_id", where="the twins", required=False)
            if len(rows):
                twins["full"] = TwinScores(rows, found)
        seconds = time.perf_counter() - t0
        return ScoreSets(audit=audit, twins=twins, validation=val,
                         timing={"audit": rate(len(request.audit), seconds), "twins": rate(0, 0.0),
                                 "validation": rate(len(request.validation), 0.0)},
                         batch_size=None)
