"""Producers and consumers on threads (notebook 02): throughput, tails and idle burn.

A closed-loop study (``pqlab.studies.closedloop``): its units and idle burn
feed the decision's gates; it adds no evidence section of its own.
"""

from __future__ import annotations

from pqlab.studies.base import Study
from pqlab.study.config import DECISIVE_REPETITIONS

STUDY = Study("threads", "02-threads.ipynb", {
    "quick": {"TASK_COUNTS": [5_000], "WORKER_COUNTS": [1, 4], "REPETITIONS": 2},
    "default": {"TASK_COUNTS": [10_000], "WORKER_COUNTS": [1, 4, 8],
                "REPETITIONS": DECISIVE_REPETITIONS},
    "full": {"TASK_COUNTS": [10_000, 100_000], "WORKER_COUNTS": [1, 4, 16, 32],
             "REPETITIONS": 2},
})
