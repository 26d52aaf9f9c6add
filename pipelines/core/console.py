"""A run's terminal: one line per stage with its duration, progress bars, the project's warnings.

A run imports TensorFlow, TFDV, Apache Beam, transformers and the Google clients. They
log INFO lines through Python logging and absl, raise ``FutureWarning``\\ s, and their C++
parts write straight to file descriptor 2 (``cuda_fft ... Unable to register``, oneDNN
notes), which no Python setting can catch. :class:`RunConsole` keeps all of that off the
terminal and in the run's log file:

* file descriptors 1 and 2 of the process (and of its children, such as Beam workers)
  point at the log while the run lasts: first a temporary file, then, once the run
  folder exists, ``<run folder>/run.log`` (the temporary part is copied to its start);
* Python logging writes every record (INFO and up; DEBUG with ``verbose``) to the log
  with its time and logger name;
* the terminal (the process's original stderr) gets a header line, one line per stage
  (:func:`stage_event`, which the runner calls), progress bars (:func:`progress_stream`;
  only where it is a terminal: :func:`progress_wanted`) and the ``pipelines`` loggers'
  warnings and errors; with ``quiet``, only those;
* with ``verbose``, everything written to the log is also copied to the terminal.

Without an active console (tests that call the runner, notebooks), :func:`stage_event`
is an ordinary log record and :func:`progress_stream` is ``sys.stderr``.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import threading
import traceback
from pathlib import Path
from typing import IO

from pipelines.core.rundir import RUN_LOG, RunDir

__all__ = ["RunConsole", "stage_event", "progress_stream", "progress_wanted", "format_seconds", "LOG_FORMAT"]

LOG = logging.getLogger("pipelines")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: Width of the stage name column of the stage lines.
STAGE_COLUMN = 16

_ACTIVE: "RunConsole | None" = None


def progress_stream() -> IO[str]:
    """Where progress bars go: the active console's terminal, else ``sys.stderr``."""
    return _ACTIVE.terminal if _ACTIVE is not None else sys.stderr


def progress_wanted() -> bool:
    """Whether progress bars are drawn: not when a run's terminal is a file or a pipe (cron, CI), where each
    redraw would be one more line of the log; always without an active console (tests, notebooks)."""
    return _ACTIVE is None or _ACTIVE.terminal.isatty()


def format_seconds(seconds: float) -> str:
    """``"0.4 s"``, ``"12.3 s"``, ``"6 min 05 s"``, ``"1 h 02 min"``.

    >>> format_seconds(0.42), format_seconds(75), format_seconds(3725)
    ('0.4 s', '1 min 15 s', '1 h 02 min')
    """
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {sec:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def stage_event(stage: str, status: str, seconds: float | None = None) -> None:
    """Report a stage's progress: ``running``/``cached`` when it starts, ``done``/``cached`` with its
    ``seconds`` when it ends, ``skipped``. A log record (``pipelines`` logger) that an active
    :class:`RunConsole` turns into the stage's terminal line."""
    if seconds is None:
        LOG.info("stage %s: %s", stage, status, extra={"stage_event": (stage, status, None)})
    else:
        LOG.info("stage %s: %s in %.3f s", stage, status, seconds, extra={"stage_event": (stage, status, seconds)})


class _TerminalHandler(logging.Handler):
    """The terminal's share of the log records: stage lines, and the project's warnings and errors."""

    def __init__(self, console: "RunConsole"):
        super().__init__(logging.DEBUG)
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        try:
            event = getattr(record, "stage_event", None)
            if event is not None:
                self.console._stage_line(*event)
            elif getattr(record, "log_only", False) or self.console.verbose:
                return  # verbose: the log itself is copied to the terminal
            elif record.levelno >= logging.WARNING and record.name.split(".")[0] == "pipelines":
                self.console.line(f"{record.levelname.lower()}: {record.getMessage()}")
        except Exception:  # noqa: BLE001 - a broken terminal must not break the run, nor print a traceback
            pass


class RunConsole:
    """The terminal of one ``fairness-audit run`` (a context manager); see the module docstring.

    Parameters
    ----------
    run_dir
        The run folder the runner will create; the log moves into it (``run.log``) at the first
        stage event, once the runner holds the audit's lock and has written the manifest. A run
        refused by the lock never touches it.
    run_id, audit
        For the header line.
    verbose
        Copy the log (library output included) to the terminal too.
    quiet
        No header and no stage lines; warnings and errors only.
    """

    def __init__(self, *, run_dir: str | Path, run_id: str = "", audit: str = "", verbose: bool = False,
                 quiet: bool = False):
        self.run_dir = Path(run_dir)
        self.run_id, self.audit = run_id, audit
        self.verbose, self.quiet = verbose, quiet
        self.log_path: Path | None = None
        self._attach_failed = False
        self.terminal: IO[str] = sys.stderr
        self._transient = False
        self._lock = threading.Lock()

    # -- terminal -------------------------------------------------------------------------

    def line(self, text: str) -> None:
        """One line on the terminal (clearing a transient "running" line first)."""
        with self._lock:
            if self._transient:
                self.terminal.write("\r\033[K")
                self._transient = False
            self.terminal.write(text + "\n")
            self.terminal.flush()

    def _stage_line(self, stage: str, status: str, seconds: float | None) -> None:
        if self.log_path is None and not self._attach_failed:
            try:
                self._attach()
            except OSError as exc:  # e.g. a full disk: the log stays in the temporary file; the run's own
                self._attach_failed = True  # writes will fail and say why, in one line
                self.line(f"warning: the run log could not be written to {self.run_dir}: {exc.strerror or exc}")
        if self.quiet:
            return
        name = f"  {stage:<{STAGE_COLUMN}}"
        if seconds is None:
            if status == "skipped":
                self.line(f"{name}{'skipped':>10}")
            elif status == "running" and self.terminal.isatty():
                with self._lock:  # replaced by the stage's progress bar or its final line
                    self.terminal.write(f"{name}running ...")
                    self.terminal.flush()
                    self._transient = True
            return
        self.line(f"{name}{format_seconds(seconds):>10}" + ("  (cached)" if status == "cached" else ""))

    # -- file descriptors -------------------------------------------------------------------

    def __enter__(self) -> "RunConsole":
        global _ACTIVE
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        self._saved = {fd: os.dup(fd) for fd in (1, 2)}
        self.terminal = os.fdopen(os.dup(2), "w", buffering=1, encoding="utf-8", errors="replace")
        self._pending = tempfile.TemporaryFile()
        self._log_file: IO[bytes] | None = None
        self._sink = self._pending.fileno()
        if self.verbose:
            self._pipe_r, pipe_w = os.pipe()
            for fd in (1, 2):
                os.dup2(pipe_w, fd)
            os.close(pipe_w)
            self._pump = threading.Thread(target=self._tee, name="run-console-tee", daemon=True)
            self._pump.start()
        else:
            for fd in (1, 2):
                os.dup2(self._sink, fd)
        root = logging.getLogger()
        self._root_state = (root.level, list(root.handlers))
        self._file_stream = open(2, "w", encoding="utf-8", errors="replace", closefd=False, buffering=1)
        to_log = logging.StreamHandler(self._file_stream)
        to_log.setFormatter(logging.Formatter(LOG_FORMAT))
        for handler in list(root.handlers):
            root.removeHandler(handler)
        root.addHandler(to_log)
        root.addHandler(_TerminalHandler(self))
        root.setLevel(logging.DEBUG if self.verbose else logging.INFO)
        logging.captureWarnings(True)
        _ACTIVE = self
        return self

    def _tee(self) -> None:
        while True:
            try:
                chunk = os.read(self._pipe_r, 65536)
            except OSError:
                return
            if not chunk:
                return
            try:
                with self._lock:
                    os.write(self._sink, chunk)
                    if self._transient:
                        os.write(self._saved[2], b"\r\033[K")
                        self._transient = False
                os.write(self._saved[2], chunk)
            except OSError:  # the run is over and its files are closed (a child process wrote late)
                return

    def _attach(self) -> None:
        """Move the log into the run folder: ``run.log`` gets what was written so far, then the rest."""
        path = RunDir(self.run_dir).log
        log_file = open(path, "ab")
        self._file_stream.flush()
        with self._lock:
            self._pending.seek(0)
            shutil.copyfileobj(self._pending, log_file)
            log_file.flush()
            self._sink = log_file.fileno()
            if not self.verbose:
                for fd in (1, 2):
                    os.dup2(self._sink, fd)
                shutil.copyfileobj(self._pending, log_file)  # whatever came in between
                log_file.flush()
        self._log_file = log_file
        self.log_path = path
        if not self.quiet:
            self.line(f"run {self.run_id} of audit {self.audit!r} -> {self.run_dir}  (full log: {RUN_LOG})")

    def __exit__(self, exc_type, exc, tb) -> None:
        global _ACTIVE
        try:
            if exc is not None:
                self._file_stream.write("".join(traceback.format_exception(exc_type, exc, tb)))
            for stream in (sys.stdout, sys.stderr, self._file_stream):
                stream.flush()
        finally:
            for fd in (1, 2):
                os.dup2(self._saved[fd], fd)
            if self.verbose:
                self._pump.join(timeout=5)  # ends when the last writer (a child process, too) closes the pipe
                if not self._pump.is_alive():
                    os.close(self._pipe_r)
            root = logging.getLogger()
            for handler in list(root.handlers):
                root.removeHandler(handler)
            level, handlers = self._root_state
            for handler in handlers:
                root.addHandler(handler)
            root.setLevel(level)
            logging.captureWarnings(False)
            _ACTIVE = None
            with self._lock:
                if self._transient:
                    self.terminal.write("\r\033[K")
                    self._transient = False
            self.terminal.flush()
            self._file_stream.close()
            if self._log_file is not None:
                self._log_file.close()
            self._pending.close()
            for fd in self._saved.values():
                os.close(fd)
            self.terminal.close()
            self.terminal = sys.stderr

    def log_only(self, message: str) -> None:
        """A line for the log file only (e.g. the verdict, which the CLI prints itself)."""
        LOG.info(message, extra={"log_only": True})
