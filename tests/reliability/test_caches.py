"""Caches are verified before use: a damaged stage-cache or model-cache entry is reported, removed and rebuilt,
and no damage to a cache can change a verdict or a completed run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pipelines.core.stagecache import verify_stage_folder
from pipelines.errors import ModelError
from pipelines.variants.cache import ENTRY_FILE, ModelCache, entry_problems, verify_entry
from tests.reliability.conftest import one_error, tree_hashes, warnings_of


def _entry(sandbox, stage: str) -> Path:
    (entry,) = [p for p in (sandbox.cache / "stages" / stage).iterdir() if not p.name.startswith(".")]
    return entry


def _flip_verdict(entry: Path) -> str:
    path = entry / "fairness.json"
    text = path.read_text(encoding="utf-8")
    assert '"fail"' in text
    path.write_text(text.replace('"fail"', '"pass"'), encoding="utf-8")
    return "fairness.json"


def _truncate_table(entry: Path) -> str:
    path = entry / "predictions.parquet"
    with open(path, "r+b") as fh:
        fh.truncate(path.stat().st_size // 2)
    return "predictions.parquet"


def _delete_artifact(entry: Path) -> str:
    (entry / "gate_results.parquet").unlink()
    return "gate_results.parquet: missing"


def _add_file(entry: Path) -> str:
    (entry / "extra.json").write_text("{}")
    return "extra.json: not one of the stage's artifacts"


def _garbage_index(entry: Path) -> str:
    (entry / "_stage.json").write_bytes(b"\x00garbage")
    return "_stage.json: not a readable stage index"


def _link_artifact(entry: Path) -> str:
    target = entry.parents[3] / "outside" / "precious.txt"
    (entry / "fairness.json").unlink()
    (entry / "fairness.json").symlink_to(target)
    return "fairness.json"


DAMAGE = [pytest.param(_flip_verdict, "evaluate", id="edit-fail-to-pass"),
          pytest.param(_truncate_table, "predict", id="truncated-parquet"),
          pytest.param(_delete_artifact, "evaluate", id="deleted-artifact"),
          pytest.param(_add_file, "evaluate", id="added-file"),
          pytest.param(_garbage_index, "evaluate", id="garbage-index"),
          pytest.param(_link_artifact, "evaluate", id="artifact-is-a-link")]


@pytest.mark.parametrize("damage, stage", DAMAGE)
def test_damaged_stage_cache_is_rebuilt_and_cannot_change_the_verdict(sandbox, cli, damage, stage):
    cfg = sandbox.write_config()
    code, _, err = cli("run", cfg, "--run-id", "r1", "--no-progress", "-q")
    assert code == 1, err
    first = tree_hashes(sandbox.run_dir("r1"))
    entry = _entry(sandbox, stage)
    words = damage(entry)
    sandbox.start()
    code, out, err = cli("run", cfg, "--run-id", "r2", "--no-progress", "-q")
    assert code == 1, err  # still FAIL
    assert "verdict FAIL" in out
    (warning,) = [w for w in warnings_of(err) if "damaged" in w]
    assert f"stage {stage}" in warning and str(entry) in warning and words in warning
    manifest = json.loads((sandbox.run_dir("r2") / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["verdict"] == "fail"
    assert manifest["stages"][stage]["cache_hit"] is False and manifest["stages"][stage]["cache_damaged"] is True
    assert verify_stage_folder(_entry(sandbox, stage), key=manifest["stages"][stage]["cache_key"]) == []
    assert tree_hashes(sandbox.run_dir("r1")) == first  # the completed run did not change
    sandbox.assert_untouched()


def test_a_pass_entry_swapped_into_a_fail_key_is_caught(sandbox, cli):
    """Copying a consistent cache entry of another config (its own hashes all match) under this key."""
    fail_cfg = sandbox.write_config()
    pass_cfg = sandbox.write_config(gate_bound=0.0, file="pass.yaml")
    assert cli("run", fail_cfg, "--run-id", "f1", "--no-progress", "-q")[0] == 1
    fail_entry = _entry(sandbox, "evaluate")
    assert cli("run", pass_cfg, "--run-id", "p1", "--no-progress", "-q")[0] == 0
    (pass_entry,) = [p for p in fail_entry.parent.iterdir() if p != fail_entry and not p.name.startswith(".")]
    shutil.rmtree(fail_entry)
    shutil.copytree(pass_entry, fail_entry)
    sandbox.start()
    code, _, err = cli("run", fail_cfg, "--run-id", "f2", "--no-progress", "-q")
    assert code == 1, err
    assert any("records cache key" in w for w in warnings_of(err)), err
    sandbox.assert_untouched()


# -- the model cache ----------------------------------------------------------------------------

FIXED = {"calibration": {"method": "none"}, "threshold": {"method": "fixed", "value": 0.5}}

ENTRY_FILES = {
    "finetuned": {"model.safetensors": b"W" * 4096, "config.json": b'{"architectures": ["X"]}',
                  "tokenizer.json": b"{}"},
    "generator": {"model.safetensors": b"G" * 4096, "config.json": b"{}", "chat_template.jinja": b"{{ x }}"},
    "kb": {"embeddings.npy": b"E" * 4096, "docs.parquet": b"D" * 512},
}


def _builder(kind: str, calls: list):
    def build(tmp: Path) -> dict:
        calls.append(kind)
        for name, data in ENTRY_FILES[kind].items():
            (tmp / name).write_bytes(data)
        return {"built": kind}

    return build


def _edit_weights(path: Path) -> str:
    name = next(n for n in ENTRY_FILES[path.name.split("-")[0]] if n.endswith((".safetensors", ".npy")))
    data = bytearray((path / name).read_bytes())
    data[100] ^= 1  # same size, one bit
    (path / name).write_bytes(bytes(data))
    return f"{name}: SHA-256 differs"


def _replace_embeddings_keep_mtime(path: Path) -> str:
    name = next(n for n in ENTRY_FILES[path.name.split("-")[0]] if n.endswith((".safetensors", ".npy")))
    st = (path / name).stat()
    (path / name).write_bytes(b"Z" * st.st_size)
    import os

    os.utime(path / name, ns=(st.st_atime_ns, st.st_mtime_ns))  # defeats the per-process hash memo
    return f"{name}: SHA-256 differs"


def _drop_in_code(path: Path) -> str:
    (path / "modeling_evil.py").write_text("import os; os.system('touch pwned')")
    return "modeling_evil.py: not part of the entry"


def _remove_file(path: Path) -> str:
    victim = sorted(ENTRY_FILES[path.name.split("-")[0]])[0]
    (path / victim).unlink()
    return f"{victim}: missing"


def _legacy(path: Path) -> str:
    meta = json.loads((path / ENTRY_FILE).read_text())
    meta.pop("files")
    (path / ENTRY_FILE).write_text(json.dumps(meta))
    return "records no file hashes"


@pytest.mark.parametrize("kind", sorted(ENTRY_FILES))
@pytest.mark.parametrize("damage", [_edit_weights, _replace_embeddings_keep_mtime, _drop_in_code, _remove_file,
                                    _legacy], ids=lambda f: f.__name__.strip("_"))
def test_damaged_model_cache_entry_is_logged_and_rebuilt(sandbox, caplog, kind, damage):
    cache = ModelCache(sandbox.cache / "models")
    calls: list = []
    first = cache.get_or_build(kind, "k", _builder(kind, calls), describe={"x": 1})
    from pipelines.core.artifacts import file_sha256

    for f in first.path.iterdir():  # fill the per-process memo, as a real run's model_identity does
        file_sha256(f)
    assert entry_problems(first.path) == []
    words = damage(first.path)
    sandbox.start()
    with caplog.at_level("WARNING", logger="pipelines"):
        again = cache.get_or_build(kind, "k", _builder(kind, calls), describe={"x": 1})
    assert calls == [kind, kind] and not again.hit
    (record,) = [r for r in caplog.records if "model cache" in r.getMessage()]
    assert str(first.path) in record.getMessage() and words in record.getMessage()
    assert entry_problems(again.path) == []
    assert not (again.path / "modeling_evil.py").exists()
    sandbox.assert_untouched()
    third = cache.get_or_build(kind, "k", _builder(kind, calls), describe={"x": 1})
    assert third.hit and calls == [kind, kind]


def test_model_cache_entry_linked_outside_is_unlinked_not_followed(sandbox, caplog):
    cache = ModelCache(sandbox.cache / "models")
    calls: list = []
    entry = cache.path("kb", "k")
    entry.parent.mkdir(parents=True)
    forged = sandbox.outside / "forged-kb"
    forged.mkdir()
    (forged / ENTRY_FILE).write_text(json.dumps({"files": {}}))
    entry.symlink_to(forged, target_is_directory=True)
    sandbox.start()
    with caplog.at_level("WARNING", logger="pipelines"):
        built = cache.get_or_build("kb", "k", _builder("kb", calls), describe={})
    assert calls == ["kb"] and not built.hit and built.path.is_dir() and not built.path.is_symlink()
    assert any("a link" in r.getMessage() for r in caplog.records)
    sandbox.assert_untouched()


def test_predictor_refuses_a_model_damaged_after_the_build(sandbox):
    """Between build_variants and predict (or later, in a notebook), damage is caught before loading."""
    from pipelines.config import load_config
    from pipelines.variants import load_predictor

    cache = ModelCache(sandbox.cache / "models")
    entry = cache.get_or_build("finetuned", "k", _builder("finetuned", []), describe={})
    cfg = load_config(sandbox.write_config(variants=[{"name": "tuned", "kind": "finetuned", **FIXED}]))
    verify_entry(entry.path, what="check")  # intact: no error
    _edit_weights(entry.path)
    with pytest.raises(ModelError) as info:
        load_predictor(cfg.variant("tuned"), {"model_dir": str(entry.path)})
    message = str(info.value)
    assert "\n" not in message
    assert "variant `tuned`" in message and "model.safetensors" in message and "damaged" in message


def test_damaged_fine_tuned_model_under_a_cached_build_stage_is_rebuilt(sandbox, tiny_models, caplog):
    """The real build_variants stage with a tiny encoder: after its weights in the model cache are damaged, the
    next run does not take the stage from the stage cache (its `variants` names the damaged folder); the stage
    runs and the model cache retrains the entry."""
    import pandas as pd

    from pipelines.config import load_config
    from pipelines.core.runner import Stage, run_audit
    from pipelines.stages import build_variants

    cfg = load_config(sandbox.write_config(variants=[
        {"name": "tuned", "kind": "finetuned", "model": str(tiny_models["encoder"]), "max_length": 16,
         "training": {"epochs": 1, "batch_size": 8, "learning_rate": 1e-3}, **FIXED}]))
    train = pd.DataFrame({"example_id": [f"e{i}" for i in range(16)], "text": ["women are good"] * 8 +
                          ["men are bad"] * 8, "label": [0] * 8 + [1] * 8, "grp": ["a", "b"] * 8})
    stages = [Stage(name="load_data", fn=lambda ctx: {"train": train}, outputs=("train",)), build_variants.SPEC]
    first = run_audit(cfg, stages, run_id="r1", started_at="t", show_progress=False)
    folder = Path(first.outputs["build_variants"]["variants"]["tuned"]["model_dir"])
    assert entry_problems(folder) == []
    assert run_audit(cfg, stages, run_id="r2", started_at="t", show_progress=False).manifest["stages"][
        "build_variants"]["cache_hit"] is True
    data = bytearray((folder / "model.safetensors").read_bytes())
    data[-10] ^= 0xFF
    (folder / "model.safetensors").write_bytes(bytes(data))
    sandbox.start()
    with caplog.at_level("WARNING", logger="pipelines"):
        third = run_audit(cfg, stages, run_id="r3", started_at="t", show_progress=False)
    entry = third.manifest["stages"]["build_variants"]
    assert entry["cache_hit"] is False and entry["cache_damaged"] is True
    messages = [r.getMessage() for r in caplog.records]
    assert any("stage build_variants" in m and "model.safetensors" in m for m in messages), messages
    assert any(m.startswith("model cache:") and "model.safetensors" in m for m in messages), messages
    assert entry_problems(Path(third.outputs["build_variants"]["variants"]["tuned"]["model_dir"])) == []
    sandbox.assert_untouched()


def test_cli_one_line_for_a_model_folder_damaged_mid_run(sandbox, cli, tiny_models, monkeypatch):
    """A classifier folder that turns out damaged where it is loaded: one line, exit 2, manifest failed."""
    import pipelines.variants.registry as registry

    cfg = sandbox.write_config()
    cache = ModelCache(sandbox.cache / "models")
    entry = cache.get_or_build("finetuned", "k", _builder("finetuned", []), describe={})
    _edit_weights(entry.path)

    def damaged(spec, built, **kwargs):
        verify_entry(entry.path, what=f"variant `{spec.name}`")

    monkeypatch.setattr(registry, "load_predictor", damaged)
    import pipelines.stages.predict.run as predict_run

    monkeypatch.setattr(predict_run, "load_predictor", damaged)
    sandbox.start()
    code, _, err = cli("run", cfg, "--run-id", "r1", "--no-progress", "-q")
    assert code == 2
    one_error(err, "variant `prod`", "model.safetensors", "damaged")
    assert json.loads((sandbox.run_dir("r1") / "manifest.json").read_text())["status"] == "failed"
    sandbox.assert_untouched()
