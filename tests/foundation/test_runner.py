"""The runner: atomic stage folders, the stage cache, the manifest and the lock."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from pipelines.config import load_config
from pipelines.errors import LockError, StageError
from pipelines.core.runner import Stage, load_stage_outputs, run_audit

CALLS: list[str] = []


def _make(ctx):
    CALLS.append("make")
    return {"table": pd.DataFrame({"x": [1, 2, 3]}), "info": {"seed": ctx.seed, "nan": float("nan")}}


def _double(ctx, *, table):
    CALLS.append("double")
    return {"doubled": table.assign(x=table["x"] * 2)}


def _boom(ctx, *, table):
    raise RuntimeError("kaboom")


MAKE = Stage(name="make", fn=_make, config_sections=("data",))
DOUBLE = Stage(name="double", fn=_double, inputs={"table": "make.table"})
BOOM = Stage(name="boom", fn=_boom, inputs={"table": "make.table"})


@pytest.fixture
def cfg(write_config):
    return load_config(write_config({"audit": {"name": "unit"}, "seed": 11}))


def test_run_writes_stage_folders_and_manifest(cfg):
    CALLS.clear()
    result = run_audit(cfg, [MAKE, DOUBLE], run_id="r1", started_at="t0")
    assert CALLS == ["make", "double"]
    assert result.outputs["double"]["doubled"]["x"].tolist() == [2, 4, 6]
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["seed"] == 11 and manifest["audit"] == "unit"
    assert manifest["stages"]["make"]["cache_hit"] is False
    assert set(manifest["stages"]["make"]["outputs"]) == {"table", "info"}
    assert manifest["packages"]["pandas"] == pd.__version__
    info = json.loads((result.run_dir / "make" / "info.json").read_text())
    assert info == {"seed": 11, "nan": None}  # NaN becomes null: strict JSON
    assert load_stage_outputs(result.run_dir / "double")["doubled"]["x"].tolist() == [2, 4, 6]
    assert not list(result.run_dir.glob(".tmp-*"))


def test_second_run_hits_the_cache_and_gives_the_same_outputs(cfg):
    first = run_audit(cfg, [MAKE, DOUBLE], run_id="r1", started_at="t0")
    CALLS.clear()
    second = run_audit(cfg, [MAKE, DOUBLE], run_id="r2", started_at="t1")
    assert CALLS == []
    assert second.manifest["stages"]["double"]["cache_hit"] is True
    assert second.manifest["stages"]["double"]["outputs"] == first.manifest["stages"]["double"]["outputs"]


def test_failed_stage_leaves_no_complete_artifacts_and_resumes(cfg):
    with pytest.raises(StageError, match="stage `boom` failed: RuntimeError: kaboom"):
        run_audit(cfg, [MAKE, BOOM], run_id="bad", started_at="t0")
    run_dir = cfg.runs_dir / "bad"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "failed" and "kaboom" in manifest["error"]
    assert not (run_dir / "boom").exists()
    assert not list(run_dir.glob(".tmp-*"))
    # the completed stage is reused by the next run
    CALLS.clear()
    result = run_audit(cfg, [MAKE, DOUBLE], run_id="good", started_at="t1")
    assert CALLS == ["double"]
    assert result.manifest["stages"]["make"]["cache_hit"] is True


def test_config_change_invalidates_the_cache(write_config):
    a = load_config(write_config({"audit": {"name": "unit"}, "seed": 1}, "a.yaml"))
    b = load_config(write_config({"audit": {"name": "unit"}, "seed": 2}, "b.yaml"))
    run_audit(a, [MAKE], run_id="a", started_at="t")
    CALLS.clear()
    run_audit(b, [MAKE], run_id="b", started_at="t")
    assert CALLS == ["make"]


def test_lock_refuses_a_concurrent_run(cfg):
    from filelock import FileLock

    cfg.runs_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(cfg.runs_dir / ".run.lock")):
        with pytest.raises(LockError, match="another run of audit 'unit' is in progress"):
            run_audit(cfg, [MAKE], run_id="x", started_at="t", lock_timeout=0.1)


def test_existing_run_id_is_refused(cfg):
    run_audit(cfg, [MAKE], run_id="same", started_at="t")
    from pipelines.errors import AuditError

    with pytest.raises(AuditError, match="already exists"):
        run_audit(cfg, [MAKE], run_id="same", started_at="t")
