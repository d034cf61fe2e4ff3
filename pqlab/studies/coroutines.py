"""Coroutines (notebook 03): the asyncio queues, then handlers on the loop with thread workers.

Two closed-loop scenarios (``pqlab.studies.closedloop``): ``async`` feeds the
decision's gates; ``mixed`` (handlers on the event loop, workers in threads)
gives the record's "If workers become threads": the queue that keeps the
loop most responsive, with the loop-lag figure.
"""

from __future__ import annotations

from pqlab.decide import captions
from pqlab.measure import significance
from pqlab.studies.base import RunView, Section, Study
from pqlab.study.config import DECISIVE_REPETITIONS


def section(view: RunView) -> Section | None:
    found = captions.loop_lag(view.summary)
    if found is None:
        return None
    leaders = captions.loop_lag_leaders(view.summary)
    if len(leaders) == 1:
        claim = (f"- With handlers on the loop and workers in threads (scenario `mixed`), "
                 f"`{leaders[0]}` keeps the event loop most responsive.")
    else:  # the repetitions cannot separate them: a tie, said as one
        claim = (f"- With handlers on the loop and workers in threads (scenario `mixed`), "
                 f"the repetitions cannot separate "
                 f"{', '.join(f'`{q}`' for q in leaders)} on the event loop's p99 lag "
                 f"(Mann-Whitney U, p < {significance.P_THRESHOLD:g}): a tie.")
    return Section("### If workers become threads", [claim],
                   view.embeddable(captions.mixed(view.summary)), rank=40)


STUDY = Study("coroutines", "03-asyncio.ipynb", {
    "quick": {"TASK_COUNTS": [5_000], "WORKER_COUNTS": [1, 4], "REPETITIONS": 2},
    "default": {"TASK_COUNTS": [10_000], "WORKER_COUNTS": [1, 4, 8],
                "REPETITIONS": DECISIVE_REPETITIONS},
    "full": {"TASK_COUNTS": [10_000, 100_000], "WORKER_COUNTS": [1, 4, 16, 32],
             "REPETITIONS": 2},
}, section=section)
