"""pqlab.decide.decision: the rule reads only measured frames, is deterministic; ties are ties."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pqlab.decide import decision
from pqlab.harness import features

QUEUES = {  # queue -> (median throughput in async, bytes per task)
    "asyncio.PriorityQueue": (170_000, 8.5),
    "AsyncBucketQueue": (260_000, 8.3),
    "BridgeBucketQueue": (400_000, 8.3),
    "janus.PriorityQueue": (160_000, 99.8),
}
FEATURES = pd.DataFrame([
    {"queue": "asyncio.PriorityQueue", "get_timeout": None, "shutdown": False,
     "cancel_safe_get": True, "sync_and_async": False, "bounded": True},
    {"queue": "AsyncBucketQueue", "get_timeout": None, "shutdown": True,
     "cancel_safe_get": True, "sync_and_async": False, "bounded": True},
    {"queue": "BridgeBucketQueue", "get_timeout": True, "shutdown": True,
     "cancel_safe_get": True, "sync_and_async": True, "bounded": True},
    {"queue": "janus.PriorityQueue", "get_timeout": True, "shutdown": True,
     "cancel_safe_get": True, "sync_and_async": True, "bounded": True},
])


def summary(seed=0, reps=5, noise=0.03, speeds=None, cells=((10_000, 1), (10_000, 4))):
    """An ``async`` summary: every queue, cell and repetition, with multiplicative noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for queue, (ops, nbytes) in (speeds or QUEUES).items():
        for tasks, workers in cells:
            for rep in range(reps):
                rate = ops * (1 + noise * rng.standard_normal())
                rows.append({"queue": queue, "scenario": "async", "tasks": tasks,
                             "producers": workers, "consumers": workers, "repetition": rep,
                             "throughput_ops_s": rate, "enqueue_mean_us": 1.0,
                             "dequeue_mean_us": 2.0, "enqueue_p99_us": 3.0,
                             "bytes_per_task": nbytes, "cpu_us_per_task": 2e6 / rate,
                             "violations": 0, "lost": 0, "duplicated": 0, "errors": 0})
    return pd.DataFrame(rows)


IDLE = pd.DataFrame({"queue": list(QUEUES), "scenario": "async", "consumers": 4,
                     "seconds": 1.0, "idle_cores": 0.002})


def the(decisions, scenario="async"):
    return next(d for d in decisions if d.context.scenario == scenario)


def test_features_decide_then_memory_then_registry_order():
    d = the(decision.decide(summary(), idle=IDLE, features=FEATURES))
    # BridgeBucketQueue is fastest, but AsyncBucketQueue has the same three needed
    # features, the same memory, and comes first in the registry.
    assert d.choice == "AsyncBucketQueue"
    assert set(d.tie_group) == {"AsyncBucketQueue", "BridgeBucketQueue"}
    table = d.table.set_index("queue")
    assert table.loc["janus.PriorityQueue", "tier"] == 2  # 12x the memory
    assert table.loc["asyncio.PriorityQueue", "features"] == 2  # no shutdown on 3.11


def test_a_queue_that_burns_a_core_while_waiting_is_set_aside():
    idle = IDLE.copy()
    idle.loc[idle["queue"] == "AsyncBucketQueue", "idle_cores"] = 0.89
    d = the(decision.decide(summary(), idle=idle, features=FEATURES))
    assert d.choice == "BridgeBucketQueue"
    reason = d.table.set_index("queue").loc["AsyncBucketQueue", "set_aside"]
    assert "burn 0.89 of a core" in reason


def test_an_incorrect_queue_is_set_aside_whatever_its_speed():
    df = summary()
    df.loc[df["queue"] == "AsyncBucketQueue", "lost"] = 1
    d = the(decision.decide(df, idle=IDLE, features=FEATURES))
    assert d.choice == "BridgeBucketQueue"
    assert d.table.set_index("queue").loc["AsyncBucketQueue", "set_aside"].startswith(
        "incorrect")


def test_the_worst_cell_gates_speed():
    """A queue fast at the reference cell but too slow in another cell is set aside."""
    df = summary()
    slow = (df["queue"] == "AsyncBucketQueue") & (df["producers"] == 1)
    df.loc[slow, "throughput_ops_s"] = 10.0  # 200 ms per task at that cell
    df.loc[slow, "cpu_us_per_task"] = 1_000.0
    d = the(decision.decide(df, idle=IDLE, features=FEATURES))
    row = d.table.set_index("queue").loc["AsyncBucketQueue"]
    assert row["worst_throughput"] == pytest.approx(10.0)
    assert "would spend 100% of a core" in row["set_aside"]
    assert d.choice == "BridgeBucketQueue"


def test_ties_are_groups_the_test_cannot_separate():
    speeds = {"AsyncBucketQueue": (260_000, 8.3), "BridgeBucketQueue": (265_000, 8.3),
              "janus.PriorityQueue": (100_000, 99.8)}
    table = decision.speed_table(summary(speeds=speeds), "async")
    ref = table[table["workers"] == 4].set_index("queue")
    assert ref.loc["AsyncBucketQueue", "speed_group"] == ref.loc["BridgeBucketQueue",
                                                                 "speed_group"] == 1
    assert ref.loc["janus.PriorityQueue", "speed_group"] == 2
    # with two repetitions nothing can be separated
    two = decision.speed_table(summary(speeds=speeds, reps=2), "async")
    assert set(two["speed_group"]) == {1}


def test_the_decision_does_not_move_with_noise():
    decisions = [the(decision.decide(summary(seed=s, noise=0.15), idle=IDLE,
                                     features=FEATURES)) for s in range(8)]
    assert {d.choice for d in decisions} == {"AsyncBucketQueue"}


def test_statements_carry_no_measured_numbers():
    claims = decision.statements(decision.decide(summary(), idle=IDLE, features=FEATURES))
    assert claims["async API server: decision"] == "AsyncBucketQueue"
    assert not any(ch.isdigit() for k, v in claims.items() for ch in v if "group" not in k)


def test_costs_at_the_service_rates():
    cpu, added = decision.costs_at(1_000, 20.0, 200_000)
    assert cpu == pytest.approx(0.02) and added == pytest.approx(10.0)


def test_unknown_context_names_the_known_ones():
    with pytest.raises(KeyError, match="thread workers"):
        decision.context("gpu workers")


def test_features_are_probed_not_typed_in():
    probed = features.probe("queue.PriorityQueue")
    assert probed.get_timeout and probed.bounded and probed.cancel_safe_get is None
    assert not features.probe("heapq").bounded
    assert features.probe("ThreadSafeBucketQueue").shutdown
