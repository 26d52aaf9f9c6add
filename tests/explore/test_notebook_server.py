"""The `make notebook` entry point: environment, nbextensions, command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from pipelines.explore import notebook_server as ns
from tests.explore.conftest import REPO


def test_setup_only_leaves_both_nbextensions_enabled():
    out = subprocess.run([sys.executable, "-m", "pipelines.explore.notebook_server", "--setup-only"],
                         capture_output=True, text=True, cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stderr
    assert ns.nbextensions_enabled() == {"jupyter-js-widgets/extension": True, "wit-widget/extension": True}


def test_a_disabled_extension_in_a_higher_config_dir_is_seen(tmp_path, monkeypatch):
    cfg = tmp_path / "cfg"
    (cfg / "nbconfig").mkdir(parents=True)
    (cfg / "nbconfig" / "notebook.json").write_text(json.dumps({"load_extensions": {"wit-widget/extension": False}}))
    real = ns._nbconfig_dirs()
    monkeypatch.setattr(ns, "_nbconfig_dirs", lambda: [cfg / "nbconfig", *real])  # first = highest precedence
    state = ns.nbextensions_enabled()
    assert state["wit-widget/extension"] is False
    assert state["jupyter-js-widgets/extension"] is True


def test_server_env_sets_python_protobuf_and_the_run_dir(tmp_path):
    env = ns.server_env({"PATH": "/bin", "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION": "upb"}, run_dir=str(tmp_path))
    assert env["PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION"] == "python"
    assert env["FAIRNESS_AUDIT_RUN_DIR"] == str(tmp_path.resolve())
    assert env["PATH"] == "/bin"


def test_server_command_is_classic_notebook_on_the_given_address(tmp_path):
    cmd = ns.server_command(ip="127.0.0.1", port=8890, notebook_dir=tmp_path, token="t", open_browser=False)
    assert cmd[:3] == [sys.executable, "-m", "notebook"]
    assert "--ip=127.0.0.1" in cmd and "--port=8890" in cmd and "--port-retries=0" in cmd
    assert "--no-browser" in cmd and "--NotebookApp.token=t" in cmd and f"--notebook-dir={tmp_path}" in cmd
    assert ("--allow-root" in cmd) == (os.geteuid() == 0)


def test_free_port_is_bindable():
    import socket

    port = ns.free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_default_notebook_dir_is_the_repositorys():
    assert Path(ns.REPO / "notebooks" / "what_if_tool.ipynb").is_file()
