"""The What-If Tool export and the notebook helpers.

Importing this package is cheap: TensorFlow, witwidget, torch and pandas are
imported only inside the functions that need them. The public names load on
first use (PEP 562).

* ``EXPORT_WIT_STAGE`` / :func:`export_wit_stage`: the stage that writes the
  evaluated examples as a TFRecord of ``tf.Example`` plus a JSON description;
* :func:`latest_run`, :func:`resolve_run_dir`: which run a notebook opens;
* :func:`load_export`, :func:`load_predictors`, :func:`what_if_tool`: WitWidget in
  compare mode (fine-tuned vs RAG) with the run's real models as predict fns;
* :class:`AuditRun`, :func:`show`: the walkthrough notebook's tables.
"""

from __future__ import annotations

from pipelines._lazy import lazy_exports

__all__ = [
    "EXPORT_WIT_STAGE",
    "export_wit_stage",
    "wit_table",
    "read_tfrecord",
    "examples_to_frame",
    "latest_run",
    "resolve_run_dir",
    "RUN_DIR_ENV",
    "load_export",
    "WitExport",
    "compare_pair",
    "load_predictors",
    "wit_predict_fn",
    "wit_config_builder",
    "what_if_tool",
    "require_python_protobuf",
    "AuditRun",
    "show",
    "WitInputError",
    "RunNotFoundError",
    "ExportMissingError",
    "NotEnoughVariantsError",
    "PredictorsUnavailableError",
]

_HOME = {
    "EXPORT_WIT_STAGE": "export",
    "export_wit_stage": "export",
    "wit_table": "export",
    "read_tfrecord": "export",
    "examples_to_frame": "export",
    "latest_run": "_runs",
    "resolve_run_dir": "_runs",
    "RUN_DIR_ENV": "_runs",
    "load_export": "_tool",
    "compare_pair": "_tool",
    "WitExport": "_tool",
    "wit_config_builder": "_tool",
    "what_if_tool": "_tool",
    "require_python_protobuf": "_tool",
    "load_predictors": "predictors",
    "wit_predict_fn": "predictors",
    "AuditRun": "walkthrough",
    "show": "walkthrough",
    "WitInputError": "_errors",
    "RunNotFoundError": "_errors",
    "ExportMissingError": "_errors",
    "NotEnoughVariantsError": "_errors",
    "PredictorsUnavailableError": "_errors",
}


__getattr__, __dir__ = lazy_exports(__name__, _HOME, __all__)
