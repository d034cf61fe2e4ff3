"""Priority order under concurrency (notebook 04): violations, lost and duplicated tasks.

A closed-loop study (``pqlab.studies.closedloop``) of the ``ordering``
scenario: the decision's correctness gate reads it; no evidence section.
"""

from __future__ import annotations

from pqlab.studies.base import Study

STUDY = Study("ordering", "04-priority-correctness.ipynb", {
    "quick": {"TASK_COUNTS": [2_000], "WORKER_COUNTS": [4], "REPETITIONS": 1},
    "default": {"TASK_COUNTS": [10_000], "WORKER_COUNTS": [4, 16], "REPETITIONS": 2},
    "full": {"TASK_COUNTS": [10_000, 100_000], "WORKER_COUNTS": [4, 16], "REPETITIONS": 3},
})
