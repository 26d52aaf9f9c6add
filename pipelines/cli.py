"""The ``fairness-audit`` command line.

Only the CLI decides exit codes:

====  =====================================================================
code  meaning
====  =====================================================================
0     every gate passed
1     at least one gate failed
2     error: bad config, unreadable data, broken model folder, another run
      holds the lock, a refused --run-id, a full or read-only disk, or a
      crash (nothing is recorded as complete)
3     no gate failed, but at least one had insufficient evidence
====  =====================================================================

A finished audit exits with its verdict even when the history database cannot
be written (a warning says why). Errors are one line on stderr, naming the
file and what to do. The CLI never reads standard input.

This module imports only the standard library at start-up, so ``--help``
answers at once; everything heavy is imported inside the commands.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

__all__ = ["main"]

# The exit-code map of a finished run is pipelines.graph.EXIT_CODES (imported with the graph);
# these two do not need the graph.
EXIT_OK = 0
EXIT_ERROR = 2

EPILOG = """exit codes: 0 all gates pass, 1 a gate failed, 2 error, 3 insufficient evidence.
examples:
  fairness-audit run pipelines/configs/demo.yaml
  fairness-audit validate my_audit.yaml
  fairness-audit history demo --runs-dir reports/runs
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fairness-audit",
        description="Audit NLP model variants (fine-tuned, RAG, any classifier, logged predictions) for fairness, "
                    "side by side.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run an audit and write a dated run directory",
                         description="Run every stage of an audit. Completed stages whose inputs are "
                         "unchanged are taken from the stage cache, so a re-run after a crash resumes.")
    run.add_argument("config", help="audit config (YAML), e.g. pipelines/configs/demo.yaml")
    run.add_argument("--run-id", help="name of the run directory (default: UTC time + config hash)")
    run.add_argument("--runs-dir", help="override output.runs_dir")
    run.add_argument("--cache-dir", help="override output.cache_dir")
    run.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                     help="wait this long for another run of the same audit to finish (default: fail at once)")
    run.add_argument("--no-progress", action="store_true", help="hide progress bars")
    run.add_argument("-q", "--quiet", action="store_true", help="no stage lines: warnings, errors and the verdict only")
    run.add_argument("-v", "--verbose", action="store_true",
                     help="also show the libraries' logs (TensorFlow, Beam, absl, ...) on the terminal; they always "
                     "go to the run folder's run.log")
    run.add_argument("--debug", action="store_true", help="show tracebacks")

    val = sub.add_parser("validate", help="check an audit config without running anything")
    val.add_argument("config")

    hist = sub.add_parser("history", help="list the runs of an audit with their verdicts")
    hist.add_argument("audit", help="audit name, or an audit config file")
    hist.add_argument("--runs-dir", help="runs directory (default: the config's, or reports/runs)")
    hist.add_argument("--limit", type=int, default=20)
    hist.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


def _overrides(args: argparse.Namespace) -> dict:
    output = {}
    if getattr(args, "runs_dir", None):
        output["runs_dir"] = os.path.abspath(args.runs_dir)
    if getattr(args, "cache_dir", None):
        output["cache_dir"] = os.path.abspath(args.cache_dir)
    return {"output": output} if output else {}


def _cmd_validate(args: argparse.Namespace) -> int:
    from pipelines.config import load_config
    from pipelines.graph import preflight

    cfg = load_config(args.config)
    problems = preflight(cfg)  # data files, headers, labels, schema, term lists, model folders
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if problems:
        print(f"{args.config}: {len(problems)} problem(s) found before running", file=sys.stderr)
        return EXIT_ERROR
    print(f"{args.config}: OK (audit {cfg.audit.name!r}, config hash {cfg.config_hash()[:12]}; data, schema and "
          "model files checked)")
    return EXIT_OK


def _warn(message: str) -> None:
    """A warning for the terminal (through the run console's logging while a run is on) and the run log."""
    import logging

    logging.getLogger("pipelines.cli").warning("%s", " ".join(str(message).split()))


def _terminated(signum: int, frame) -> None:  # noqa: ARG001 - the signal handler's signature
    raise KeyboardInterrupt(f"terminated by signal {signum}")


def _on_sigterm(handler):
    """Install a SIGTERM handler; return the previous one (None outside the main thread)."""
    if handler is None:
        return None
    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (main() called from a worker thread)
        return None


def _cmd_run(args: argparse.Namespace) -> int:
    import datetime as dt
    import time

    from pipelines.core.safety import RunRefused, check_run_id

    if args.run_id is not None:
        check_run_id(args.run_id)  # before anything is read or written
    from pipelines.config import load_config
    from pipelines.core.console import RunConsole, stage_event

    cfg = load_config(args.config, overrides=_overrides(args))
    from pipelines.core.runner import run_audit
    from pipelines.errors import LockError
    from pipelines.graph import STAGES, data_fingerprint_of, exit_code, finalize_run, preflight
    from pipelines.report import post_run

    problems = preflight(cfg)
    if problems:  # nothing can run; say everything that is wrong at once
        first = problems[0]
        rest = f" (and {len(problems) - 1} more: run `fairness-audit validate {args.config}`)" if len(problems) > 1 else ""
        raise type(first)(f"{first}{rest}")

    now = dt.datetime.now(dt.timezone.utc)
    run_id = args.run_id or f"{now:%Y%m%dT%H%M%SZ}-{cfg.config_hash()[:8]}"
    previous = _on_sigterm(_terminated)  # a terminated run is marked failed, like Ctrl-C
    # library output (TF, Beam, absl, warnings, C++ messages) goes to <run>/run.log, the stage lines to the terminal
    try:
        with RunConsole(run_dir=cfg.runs_dir / run_id, run_id=run_id, audit=cfg.audit.name, verbose=args.verbose,
                        quiet=args.quiet) as console:
            try:
                result = run_audit(
                    cfg, list(STAGES), run_id=run_id, started_at=now.isoformat(timespec="seconds"),
                    show_progress=not args.no_progress, lock_timeout=args.wait,
                    data_fingerprint=data_fingerprint_of, finalize=finalize_run,
                )
            except (LockError, RunRefused):
                raise  # nothing ran: nothing of ours to record, and the existing run is not touched
            except BaseException:
                try:  # record the failed run in the history; this must not hide the run's own error
                    for warning in post_run(cfg.runs_dir / run_id, config=cfg).get("warnings", []):
                        _warn(warning)
                except Exception as exc:  # noqa: BLE001
                    _warn(f"the failed run was not recorded: {exc}")
                raise
            t0 = time.perf_counter()
            posted = post_run(result.run_dir, config=cfg)  # the report (from the finished manifest) + history row
            stage_event("report", "done", time.perf_counter() - t0)
            for warning in posted.get("warnings", []):
                _warn(warning)
            console.log_only(f"verdict {result.verdict}: " + "; ".join(result.manifest.get("verdict_reasons") or []))
    finally:
        _on_sigterm(previous)
    verdict = result.verdict
    print(f"run {result.run_id}: verdict {str(verdict).upper()} -> {result.run_dir}")
    for reason in result.manifest.get("verdict_reasons") or []:
        print(f"  {reason}")
    attention = result.manifest.get("verdict_attention") or []
    for line in attention[:_ATTENTION_LINES]:
        print(f"  {line}")
    if len(attention) > _ATTENTION_LINES:
        print(f"  ... and {len(attention) - _ATTENTION_LINES} more gate result(s) that did not pass (see the report)")
    if posted.get("report"):
        print(f"report: {posted['report']}  (model card: model_card.md beside it)")
    return exit_code(verdict)


#: Gate results that did not pass, printed under the verdict line (the report lists all).
_ATTENTION_LINES = 12


def _cmd_history(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pipelines.core.history import format_history, list_runs
    from pipelines.core.rundir import audit_dir, history_db_path

    audit = args.audit
    runs_root = Path(args.runs_dir) if args.runs_dir else None
    if audit.endswith((".yaml", ".yml")) or Path(audit).is_file():
        from pipelines.config import load_config

        cfg = load_config(audit, overrides=_overrides(args))
        audit, runs_root = cfg.audit.name, cfg.runs_dir.parent
    else:
        from pipelines.config.audit import AUDIT_NAME_PATTERN
        from pipelines.errors import ConfigError

        if not AUDIT_NAME_PATTERN.fullmatch(audit):  # it names a folder under the runs folder: never a path
            raise ConfigError(f"history: {audit!r} is neither an audit config file nor an audit name (a lowercase "
                              "slug of letters, digits, '-' or '_', at most 64 characters), e.g. `history demo`.")
    runs_root = (runs_root or Path("reports/runs")).resolve()
    runs = list_runs(runs_root, audit, limit=args.limit)
    db = history_db_path(runs_root)
    source = (f"read from {db}" if db.is_file()
              else f"no history database at {db}; read the run folders under {audit_dir(runs_root, audit)}")
    if args.json:
        import json

        print(json.dumps(runs, indent=2))
        print(source, file=sys.stderr)
    else:
        print(format_history(audit, runs))
        print(source)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.version:
        from pipelines import __version__

        print(__version__)
        return EXIT_OK
    if not args.command:
        parser.print_help()
        return EXIT_ERROR
    command = {"run": _cmd_run, "validate": _cmd_validate, "history": _cmd_history}[args.command]
    saved_stdin = _close_stdin(real_process=argv is None)
    try:
        return command(args)
    except KeyboardInterrupt:
        print("error: interrupted; the run is marked failed and its completed stages stay cached", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # the CLI is the one place that turns errors into exit codes
        from pipelines.errors import AuditError

        if getattr(args, "debug", False):
            import traceback

            traceback.print_exc()
        if isinstance(exc, AuditError):
            message = str(exc)
        elif isinstance(exc, OSError):
            from pipelines.core.safety import os_error_message

            message = os_error_message(exc)
        else:
            print(f"internal error: {type(exc).__name__}: {' '.join(str(exc).split())} "
                  "(re-run with --debug for the traceback)", file=sys.stderr)
            return EXIT_ERROR
        print(f"error: {message}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        ours, sys.stdin = sys.stdin, saved_stdin
        ours.close()


def _close_stdin(*, real_process: bool):
    """Nothing may read standard input (e.g. a library asking "run this folder's code? [y/N]").

    ``sys.stdin`` becomes an empty stream for the command; when this is the real
    process (not ``main([...])`` inside a test), file descriptor 0 too.
    """
    saved = sys.stdin
    sys.stdin = open(os.devnull, encoding="utf-8")  # noqa: SIM115 - closed with the process
    if real_process:
        try:
            fd = os.open(os.devnull, os.O_RDONLY)
            os.dup2(fd, 0)
            os.close(fd)
        except OSError:  # pragma: no cover - no fd 0 to replace
            pass
    return saved


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
