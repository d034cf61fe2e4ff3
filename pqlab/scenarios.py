"""Scenarios: drive a queue with producers and consumers and fill ``Records``.

Every timed pass stamps each operation with ``time.perf_counter_ns`` (put
start/end, get start/end) and notes who produced and who consumed each task.
Untimed passes run the same loops without stamps; throughput comes from them,
because a pair of stamps costs about 70 ns here, a large share of a heap
operation. Nothing here computes statistics.

Consumers stop when exactly N tasks were taken: the consumer that takes the
N-th task puts one stop sentinel (priority LOW, newest sequence number) for
each other consumer, so a correct queue serves them after every real task.
A run with no progress for ``deadline_s`` ends with an error in its records.
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
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pqlab.queues import QueueSpec, async_face, sync_face
from pqlab.quiet import thread_ended
from pqlab.task import PRIORITY_LEVELS, Task, make_ordering_workload, make_workload, next_seq

pc = time.perf_counter_ns
cpu = time.process_time_ns  # this process, every thread: user + system
EMPTY_ERRORS = (queue.Empty, IndexError)


class _Stop:
    """The payload of a stop sentinel: one object, kept identical across processes.

    It pickles by reference to ``pqlab.scenarios.STOP``, so a sentinel that went
    through a manager process or a child process is still ``is STOP``.
    """

    __slots__ = ()

    def __reduce__(self) -> str:
        return "STOP"

    def __repr__(self) -> str:
        return "STOP"


STOP = _Stop()  # payload of a stop sentinel
POLL_S = 0.05  # watchdog poll period: 20 wake-ups a second cost nothing measurable
DEFAULT_DEADLINE_S = 10.0  # no progress for this long ends a run with an error


@dataclass(frozen=True)
class Workers:
    """How many producers and consumers, and how long a run may stall."""

    producers: int = 5
    consumers: int = 5
    deadline_s: float = DEFAULT_DEADLINE_S
    producer_yield: bool = True  # producers yield after each put (see _producer)
    params: Any = None  # scenario-specific parameters (``load.LoadParams`` for ``load``)


@dataclass
class Records:
    """The stamps of one timed pass (all ``perf_counter_ns``).

    Per task, in workload order: ``priority``, ``seq``, ``put_start``,
    ``put_end``, ``producer``. Per get event (a duplicated task appears twice,
    a lost one not at all): ``get_task`` (task position), ``get_start``,
    ``get_end``, ``consumer``. ``concurrent`` says whether puts and gets ran
    in parallel workers (so the concurrent ordering rule applies).
    ``extra`` holds scenario-specific scalars for the summary row, ``series``
    scenario-specific arrays.
    """

    priority: np.ndarray
    seq: np.ndarray
    put_start: np.ndarray
    put_end: np.ndarray
    producer: np.ndarray
    get_task: np.ndarray
    get_start: np.ndarray
    get_end: np.ndarray
    consumer: np.ndarray
    concurrent: bool
    wall_ns: int
    errors: list[str] = field(default_factory=list)
    label: str = ""
    # Scenario-specific scalars (copied into the run's summary row) and arrays
    # (per task or over time, e.g. intended arrival times or event-loop lag).
    extra: dict[str, Any] = field(default_factory=dict)
    series: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def tasks(self) -> int:
        return len(self.seq)


@dataclass
class UntimedPass:
    """An untimed pass: wall time from the first put to the last get, and the CPU
    time spent over it (ns; NaN where the scenario cannot tell)."""

    wall_ns: int
    gets: int
    errors: list[str] = field(default_factory=list)
    cpu_ns: float = math.nan


def _sentinels(count: int) -> list[Task]:
    level = max(PRIORITY_LEVELS)
    return [Task(level, next_seq(), 0.0, "stop", "", STOP) for _ in range(count)]


class _Run:
    """Shared state of one pass: logs, the taken counter, stop flag, errors."""

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
        self.sentinels = _sentinels(consumers)
        self.producer_yield = producer_yield

    def progress(self) -> int:
        return sum(map(len, self.put_logs)) + sum(map(len, self.get_logs))

    def gets(self) -> int:
        return sum(map(len, self.get_logs))

    def stall_error(self, deadline_s: float) -> str:
        return (f"no progress for {deadline_s:g} s: {self.gets()} of {self.n} tasks taken "
                "(a queue that loses tasks or never wakes a blocked get)")

    def wall_ns(self) -> int:
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

    def records(self, concurrent: bool, label: str) -> Records:
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
        )


# -- sync workers ----------------------------------------------------------------


def _guard(run: _Run, body: Callable[[], None]) -> Callable[[], None]:
    """A thread target: run ``body``, record what it raises, then note the thread's
    scheduling times for the quiet-machine check (``pqlab.quiet``)."""

    def worker() -> None:
        try:
            body()
        except BaseException as exc:  # noqa: BLE001 - reported in the result
            run.errors.append(f"{type(exc).__name__}: {exc}")
            run.stop.set()
        finally:
            thread_ended()

    return worker


def _finish(run: _Run, put: Callable) -> None:
    """After the N-th get: wake every other consumer with a sentinel."""
    for sentinel in run.sentinels[: run.consumers - 1]:
        put(sentinel)


def _producer(run: _Run, face, p: int, barrier: threading.Barrier, timed: bool) -> None:
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


def _consumer(run: _Run, face, c: int, barrier: threading.Barrier, timed: bool) -> None:
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
            _finish(run, face.put)
            break
    run.spans.append((start, pc(), cpu0, cpu()))


def _watch_threads(run: _Run, threads: list[threading.Thread], face, deadline_s: float) -> None:
    for t in threads:
        t.start()
    last, last_change = -1, time.monotonic()
    while True:
        alive = [t for t in threads if t.is_alive()]
        if not alive:
            return
        alive[0].join(POLL_S)
        done = run.progress()
        now = time.monotonic()
        if done != last:
            last, last_change = done, now
        if run.errors or now - last_change > deadline_s:
            break
    if not run.errors:
        run.errors.append(run.stall_error(deadline_s))
    run.stop.set()
    try:
        _finish(run, face.put)
        face.put(run.sentinels[-1])
    except Exception:  # noqa: BLE001 - the queue is already broken; errors hold why
        pass
    for t in threads:
        t.join(1.0)


def _threads_pass(spec: QueueSpec, tasks: list[Task], w: Workers, timed: bool) -> _Run:
    face = sync_face(spec, spec.factory())
    run = _Run(tasks, w.producers, w.consumers, w.producer_yield)
    barrier = threading.Barrier(w.producers + w.consumers)
    threads = [threading.Thread(target=_guard(run, lambda p=p: _producer(run, face, p, barrier,
                                                                          timed)), daemon=True)
               for p in range(w.producers)]
    threads += [threading.Thread(target=_guard(run, lambda c=c: _consumer(run, face, c, barrier,
                                                                           timed)), daemon=True)
                for c in range(w.consumers)]
    _watch_threads(run, threads, face, w.deadline_s)
    return run


def _single_sync_body(run: _Run, face, timed: bool) -> None:
    put, get, n = face.put, face.get, run.n
    putlog, getlog = run.put_logs[0].append, run.get_logs[0].append
    start, cpu0 = pc(), cpu()
    if timed:
        for task in run.tasks:
            t0 = pc()
            put(task)
            t1 = pc()
            putlog((t0, t1))
        for _ in range(n):
            t0 = pc()
            task = get()
            t1 = pc()
            getlog((task.seq, t0, t1))
    else:
        for task in run.tasks:
            put(task)
        for _ in range(n):
            getlog(get())
    run.spans.append((start, pc(), cpu0, cpu()))


def _single_sync_pass(spec: QueueSpec, tasks: list[Task], w: Workers, timed: bool) -> _Run:
    face = sync_face(spec, spec.factory())
    run = _Run(tasks, 1, 1)
    body = _guard(run, lambda: _single_sync_body(run, face, timed))
    _watch_threads(run, [threading.Thread(target=body, daemon=True)], face, w.deadline_s)
    return run


# -- async workers ---------------------------------------------------------------


async def _aproducer(run: _Run, q, p: int, barrier: asyncio.Barrier, timed: bool) -> None:
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


async def _aconsumer(run: _Run, q, c: int, barrier: asyncio.Barrier, timed: bool) -> None:
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


async def _asingle_body(run: _Run, q, timed: bool) -> None:
    put, get = q.put, q.get
    putlog, getlog = run.put_logs[0].append, run.get_logs[0].append
    start, cpu0 = pc(), cpu()
    for task in run.tasks:
        t0 = pc() if timed else 0
        await put(task)
        if timed:
            putlog((t0, pc()))
    for _ in range(run.n):
        t0 = pc() if timed else 0
        task = await get()
        getlog((task.seq, t0, pc() if timed else 0))
    run.spans.append((start, pc(), cpu0, cpu()))


async def _watch_tasks(run: _Run, coros: list, deadline_s: float) -> None:
    workers = [asyncio.ensure_future(c) for c in coros]
    last, last_change = -1, time.monotonic()
    pending = set(workers)
    while pending:
        done, pending = await asyncio.wait(pending, timeout=POLL_S,
                                           return_when=asyncio.FIRST_EXCEPTION)
        for w in done:
            if not w.cancelled() and w.exception() is not None:
                exc = w.exception()
                run.errors.append(f"{type(exc).__name__}: {exc}")
        progress, now = run.progress(), time.monotonic()
        if progress != last:
            last, last_change = progress, now
        if run.errors or now - last_change > deadline_s:
            break
    if pending:
        if not run.errors:
            run.errors.append(run.stall_error(deadline_s))
        for w in pending:
            w.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


def _async_pass(spec: QueueSpec, tasks: list[Task], w: Workers, timed: bool) -> _Run:
    run = _Run(tasks, w.producers, w.consumers, w.producer_yield)

    async def main() -> None:
        q = async_face(spec, spec.factory())
        barrier = asyncio.Barrier(w.producers + w.consumers)
        coros = [_aproducer(run, q, p, barrier, timed) for p in range(w.producers)]
        coros += [_aconsumer(run, q, c, barrier, timed) for c in range(w.consumers)]
        await _watch_tasks(run, coros, w.deadline_s)

    asyncio.run(main())
    return run


def _single_async_pass(spec: QueueSpec, tasks: list[Task], w: Workers, timed: bool) -> _Run:
    run = _Run(tasks, 1, 1)

    async def main() -> None:
        q = async_face(spec, spec.factory())
        await _watch_tasks(run, [_asingle_body(run, q, timed)], w.deadline_s)

    asyncio.run(main())
    return run


# -- scenarios -------------------------------------------------------------------


def _single_pass(spec: QueueSpec, tasks: list[Task], w: Workers, timed: bool) -> _Run:
    if spec.has_sync_face:
        return _single_sync_pass(spec, tasks, w, timed)
    return _single_async_pass(spec, tasks, w, timed)


def _concurrent_pass(spec: QueueSpec, tasks: list[Task], w: Workers, timed: bool) -> _Run:
    if spec.has_sync_face and spec.thread_safe:
        return _threads_pass(spec, tasks, w, timed)
    return _async_pass(spec, tasks, w, timed)


def _can_single(spec: QueueSpec) -> bool:
    return True


def _can_threads(spec: QueueSpec) -> bool:
    return spec.has_sync_face and spec.thread_safe


def _can_async(spec: QueueSpec) -> bool:
    return spec.has_async_face and spec.async_safe


PassFn = Callable[[QueueSpec, list[Task], Workers, bool], _Run]


@dataclass(frozen=True)
class Scenario:
    """A way to drive a queue: which queues it fits, its timed passes, its untimed pass."""

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


def _timed(pass_fn: PassFn, concurrent: bool, label: str):
    def timed(spec: QueueSpec, tasks: list[Task], w: Workers) -> list[Records]:
        return [pass_fn(spec, tasks, w, True).records(concurrent, label)]

    return timed


def _untimed(pass_fn: PassFn):
    def untimed(spec: QueueSpec, tasks: list[Task], w: Workers) -> UntimedPass:
        run = pass_fn(spec, tasks, w, False)
        return UntimedPass(run.wall_ns(), run.gets(), list(run.errors), run.cpu_ns())

    return untimed


def _ordering_timed(spec: QueueSpec, tasks: list[Task], w: Workers) -> list[Records]:
    passes = [_single_pass(spec, tasks, w, True).records(False, "sequential")]
    if _can_threads(spec) or _can_async(spec):
        passes.append(_concurrent_pass(spec, tasks, w, True).records(True, "concurrent"))
    return passes


def _ordering_untimed(spec: QueueSpec, tasks: list[Task], w: Workers) -> UntimedPass:
    pass_fn = _concurrent_pass if (_can_threads(spec) or _can_async(spec)) else _single_pass
    return _untimed(pass_fn)(spec, tasks, w)


SCENARIOS: dict[str, Scenario] = {}


def register_scenario(scenario: Scenario) -> Scenario:
    """Add a scenario to the registry (later issues add ``mixed``, ``processes``…)."""
    SCENARIOS[scenario.name] = scenario
    return scenario


register_scenario(Scenario(
    "single", "Test 1: enqueue N, then dequeue all, one thread", "any queue",
    _can_single, _timed(_single_pass, False, "sequential"), _untimed(_single_pass),
    uses_workers=False))
register_scenario(Scenario(
    "threads", "Test 2: P producer and C consumer threads", "a thread-safe queue with a sync face",
    _can_threads, _timed(_threads_pass, True, "threads"), _untimed(_threads_pass)))
register_scenario(Scenario(
    "async", "Test 3: P producer and C consumer coroutines",
    "an async-safe queue with an async face",
    _can_async, _timed(_async_pass, True, "async"), _untimed(_async_pass)))
register_scenario(Scenario(
    "ordering", "Test 4: a workload built to expose ordering bugs, sequential and concurrent",
    "any queue", _can_single, _ordering_timed, _ordering_untimed,
    workload=make_ordering_workload))
