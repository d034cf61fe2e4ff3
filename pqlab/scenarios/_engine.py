"""The scenario engine: what every driver of a queue shares.

A *pass* puts one workload through one queue. Its state (``PassState``) holds
the per-worker logs of stamps, the taken counter, the stop flag and the
errors; ``PassState.records`` turns it into ``Records``. The worker loops
(``produce``/``consume`` on threads, ``aproduce``/``aconsume`` on an event
loop) stamp each operation with ``time.perf_counter_ns`` when ``timed``;
untimed passes run the same loops without stamps, because a pair of stamps
costs about 70 ns here, a large share of a heap operation. ``guard`` wraps a
thread body so what it raises is reported, and one stall rule (``Watchdog``)
ends any pass with no progress for ``deadline_s``: ``watch_threads`` and
``watch_tasks`` apply it to threads and coroutines, and the mixed and
process drivers call it in their own wait loops.

Consumers stop when exactly N tasks were taken: the consumer that takes the
N-th task puts one stop sentinel (``core.task.stop_sentinels``) for each
other consumer (``finish``), so a correct queue serves them after every
real task. A ``Scenario`` declares what it needs (which queues, its passes,
its workload, its parameter type) and ``register_scenario`` adds it to
``SCENARIOS``. Nothing here computes statistics (``pqlab.measure`` does).

This module is private to ``pqlab.scenarios``: its names are public for the
scenario modules beside it, which are its only importers.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from pqlab.core.task import STOP, Task, make_workload, stop_sentinels
from pqlab.measure.quiet import thread_ended
from pqlab.measure.records import Records, UntimedPass
from pqlab.queues import QueueSpec

pc = time.perf_counter_ns
cpu = time.process_time_ns  # this process, every thread: user + system
EMPTY_ERRORS = (queue.Empty, IndexError)


WATCH_POLL_S = 0.05  # watchdog poll period: 20 wake-ups a second cost nothing measurable
DEFAULT_DEADLINE_S = 10.0  # no progress for this long ends a run with an error


@dataclass(frozen=True)
class Workers:
    """How many producers and consumers, how long a pass may stall, and the
    scenario's parameters (an instance of its ``Scenario.params_type``, else None)."""

    producers: int = 5
    consumers: int = 5
    deadline_s: float = DEFAULT_DEADLINE_S
    producer_yield: bool = True  # producers yield after each put (see produce)
    params: Any = None


class PassState:
    """Shared state of one pass: logs, the taken counter, the stop flag, errors.

    Producer ``p`` puts ``tasks[p::producers]`` and appends ``(put_start,
    put_end)`` to ``put_logs[p]``; consumer ``c`` appends ``(seq, get_start,
    get_end)`` to ``get_logs[c]``. Lists are appended by one thread each, so
    no lock is needed; ``taken`` (``itertools.count``) is atomic under the GIL.
    """

    def __init__(self, tasks: list[Task], producers: int, consumers: int,
                 producer_yield: bool = True) -> None:
        self.tasks = tasks
        self.n = len(tasks)
        self.producers = producers
        self.consumers = consumers
        self.put_logs: list[list] = [[] for _ in range(producers)]
        self.get_logs: list[list] = [[] for _ in range(consumers)]
        # Per worker (wall start, wall end, CPU start, CPU end), CPU from ``cpu()``
        # read beside the wall clock just outside the measured loop; load's
        # workers record the wall clock alone.
        self.spans: list[tuple[int, ...]] = []
        self.taken = itertools.count(1)
        self.stop = threading.Event()
        self.errors: list[str] = []
        self.sentinels = stop_sentinels(consumers)
        self.producer_yield = producer_yield

    def progress(self) -> int:
        """Operations done so far (puts and gets): what the stall rule watches."""
        return sum(map(len, self.put_logs)) + sum(map(len, self.get_logs))

    def gets(self) -> int:
        """Gets recorded so far."""
        return sum(map(len, self.get_logs))

    def stall_error(self, deadline_s: float) -> str:
        """The error a stalled pass ends with (``stall_error``)."""
        return stall_error(deadline_s, self.gets(), self.n)

    def wall_ns(self) -> int:
        """From the earliest worker start to the latest worker end (0 without spans)."""
        if not self.spans:
            return 0
        return max(s[1] for s in self.spans) - min(s[0] for s in self.spans)

    def cpu_ns(self) -> float:
        """This process's CPU time from the earliest span start to the latest span end.

        ``process_time`` counts every thread of the process, so the two readings
        bound the CPU of all workers (and of the watchdog beside them). NaN
        without spans, or when a span carries no CPU readings.
        """
        if not self.spans or any(len(s) < 4 for s in self.spans):
            return math.nan
        first = min(self.spans, key=lambda s: s[0])
        last = max(self.spans, key=lambda s: s[1])
        return float(last[3] - first[2])

    def records(self, concurrent: bool, label: str, cpu_elsewhere: bool = False) -> Records:
        """The pass's stamps as ``Records`` (get events of unknown tasks get position -1);
        ``cpu_elsewhere``: the work ran in worker processes (``Records.cpu_elsewhere``)."""
        tasks, n = self.tasks, self.n
        position = {t.seq: i for i, t in enumerate(tasks)}
        put_start = np.zeros(n, np.int64)
        put_end = np.zeros(n, np.int64)
        producer = np.full(n, -1, np.int16)
        for p, log in enumerate(self.put_logs):
            idx = np.arange(p, n, self.producers)[: len(log)]
            if len(log):
                stamps = np.asarray(log, np.int64)
                put_start[idx], put_end[idx], producer[idx] = stamps[:, 0], stamps[:, 1], p
        events = [(position.get(s, -1), t0, t1, c)
                  for c, log in enumerate(self.get_logs) for s, t0, t1 in log]
        ev = np.asarray(events, np.int64).reshape(-1, 4)
        return Records(
            priority=np.fromiter((t.priority for t in tasks), np.int16, n),
            seq=np.fromiter((t.seq for t in tasks), np.int64, n),
            put_start=put_start, put_end=put_end, producer=producer,
            get_task=ev[:, 0], get_start=ev[:, 1], get_end=ev[:, 2],
            consumer=ev[:, 3].astype(np.int16), concurrent=concurrent,
            wall_ns=self.wall_ns(), errors=list(self.errors), label=label,
            cpu_elsewhere=cpu_elsewhere,
        )


def stall_error(deadline_s: float, taken: int, n: int) -> str:
    """The one message of a pass that made no progress for ``deadline_s``."""
    return (f"no progress for {deadline_s:g} s: {taken} of {n} tasks taken "
            "(a queue that loses tasks or never wakes a blocked get)")


class Watchdog:
    """The stall rule every driver applies: no progress for ``deadline_s`` ends a pass.

    ``stalled()`` reads ``progress()`` (a count that grows while the pass
    advances) and says whether it has not changed for longer than
    ``deadline_s``. Drivers call it between waits of ``WATCH_POLL_S``.
    """

    def __init__(self, progress: Callable[[], int], deadline_s: float) -> None:
        self.progress, self.deadline_s = progress, deadline_s
        self.last, self.last_change = -1, time.monotonic()

    def stalled(self) -> bool:
        """True once ``progress()`` has stood still for more than ``deadline_s``."""
        done, now = self.progress(), time.monotonic()
        if done != self.last:
            self.last, self.last_change = done, now
            return False
        return now - self.last_change > self.deadline_s


# -- sync workers ----------------------------------------------------------------


def guard(run: PassState, body: Callable[[], None]) -> Callable[[], None]:
    """A thread target: run ``body``, record what it raises, then note the thread's
    scheduling times for the quiet-machine check (``pqlab.measure.quiet``)."""

    def worker() -> None:
        try:
            body()
        except BaseException as exc:  # noqa: BLE001 - reported in the result
            run.errors.append(f"{type(exc).__name__}: {exc}")
            run.stop.set()
        finally:
            thread_ended()

    return worker


def finish(run: PassState, put: Callable) -> None:
    """After the N-th get: wake every other consumer with a stop sentinel (``put`` may block)."""
    for sentinel in run.sentinels[: run.consumers - 1]:
        put(sentinel)


def produce(run: PassState, face, p: int, barrier: threading.Barrier, timed: bool) -> None:
    """Producer thread ``p``: after ``barrier``, put its share of the tasks (stamped if ``timed``).

    The timed and untimed loops are written out twice on purpose: a branch per
    put would be measured with the put.
    """
    mine = run.tasks[p :: run.producers]
    put, log = face.put, run.put_logs[p]
    append = log.append
    barrier.wait()
    start, cpu0 = pc(), cpu()
    # A request handler does other work between enqueues; yielding the CPU after
    # each put (os.sched_yield releases the GIL) lets consumers run meanwhile.
    # Without it a producer can put all its tasks within one 5 ms switch
    # interval and nothing overlaps. sched_yield, not sleep(0): sleep(0) costs
    # ~72 µs here (clock_nanosleep plus 50 µs timer slack), sched_yield ~2.4 µs.
    yield_, yielding = os.sched_yield, run.producer_yield
    if timed:
        for task in mine:
            t0 = pc()
            put(task)
            t1 = pc()
            append((t0, t1))
            if yielding:
                yield_()
    else:
        for task in mine:
            put(task)
            if yielding:
                yield_()
    run.spans.append((start, pc(), cpu0, cpu()))


def consume(run: PassState, face, c: int, barrier: threading.Barrier, timed: bool) -> None:
    """Consumer thread ``c``: get until a stop sentinel, ``run.stop``, or the N-th task.

    A get that raises ``Empty``/``IndexError`` (a non-blocking queue) is retried
    after ``sleep(0)``: such a queue's consumers spin, which idle burn measures.
    """
    get, append, taken, n, stop = face.get, run.get_logs[c].append, run.taken, run.n, run.stop
    barrier.wait()
    start, cpu0 = pc(), cpu()
    while True:
        t0 = pc() if timed else 0
        try:
            task = get()
        except EMPTY_ERRORS:
            if stop.is_set():
                break
            time.sleep(0)
            continue
        t1 = pc() if timed else 0
        if task.payload is STOP:
            break
        append((task.seq, t0, t1))
        if next(taken) == n:
            finish(run, face.put)
            break
    run.spans.append((start, pc(), cpu0, cpu()))


def watch_threads(run: PassState, threads: list[threading.Thread], face,
                  deadline_s: float) -> None:
    """Start ``threads`` and wait for them; on an error or a stall, stop the pass.

    Stopping sets ``run.stop`` and puts a sentinel for every consumer (one more
    than ``finish``), so consumers blocked in ``get`` return; threads get 1 s each
    to end. Returns when every thread ended or the pass was stopped.
    """
    for t in threads:
        t.start()
    dog = Watchdog(run.progress, deadline_s)
    while True:
        alive = [t for t in threads if t.is_alive()]
        if not alive:
            return
        alive[0].join(WATCH_POLL_S)
        if run.errors or dog.stalled():
            break
    if not run.errors:
        run.errors.append(run.stall_error(deadline_s))
    run.stop.set()
    try:
        finish(run, face.put)
        face.put(run.sentinels[-1])
    except Exception:  # noqa: BLE001 - the queue is already broken; errors hold why
        pass
    for t in threads:
        t.join(1.0)


# -- async workers ---------------------------------------------------------------


async def aproduce(run: PassState, q, p: int, barrier: asyncio.Barrier, timed: bool) -> None:
    """Producer coroutine ``p``: ``produce`` on an event loop, yielding after each put."""
    mine = run.tasks[p :: run.producers]
    put, append, yield_ = q.put, run.put_logs[p].append, asyncio.sleep
    yielding = run.producer_yield
    await barrier.wait()
    start, cpu0 = pc(), cpu()
    for task in mine:
        t0 = pc() if timed else 0
        await put(task)
        if timed:
            append((t0, pc()))
        # A request handler returns to the loop after enqueueing; without this an
        # unbounded put never suspends and nothing runs concurrently.
        if yielding:
            await yield_(0)
    run.spans.append((start, pc(), cpu0, cpu()))


async def aconsume(run: PassState, q, c: int, barrier: asyncio.Barrier, timed: bool) -> None:
    """Consumer coroutine ``c``: await gets until a stop sentinel or the N-th task."""
    get, append, taken, n = q.get, run.get_logs[c].append, run.taken, run.n
    await barrier.wait()
    start, cpu0 = pc(), cpu()
    while True:
        t0 = pc() if timed else 0
        task = await get()
        t1 = pc() if timed else 0
        if task.payload is STOP:
            break
        append((task.seq, t0, t1))
        if next(taken) == n:
            for sentinel in run.sentinels[: run.consumers - 1]:
                await q.put(sentinel)
            break
    run.spans.append((start, pc(), cpu0, cpu()))


async def watch_tasks(run: PassState, coros: list, deadline_s: float) -> None:
    """Run ``coros`` as tasks and wait; on an exception or a stall, cancel the rest."""
    workers = [asyncio.ensure_future(c) for c in coros]
    dog = Watchdog(run.progress, deadline_s)
    pending = set(workers)
    while pending:
        done, pending = await asyncio.wait(pending, timeout=WATCH_POLL_S,
                                           return_when=asyncio.FIRST_EXCEPTION)
        for w in done:
            if not w.cancelled() and w.exception() is not None:
                exc = w.exception()
                run.errors.append(f"{type(exc).__name__}: {exc}")
        if run.errors or dog.stalled():
            break
    if pending:
        if not run.errors:
            run.errors.append(run.stall_error(deadline_s))
        for w in pending:
            w.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


# -- scenarios -------------------------------------------------------------------


PassFn = Callable[[QueueSpec, list[Task], Workers, bool], PassState]


@dataclass(frozen=True)
class Scenario:
    """A way to drive a queue, declared through hooks the runner calls without special cases.

    ``supports(spec)`` says which queues fit (``requirement`` says it in words);
    ``timed(spec, tasks, workers)`` returns the ``Records`` of its timed passes,
    ``untimed(...)`` the pass throughput comes from; ``workload(n, seed)`` (or
    ``workload(n, seed, params)`` when ``params_type`` is set) builds the tasks.
    ``params_type`` is the class of the scenario's parameters (``LoadParams``
    for ``load``), ``None`` when it takes none; the runner passes an instance
    (its default when the caller gives none) in ``Workers.params``.
    """

    name: str
    description: str
    requirement: str
    supports: Callable[[QueueSpec], bool]
    timed: Callable[[QueueSpec, list[Task], Workers], list[Records]]
    untimed: Callable[[QueueSpec, list[Task], Workers], UntimedPass]
    workload: Callable[[int, int | None], list[Task]] = make_workload
    uses_workers: bool = True
    in_poc: bool = True  # part of the POC report (long or server-bound scenarios opt out)
    # Open loop (``load``): arrivals follow a schedule, so the timed pass takes
    # its planned duration and is the whole measurement (no untimed or memory pass).
    open_loop: bool = False
    params_type: type | None = None

    def make_workload(self, n: int, seed: int | None, params: Any = None) -> list[Task]:
        """The scenario's workload of ``n`` tasks (``params`` only where it takes them)."""
        if self.params_type is None:
            return self.workload(n, seed)
        return self.workload(n, seed, params)

    def check_params(self, params: Any) -> Any:
        """``params`` or the default; ``ValueError`` if this scenario takes none or another type."""
        if self.params_type is None:
            if params is not None:
                raise ValueError(f"scenario {self.name!r} takes no parameters, got {params!r}")
            return None
        if params is None:
            return self.params_type()
        if not isinstance(params, self.params_type):
            raise ValueError(f"scenario {self.name!r} takes {self.params_type.__name__}, "
                             f"got {type(params).__name__}")
        return params


def timed_of(pass_fn: PassFn, concurrent: bool, label: str):
    """A ``Scenario.timed`` hook: one timed pass of ``pass_fn``, labelled."""
    def timed(spec: QueueSpec, tasks: list[Task], w: Workers) -> list[Records]:
        return [pass_fn(spec, tasks, w, True).records(concurrent, label)]

    return timed


def untimed_of(pass_fn: PassFn):
    """A ``Scenario.untimed`` hook: one untimed pass of ``pass_fn`` (wall, gets, CPU)."""
    def untimed(spec: QueueSpec, tasks: list[Task], w: Workers) -> UntimedPass:
        run = pass_fn(spec, tasks, w, False)
        return UntimedPass(run.wall_ns(), run.gets(), list(run.errors), run.cpu_ns())

    return untimed


SCENARIOS: dict[str, Scenario] = {}


def register_scenario(scenario: Scenario) -> Scenario:
    """Add ``scenario`` to ``SCENARIOS`` under its name (replacing one of that name)."""
    SCENARIOS[scenario.name] = scenario
    return scenario
