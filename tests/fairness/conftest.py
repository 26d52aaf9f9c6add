"""Shared fixtures for the evaluation tests."""

from __future__ import annotations

import pytest

from pipelines.config.evaluation import EvaluationConfig
from tests.fairness._synthetic import make_audit


@pytest.fixture(scope="session")
def audit():
    return make_audit()


@pytest.fixture
def small_config():
    return EvaluationConfig(bootstrap={"resamples": 200, "level": 0.95}, min_group_size=20, min_class_count=5)
