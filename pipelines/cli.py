"""The ``fairness-audit`` command line.

Only the CLI decides exit codes:

====  =====================================================================
code  meaning
====  =====================================================================
0     every gate passed
1     at least one gate failed
2     error: bad config, unreadable data, broken model folder, another run
      holds the lock, or a crash (nothing is recorded as complete)
3     no gate failed, but at least one had insufficient evidence
====  =====================================================================

This module imports only the standard library at start-up, so ``--help``
answers at once; everything heavy is imported inside the commands.
"""

from __future__ import annotations

import argparse
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
    run.add_argument("-q", "--quiet", action="store_true", help="log warnings only")
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
    import os

    output = {}
    if getattr(args, "runs_dir", None):
        output["runs_dir"] = os.path.abspath(args.runs_dir)
    if getattr(args, "cache_dir", None):
        output["cache_dir"] = os.path.abspath(args.cache_dir)
    return {"output": output} if output else {}


def _cmd_validate(args: argparse.Namespace) -> int:
    from pipelines.config import load_config

    cfg = load_config(args.config)
    print(f"{args.config}: OK (audit {cfg.audit.name!r}, config hash {cfg.config_hash()[:12]})")
    return EXIT_OK


def _cmd_run(args: argparse.Namespace) -> int:
    import datetime as dt
    import logging

    from pipelines.config import load_config

    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    cfg = load_config(args.config, overrides=_overrides(args))
    from pipelines.core.runner import run_audit
    from pipelines.errors import LockError
    from pipelines.graph import STAGES, data_fingerprint_of, exit_code, finalize_run
    from pipelines.report import post_run

    now = dt.datetime.now(dt.timezone.utc)
    run_id = args.run_id or f"{now:%Y%m%dT%H%M%SZ}-{cfg.config_hash()[:8]}"
    try:
        result = run_audit(
            cfg, list(STAGES), run_id=run_id, started_at=now.isoformat(timespec="seconds"),
            show_progress=not args.no_progress, lock_timeout=args.wait,
            data_fingerprint=data_fingerprint_of, finalize=finalize_run,
        )
    except LockError:
        raise  # the other run owns the audit; nothing of ours to record
    except BaseException:
        post_run(cfg.runs_dir / run_id, config=cfg)  # records the failed run in the history
        raise
    posted = post_run(result.run_dir, config=cfg)  # the report (from the finished manifest) + history row
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
        print(f"report: {posted['report']}")
    return exit_code(verdict)


#: Gate results that did not pass, printed under the verdict line (the report lists all).
_ATTENTION_LINES = 12


def _cmd_history(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pipelines.core.history import format_history, list_runs

    audit = args.audit
    runs_root = Path(args.runs_dir) if args.runs_dir else None
    if audit.endswith((".yaml", ".yml")) or Path(audit).is_file():
        from pipelines.config import load_config

        cfg = load_config(audit, overrides=_overrides(args))
        audit, runs_root = cfg.audit.name, cfg.runs_dir.parent
    runs = list_runs(runs_root or Path("reports/runs"), audit, limit=args.limit)
    if args.json:
        import json

        print(json.dumps(runs, indent=2))
    else:
        print(format_history(audit, runs))
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
            print(f"error: {exc}", file=sys.stderr)
        else:
            print(f"internal error: {type(exc).__name__}: {exc} (re-run with --debug for the traceback)",
                  file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
