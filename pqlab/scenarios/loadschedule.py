"""The load scenario's clock: when the schedule starts, and producers that keep to it."""

from __future__ import annotations

import threading
import time

import numpy as np

from pqlab.core.task import Task
from pqlab.measure.timers import sleep_until
from pqlab.scenarios._engine import PassState, Workers

pc = time.perf_counter_ns
LEAD_IN_NS = 50_000_000  # first arrival 50 ms after the workers start: all are waiting by then
# A worker on a non-blocking queue (get raises Empty) polls at this period: it
# adds up to the period plus sleep's overshoot (~0.3 ms in all) to the
# wait of a task that finds a worker idle; blocking queues wake it at once.
IDLE_POLL_S = 0.000_25


class Schedule:
    """When the schedule starts (``base_ns``) and each worker's service-end stamps."""

    def __init__(self, consumers: int) -> None:
        self.base_ns = 0
        self.done_logs: list[list[int]] = [[] for _ in range(consumers)]
        self.closed = threading.Event()  # set when an asyncio run is over: feeders stop

    def start(self) -> None:
        self.base_ns = pc() + LEAD_IN_NS


def stall_deadline_s(tasks: list[Task], w: Workers) -> float:
    """The stall deadline, stretched by the longest planned gap and service time."""
    offsets = [t.payload.arrival_ns for t in tasks]
    gaps = np.diff(offsets, prepend=0).max(initial=0) / 1e9
    return w.deadline_s + gaps + max(t.payload.service_s for t in tasks)


def produce_on_schedule(run: PassState, face, p: int, barrier: threading.Barrier,
                        sched: Schedule) -> None:
    """Producer thread ``p``: put each of its tasks at its intended arrival (never early).

    Shared by the threads and the processes drivers (the processes driver's
    producers are threads of the parent), so both offer the same arrivals.
    """
    put, append, stop = face.put, run.put_logs[p].append, run.stop
    barrier.wait()
    base, start = sched.base_ns, pc()
    for task in run.tasks[p :: run.producers]:
        sleep_until(base + task.payload.arrival_ns)  # never early, ~1 µs late
        if stop.is_set():
            break
        t0 = pc()
        put(task)
        append((t0, pc()))
    run.spans.append((start, pc()))


