"""Drive the classic Notebook in headless Chromium (Playwright), for the browser tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"]

# Text of every node, through open shadow roots (WIT is Polymer) and same-origin iframes.
DEEP_TEXT_JS = """
() => {
  const out = [];
  const nextUp = (tw) => { while (tw.parentNode()) { const s = tw.nextSibling(); if (s) return s; } return null; };
  const walk = (root) => {
    const tw = document.createTreeWalker(root, NodeFilter.SHOW_ELEMENT | NodeFilter.SHOW_TEXT);
    let n = tw.currentNode;
    while (n) {
      if (n.nodeType === Node.TEXT_NODE) { const t = n.textContent.trim(); if (t) out.push(t); }
      else {
        if (n.tagName === 'SCRIPT' || n.tagName === 'STYLE' || n.tagName === 'TEMPLATE') { n = tw.nextSibling() || nextUp(tw); continue; }
        if (n.shadowRoot) walk(n.shadowRoot);
        if (n.tagName === 'INPUT' || n.tagName === 'TEXTAREA') { if (n.value) out.push(n.value); }
      }
      n = tw.nextNode();
    }
  };
  walk(document);
  return out.join('\\n');
}
"""


def chromium_path() -> Path | None:
    found = shutil.which("chromium") or (str(CHROMIUM) if CHROMIUM.exists() else None)
    return Path(found) if found else None


@contextmanager
def notebook_server(notebook_dir: Path, *, run_dir: Path, port: int, token: str, log_path: Path):
    """``python -m pipelines.explore.notebook_server`` (what `make notebook` runs) on 127.0.0.1; stopped on exit."""
    from tests.explore.conftest import REPO

    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["JUPYTER_RUNTIME_DIR"] = str(log_path.parent / "jupyter-runtime")
    cmd = [sys.executable, "-m", "pipelines.explore.notebook_server", "--ip", "127.0.0.1", "--port", str(port),
           "--token", token, "--notebook-dir", str(notebook_dir), "--run-dir", str(run_dir)]
    log = open(log_path, "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(REPO))
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 90
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the notebook server exited with {proc.returncode}: {log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.time() > deadline:
                raise RuntimeError(f"the notebook server did not answer in 90 s: {log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


FIND_TEXTAREA_JS = """
(text) => {
  let found = null;
  const walk = (root) => {
    for (const el of root.querySelectorAll('*')) {
      if (found) return;
      if (el.tagName === 'TEXTAREA' && el.value === text) { found = el; return; }
      if (el.shadowRoot) walk(el.shadowRoot);
    }
  };
  walk(document);
  return found;
}
"""

SELECT_DATAPOINT_JS = """
(index) => {
  let done = false;
  const walk = (root) => {
    for (const el of root.querySelectorAll('*')) {
      if (done) return;
      if (el.tagName === 'WIT-DASHBOARD' && el.$ && el.$.dive) { el.$.dive.selectedIndices = [index]; done = true; return; }
      if (el.shadowRoot) walk(el.shadowRoot);
    }
  };
  walk(document);
  return done;
}
"""

LAST_CELL_TEXT_JS = """
() => {
  const cells = Jupyter.notebook.get_cells();
  const outs = cells[cells.length - 1].output_area.outputs;
  return outs.map(o => (o.data && o.data['text/plain']) || o.text || '').join('\\n');
}
"""

INPUT_VALUE_JS = """
(label) => {
  let value = null;
  const walk = (root) => {
    for (const el of root.querySelectorAll('*')) {
      if (value !== null) return;
      if ((el.tagName === 'PAPER-DROPDOWN-MENU' || el.tagName === 'PAPER-INPUT') && el.label === label) { value = el.value; return; }
      if (el.shadowRoot) walk(el.shadowRoot);
    }
  };
  walk(document);
  return value;
}
"""
