"""The ``processes`` driver of the open-loop ``load`` scenario: workers in spawned processes.

Requests reach the front-end process, so the producers stay threads in the
parent, exactly as in the threads driver (``loadschedule.produce_on_schedule``: each sleeps
until its task's intended arrival and stamps the put). The C workers are
spawned processes, started with ``pqlab.scenarios.processes``'s machinery (a fresh
interpreter each, a ready/go start signal, a startup deadline, a stall
deadline, killed on any error). Once every worker is waiting for the start
signal, the parent sets it, and only then does the schedule start
(``loadschedule.Schedule``, ``LEAD_IN_NS`` ahead), so start-up is never measured.

A worker narrows its timer slack, then takes tasks: stamps before and after
``get``, sleeps (``sleep_until``) for the task's service time, stamps the end
of service and logs ``(seq, t0, t1, done_ns)``; the one that takes the N-th
task puts a stop sentinel for each other worker. Stamps from the children
compare with the parent's directly (``time.perf_counter_ns`` is
CLOCK_MONOTONIC, one clock for the system; see ``pqlab.scenarios.processes``). The
parent builds the same ``Records`` and series as the threads driver.
"""

from __future__ import annotations

import functools
import gc
import threading
import time

from pqlab.core.task import STOP, Task
from pqlab.measure.timers import fine_timer_slack, sleep_until
from pqlab.queues import QueueSpec, sync_face
from pqlab.scenarios._engine import EMPTY_ERRORS, PassState, Workers, guard
from pqlab.scenarios.loadparams import SERVICE_S
from pqlab.scenarios.loadschedule import (
    IDLE_POLL_S,
    Schedule,
    produce_on_schedule,
    stall_deadline_s,
)
from pqlab.scenarios.processes import ProcessPool, SharedCounters, WorkerProcess

pc = time.perf_counter_ns
JOIN_S = 1.0  # producers are done when the workers are, unless the run failed; then asleep


def _serve(face, shared: SharedCounters, slot: int, n: int, sentinels: list[Task]) -> list:
    """One worker process's loop; returns ``(seq, t0, t1, done_ns)`` per task served.

    The cyclic GC stays off, as in the parent (``load (its timed hook)``): the loop
    makes no reference cycles, and a collection would delay every task in
    service at once.
    """
    get, progress, stop = face.get, shared.progress, shared.stop
    finish_if_last = shared.finish_if_last
    log: list[tuple[int, int, int, int]] = []
    append, served = log.append, 0
    gc.disable()
    with fine_timer_slack():
        while True:
            t0 = pc()
            try:
                task = get()
            except EMPTY_ERRORS:
                if stop.is_set():
                    break
                time.sleep(IDLE_POLL_S)
                continue
            t1 = pc()
            if task.payload is STOP:
                break
            sleep_until(t1 + round(task.payload[SERVICE_S] * 1e9))
            append((task.seq, t0, t1, pc()))
            served += 1
            progress[slot] = served
            if finish_if_last(face, n, sentinels):
                break
    return log


class LoadPool(ProcessPool):
    """Worker processes, plus the producer threads in this process, started after them."""

    def __init__(self, spec: QueueSpec, tasks: list[Task], w: Workers) -> None:
        run = PassState(tasks, w.producers, w.consumers)
        shared = SharedCounters(w.consumers)
        queue = spec.factory()
        self.face = sync_face(spec, queue)
        self.sched = Schedule(w.consumers)
        args = (len(tasks), run.sentinels[: w.consumers - 1])
        workers = [WorkerProcess("worker", c, _serve, self.face, args, shared, c)
                   for c in range(w.consumers)]
        super().__init__(run, shared, workers, stall_deadline_s(tasks, w), queue)
        self.threads: list[threading.Thread] = []

    def begin(self) -> None:
        """Start the producers; the last at the barrier starts the schedule (``LEAD_IN_NS``)."""
        run = self.run
        barrier = threading.Barrier(run.producers, action=self.sched.start)
        self.threads = [threading.Thread(target=guard(run, functools.partial(
            produce_on_schedule, run, self.face, p, barrier, self.sched)), daemon=True)
            for p in range(run.producers)]
        for thread in self.threads:
            thread.start()

    def progress(self) -> int:
        return super().progress() + self.run.progress()

    def accept(self, worker: WorkerProcess, log: list, span: tuple[int, int]) -> None:
        self.run.get_logs[worker.index] = [(seq, t0, t1) for seq, t0, t1, _ in log]
        self.sched.done_logs[worker.index] = [done for *_, done in log]
        self.run.spans.append(span)

    def end(self) -> None:
        self.run.stop.set()  # a producer still asleep (the run failed) puts nothing more
        for thread in self.threads:
            thread.join(JOIN_S)


def processes_pass(spec: QueueSpec, tasks: list[Task], w: Workers) -> tuple[PassState, Schedule]:
    """One open-loop pass with C worker processes and P producer threads here."""
    pool = LoadPool(spec, tasks, w)
    return pool.execute(), pool.sched
