"""One error hierarchy for the whole audit pipeline.

Findings (a fairness gap, a data anomaly, drift) are results and never raise.
Exceptions are for broken input or infrastructure: a bad config, an unreadable
file, a missing column, a model folder without weights. Every message names the
file, field or column, what was expected and what was found.
"""

from __future__ import annotations

__all__ = [
    "AuditError",
    "ConfigError",
    "DataError",
    "ModelError",
    "StageError",
    "LockError",
]


class AuditError(Exception):
    """Root of every error the pipeline raises on purpose.

    The CLI turns any ``AuditError`` into a one-line message and exit status 2.
    """

    exit_code = 2


class ConfigError(AuditError):
    """The audit config is malformed or inconsistent."""


class DataError(AuditError):
    """An input data file is missing, unreadable or does not have the expected shape."""


class ModelError(AuditError):
    """A model folder or model output is unusable."""


class StageError(AuditError):
    """A stage failed; wraps the underlying error with the stage's name."""


class LockError(AuditError):
    """Another run of the same audit holds the lock."""
