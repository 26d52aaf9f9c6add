"""The ``export_wit`` stage spec: the audit sample with every variant's predictions, for the What-If Tool."""

from pipelines.core.runner import Stage
from pipelines.stages.export_wit.run import DESCRIPTION_ARTIFACT, EXAMPLES_ARTIFACT, STAGE_NAME, export_wit

__all__ = ["SPEC"]

SPEC = Stage(
    name=STAGE_NAME,
    fn=export_wit,
    inputs={"audit_sample": "load_data.audit_sample", "predictions": "predict.predictions",
            "variants": "build_variants.variants", "mitigated_predictions": "mitigate.mitigated_predictions",
            "answer_pairs": "generate.answer_pairs"},
    optional_inputs=("variants", "mitigated_predictions", "answer_pairs"),
    outputs=(EXAMPLES_ARTIFACT, DESCRIPTION_ARTIFACT),
    config_sections=("data",),
    version="3",
    # not taken from the stage cache: the description names the run it belongs to (`run_id`), and
    # writing a few hundred tf.Examples costs less than TensorFlow's import
    cache=False,
)
