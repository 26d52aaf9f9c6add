"""Time the mitigate stage alone on a finished run's artifacts (read-only), wall and CPU time.

The run must come from a config with ``mitigation`` enabled, so that ``predict`` stored
``validation_predictions`` (the demo does). The config is the demo's unless ``--config``
says otherwise; nothing is written into the run.

Usage::

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_mitigate.py reports/runs/demo/<run-id> --repeat 2

Prints one line per repetition: wall seconds, CPU seconds of this process
(``time.process_time``) and the stage's own wall-time split (fit, sweep, evaluate).
CPU time is the better guide on a shared machine: wall time grows with the load.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import pandas as pd

from pipelines.config import DEMO_CONFIG, load_config
from pipelines.core.runner import StageContext
from pipelines.stages.mitigate.run import mitigate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--config", type=Path, default=DEMO_CONFIG)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    cfg = load_config(args.config)
    run = args.run_dir
    scratch = Path(tempfile.mkdtemp(prefix="bench-mitigate-"))
    ctx = StageContext(config=cfg, run_id="bench", scratch_dir=scratch, cache_dir=scratch,
                       log=logging.getLogger("bench_mitigate"), show_progress=False)
    summary = run / "load_data" / "data_summary.json"
    inputs = {"audit_sample": pd.read_parquet(run / "load_data" / "audit_sample.parquet"),
              "validation": pd.read_parquet(run / "load_data" / "validation.parquet"),
              "predictions": pd.read_parquet(run / "predict" / "predictions.parquet"),
              "validation_predictions": pd.read_parquet(run / "predict" / "validation_predictions.parquet"),
              "data_summary": json.loads(summary.read_text()) if summary.exists() else None}
    for i in range(args.repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        out = mitigate(ctx, **inputs)
        print(f"run {i}: wall {time.perf_counter() - t0:.1f} s, cpu {time.process_time() - c0:.1f} s, "
              f"split {out['mitigation']['seconds']}", flush=True)


if __name__ == "__main__":
    main()
