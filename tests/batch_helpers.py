"""The tiny batch: in-process grids small enough that every notebook runs in seconds.

Run once per test run by the session fixture ``tiny_batch`` (tests/conftest.py).
"""

from __future__ import annotations

import pickle
import sys
import traceback
from pathlib import Path

from pqlab import studies
from pqlab.lab import batch

# Tiny grids, in-process: every notebook runs end to end in a few seconds.
TINY = {
    "01-single-baseline": {"TASK_COUNTS": [300, 600], "FRESH_PROCESS": False,
                           "PROGRESS": False},
    "02-threads": {"TASK_COUNTS": [300], "WORKER_COUNTS": [1, 2], "REPETITIONS": 2,
                   "FRESH_PROCESS": False, "PROGRESS": False},
    "03-asyncio": {"TASK_COUNTS": [300], "WORKER_COUNTS": [1, 2], "REPETITIONS": 2,
                   "FRESH_PROCESS": False, "PROGRESS": False},
    "04-priority-correctness": {"TASK_COUNTS": [300], "FRESH_PROCESS": False,
                                "PROGRESS": False},
    "06-processes-redis": {"TASK_COUNTS": [200], "WORKER_COUNTS": [1],
                           "THREAD_QUEUES": ["queue.PriorityQueue"], "FRESH_PROCESS": False,
                           "PROGRESS": False, "OVERLOAD_DURATION_S": 0.8,
                           "FAILOVER_RUNS": 0},
    "07-load": {"RHOS": [0.3, 0.6], "SPECTRUM_RHO": 0.6, "DURATION_S": 1.0,
                "FRESH_PROCESS": False, "PROGRESS": False},
    "08-overload": {"LOADS": [0.9, 1.5], "DEPTH_RHO": 1.5, "DURATION_S": 0.6,
                    "FRESH_PROCESS": False, "PROGRESS": False},
    # one point (a service process, its load, the no-op baseline) and a one-step ceiling
    "09-end-to-end": {"QUEUES": ["AsyncBucketQueue"], "RATES": [200], "PAST_RHOS": [],
                      "POINT_CAP_S": 0.6, "BASELINE_S": 0.3, "CEILING_RATES": [1000],
                      "CEILING_STEP_S": 0.3, "PROGRESS": False},
}


def tiny_plan(**overrides: dict) -> batch.Plan:
    plan = batch.load_plan("quick")
    # Seconds-long units on a machine the suite keeps busy: measuring them again proves
    # nothing here (tests/test_sweep.py tests it) and would double the batch's time.
    plan.remeasure_tries = 0
    for spec, values in plan.notebooks:
        values.update(TINY.get(spec.name, {}))
        values.update(overrides.get(spec.name, {}))
    return plan


RESULT_FILE = "result.pickle"  # beside the batch's own folder, written last


def run_tiny_batch(out: Path) -> tuple[Path, batch.BatchResult, list[str]]:
    """Run the tiny batch into ``out``; (output dir, result, printed lines).

    Tests take it from the session fixture ``tiny_batch`` (tests/conftest.py),
    which runs it once per test run.
    """
    lines: list[str] = []
    result = batch.run_batch(tiny_plan(), out, echo=lines.append, progress_every_s=0.0)
    return out, result, lines


def notebook_names() -> list[str]:
    return [spec.name for spec in studies.plan()]


def main(folder: str) -> int:
    """``python -m batch_helpers DIR``: the tiny batch into DIR/batch, its result pickled
    to DIR/result.pickle (DIR/failed and the traceback on stderr if it fails)."""
    root = Path(folder)
    try:
        result = run_tiny_batch(root / "batch")
    except BaseException:  # noqa: BLE001 - said in the log, marked for the waiting fixture
        traceback.print_exc()
        (root / "failed").touch()
        return 1
    partial = root / (RESULT_FILE + ".part")
    partial.write_bytes(pickle.dumps(result))
    partial.rename(root / RESULT_FILE)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
