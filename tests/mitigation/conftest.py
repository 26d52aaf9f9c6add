"""Fixtures for the mitigation tests: configs and a stage context."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from pipelines.config import config_from_dict
from pipelines.core.runner import StageContext


def mitigation_config(tmp_path: Path, *, mitigation=None, evaluation=None, seed: int = 3, **extra):
    raw = {"audit": {"name": "mitigation-test"}, "seed": seed,
           "output": {"runs_dir": str(tmp_path / "runs"), "cache_dir": str(tmp_path / "cache")},
           "evaluation": {"bootstrap": {"resamples": 100}, "min_group_size": 30, "min_class_count": 10,
                          **(evaluation or {})},
           "mitigation": {"enabled": True, **(mitigation or {})}, **extra}
    return config_from_dict(raw, base_dir=tmp_path)


def stage_context(cfg, tmp_path: Path) -> StageContext:
    return StageContext(config=cfg, run_id="r", scratch_dir=tmp_path, cache_dir=tmp_path,
                        log=logging.getLogger("mitigation-test"), show_progress=False)


@pytest.fixture
def make_config(tmp_path):
    def _make(**kw):
        return mitigation_config(tmp_path, **kw)

    return _make


@pytest.fixture
def ctx_for(tmp_path):
    def _ctx(cfg):
        return stage_context(cfg, tmp_path)

    return _ctx
