"""After-run tools: open a finished run, explore it in the What-If Tool, reload its predictors.

Importing this package is cheap: TensorFlow, witwidget, torch and pandas are
imported only inside the functions that need them.

* :func:`latest_run`, :func:`resolve_run_dir`: which run a notebook opens;
* :func:`load_export`, :func:`load_predictors`, :func:`what_if_tool`: WitWidget in
  compare mode with the run's real models as predict functions;
* :class:`AuditRun`, :func:`show`: the walkthrough notebook's tables;
* ``python -m pipelines.explore.notebook_server``: the classic Notebook with the
  What-If Tool's extensions enabled (``make notebook``).
"""

from pipelines.explore._errors import (
    ExportMissingError,
    NotEnoughVariantsError,
    PredictorsUnavailableError,
    RunNotFoundError,
    WitInputError,
)
from pipelines.explore._runs import RUN_DIR_ENV, latest_run, resolve_run_dir
from pipelines.explore._tool import (
    WitExport,
    compare_pair,
    load_export,
    require_python_protobuf,
    what_if_tool,
    wit_config_builder,
)
from pipelines.explore.predictors import load_predictors, wit_predict_fn
from pipelines.explore.walkthrough import AuditRun, show

__all__ = [
    "AuditRun",
    "ExportMissingError",
    "NotEnoughVariantsError",
    "PredictorsUnavailableError",
    "RUN_DIR_ENV",
    "RunNotFoundError",
    "WitExport",
    "WitInputError",
    "compare_pair",
    "latest_run",
    "load_export",
    "load_predictors",
    "require_python_protobuf",
    "resolve_run_dir",
    "show",
    "what_if_tool",
    "wit_config_builder",
    "wit_predict_fn",
]
