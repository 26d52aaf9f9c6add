"""No remote code: a model folder that names custom code is a one-line error, its code never runs, stdin is
never read, and every transformers loading call in the package passes ``trust_remote_code=False``."""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path

import pytest

from pipelines.errors import ModelError
from tests.conftest import REPO
from tests.reliability.conftest import one_error, subprocess_cli

EVIL = """
from pathlib import Path
Path({marker!r}).write_text("custom code ran")
from transformers import PreTrainedTokenizerFast as EvilTokenizer
from transformers import BertForSequenceClassification as EvilModel
"""


def _evil_folder(tiny_models, root: Path, where: str) -> tuple[Path, Path]:
    """A copy of the tiny classifier whose ``where`` config has an ``auto_map`` to a module that leaves a marker."""
    folder = root / f"evil-{where.split('.')[0]}"
    shutil.copytree(tiny_models["classifier"], folder)
    marker = root / "PWNED"
    (folder / "evil.py").write_text(EVIL.format(marker=str(marker)), encoding="utf-8")
    cfg_path = folder / where
    data = json.loads(cfg_path.read_text(encoding="utf-8"))
    if where == "config.json":
        data["auto_map"] = {"AutoModelForSequenceClassification": "evil.EvilModel"}
    else:
        data["auto_map"] = {"AutoTokenizer": ["evil.EvilTokenizer", "evil.EvilTokenizer"]}
    cfg_path.write_text(json.dumps(data), encoding="utf-8")
    return folder, marker


@pytest.mark.parametrize("where", ["config.json", "tokenizer_config.json"])
def test_folder_with_auto_map_is_refused_before_loading(tiny_models, tmp_path, where):
    from pipelines.variants._hf import check_model_dir, load_sequence_classifier, load_tokenizer

    folder, marker = _evil_folder(tiny_models, tmp_path, where)
    for load in (lambda: check_model_dir(folder, field="variants[0].model", allow_pickle=False),
                 lambda: load_sequence_classifier(folder, field="variants[0].model", allow_pickle=False,
                                                  new_head=False),
                 lambda: load_tokenizer(folder)):
        with pytest.raises(ModelError) as info:
            load()
        message = str(info.value)
        assert "\n" not in message and str(folder) in message and where in message
        assert "custom code is refused" in message
    assert not marker.exists()


def test_transformers_itself_is_told_not_to_trust_the_folder(tiny_models, tmp_path, monkeypatch):
    """The second wall: with our own check switched off, trust_remote_code=False still keeps the code from running."""
    import pipelines.variants._hf as hf

    folder, marker = _evil_folder(tiny_models, tmp_path, "tokenizer_config.json")
    monkeypatch.setattr(hf, "refuse_custom_code", lambda path: None)
    try:
        hf.load_tokenizer(folder)
    except ModelError:
        pass  # transformers refused, or fell back to the folder's own tokenizer.json: either way no code ran
    assert not marker.exists()


def test_gguf_source_folder_with_auto_map_is_refused(tmp_path):
    from pipelines.variants._hf import convert_gguf

    (tmp_path / "model.gguf").write_bytes(b"GGUF")
    (tmp_path / "config.json").write_text(json.dumps({"auto_map": {"AutoModelForCausalLM": "x.Y"}}))
    with pytest.raises(ModelError, match="custom code is refused"):
        convert_gguf(tmp_path, "model.gguf", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_cli_refuses_custom_code_and_never_reads_stdin(sandbox, tiny_models):
    """A `classifier` variant on such a folder, with "y" waiting on stdin: one line, exit 2, no code run."""
    folder, marker = _evil_folder(tiny_models, sandbox.outside, "tokenizer_config.json")
    cfg = sandbox.write_config(variants=[{"name": "ckpt", "kind": "classifier", "model": str(folder),
                                          "max_length": 16, "calibration": {"method": "none"},
                                          "threshold": {"method": "fixed", "value": 0.5}}])
    sandbox.start()
    res = subprocess_cli("run", cfg, "--run-id", "r1", "--no-progress", "-q", stdin="y\ny\ny\n")
    assert res.returncode == 2, res.stderr[-3000:]
    one_error(res.stderr, str(folder), "auto_map", "custom code is refused")
    assert "[y/N]" not in res.stdout + res.stderr
    assert not marker.exists()
    # the preflight refuses the folder before the run starts (no run folder); if a run folder exists, it says failed
    manifest = sandbox.run_dir("r1") / "manifest.json"
    assert not manifest.exists() or json.loads(manifest.read_text())["status"] == "failed"
    sandbox.assert_untouched()


def _calls(tree: ast.AST, names: set[str]):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
            if name in names:
                yield node


def _loading_calls(tree: ast.AST):
    """``from_pretrained`` / ``from_config`` calls, and ``pipeline(...)`` calls that name a model."""
    yield from _calls(tree, {"from_pretrained", "from_config"})
    for call in _calls(tree, {"pipeline"}):
        if any(k.arg == "model" for k in call.keywords):
            yield call


def test_every_transformers_loading_call_passes_trust_remote_code_false():
    """A static check of the package and the benchmarks, GGUF conversion included; it fails on any new call
    without it."""
    found, bad = 0, []
    files = sorted((REPO / "pipelines").rglob("*.py")) + sorted((REPO / "benchmarks").rglob("*.py"))
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for call in _loading_calls(tree):
            found += 1
            flags = [k for k in call.keywords if k.arg == "trust_remote_code"]
            if not (flags and isinstance(flags[0].value, ast.Constant) and flags[0].value.value is False):
                bad.append(f"{path.relative_to(REPO)}:{call.lineno}")
    assert found >= 10  # tokenizer, model, GGUF tokenizer, GGUF model, from_config; 5 in the benchmarks
    assert not bad, f"calls without trust_remote_code=False: {bad}"


def test_nothing_in_the_package_reads_standard_input():
    bad = []
    for path in sorted((REPO / "pipelines").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text)
        bad += [f"{path.relative_to(REPO)}:{c.lineno}" for c in _calls(tree, {"input"})
                if isinstance(c.func, ast.Name)]
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and node.attr in ("read", "readline", "readlines", "buffer")
                    and isinstance(node.value, ast.Attribute) and node.value.attr == "stdin"):
                bad.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not bad, bad
