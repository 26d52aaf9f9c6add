"""A failure on a Beam worker comes back as the pipeline's own error, in one line, naming where."""

from __future__ import annotations

import pytest

from pipelines.beam.inference import score_on_beam
from pipelines.errors import DataError, ModelError, StageError

IN_PROCESS = ["--runner=DirectRunner"]
MULTI = ["--runner=DirectRunner", "--direct_running_mode=multi_processing", "--direct_num_workers=2"]


class _NonFinite:
    name = "broken"

    def predict(self, texts):
        raise ModelError("variant `broken` produced 2 non-finite score(s) (NaN or inf) for 2 texts")


class _Crashes:
    name = "crashes"

    def predict(self, texts):
        raise ValueError("tokenizer exploded")


@pytest.mark.parametrize("args", [IN_PROCESS, MULTI], ids=["in_process", "multi_processing"])
def test_a_model_error_on_a_worker_is_raised_as_itself(tmp_path, args):
    with pytest.raises(ModelError) as err:
        score_on_beam(["a", "b"], ["some text", "more text"], factory=_NonFinite, pipeline_args=args, workdir=tmp_path)
    message = str(err.value)
    assert message.startswith("variant `broken` produced 2 non-finite score(s)")
    assert "\n" not in message and "Traceback" not in message
    if args is MULTI:
        assert message.endswith("(raised by a worker in RunInference on Beam (DirectRunner))")


def test_any_other_worker_failure_is_a_stage_error_with_its_last_line(tmp_path):
    with pytest.raises(StageError, match=r"^RunInference on Beam \(DirectRunner\) failed: RuntimeError: "
                                         r"ValueError: tokenizer exploded"):
        score_on_beam(["a"], ["some text"], factory=_Crashes, pipeline_args=MULTI, workdir=tmp_path)


def test_a_bad_record_in_the_data_pass_names_file_and_record(tmp_path):
    from pipelines.stages.load_data.beam import run_beam_data_pipeline
    from pipelines.config import config_from_dict
    from tests.foundation.test_data import write_tfrecord

    good = {"id": "1", "comment": "hello there", "y": 0, "grp": "a"}
    shard = write_tfrecord(tmp_path / "part-0.tfrecord", [good, {**good, "id": "2"}, {**good, "id": "3", "y": [0, 1]}])
    cfg = config_from_dict({"audit": {"name": "x"}, "data": {"source": "file", "file": {
        "path": str(shard), "text_column": "comment", "label_column": "y", "id_column": "id",
        "sensitive_columns": ["grp"]}}}, base_dir=tmp_path)
    with pytest.raises(DataError, match=r"part-0.tfrecord: record 2: feature 'y' has 2 values; expected one.*"
                                        r"raised by a worker in the data pass on Beam \(DirectRunner\)"):
        run_beam_data_pipeline([shard], source=cfg.data.file, seed=0, eval_fraction=0.3, validation_fraction=0.1,
                               sample_per_stratum=10, out_dir=tmp_path / "out", pipeline_args=MULTI)
