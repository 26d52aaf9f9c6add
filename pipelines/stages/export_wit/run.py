"""The ``export_wit`` stage: the evaluated examples as a TFRecord of ``tf.Example`` for the What-If Tool.

One ``tf.Example`` per audit-sample row, in the audit sample's order, with

* ``example_id`` and ``text`` (bytes), ``label`` (int64, the target feature);
* the sensitive features (bytes), e.g. ``group`` and ``axis``;
* derived features ``n_chars`` and ``n_tokens`` (int64);
* per variant ``score_<variant>`` (float, P(positive)) and ``predicted_label_<variant>`` (int64);
* when the mitigate stage ran, per mitigated variant ``mitigated_label_<variant>`` (int64, the decision
  with fairlearn's per-group thresholds) and ``mitigated_probability_<variant>`` (float, that rule's
  probability of a 1).
* with the ``generate`` stage's answers, per generating variant and condition
  ``answer_<variant>_<condition>`` and ``twin_answer_<variant>_<condition>`` (bytes; empty
  for examples whose pair was not drawn): what the variant wrote to the comment and its twin.

A small JSON (``wit_export``) describes it: the TFRecord's path relative to the
run directory, the target feature and label vocabulary, the variant names, the
feature names and types, the run id and the example count.

TensorFlow is imported only inside :func:`write_tfrecord` and :func:`read_tfrecord`.
The table is built by :func:`wit_table` (pandas only), which tests can call directly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from pipelines.core.runner import StageContext
from pipelines.errors import DataError

__all__ = [
    "STAGE_NAME",
    "EXAMPLES_ARTIFACT",
    "DESCRIPTION_ARTIFACT",
    "export_wit",
    "wit_table",
    "export_description",
    "write_tfrecord",
    "read_tfrecord",
    "examples_to_frame",
    "LABEL_VOCAB",
    "TARGET_FEATURE",
    "TEXT_FEATURE",
    "ID_FEATURE",
    "DERIVED_FEATURES",
    "score_feature",
    "label_feature",
    "mitigated_label_feature",
    "mitigated_probability_feature",
    "add_mitigated",
    "add_answers",
]

STAGE_NAME = "export_wit"
EXAMPLES_ARTIFACT = "wit_examples"
DESCRIPTION_ARTIFACT = "wit_export"
SCHEMA_VERSION = 1

TARGET_FEATURE = "label"
TEXT_FEATURE = "text"
ID_FEATURE = "example_id"
DERIVED_FEATURES = ("n_chars", "n_tokens")
LABEL_VOCAB = ("negative (0)", "positive (1)")
"""Class names in WIT: index 0 = label 0, index 1 = label 1 (P(positive) is the variants' score)."""

MSG_MISSING_COLUMN = "input `{table}`: column {column!r} is missing; expected {expected}. Found {found}."
MSG_NOT_PAIRED = (
    "input `predictions`: variant {variant!r} has no score for {count} example(s) of `audit_sample` "
    "(e.g. {examples}); every variant must score exactly the audit sample."
)
MSG_DUPLICATE = "input `{table}`: {count} duplicate row(s) for ({key}) (e.g. {examples}); expected one per key."
MSG_NO_PREDICTIONS = "input `predictions`: no rows; the What-If Tool export needs at least one variant's scores."
MSG_BAD_LABEL = "input `audit_sample`: column `label` must hold 0/1. Found values {found}."

SAMPLE_COLUMNS = (ID_FEATURE, TEXT_FEATURE, TARGET_FEATURE)
PREDICTION_COLUMNS = ("variant", "example_id", "score", "predicted_label")


def score_feature(variant: str) -> str:
    return f"score_{variant}"


def label_feature(variant: str) -> str:
    return f"predicted_label_{variant}"


def mitigated_label_feature(variant: str) -> str:
    return f"mitigated_label_{variant}"


def mitigated_probability_feature(variant: str) -> str:
    return f"mitigated_probability_{variant}"


MITIGATED_COLUMNS = ("source_variant", "example_id", "predicted_label", "positive_probability")


def add_mitigated(table, mitigated) -> dict[str, dict[str, str]]:
    """Add the mitigate stage's decisions to a :func:`wit_table` table, one pair of columns per variant;
    return ``{variant: {"predicted_label": column, "positive_probability": column, "twin": name}}``."""
    import numpy as np

    _require("mitigated_predictions", mitigated, MITIGATED_COLUMNS)
    out = {}
    for v, part in mitigated.groupby(mitigated["source_variant"].astype(str), sort=False):
        part = part.assign(example_id=part["example_id"].astype(str)).drop_duplicates("example_id")
        part = part.set_index("example_id")
        missing = [e for e in table[ID_FEATURE] if e not in part.index]
        if missing:
            raise DataError(f"input `mitigated_predictions`: variant {v!r} has no mitigated decision for "
                            f"{len(missing)} audit example(s) (e.g. {missing[:3]}).")
        part = part.loc[table[ID_FEATURE]]
        table[mitigated_label_feature(v)] = part["predicted_label"].astype(np.int64).to_numpy()
        table[mitigated_probability_feature(v)] = part["positive_probability"].astype(np.float64).to_numpy()
        out[v] = {"predicted_label": mitigated_label_feature(v),
                  "positive_probability": mitigated_probability_feature(v),
                  "twin": str(part["variant"].iloc[0]) if "variant" in part.columns else None}
    return out


def _require(table: str, frame, columns: Sequence[str]) -> None:
    for c in columns:
        if c not in frame.columns:
            raise DataError(MSG_MISSING_COLUMN.format(table=table, column=c, expected=list(columns),
                                                      found=list(map(str, frame.columns))))


def wit_table(*, audit_sample, predictions, sensitive_features: Sequence[str]):
    """One row per audit-sample example: its features plus every variant's score and predicted label.

    Returns
    -------
    (DataFrame, list[str])
        The wide table in the audit sample's order, and the variant names in order of
        appearance in ``predictions``.

    Raises
    ------
    DataError
        A missing column, a duplicate key, a non-0/1 label, or a variant that did not
        score every example.
    """
    import numpy as np
    import pandas as pd

    _require("audit_sample", audit_sample, SAMPLE_COLUMNS)
    _require("predictions", predictions, PREDICTION_COLUMNS)
    features = [f for f in sensitive_features if f not in SAMPLE_COLUMNS]
    _require("audit_sample", audit_sample, features)
    if predictions.empty:
        raise DataError(MSG_NO_PREDICTIONS)
    sample = audit_sample.copy()
    sample[ID_FEATURE] = sample[ID_FEATURE].astype(str)
    dup = sample[ID_FEATURE].duplicated(keep=False)
    if dup.any():
        raise DataError(MSG_DUPLICATE.format(table="audit_sample", count=int(dup.sum()), key="example_id",
                                             examples=sample.loc[dup, ID_FEATURE].head(3).tolist()))
    labels = set(pd.unique(sample[TARGET_FEATURE]))
    if not labels <= {0, 1, True, False}:
        raise DataError(MSG_BAD_LABEL.format(found=sorted(map(repr, labels))[:10]))
    out = pd.DataFrame({
        ID_FEATURE: sample[ID_FEATURE].to_numpy(),
        TEXT_FEATURE: sample[TEXT_FEATURE].astype(str).to_numpy(),
        TARGET_FEATURE: sample[TARGET_FEATURE].astype(np.int64).to_numpy(),
    })
    for f in features:
        out[f] = sample[f].astype(str).to_numpy()
    text = out[TEXT_FEATURE]
    out["n_chars"] = (sample["n_chars"] if "n_chars" in sample.columns else text.str.len()).astype(np.int64).to_numpy()
    out["n_tokens"] = (sample["n_tokens"] if "n_tokens" in sample.columns
                       else text.str.split().str.len()).astype(np.int64).to_numpy()

    preds = predictions.astype({"variant": str, "example_id": str})
    dup = preds.duplicated(["variant", "example_id"], keep=False)
    if dup.any():
        raise DataError(MSG_DUPLICATE.format(table="predictions", count=int(dup.sum()), key="variant, example_id",
                                             examples=preds.loc[dup, ["variant", "example_id"]].head(3).to_dict("records")))
    variants = list(dict.fromkeys(preds["variant"]))
    for v in variants:
        part = preds[preds["variant"] == v].set_index("example_id")
        missing = [e for e in out[ID_FEATURE] if e not in part.index]
        if missing:
            raise DataError(MSG_NOT_PAIRED.format(variant=v, count=len(missing), examples=missing[:3]))
        part = part.loc[out[ID_FEATURE]]
        out[score_feature(v)] = part["score"].astype(np.float64).to_numpy()
        out[label_feature(v)] = part["predicted_label"].astype(np.int64).to_numpy()
    return out, variants


def add_answers(table, answer_pairs) -> dict[str, dict[str, dict[str, str]]]:
    """Add the generated answers as text features of ``table`` (in place); return their names.

    ``{variant: {condition: {"answer": feature, "twin_answer": feature}}}``.
    """
    _require("answer_pairs", answer_pairs, ("variant", "condition", "example_id", "answer", "twin_answer"))
    names: dict[str, dict[str, dict[str, str]]] = {}
    ids = table[ID_FEATURE]
    for (variant, condition), part in answer_pairs.groupby(["variant", "condition"], sort=True):
        # one pair per example (its twin); an example with two twins shows the first
        part = part.astype({"example_id": str}).drop_duplicates("example_id").set_index("example_id")
        cols = {"answer": f"answer_{variant}_{condition}", "twin_answer": f"twin_answer_{variant}_{condition}"}
        for key, col in cols.items():
            table[col] = ids.map(part[key].astype(str)).fillna("").to_numpy()
        names.setdefault(str(variant), {})[str(condition)] = cols
    return names


def _feature_types(table) -> dict[str, str]:
    import numpy as np

    types = {}
    for col in table.columns:
        kind = table[col].dtype.kind
        types[col] = "int64" if kind in "iub" else "float" if kind == "f" else "bytes"
        if kind == "O" and len(table) and isinstance(table[col].iloc[0], (float, np.floating)):
            types[col] = "float"
    return types


def export_description(*, table, variants: Sequence[str], sensitive_features: Sequence[str], run_id: str,
                       examples_path: str, thresholds: Mapping[str, float] | None = None,
                       models: Mapping[str, Any] | None = None,
                       feature_types: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The ``wit_export`` JSON for a table built by :func:`wit_table` (``feature_types``: those
    the examples were written with; derived from the table when not given)."""
    types = dict(feature_types or _feature_types(table))
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "examples_path": examples_path,
        "format": "tfrecord",
        "compression": None,
        "record_type": "tf.train.Example",
        "example_count": int(len(table)),
        "target_feature": TARGET_FEATURE,
        "label_vocab": list(LABEL_VOCAB),
        "id_feature": ID_FEATURE,
        "text_feature": TEXT_FEATURE,
        "sensitive_features": [f for f in sensitive_features if f in table.columns],
        "derived_features": list(DERIVED_FEATURES),
        "variants": list(variants),
        "variant_features": {
            v: {"score": score_feature(v), "predicted_label": label_feature(v),
                "threshold": None if thresholds is None else thresholds.get(v)}
            for v in variants
        },
        "feature_names": list(table.columns),
        "feature_types": types,
        "models": dict(models or {}),
    }


def write_tfrecord(table, path: Path, *, feature_types: Mapping[str, str] | None = None) -> int:
    """Write one ``tf.train.Example`` per row of ``table`` to ``path``; return the count."""
    import tensorflow as tf

    types = dict(feature_types or _feature_types(table))
    columns = list(table.columns)
    n = 0
    with tf.io.TFRecordWriter(str(path)) as writer:
        for row in table.itertuples(index=False, name=None):
            feats = {}
            for col, value in zip(columns, row):
                kind = types[col]
                if kind == "int64":
                    feats[col] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))
                elif kind == "float":
                    feats[col] = tf.train.Feature(float_list=tf.train.FloatList(value=[float(value)]))
                else:
                    feats[col] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[str(value).encode("utf-8")]))
            writer.write(tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString())
            n += 1
    return n


def read_tfrecord(path: Path, *, limit: int | None = None) -> list[Any]:
    """The ``tf.train.Example`` protos of a TFRecord file, in file order."""
    import tensorflow as tf

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: the What-If Tool TFRecord does not exist.")
    out = []
    try:
        for raw in tf.data.TFRecordDataset(str(path)):
            out.append(tf.train.Example.FromString(raw.numpy()))
            if limit is not None and len(out) >= limit:
                break
    except tf.errors.OpError as exc:
        raise DataError(f"{path}: not a readable TFRecord file: {exc.message}") from exc
    return out


def examples_to_frame(examples: Sequence[Any]):
    """``tf.train.Example`` protos as a DataFrame (one column per feature, first value of each)."""
    import pandas as pd

    rows = []
    for ex in examples:
        row = {}
        for name, feat in ex.features.feature.items():
            kind = feat.WhichOneof("kind")
            values = getattr(feat, kind).value if kind else []
            if not values:
                row[name] = None
            elif kind == "bytes_list":
                row[name] = values[0].decode("utf-8")
            else:
                row[name] = values[0]
        rows.append(row)
    return pd.DataFrame(rows)


def _models(variants_built: Mapping[str, Any] | None) -> dict[str, Any]:
    out = {}
    for name, built in (variants_built or {}).items():
        if isinstance(built, Mapping):
            out[name] = {k: built.get(k) for k in ("kind", "model_dir", "weights_sha256") if k in built}
    return out


def export_wit(ctx: StageContext, *, audit_sample, predictions, variants: Mapping[str, Any] | None = None,
               mitigated_predictions=None, answer_pairs=None) -> dict[str, Any]:
    """Write the audit sample with every variant's predictions (and mitigated decisions when the mitigate stage
    ran, answers when the generate stage ran) as a TFRecord, and describe it."""
    features = tuple(ctx.config.data.sensitive_features)
    table, names = wit_table(audit_sample=audit_sample, predictions=predictions, sensitive_features=features)
    mitigated = add_mitigated(table, mitigated_predictions) if mitigated_predictions is not None else {}
    answers = add_answers(table, answer_pairs) if answer_pairs is not None and len(answer_pairs) else {}
    thresholds = {}
    if "threshold" in predictions.columns:
        for v, part in predictions.groupby(predictions["variant"].astype(str), sort=False):
            thresholds[v] = float(part["threshold"].iloc[0])
    types = _feature_types(table)
    path = Path(ctx.scratch_dir) / f"{EXAMPLES_ARTIFACT}.tfrecord"
    written = write_tfrecord(table, path, feature_types=types)
    description = export_description(
        table=table, variants=names, sensitive_features=features, run_id=ctx.run_id,
        examples_path=f"{STAGE_NAME}/{EXAMPLES_ARTIFACT}.tfrecord", thresholds=thresholds,
        models=_models(variants), feature_types=types)
    description["mitigated_features"] = mitigated
    description["answer_features"] = answers
    ctx.log.info("What-If Tool export: %d examples, variants %s", written, ", ".join(names))
    return {EXAMPLES_ARTIFACT: path, DESCRIPTION_ARTIFACT: description}
