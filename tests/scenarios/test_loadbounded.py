"""pqlab.scenarios.loadbounded: the thread and coroutine drivers of runs past saturation
(give-ups before the end, cancelling impatient clients while queued)."""

from __future__ import annotations

import pqlab
from pqlab.measure.overload import CANCELLED
from pqlab.queues.policy import LevelPolicy, QueuePolicy
from pqlab.scenarios.loadbounded import give_ups
from pqlab.scenarios.loadparams import LoadParams, ServiceTime, make_load_workload


def test_give_ups_are_in_time_order_and_only_before_the_end():
    params = LoadParams(1000, service=ServiceTime("exp", 0.001),
                        patience=ServiceTime("exp", 0.005), duration_s=1.0)
    tasks = make_load_workload(200, 4, params)
    end = tasks[100].payload.arrival_ns
    ups = give_ups(tasks, end)
    times = [at for at, _ in ups]
    assert times == sorted(times) and all(at < end for at in times) and ups
    for at, task in ups:
        assert at == task.payload.arrival_ns + round(task.payload.patience_s * 1e9)
    assert give_ups(tasks, 0) == []


def test_no_patience_means_never_giving_up():
    tasks = make_load_workload(20, 1, LoadParams(1000, duration_s=1.0))
    assert give_ups(tasks, 2**62) == []


def test_clients_that_give_up_are_cancelled_while_queued():
    params = LoadParams(1500, "poisson", ServiceTime("exp", 0.002), duration_s=0.3,
                        policy=QueuePolicy(LevelPolicy(max_queue_size=50)),
                        patience=ServiceTime("const", 0.005))
    r = pqlab.run("ThreadSafeBucketQueue", "load", tasks=params.tasks_for(0.3), consumers=2,
                  seed=8, params=params)
    assert r.ok, r.error_messages
    [rec] = r.records
    cancelled = rec.series["outcome"] == CANCELLED
    assert cancelled.any()
    assert (rec.series["cancel_ns"][cancelled] > 0).all()
    assert (rec.series["cancel_ns"][~cancelled] == 0).all()
