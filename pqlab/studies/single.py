"""The single-threaded baseline (notebook 01): every in-process queue, one thread, task counts.

A closed-loop study (``pqlab.studies.closedloop``): its units feed the
decision's gates; it adds no evidence section of its own.
"""

from __future__ import annotations

from pqlab.studies.base import Study
from pqlab.study.config import DECISIVE_REPETITIONS

STUDY = Study("single", "01-single-baseline.ipynb", {
    "quick": {"TASK_COUNTS": [1_000, 10_000], "REPETITIONS": 1},
    "default": {"TASK_COUNTS": [1_000, 10_000, 50_000], "REPETITIONS": DECISIVE_REPETITIONS},
    "full": {"TASK_COUNTS": [1_000, 10_000, 100_000, 1_000_000], "REPETITIONS": 2},
})
