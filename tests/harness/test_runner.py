import gc
import math
import weakref

import pytest

import pqlab
from pqlab.harness.runner import frozen_heap, resolve, supported_pairs

SUMMARY_FIELDS = {
    "queue", "scenario", "tasks", "producers", "consumers", "seed", "repetition",
    "throughput_ops_s", "wall_s", "violations", "lost", "duplicated", "errors",
    "error_messages", "overlap", "bytes_per_task", "rss_bytes", "timer_overhead_ns",
    *(f"{op}_{stat}_us" for op in ("enqueue", "dequeue")
      for stat in ("mean", "p50", "p90", "p99", "p99_9", "max")),
    *(f"wait_{q}_us_{p.name}" for q in ("p50", "p99") for p in pqlab.Priority),
}


@pytest.mark.parametrize("queue, scenario", supported_pairs(
    ["heapq", "queue.PriorityQueue", "asyncio.PriorityQueue", "ThreadSafeHeapQueue"],
    ["single", "threads", "async", "ordering"]))
def test_every_poc_pair_runs_correctly(queue, scenario):
    r = pqlab.run(queue, scenario, tasks=1000, seed=3)
    assert r.ok, r.error_messages
    row = r.to_dict()
    assert SUMMARY_FIELDS <= set(row)
    assert r.throughput_ops_s > 0 and r.enqueue_us["p99"] > 0 and r.dequeue_us["max"] > 0
    assert r.bytes_per_task > 0 and r.timer_overhead_ns > 0 and r.seed == 3
    if scenario in ("threads", "async"):
        assert r.overlap > 0


def test_poc_pairs_are_the_applicable_ones():
    pairs = supported_pairs(["heapq", "queue.PriorityQueue", "asyncio.PriorityQueue",
                             "ThreadSafeHeapQueue"], ["single", "threads", "async", "ordering"])
    assert ("heapq", "threads") not in pairs and ("asyncio.PriorityQueue", "threads") not in pairs
    assert ("queue.PriorityQueue", "async") not in pairs
    assert len(pairs) == 11


def test_seed_is_chosen_and_reported_when_not_given():
    r = pqlab.run("heapq", tasks=100, memory=False)
    assert isinstance(r.seed, int)
    assert math.isnan(r.bytes_per_task)


def test_worker_counts_are_ignored_where_a_scenario_has_none():
    r = pqlab.run("heapq", "single", tasks=100, producers=7, consumers=9, memory=False)
    assert (r.producers, r.consumers) == (1, 1)


@pytest.mark.parametrize("kwargs, message", [
    ({"queue": "nope"}, "unknown queue 'nope'; allowed: heapq"),
    ({"queue": "heapq", "scenario": "nope"}, "unknown scenario 'nope'; allowed: single"),
    ({"queue": "heapq", "scenario": "threads"}, "needs a thread-safe queue.*queues that can"),
    ({"queue": "heapq", "tasks": 0}, "tasks must be a positive integer, got 0"),
    ({"queue": "queue.PriorityQueue", "scenario": "threads", "producers": -1},
     "producers must be a positive integer"),
])
def test_bad_arguments_name_the_problem(kwargs, message):
    with pytest.raises(ValueError, match=message):
        pqlab.run(**kwargs)


def test_resolve_returns_specs():
    spec, scenario = resolve("heapq", "single")
    assert spec.name == "heapq" and scenario.name == "single"


def test_public_api():
    for name in ("Priority", "Task", "QUEUES", "register_queue", "run", "RunResult"):
        assert hasattr(pqlab, name)


@pytest.mark.parametrize("queue, scenario", [("heapq", "single"),
                                             ("queue.PriorityQueue", "threads"),
                                             ("asyncio.PriorityQueue", "async"),
                                             ("BridgeBucketQueue", "mixed")])
def test_cpu_cost_of_the_untimed_pass_is_in_the_summary_row(queue, scenario):
    row = pqlab.run(queue, scenario, tasks=2_000, seed=1, memory=False).to_dict()
    # A pass that ran used CPU; a pass whose CPU was read on another clock or
    # not at all (0, NaN) fails here, and so does CPU beyond what 2 cores x the
    # pass's wall time could hold plus the readings' slack.
    assert row["cpu_us_per_task"] > 0
    assert 0 < row["cpu_cores"] < 8
    wall_us = row["wall_s"] * 1e6
    assert row["cpu_us_per_task"] * 2_000 == pytest.approx(row["cpu_cores"] * wall_us, rel=1e-9)


def test_cpu_cost_of_a_process_pass_counts_the_workers():
    r = pqlab.run("multiprocessing", "processes", tasks=300, producers=1, consumers=1, seed=1,
                  memory=False)
    assert r.ok, r.error_messages
    # The parent only polls; the work (pickling, sockets) is the workers' and the
    # manager's: well over a tenth of a core while the pass runs.
    assert r.cpu_cores > 0.1 and r.cpu_us_per_task > 0


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_frozen_heap_nests_and_only_the_outermost_block_unfreezes():
    gc.unfreeze()  # this test starts from a heap nobody froze (the suite freezes its own)
    try:
        alive = _Cycle()
        with frozen_heap():
            assert gc.get_freeze_count() > 0
            garbage = _Cycle()  # made after the outer freeze: still the collector's
            ref = weakref.ref(garbage)
            del garbage
            with frozen_heap():  # a unit's block collects what was made since, then freezes
                assert ref() is None
            # The inner block's end keeps the freeze (a frozen object freed by its
            # reference count leaves it, so the count may shrink, never reach 0).
            assert gc.get_freeze_count() > 0
        assert gc.get_freeze_count() == 0
        assert alive.me is alive
    finally:
        gc.collect()
        gc.freeze()


def test_frozen_heap_leaves_an_earlier_freeze_in_place():
    gc.collect()
    gc.freeze()  # as a zygote's child or the test session found it
    with frozen_heap():
        pass
    assert gc.get_freeze_count() > 0
