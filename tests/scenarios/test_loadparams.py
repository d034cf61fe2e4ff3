"""Load parameters: the driver a run takes, the workload, the service times."""

from __future__ import annotations

import pytest

from pqlab.queues import QUEUES
from pqlab.queues.policy import LevelPolicy, QueuePolicy
from pqlab.scenarios.loadparams import LoadParams, choose_driver

LIMIT, TIMEOUT_S = 8, 0.15
POLICY = QueuePolicy(LevelPolicy(max_queue_size=LIMIT, default_timeout_s=TIMEOUT_S))


def test_processes_driver_refuses_to_bound_a_queue_that_cannot_cancel_by_id():
    with pytest.raises(ValueError, match="driver 'processes' cannot bound a run of queue "
                                         "'multiprocessing'.*allowed for it: auto, threads"):
        choose_driver(QUEUES["multiprocessing"], "processes", LoadParams(duration_s=1))
    with pytest.raises(ValueError, match="driver 'threads' cannot bound a run of queue 'redis'"):
        choose_driver(QUEUES["redis"], "threads", LoadParams(duration_s=1, policy=POLICY))
    assert choose_driver(QUEUES["redis"], "auto", LoadParams(duration_s=1, policy=POLICY)
                         ) == "processes"
