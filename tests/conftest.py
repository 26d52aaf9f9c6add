"""Shared fixtures: tiny audit configs written into a temporary folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]

# Keep TensorFlow quiet and single-threaded-ish in tests.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """Tiny BERT encoder/classifier and Llama chat LM folders (tests/_tiny_models.py), built once per session."""
    from tests._tiny_models import build_tiny_models

    return build_tiny_models(tmp_path_factory.mktemp("tiny_models"))


@pytest.fixture
def write_config(tmp_path):
    """Write an audit config dict to tmp_path/audit.yaml; outputs go under tmp_path."""

    def _write(raw: dict, name: str = "audit.yaml") -> Path:
        raw = dict(raw)
        raw.setdefault("output", {"runs_dir": str(tmp_path / "runs"), "cache_dir": str(tmp_path / "cache")})
        path = tmp_path / name
        path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
        return path

    return _write


@pytest.fixture
def small_csv(tmp_path):
    """A small, valid user dataset: 2 groups x 2 labels x 10 rows."""
    import pandas as pd

    rows = []
    for g in ("a", "b"):
        for label in (0, 1):
            for i in range(10):
                rows.append({"id": f"{g}{label}{i}", "comment": f"text {g} {label} number {i} " + "w " * i,
                             "y": label, "grp": g})
    path = tmp_path / "data.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def file_source(path, **extra):
    src = {"path": str(path), "text_column": "comment", "label_column": "y", "id_column": "id",
           "sensitive_columns": ["grp"]}
    src.update(extra)
    return {"source": "file", "file": src}
