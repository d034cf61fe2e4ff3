"""pqlab.scenarios.loadbounded: runs past saturation that end at their duration, and their
bookkeeping (give-ups, the stopped clock, outcomes per request)."""

from __future__ import annotations

import numpy as np
import pytest

import pqlab
from pqlab.core.task import Priority
from pqlab.measure.overload import CANCELLED, NOT_OFFERED, OUTCOME_CODES, REJECTED, SERVED
from pqlab.queues.policy import LevelPolicy, QueuePolicy
from pqlab.scenarios.loadbounded import Ends, give_ups, patience_series, queue_depth_series
from pqlab.scenarios.loadparams import LoadParams, ServiceTime, make_load_workload

POLICY = QueuePolicy(LevelPolicy(max_queue_size=4, default_timeout_s=0.02))
# ρ = 1500 x 2 ms / 2 workers = 1.5: past saturation, so levels fill and requests wait.
OVER = LoadParams(1500, "poisson", ServiceTime("exp", 0.002), duration_s=0.3, policy=POLICY)


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
    assert list(patience_series(tasks)) == [t.payload.patience_s for t in tasks]


def test_no_patience_means_never_giving_up():
    tasks = make_load_workload(20, 1, LoadParams(1000, duration_s=1.0))
    assert give_ups(tasks, 2**62) == []
    assert np.isinf(patience_series(tasks)).all()


def test_the_policy_s_clock_stops_at_the_end():
    ends = Ends()
    assert ends.clock() < ends.end_ns / 1e9  # not started: the real clock
    ends.end_ns = 1_000_000_000
    assert ends.clock() == 1.0  # the end passed long ago (perf_counter counts from boot)


def test_the_total_depth_adds_the_levels():
    levels = {f"level_depth_{p.name}": np.array([int(p), 0]) for p in Priority}
    levels["level_depth_at_ns"] = np.array([5, 9])
    total = queue_depth_series(levels)
    assert total["depth"].tolist() == [10, 0] and total["depth_at_ns"].tolist() == [5, 9]


@pytest.mark.parametrize(("queue", "driver"), [("ThreadSafeBucketQueue", "threads"),
                                               ("AsyncBucketQueue", "async")])
def test_a_run_past_saturation_gives_every_request_exactly_one_outcome(queue, driver):
    r = pqlab.run(queue, "load", tasks=OVER.tasks_for(OVER.duration_s), consumers=2, seed=7,
                  params=OVER)
    assert r.ok, r.error_messages  # the pass checked conservation against the queue's counts
    [rec] = r.records
    assert rec.label == driver
    outcome = rec.series["outcome"]
    offered = rec.put_end > 0
    assert (outcome[offered] != NOT_OFFERED).all() and (outcome[~offered] == NOT_OFFERED).all()
    assert set(np.unique(outcome[offered])) <= set(OUTCOME_CODES.values())
    assert (outcome == SERVED).sum() > 0 and (outcome == REJECTED).sum() > 0  # a full level
    assert (rec.series["ended_unserved"] == (outcome != SERVED)).all()
    served_seqs = {int(s) for s in rec.seq[outcome == SERVED]}
    assert len(served_seqs) == int((outcome == SERVED).sum())


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
