"""Start the classic Notebook server with what the What-If Tool needs (``make notebook``).

* ``PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python`` for the server and every kernel it
  starts: witwidget's generated ``*_pb2`` modules fail on protobuf 4's C implementation;
* the ``jupyter-js-widgets`` (widgetsnbextension) and ``wit-widget`` nbextensions
  installed and enabled in this environment (``--sys-prefix``), idempotently;
* optionally ``FAIRNESS_AUDIT_RUN_DIR`` (``--run-dir``), the run the notebooks open;
* then ``jupyter notebook`` (classic Notebook 6.5) in place of this process.

Usage::

    python -m pipelines.explore.notebook_server                 # localhost:8888, notebooks/
    python -m pipelines.explore.notebook_server --port 0 --token secret --run-dir reports/runs/demo/<id>
    python -m pipelines.explore.notebook_server --setup-only    # enable the extensions and exit
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
from pathlib import Path

__all__ = ["main", "ensure_nbextensions", "nbextensions_enabled", "server_env", "server_command", "free_port",
           "REQUIRED_NBEXTENSIONS"]

# nbextension require path -> the Python package that ships it
REQUIRED_NBEXTENSIONS = {
    "jupyter-js-widgets/extension": "widgetsnbextension",
    "wit-widget/extension": "witwidget",
}
REPO = Path(__file__).resolve().parents[2]


def _nbconfig_dirs() -> list[Path]:
    from jupyter_core.paths import jupyter_config_path

    return [Path(p) / "nbconfig" for p in jupyter_config_path()]


def nbextensions_enabled() -> dict[str, bool]:
    """Whether each required nbextension is enabled for the notebook page and its files are installed."""
    from jupyter_core.paths import jupyter_path

    from notebook.services.config.manager import ConfigManager

    # the classic Notebook's own merge of nbconfig/notebook.json and notebook.d/*.json over the config path
    merged = ConfigManager(read_config_path=[str(d) for d in _nbconfig_dirs()]).get("notebook")
    load = {k: bool(v) for k, v in (merged.get("load_extensions") or {}).items()}
    installed = {req: any((Path(p) / "nbextensions" / f"{req}.js").is_file() for p in jupyter_path())
                 for req in REQUIRED_NBEXTENSIONS}
    return {req: load.get(req, False) and installed[req] for req in REQUIRED_NBEXTENSIONS}


def ensure_nbextensions(*, quiet: bool = True) -> list[str]:
    """Install and enable the missing nbextensions in this environment; return the ones it fixed."""
    fixed = []
    for req, package in REQUIRED_NBEXTENSIONS.items():
        if nbextensions_enabled().get(req):
            continue
        for action in ("install", "enable"):
            cmd = [sys.executable, "-m", "jupyter", "nbextension", action, "--py", "--sys-prefix", package]
            if action == "install":
                cmd.append("--overwrite")
            done = subprocess.run(cmd, capture_output=quiet, text=True)
            if done.returncode != 0:
                from pipelines.errors import AuditError

                raise AuditError(f"`{' '.join(cmd[2:])}` failed (exit {done.returncode}): "
                                 f"{(done.stderr or '').strip()[-500:]}")
        fixed.append(req)
    missing = [r for r, ok in nbextensions_enabled().items() if not ok]
    if missing:
        from pipelines.errors import AuditError

        raise AuditError(f"nbextension(s) {missing} are still not enabled after `jupyter nbextension enable`; "
                         "check `jupyter nbextension list`.")
    return fixed


def server_env(base: dict[str, str] | None = None, *, run_dir: str | None = None) -> dict[str, str]:
    """The environment for the server and its kernels."""
    env = dict(os.environ if base is None else base)
    env["PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION"] = "python"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's start-up noise (cuFFT/cuDNN "factory" lines) on stderr
    if run_dir:
        env["FAIRNESS_AUDIT_RUN_DIR"] = str(Path(run_dir).resolve())
    return env


def server_command(*, ip: str, port: int, notebook_dir: Path, token: str | None, open_browser: bool) -> list[str]:
    cmd = [sys.executable, "-m", "notebook", f"--ip={ip}", f"--port={port}", "--port-retries=0",
           f"--notebook-dir={notebook_dir}"]
    if not open_browser:
        cmd.append("--no-browser")
    if token is not None:
        cmd.append(f"--NotebookApp.token={token}")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # CI and containers run as root; the server still listens on --ip only
    return cmd


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.explore.notebook_server", description=__doc__.split("\n")[0])
    parser.add_argument("--ip", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8888, help="0 picks a free port")
    parser.add_argument("--notebook-dir", default=str(REPO / "notebooks"))
    parser.add_argument("--token", default=None, help="access token (default: Jupyter generates one)")
    parser.add_argument("--browser", action="store_true", help="open a browser (default: no)")
    parser.add_argument("--run-dir", default=None, help="the run the notebooks open ($FAIRNESS_AUDIT_RUN_DIR)")
    parser.add_argument("--setup-only", action="store_true", help="enable the nbextensions and exit")
    args = parser.parse_args(argv)

    from pipelines.errors import AuditError

    try:
        fixed = ensure_nbextensions()
    except AuditError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if fixed:
        print(f"enabled nbextensions: {', '.join(fixed)}", file=sys.stderr)
    if args.setup_only:
        print("nbextensions ready: " + ", ".join(REQUIRED_NBEXTENSIONS), file=sys.stderr)
        return 0
    port = free_port(args.ip) if args.port == 0 else args.port
    env = server_env(run_dir=args.run_dir)
    cmd = server_command(ip=args.ip, port=port, notebook_dir=Path(args.notebook_dir), token=args.token,
                         open_browser=args.browser)
    print(f"starting the classic Notebook server on http://{args.ip}:{port}/ (notebooks in {args.notebook_dir})",
          file=sys.stderr, flush=True)
    os.execve(sys.executable, cmd, env)
    return 0  # pragma: no cover - execve does not return


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
