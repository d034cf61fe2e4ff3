"""pqlab.measure.loadrows: one load run's tidy rows, read by name (waits per priority, a
bounded run's long levels rows, the percentiles of its waits, its depth over time)."""

from __future__ import annotations

import numpy as np
import pytest

import pqlab
from pqlab.measure import loadrows
from pqlab.queues.policy import LevelPolicy, QueuePolicy
from pqlab.scenarios.loadparams import LoadParams, ServiceTime

LEVELS = ["CRITICAL", "HIGH", "NORMAL", "LOW"]


@pytest.fixture(scope="module")
def below():
    params = LoadParams.at_utilization(0.5, 2, ServiceTime("exp", 0.002))
    return pqlab.run("queue.PriorityQueue", "load", tasks=params.tasks_for(0.3), consumers=2,
                     seed=2, params=params)


def test_waits_are_one_row_per_priority_with_the_run_s_columns(below):
    frame = loadrows.waits_frame(below)
    assert list(frame["priority"].astype(str)) == LEVELS
    assert set(frame["seed"]) == {2} and set(frame["rho"]) == {below.extra["rho"]}
    for level, row in frame.set_index(frame["priority"].astype(str)).iterrows():
        assert row["tasks"] == below.levels[level]["tasks"]
        assert row["queue_wait_p99_ms"] == below.levels[level]["queue_wait_p99_ms"]


def test_the_spectrum_rises_with_the_percentile_and_names_a_bad_measure(below):
    spectrum = loadrows.wait_spectrum(below, percentiles=(50, 99, 100))
    for _, part in spectrum.groupby("priority", observed=True):
        assert np.all(np.diff(part.sort_values("percentile")["ms"]) >= 0)
    with pytest.raises(ValueError, match="measure 'latency' unknown; allowed: queue_wait"):
        loadrows.wait_spectrum(below, measure="latency")


def test_a_bounded_run_gives_long_rows_named_by_the_sweep_s_policy():
    policy = QueuePolicy(LevelPolicy(max_queue_size=4))
    params = LoadParams(1500, "poisson", ServiceTime("exp", 0.002), duration_s=0.3,
                        policy=policy)
    result = pqlab.run("ThreadSafeBucketQueue", "load", tasks=params.tasks_for(0.3),
                       consumers=2, seed=3, params=params)
    rows = loadrows.overload_frame(result, "limits")
    assert list(rows["priority"].astype(str)) == LEVELS and set(rows["policy"]) == {"limits"}
    assert set(rows["policy_label"]) == {result.extra["policy"]}
    assert rows["share_served"].between(0, 1).all()
    depth = loadrows.level_depth_frame(result)
    assert set(depth["priority"].astype(str)) <= set(LEVELS) and (depth["depth"] >= 0).all()
