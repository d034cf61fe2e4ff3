"""pqlab.scenarios.loadschedule: the schedule's start, its stall deadline, on-time producers."""

from __future__ import annotations

import queue
import threading
import time

from pqlab.scenarios._engine import PassState, Workers
from pqlab.scenarios.loadparams import LoadParams, ServiceTime, make_load_workload
from pqlab.scenarios.loadschedule import (
    LEAD_IN_NS,
    Schedule,
    produce_on_schedule,
    stall_deadline_s,
)

MS = 1_000_000


def test_the_schedule_starts_a_lead_in_after_start_and_logs_per_worker():
    sched = Schedule(consumers=3)
    assert sched.base_ns == 0 and sched.done_logs == [[], [], []]
    assert sched.done_logs[0] is not sched.done_logs[1]
    before = time.perf_counter_ns()
    sched.start()
    after = time.perf_counter_ns()
    assert before + LEAD_IN_NS <= sched.base_ns <= after + LEAD_IN_NS
    assert not sched.closed.is_set()


def test_the_stall_deadline_stretches_by_the_longest_gap_and_service():
    params = LoadParams(100, "constant", ServiceTime("const", 0.25))
    tasks = make_load_workload(10, 1, params)  # 10 ms apart, 250 ms each
    w = Workers(1, 2, deadline_s=3.0)
    assert stall_deadline_s(tasks, w) == 3.0 + 0.01 + 0.25
    slow = LoadParams(0.5, "constant", ServiceTime("const", 0.001))  # 2 s apart
    assert stall_deadline_s(make_load_workload(3, 1, slow), w) == 3.0 + 2.0 + 0.001


def test_producers_put_their_share_never_before_its_arrival():
    params = LoadParams(2000, "constant", ServiceTime("const", 0.001))  # 0.5 ms apart
    tasks = make_load_workload(40, 2, params)
    run = PassState(tasks, producers=2, consumers=1)
    q: queue.SimpleQueue = queue.SimpleQueue()
    sched = Schedule(consumers=1)
    barrier = threading.Barrier(3)
    threads = [threading.Thread(target=produce_on_schedule, args=(run, q, p, barrier, sched))
               for p in range(2)]
    for t in threads:
        t.start()
    sched.start()
    barrier.wait()
    for t in threads:
        t.join(10)
    assert not any(t.is_alive() for t in threads)
    for p in range(2):
        mine = tasks[p::2]
        assert len(run.put_logs[p]) == len(mine) == 20
        for task, (put_start, put_end) in zip(mine, run.put_logs[p], strict=True):
            assert put_start >= sched.base_ns + task.payload.arrival_ns  # never early
            assert put_end >= put_start
    assert len(run.spans) == 2
    put = []
    while not q.empty():
        put.append(q.get_nowait())
    assert sorted(t.seq for t in put) == sorted(t.seq for t in tasks)


def test_a_stopped_pass_puts_nothing_more():
    params = LoadParams(10, "constant", ServiceTime("const", 0.001))  # 100 ms apart
    tasks = make_load_workload(5, 3, params)
    run = PassState(tasks, producers=1, consumers=1)
    run.stop.set()
    q: queue.SimpleQueue = queue.SimpleQueue()
    sched = Schedule(consumers=1)
    sched.start()
    barrier = threading.Barrier(1)
    started = time.monotonic()
    produce_on_schedule(run, q, 0, barrier, sched)
    assert q.empty() and run.put_logs == [[]]
    assert time.monotonic() - started < 0.5 * 5 * 100 / 1e3 + 0.2  # left at its first arrival
