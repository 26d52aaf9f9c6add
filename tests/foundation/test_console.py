"""A quiet terminal: one line per stage with its duration, the project's warnings, the verdict;
library output (Python logging, warnings, C-level writes to fd 2, child processes) goes to the run's
``run.log`` only, and to the terminal too with ``-v``.

RunConsole redirects the process's file descriptors 1 and 2, so each case runs in its own process."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import REPO, file_source

PY = sys.executable
LIBRARY_LINE = re.compile(r"apache_beam|tensorflow|absl|google|oneDNN|cuda|FutureWarning", re.I)

SCRIPT = textwrap.dedent("""
    import logging, os, subprocess, sys, warnings
    from pathlib import Path
    from pipelines.core.console import RunConsole, stage_event

    run_dir = Path(sys.argv[1])
    with RunConsole(run_dir=run_dir, run_id="r1", audit="unit", verbose=sys.argv[2] == "verbose",
                    quiet=sys.argv[2] == "quiet"):
        logging.getLogger("tensorflow").info("tensorflow INFO before the run folder exists")
        os.write(2, b"C-level: cuda_fft Unable to register cuFFT factory\\n")  # what TF's C++ code does
        run_dir.mkdir(parents=True)                                            # the runner makes it
        stage_event("load_data", "running")
        from pipelines.core.runner import StageContext  # a stage's progress bar: not on a piped terminal
        ctx = StageContext(config=None, run_id="r1", scratch_dir=run_dir, cache_dir=run_dir,
                           log=logging.getLogger("pipelines.unit"))
        for _ in ctx.progress(range(3), desc="scoring-bar"):
            pass
        warnings.warn("google.api_core: You are using a Python version ...", FutureWarning)
        logging.getLogger("apache_beam.runners").warning("apache_beam: a warning from a library")
        logging.getLogger("absl").info("absl INFO line")
        subprocess.run([sys.executable, "-c", "import sys; print('child process stdout'); "
                        "print('child stderr tensorflow', file=sys.stderr)"], check=True)
        print("a print() from a library")
        stage_event("load_data", "done", 1.25)
        stage_event("predict", "cached")
        stage_event("predict", "cached", 0.05)
        stage_event("export_wit", "skipped")
        logging.getLogger("pipelines.predict").warning("3 texts were truncated")
    print("after the run: the terminal again")
""")

NOISE = ("tensorflow INFO before", "cuFFT", "FutureWarning", "apache_beam: a warning", "absl INFO",
         "child process stdout", "child stderr tensorflow", "a print() from a library")


def _run_console(tmp_path, mode: str):
    run_dir = tmp_path / "runs" / "r1"
    done = subprocess.run([PY, "-c", SCRIPT, str(run_dir), mode], capture_output=True, text=True, cwd=REPO,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return done, (run_dir / "run.log").read_text(encoding="utf-8")


def test_library_output_goes_to_the_run_log_and_stage_lines_to_the_terminal(tmp_path):
    done, log = _run_console(tmp_path, "normal")
    terminal = done.stderr.splitlines()
    assert done.stdout == "after the run: the terminal again\n"
    assert terminal[0].startswith("run r1 of audit 'unit'") and "run.log" in terminal[0]
    assert [line.split() for line in terminal[1:]] == [
        ["load_data", "1.2", "s"], ["predict", "0.1", "s", "(cached)"], ["export_wit", "skipped"],
        ["warning:", "3", "texts", "were", "truncated"]]
    assert "scoring-bar" not in done.stderr + log  # no bar redrawn line by line into a pipe (cron, CI)
    for text in NOISE:
        assert text not in done.stderr
        assert text in log  # nothing is lost: before the folder existed, C-level, child processes
    assert log.index("tensorflow INFO before") < log.index("stage load_data: done")  # in order


def test_verbose_shows_the_library_output_too(tmp_path):
    done, log = _run_console(tmp_path, "verbose")
    for text in NOISE:
        assert text in log
        assert text in done.stderr + done.stdout
    assert "load_data" in done.stderr


def test_quiet_shows_only_warnings(tmp_path):
    done, log = _run_console(tmp_path, "quiet")
    assert done.stderr.splitlines() == ["warning: 3 texts were truncated"]
    assert "stage load_data: done" in log


@pytest.mark.parametrize("verbose", [False, True])
def test_a_real_run_prints_a_few_lines_and_no_library_line(tmp_path, small_csv, write_config, verbose):
    """The TFDV stage imports TensorFlow and Apache Beam; their noise must stay in run.log."""
    cfg = write_config({"audit": {"name": "quiet"}, "data": file_source(small_csv), "validation": {"schema": None},
                        "variants": []})
    args = ["run", cfg, "--run-id", "q1", "--no-progress"] + (["-v"] if verbose else [])
    done = subprocess.run([PY, "-m", "pipelines", *map(str, args)], capture_output=True, text=True, cwd=REPO,
                          timeout=600)
    assert done.returncode in (0, 1, 3), done.stderr
    lines = (done.stdout + done.stderr).splitlines()
    log = (tmp_path / "runs" / "quiet" / "q1" / "run.log").read_text(encoding="utf-8")
    assert re.search(r"tensorflow|apache_beam|absl", log)  # the noise existed, and went to the log
    if verbose:
        assert any(LIBRARY_LINE.search(line) for line in lines)
        return
    assert len(lines) <= 40, "\n".join(lines)
    assert not [line for line in lines if LIBRARY_LINE.search(line)]
    stage_lines = [line.split()[0] for line in lines if line.startswith("  ") and line.split()[-1] in ("s", "skipped", "(cached)")]
    assert stage_lines[:2] == ["load_data", "validate_data"]
    assert any(line.startswith("run q1: verdict") for line in lines)
