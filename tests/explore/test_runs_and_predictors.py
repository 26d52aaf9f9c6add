"""Run lookup, rebuilding the run's models, the WIT predict fns and the errors a notebook shows."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipelines.errors import AuditError
from pipelines.explore import (
    ExportMissingError,
    NotEnoughVariantsError,
    PredictorsUnavailableError,
    RunNotFoundError,
    latest_run,
    load_export,
    load_predictors,
    resolve_run_dir,
    wit_predict_fn,
)


def _run(root, name, status, started):
    d = root / name
    d.mkdir(parents=True)
    (d / "manifest.json").write_text(json.dumps({"status": status, "started_at": started}))
    return d


def test_latest_run_picks_the_newest_complete_run(tmp_path):
    _run(tmp_path, "20261101T000000Z-a", "complete", "2026-11-01T00:00:00+00:00")
    newest = _run(tmp_path, "20261103T000000Z-c", "complete", "2026-11-03T00:00:00+00:00")
    _run(tmp_path, "20261104T000000Z-d", "failed", "2026-11-04T00:00:00+00:00")
    _run(tmp_path, "20261105T000000Z-e", "running", "2026-11-05T00:00:00+00:00")
    (tmp_path / "not-a-run").mkdir()
    assert latest_run(tmp_path) == newest


def test_no_run_says_how_to_produce_one(tmp_path):
    with pytest.raises(RunNotFoundError) as err:
        latest_run(tmp_path / "runs" / "demo")
    assert "fairness-audit run pipelines/configs/demo.yaml" in str(err.value)
    assert isinstance(err.value, AuditError)


def test_resolve_run_dir_order(tmp_path, monkeypatch, tiny_run):
    monkeypatch.setenv("FAIRNESS_AUDIT_RUN_DIR", str(tiny_run))
    assert resolve_run_dir(None) == tiny_run
    other = _run(tmp_path, "r", "complete", "x")
    assert resolve_run_dir(other) == other  # an explicit argument wins
    with pytest.raises(RunNotFoundError, match="not a run directory"):
        resolve_run_dir(tmp_path / "nope")


def test_default_runs_dir_is_the_demo_audits():
    from pipelines.explore._runs import default_runs_dir
    from tests.explore.conftest import REPO

    assert default_runs_dir() == (REPO / "reports" / "runs" / "demo").resolve()


def test_missing_export_names_what_and_how(run_without_export):
    with pytest.raises(ExportMissingError) as err:
        load_export(run_without_export)
    msg = str(err.value)
    assert "export_wit" in msg and "fairness-audit run" in msg and "predict" in msg
    assert err.value._render_traceback_() == [f"ExportMissingError: {msg}"]


def test_one_variant_names_what_and_how(run_one_variant):
    with pytest.raises(NotEnoughVariantsError) as err:
        load_export(run_one_variant)
    msg = str(err.value)
    assert "only variant 'finetuned'" in msg and "`variants`" in msg and "fairness-audit run" in msg
    assert load_export(run_one_variant, min_variants=1).variants == ["finetuned"]


def test_live_scores_of_the_rebuilt_models_match_the_export(tiny_run):
    export = load_export(tiny_run)
    frame = export.frame()
    predictors = load_predictors(tiny_run)
    assert list(predictors) == ["finetuned", "rag"]
    for name, pred in predictors.items():
        assert pred.calibration_exact
        live = pred.predict(list(frame["text"])).scores
        np.testing.assert_allclose(live, frame[f"score_{name}"], atol=1e-5)


def test_uncalibrated_predictors_give_the_raw_scores(tiny_run):
    from pipelines.core.runner import load_stage_outputs

    preds = load_stage_outputs(tiny_run / "predict")["predictions"]
    sample = load_stage_outputs(tiny_run / "load_data")["audit_sample"]
    raw = load_predictors(tiny_run, calibrated=False, names=["finetuned"])["finetuned"]
    got = raw.predict(list(sample["text"])).scores
    want = preds[preds["variant"] == "finetuned"].set_index("example_id").loc[sample["example_id"], "raw_score"]
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_predict_fn_answers_unedited_points_from_the_export_and_edited_ones_live(tiny_run):
    export = load_export(tiny_run)
    examples = export.examples()
    pred = load_predictors(tiny_run, names=["rag"])["rag"]
    fn = wit_predict_fn(pred, known_scores=export.known_scores("rag"))
    out = fn(examples[:5])
    assert fn.live_calls == 0 and fn.reused == 5
    frame = export.frame()
    np.testing.assert_allclose([p[1] for p in out], frame["score_rag"][:5], atol=1e-7)
    assert all(abs(sum(p) - 1) < 1e-9 for p in out)

    edited = type(examples[0])()
    edited.CopyFrom(examples[0])
    edited.features.feature["text"].bytes_list.value[0] = b"muslim men are smart and good"
    out = fn([edited, examples[1]])
    assert fn.live_calls == 1 and fn.live_texts == 1
    want = pred.predict(["muslim men are smart and good"]).scores[0]
    assert out[0][1] == pytest.approx(want, abs=1e-9)


def test_missing_model_folder_is_explained(tiny_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    variants = json.loads((run / "build_variants" / "variants.json").read_text())
    variants["finetuned"]["model_dir"] = str(tmp_path / "gone")
    (run / "build_variants" / "variants.json").write_text(json.dumps(variants))
    with pytest.raises(PredictorsUnavailableError) as err:
        load_predictors(run, names=["finetuned"])
    assert "gone" in str(err.value) and "fairness-audit run" in str(err.value)
    shutil.rmtree(run / "build_variants")
    with pytest.raises(PredictorsUnavailableError, match="build_variants"):
        load_predictors(run)


def test_calibrations_are_rebuilt_from_thresholds_json():
    from sklearn.isotonic import IsotonicRegression

    from pipelines.core.artifacts import dump_json
    from pipelines.variants import fit_calibrator
    from pipelines.explore.predictors import calibrator_from_description

    cal, exact = calibrator_from_description({"method": "platt", "a": 2.0, "b": -1.0})
    assert exact
    p = np.array([0.2, 0.5, 0.9])
    z = 2.0 * np.log(p / (1 - p)) - 1.0
    np.testing.assert_allclose(cal(p), 1 / (1 + np.exp(-z)))

    # isotonic: the run's description, through JSON, reproduces sklearn's fitted map exactly
    rng = np.random.default_rng(4)
    raw = rng.uniform(size=80)
    labels = (rng.uniform(size=80) < raw).astype(int)
    fitted = fit_calibrator("isotonic", raw, labels)
    description = json.loads(dump_json(fitted.describe()))
    cal, exact = calibrator_from_description(description)
    assert exact
    grid = np.concatenate([np.linspace(-0.1, 1.1, 500), raw])  # outside the fitted range too
    reference = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(raw, labels).predict(grid)
    np.testing.assert_allclose(cal(grid), reference, rtol=0, atol=1e-12)
    np.testing.assert_allclose(fitted(grid), reference, rtol=0, atol=1e-12)

    # runs written before the knots were recorded: identity, and says it is not exact
    cal, exact = calibrator_from_description({"method": "isotonic", "rows": 10})
    assert not exact and np.allclose(cal(p), p)


def test_relative_run_dir_falls_back_to_the_repository(monkeypatch, tmp_path):
    from pipelines.explore import _runs

    repo = tmp_path / "repo"
    run = _run(repo / "reports" / "runs" / "demo", "r1", "complete", "x")
    monkeypatch.setattr(_runs, "REPO", repo)
    monkeypatch.chdir(tmp_path)
    assert resolve_run_dir("reports/runs/demo/r1") == run
