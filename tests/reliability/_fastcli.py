"""The real CLI over the real stages, without the two that import TensorFlow (validate_data, export_wit).

``python -m tests.reliability._fastcli run CONFIG ...`` is ``fairness-audit run CONFIG ...`` with
``pipelines.graph.STAGES`` narrowed to :data:`FAST_STAGES` (a process start costs ~3 s instead of
~20 s). With ``RELIABILITY_HOLD=<file>`` in the environment a ``hold`` stage after ``load_data``
writes that file and waits there (for kill -9 and concurrency tests) until ``<file>.go`` exists.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from pipelines.core.runner import Stage
from pipelines.stages import build_variants, counterfactuals, evaluate, load_data, predict

FAST_STAGES = (load_data.SPEC, counterfactuals.SPEC, build_variants.SPEC, predict.SPEC, evaluate.SPEC)


def _hold(ctx, *, table):
    flag = Path(os.environ["RELIABILITY_HOLD"])
    (ctx.scratch_dir / "partial.bin").write_bytes(b"\0" * 1024)  # a temporary folder to be left behind
    flag.write_text(str(os.getpid()))
    deadline = time.monotonic() + 120
    while not Path(f"{flag}.go").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return {"held": {"rows": int(len(table))}}


HOLD = Stage(name="hold", fn=_hold, inputs={"table": "load_data.examples"}, outputs=("held",), cache=False)


def stages() -> tuple[Stage, ...]:
    if os.environ.get("RELIABILITY_HOLD"):
        return (FAST_STAGES[0], HOLD, *FAST_STAGES[1:])
    return FAST_STAGES


def main(argv: list[str]) -> int:
    import pipelines.graph as graph
    from pipelines.cli import main as cli_main

    graph.STAGES = stages()
    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
