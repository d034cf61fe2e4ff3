"""Idle burn: consumers waiting on an empty queue, in cores; the frame, the store, the lab."""

from __future__ import annotations

import queue
import threading
import time

import pandas as pd
import pytest

from pqlab.decide.decision import IDLE_LIMIT_CORES
from pqlab.harness import idleburn
from pqlab.harness.idleburn import IdleBurnError, idle_burn, idle_frame
from pqlab.queues import register_queue, unregister_queue
from pqlab.study import store


def test_a_non_blocking_get_spins_its_consumers():
    # ThreadSafeHeapQueue.get raises when empty and the scenario's consumer
    # retries after time.sleep(0): 0.89 of a core with 4 consumers on a quiet
    # 2-core machine, 0.33 beside three other jobs; a blocking queue stays < 0.001.
    # Twice the decision's limit (0.05) leaves room for a busier machine still.
    assert idle_burn("ThreadSafeHeapQueue", "threads", consumers=4) > 2 * IDLE_LIMIT_CORES


@pytest.mark.parametrize("queue_name, scenario", [("queue.PriorityQueue", "threads"),
                                                  ("ThreadSafeBucketQueue", "threads"),
                                                  ("asyncio.PriorityQueue", "async"),
                                                  ("BridgeBucketQueue", "mixed")])
def test_a_blocking_get_costs_nothing_while_idle(queue_name, scenario):
    assert 0 <= idle_burn(queue_name, scenario, consumers=4, seconds=0.5) < 0.05


def test_the_frame_has_one_row_per_pair_the_scenario_supports():
    frame = idle_frame(["heapq", "ThreadSafeBucketQueue", "asyncio.PriorityQueue"],
                       ["threads", "async"], consumers=2, seconds=0.2)
    assert list(frame.columns) == idleburn.COLUMNS
    assert list(zip(frame["queue"], frame["scenario"], strict=True)) == [
        ("ThreadSafeBucketQueue", "threads"), ("asyncio.PriorityQueue", "async")]
    assert (frame["consumers"] == 2).all() and (frame["seconds"] == 0.2).all()
    assert (frame["idle_cores"] >= 0).all()


@pytest.mark.parametrize("args, message", [
    (("heapq", "threads"), "needs a thread-safe queue"),
    (("ThreadSafeBucketQueue", "single"), "must be one of threads, async, mixed"),
    (("nope", "threads"), "unknown queue 'nope'"),
])
def test_bad_arguments_name_what_is_allowed(args, message):
    with pytest.raises(ValueError, match=message):
        idle_burn(*args, seconds=0.1)


def test_bad_counts_and_unknown_queues_in_a_frame_are_refused():
    with pytest.raises(ValueError, match="consumers must be a positive integer"):
        idle_burn("ThreadSafeBucketQueue", "threads", consumers=0)
    with pytest.raises(ValueError, match="unknown queue 'nope'"):
        idle_frame(["nope"], ["threads"])


class _LosingQueue:
    """Drops every put and is always empty: its consumers never see a stop sentinel."""

    def put(self, task) -> None:
        pass

    def get(self):
        raise queue.Empty


def test_consumers_that_never_stop_are_an_error_not_a_hang(monkeypatch):
    monkeypatch.setattr(idleburn, "JOIN_S", 0.3)
    register_queue("LosingQueue", _LosingQueue, thread_safe=True, async_safe=False)
    before = threading.active_count()
    try:
        with pytest.raises(IdleBurnError, match="4 consumers did not stop within 0.3 s"):
            idle_burn("LosingQueue", "threads", consumers=4, seconds=0.1)
    finally:
        unregister_queue("LosingQueue")
    deadline = time.monotonic() + 10  # the stop flag ends the spinning consumers
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() == before


def _rows(*rows):
    return pd.DataFrame([dict(zip(idleburn.COLUMNS, r, strict=True)) for r in rows])


def test_the_store_keeps_idle_rows_and_replaces_a_remeasured_one(tmp_path):
    run = store.Run.create(tmp_path, "r1", machine={"machine_id": "m"})
    assert run.idle().empty
    run.save_idle(_rows(("queue.PriorityQueue", "threads", 4, 1.0, 0.001),
                        ("ThreadSafeHeapQueue", "threads", 4, 1.0, 0.8)))
    run.save_idle(_rows(("ThreadSafeHeapQueue", "threads", 4, 1.0, 0.7),
                        ("asyncio.PriorityQueue", "async", 4, 1.0, 0.002)))
    idle = run.idle()
    assert sorted(zip(idle["queue"], idle["idle_cores"], strict=True)) == [
        ("ThreadSafeHeapQueue", 0.7), ("asyncio.PriorityQueue", 0.002),
        ("queue.PriorityQueue", 0.001)]
    assert not list(run.dir.glob(f"*{store.TMP_MARK}*"))
