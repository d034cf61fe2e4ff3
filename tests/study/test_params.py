"""pqlab.study.params: every bad notebook parameter is one message naming it."""

from __future__ import annotations

import queue

import pytest

from pqlab import QUEUES, register_queue, unregister_queue
from pqlab.study import params
from pqlab.study.params import CHECKS, ParameterError, check, in_process_queues, validate


@pytest.mark.parametrize("name, value", [
    ("TASK_COUNTS", [-5]), ("TASK_COUNTS", []), ("TASK_COUNTS", [1.5]), ("TASK_COUNTS", "10"),
    ("WORKER_COUNTS", [0]), ("REPETITIONS", 0), ("REPETITIONS", True), ("SEED", -1),
    ("FRESH_PROCESS", "yes"), ("QUEUES", ["nope"]), ("QUEUES", []), ("SCENARIOS", ["nope"]),
    ("RUN_ID", "a/b"), ("RUN_IDS", "r1"), ("BASELINE_QUEUE", "nope"), ("OUTPUT_DIR", 3),
])
def test_a_bad_value_names_its_parameter(name, value):
    with pytest.raises(ParameterError, match=name):
        check(name, value)


def test_unknown_parameter_is_refused():
    with pytest.raises(ParameterError, match="unknown parameter TASKS"):
        validate(TASKS=[1])


def test_all_means_the_in_process_queues_that_fit():
    p = validate(QUEUES="all", TASK_COUNTS=[10], for_scenarios=["threads"])
    assert p.QUEUES == [q for q in in_process_queues() if QUEUES[q].thread_safe]
    assert p.TASK_COUNTS == [10]


def test_an_explicit_queue_that_cannot_run_the_scenario_is_named():
    with pytest.raises(ParameterError, match="QUEUES: 'heapq' cannot run scenario threads"):
        validate(QUEUES=["heapq"], for_scenarios=["threads"])


def test_process_backed_queues_only_when_named():
    register_queue("test.params.remote", queue.PriorityQueue, thread_safe=True,
                   async_safe=False, process_safe=True)
    try:
        assert "test.params.remote" not in check("QUEUES", "all")
        assert check("QUEUES", ["test.params.remote"]) == ["test.params.remote"]
    finally:
        unregister_queue("test.params.remote")


def test_counts_are_sorted_and_deduplicated():
    assert check("WORKER_COUNTS", [4, 1, 4]) == [1, 4]
    assert set(CHECKS) >= {"RUN_ID", "OUTPUT_DIR", "QUEUES", "TASK_COUNTS", "REPETITIONS"}


def test_the_failover_parameters_are_checked():
    assert params.check("FAILOVER_RUNS", 0) == 0
    assert params.check("FAILOVER_MIN_REPLICAS", [1, 0]) == [0, 1]
    for name, bad in (("FAILOVER_RUNS", -1), ("FAILOVER_PAUSED", 1),
                      ("FAILOVER_MIN_REPLICAS", [3]), ("FAILOVER_MIN_REPLICAS", [])):
        with pytest.raises(params.ParameterError, match=name):
            params.check(name, bad)
