"""Errors raised on Beam workers, brought back as the pipeline's own errors.

The in-process DirectRunner re-raises a worker's exception as it is. Multi-process
and remote runners raise a ``RuntimeError`` whose text is the worker's traceback;
an ``AuditError`` raised by our code on a worker (a DataError for a bad record, a
ModelError for non-finite scores) is found in it and raised again with its own
message, so the CLI reports it in one line with exit code 2.
"""

from __future__ import annotations

import contextlib
import re
from typing import Iterator

from pipelines import errors

__all__ = ["worker_errors"]

_RAISED = re.compile(r"^(?:pipelines\.errors\.)?(ConfigError|DataError|ModelError|StageError): (.+?)"
                     r"(?: \[while running '[^']*'\])?$", re.M)


@contextlib.contextmanager
def worker_errors(what: str, runner: str) -> Iterator[None]:
    """Run a Beam pipeline; turn a worker's failure into an ``AuditError`` that says where."""
    try:
        yield
    except errors.AuditError:
        raise
    except Exception as exc:
        text = str(exc)
        found = _RAISED.findall(text)
        where = f"{what} on Beam ({runner})"
        if found:
            kind, message = found[-1]
            raise getattr(errors, kind)(f"{message} (raised by a worker in {where})") from exc
        lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
        raise errors.StageError(f"{where} failed: {type(exc).__name__}: {lines[-1] if lines else 'no message'}. "
                                "The workers' full tracebacks are in the log above.") from exc
