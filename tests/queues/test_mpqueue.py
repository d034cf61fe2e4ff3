"""The multiprocessing queue: a PriorityQueue in a manager process, for threads and processes."""

from __future__ import annotations

import math
import pickle
import queue

import pqlab
from pqlab.core.task import STOP, Task, make_workload
from pqlab.queues import QUEUES
from pqlab.queues.mpqueue import make_queue


def test_serves_by_priority_then_fifo():
    q = make_queue()
    tasks = make_workload(100, seed=5)
    for t in tasks:
        q.put(t)
    assert [q.get().key for _ in range(100)] == sorted(t.key for t in tasks)
    assert q.empty()


def test_get_nowait_raises_empty():
    q = make_queue()
    try:
        q.get_nowait()
    except queue.Empty:
        pass
    else:
        raise AssertionError("an empty queue returned something")


def test_capabilities():
    spec = QUEUES["multiprocessing"]
    assert spec.process_safe and spec.thread_safe and not spec.async_safe


def test_stop_sentinel_survives_the_manager():
    q = make_queue()
    q.put(Task(4, 1, 0.0, "stop", "", STOP))
    assert q.get().payload is STOP
    assert pickle.loads(pickle.dumps(STOP)) is STOP


def test_threads_scenario_is_correct():
    r = pqlab.run("multiprocessing", "threads", tasks=300, producers=2, consumers=3, seed=2,
                  memory=False)
    assert r.ok, r.error_messages


def test_memory_is_nan_and_labelled():
    r = pqlab.run("multiprocessing", "single", tasks=50, seed=1)
    assert r.ok
    assert math.isnan(r.bytes_per_task)
    assert "not measured" in r.extra["bytes_per_task_source"]
