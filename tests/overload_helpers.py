"""What the tests of runs past saturation share: one policy, one service time, and the
check that cancels removed only queued requests whose clients had given up
(tests/scenarios/test_loadbounded_overload.py, test_loadprocesses_redis.py,
tests/study/test_loadframes.py)."""

from __future__ import annotations

import numpy as np

from pqlab.measure.overload import CANCELLED
from pqlab.queues.policy import LevelPolicy, QueuePolicy
from pqlab.scenarios.loadparams import ServiceTime

LIMIT, TIMEOUT_S = 8, 0.15
POLICY = QueuePolicy(LevelPolicy(max_queue_size=LIMIT, default_timeout_s=TIMEOUT_S))
SERVICE = ServiceTime("exp", 0.01)


def check_cancels(rec) -> None:
    """A cancel removed only a queued request, never before its client gave up."""
    outcome, cancel_ns = rec.series["outcome"], rec.series["cancel_ns"]
    cancelled = outcome == CANCELLED
    assert cancelled.any() and (cancel_ns[cancelled] > 0).all()
    assert (cancel_ns[~cancelled] == 0).all()
    give_up_ns = rec.series["intended_ns"] + np.round(rec.series["patience_s"] * 1e9)
    assert (cancel_ns[cancelled] >= give_up_ns[cancelled]).all()
    assert not np.isin(np.flatnonzero(cancelled), rec.get_task).any()  # never served
