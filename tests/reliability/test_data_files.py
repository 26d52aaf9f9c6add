"""Broken data files: exit 2, one line naming the file, a `failed` manifest, nothing cached, nothing outside."""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest

from tests.reliability.conftest import one_error


def _parquet_cut(path):
    frame = pd.read_csv(path)
    target = path.with_suffix(".parquet")
    frame.to_parquet(target, index=False)
    data = target.read_bytes()
    target.write_bytes(data[: len(data) // 2])
    return target


@pytest.mark.parametrize("damage", ["truncated-parquet", "binary-garbage", "empty", "folder", "no-label-column",
                                    "fifo", "device"])
def test_broken_data_file(sandbox, cli, damage):
    data = sandbox.write_data()
    if damage == "truncated-parquet":
        data = _parquet_cut(data)
    elif damage == "binary-garbage":
        data.write_bytes(bytes(range(256)) * 40)
    elif damage == "empty":
        data.write_bytes(b"")
    elif damage == "folder":
        data.unlink()
        data.mkdir()
    elif damage in ("fifo", "device"):  # reading either would block or never end
        data.unlink()
        if damage == "fifo":
            os.mkfifo(data)
        else:
            data.symlink_to("/dev/zero")
    else:
        frame = pd.read_csv(data).drop(columns=["y"])
        frame.to_csv(data, index=False)
    cfg = sandbox.write_config()
    if data.suffix == ".parquet":
        text = cfg.read_text().replace("path: data.csv", f"path: {data.name}")
        cfg.write_text(text)
    sandbox.start()
    code, _, err = cli("run", cfg, "--run-id", "r1", "--no-progress", "-q")
    assert code == 2, err
    line = one_error(err, "/dev/zero" if damage == "device" else data.name)  # the config resolves links
    if damage in ("folder", "fifo", "device"):
        assert {"folder": "a folder", "fifo": "a pipe", "device": "a device"}[damage] in line, line
    run = sandbox.run_dir("r1")
    if (run / "manifest.json").exists():
        assert json.loads((run / "manifest.json").read_text())["status"] == "failed"
    assert not list(run.rglob("_stage.json"))
    assert not (sandbox.cache / "stages" / "load_data").exists() or not any(
        (sandbox.cache / "stages" / "load_data").iterdir())
    sandbox.assert_untouched()
