"""pqlab.scenarios.loadoutcomes: a bounded pass's accounting (one outcome per offered
request, the policy's stopped clock, patience, depth per level)."""

from __future__ import annotations

import numpy as np
import pytest

import pqlab
from pqlab.core.task import Priority
from pqlab.measure.levels import key
from pqlab.measure.overload import (
    NOT_OFFERED,
    OUTCOME_CODES,
    REJECTED,
    SERVED,
)
from pqlab.queues.policy import LevelPolicy, QueuePolicy
from pqlab.scenarios.loadoutcomes import Ends, patience_series, queue_depth_series
from pqlab.scenarios.loadparams import LoadParams, ServiceTime, make_load_workload

POLICY = QueuePolicy(LevelPolicy(max_queue_size=4, default_timeout_s=0.02))
# ρ = 1500 x 2 ms / 2 workers = 1.5: past saturation, so levels fill and requests wait.
OVER = LoadParams(1500, "poisson", ServiceTime("exp", 0.002), duration_s=0.3, policy=POLICY)


def test_patience_is_each_request_s_and_none_means_never():
    params = LoadParams(1000, service=ServiceTime("exp", 0.001),
                        patience=ServiceTime("exp", 0.005), duration_s=1.0)
    tasks = make_load_workload(200, 4, params)
    assert list(patience_series(tasks)) == [t.payload.patience_s for t in tasks]
    never = make_load_workload(20, 1, LoadParams(1000, duration_s=1.0))
    assert np.isinf(patience_series(never)).all()


def test_the_policy_s_clock_stops_at_the_end():
    ends = Ends()
    assert ends.clock() < ends.end_ns / 1e9  # not started: the real clock
    ends.end_ns = 1_000_000_000
    assert ends.clock() == 1.0  # the end passed long ago (perf_counter counts from boot)


def test_the_total_depth_adds_the_levels():
    levels = {key("level_depth", p.name): np.array([int(p), 0]) for p in Priority}
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
