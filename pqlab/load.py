"""Open-loop load: tasks arrive on a schedule, C workers serve them, waits per priority.

The closed-loop scenarios push tasks as fast as they can; here requests arrive
at a target rate (Poisson or constant) and each of C workers holds a task for
a service time (constant or exponential), sleeping as an I/O-bound inference
call would. Every task's intended arrival time and service time are fixed in
advance from the run's seed (they travel in the task's payload, a
``Request``), so a run is reproducible and a producer that falls behind its
schedule shows up in the numbers: waits are measured from the intended arrival
(free of coordinated omission), with the figure from the actual put beside it.

What the four stamps of ``Records`` mean here:

- ``put_start``/``put_end``: the producer's put (its start is the actual arrival);
- ``get_start``: the worker starts waiting for a task;
- ``get_end``: the worker has the task: start of service.

``Records.series`` adds, per task (workload order), ``intended_ns`` (intended
arrival), ``service_end_ns`` (service done, 0 if never served) and
``service_planned_ns`` (the drawn service time, which a worker's sleep
overshoots), and over time ``depth_at_ns``/``depth`` (tasks whose put has
started and that no worker has taken yet, after each put or take).
``Records.extra`` holds the summary row's load scalars (see ``loadstats.load_extra``).

``LoadParams.driver`` says what runs it (``choose_driver``): ``threads`` (a
thread-safe queue with a sync face), ``async`` (an async-safe queue with an
async face; the workers are coroutines and the producers are threads that
hand each task to the loop, as a network connection would) or ``processes``
(a process-safe queue with a sync face, e.g. multiprocessing or redis: each
worker is a spawned process, ``pqlab.loadprocesses``). Producers are threads
in this process with every driver, as requests reach one front-end process.
``auto``, the default, picks processes, else threads, else async: the first
the queue can do. The driver is the records' label.

The numbers derived from a run are ``pqlab.loadstats``'s; tidy frames for
notebooks, ``pqlab.loadframes``'s.
"""

from __future__ import annotations

import asyncio
import gc
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from pqlab import theory
from pqlab.loadstats import load_extra, theory_applies
from pqlab.queues import QueueSpec, async_face, sync_face
from pqlab.scenarios import (
    EMPTY_ERRORS,
    STOP,
    Records,
    Scenario,
    UntimedPass,
    Workers,
    _finish,
    _guard,
    _Run,
    _watch_tasks,
    _watch_threads,
    register_scenario,
)
from pqlab.task import PRIORITY_LEVELS, Task, make_workload
from pqlab.timers import fine_timer_slack, sleep_until
from pqlab.verify import first_gets

pc = time.perf_counter_ns
ARRIVALS = ("poisson", "constant")
SERVICE_KINDS = ("exp", "const")
DRIVERS = ("auto", "threads", "async", "processes")  # auto: the first of the last three it can
LEAD_IN_NS = 50_000_000  # first arrival 50 ms after the workers start: all are waiting by then
# A worker on a non-blocking queue (get raises Empty) polls at this period: it
# adds up to the period plus sleep's overshoot (~0.3 ms in all) to the
# wait of a task that finds a worker idle; blocking queues wake it at once.
POLL_S = 0.000_25


# -- parameters ------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceTime:
    """A service-time distribution: ``exp`` (exponential) or ``const``, with its mean."""

    kind: str = "exp"
    mean_s: float = 0.02

    def __post_init__(self) -> None:
        if self.kind not in SERVICE_KINDS:
            raise ValueError(f"service distribution {self.kind!r} is unknown; allowed: "
                             f"{', '.join(SERVICE_KINDS)}")
        if not (self.mean_s > 0 and math.isfinite(self.mean_s)):
            raise ValueError(f"service mean must be a positive number of seconds, "
                             f"got {self.mean_s!r}")

    @classmethod
    def parse(cls, text: str) -> ServiceTime:
        """``exp:0.016``, ``exp:16ms`` or ``const:20ms`` (seconds unless ``ms``/``s`` follows).

        Raises ``ValueError`` naming the allowed forms.
        """
        kind, sep, mean = text.partition(":")
        scale = 1.0
        if mean.endswith("ms"):
            mean, scale = mean[:-2], 1e-3
        elif mean.endswith("s"):
            mean = mean[:-1]
        try:
            mean_s = float(mean) * scale
        except ValueError:
            mean_s = math.nan
        if not sep or kind not in SERVICE_KINDS or not 0 < mean_s < math.inf:
            raise ValueError(f"bad service time {text!r}; expected KIND:MEAN with KIND one of "
                             f"{', '.join(SERVICE_KINDS)} and MEAN > 0 in s or ms "
                             "(e.g. exp:0.016 or exp:16ms)")
        return cls(kind, mean_s)

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` service times in seconds."""
        if self.kind == "exp":
            return rng.exponential(self.mean_s, n)
        return np.full(n, self.mean_s)

    def __str__(self) -> str:
        return f"{self.kind}:{self.mean_s * 1e3:g}ms"


@dataclass(frozen=True)
class LoadParams:
    """Parameters of the open-loop ``load`` scenario (workers are ``run(consumers=…)``).

    ``weights`` are the relative frequencies of CRITICAL, HIGH, NORMAL, LOW.
    Raises ``ValueError`` on a bad value, naming it.
    """

    rate_per_s: float = 100.0  # the service's range is 10-100 requests a second
    arrivals: str = "poisson"
    service: ServiceTime = field(default_factory=ServiceTime)
    weights: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0)
    driver: str = "auto"  # what runs producers and workers: see ``choose_driver``

    def __post_init__(self) -> None:
        if self.driver not in DRIVERS:
            raise ValueError(f"load driver {self.driver!r} unknown; allowed: {', '.join(DRIVERS)}")
        if not (self.rate_per_s > 0 and math.isfinite(self.rate_per_s)):
            raise ValueError(f"rate must be a positive number of tasks per second, "
                             f"got {self.rate_per_s!r}")
        if self.arrivals not in ARRIVALS:
            raise ValueError(f"arrivals {self.arrivals!r} unknown; allowed: {', '.join(ARRIVALS)}")
        weights = tuple(float(w) for w in self.weights)
        if (len(weights) != len(PRIORITY_LEVELS) or any(not w >= 0 for w in weights)
                or not sum(weights) > 0):
            raise ValueError(f"weights must be {len(PRIORITY_LEVELS)} non-negative numbers "
                             f"(CRITICAL, HIGH, NORMAL, LOW) with a positive sum, "
                             f"got {self.weights!r}")
        object.__setattr__(self, "weights", weights)

    @classmethod
    def at_utilization(cls, rho: float, workers: int, service: ServiceTime | None = None,
                       arrivals: str = "poisson",
                       weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0),
                       driver: str = "auto") -> LoadParams:
        """The parameters whose target rate makes ρ = λ·E[S]/C equal ``rho``."""
        service = service or ServiceTime()
        if not (rho > 0 and math.isfinite(rho)):
            raise ValueError(f"utilization must be a positive number, got {rho!r}")
        return cls(rho * workers / service.mean_s, arrivals, service, tuple(weights), driver)

    def tasks_for(self, duration_s: float) -> int:
        """Task count for arrivals lasting ``duration_s`` seconds at the target rate."""
        if not (duration_s > 0 and math.isfinite(duration_s)):
            raise ValueError(f"duration must be a positive number of seconds, got {duration_s!r}")
        return max(1, round(self.rate_per_s * duration_s))

    def utilization(self, workers: int) -> float:
        """ρ = λ·E[S]/C at the target rate."""
        return self.rate_per_s * self.service.mean_s / workers

    def class_rates(self, rate_per_s: float | None = None) -> list[float]:
        """Arrival rate of each class, CRITICAL first."""
        rate = self.rate_per_s if rate_per_s is None else rate_per_s
        return [rate * w / sum(self.weights) for w in self.weights]

    def theory_waits_s(self, workers: int) -> list[float]:
        """Cobham's mean wait per class at the target rate; NaN where it does not apply."""
        if not theory_applies(self):
            return [math.nan] * len(self.weights)
        return theory.priority_waits(self.class_rates(), self.service.mean_s, workers)


def overload_warning(params: LoadParams, workers: int) -> str | None:
    """A one-line warning when ρ ≥ 1 (the queue grows for the whole run), else None."""
    rho = params.utilization(workers)
    if rho < 1:
        return None
    return (f"ρ = {params.rate_per_s:g}/s × {params.service.mean_s * 1e3:g} ms / {workers} "
            f"= {rho:.2f} ≥ 1: the queue grows for the whole run and the theory does not apply")


class Request(NamedTuple):
    """The payload of a load task: when it should arrive and how long serving it takes."""

    arrival_ns: int  # intended arrival, after the start of the schedule
    service_s: float


# Workers read the service time by position: a queue that stores tasks as JSON
# (redis) hands the Request back as a list.
SERVICE_S = Request._fields.index("service_s")


def make_load_workload(n: int, seed: int | None, params: LoadParams) -> list[Task]:
    """``n`` tasks with the priority mix of ``params``, each carrying its ``Request``.

    Priorities come from ``make_workload`` (same seed, same mix); arrival times
    and service times from a separate seeded stream, so changing the service
    distribution leaves the arrivals alone.
    """
    tasks = make_workload(n, seed, params.weights)
    arrivals_rng, service_rng = (np.random.default_rng([stream, seed or 0]) for stream in (1, 2))
    if params.arrivals == "poisson":
        offsets_s = np.cumsum(arrivals_rng.exponential(1.0 / params.rate_per_s, n))
    else:
        offsets_s = np.arange(n) / params.rate_per_s
    offsets_ns = np.round(offsets_s * 1e9).astype(np.int64)
    service_s = params.service.draw(service_rng, n)
    for task, offset, service in zip(tasks, offsets_ns.tolist(), service_s.tolist(), strict=True):
        task.payload = Request(offset, service)
    return tasks


# -- the passes ------------------------------------------------------------------


class _Schedule:
    """When the schedule starts (``base_ns``) and each worker's service-end stamps."""

    def __init__(self, consumers: int) -> None:
        self.base_ns = 0
        self.done_logs: list[list[int]] = [[] for _ in range(consumers)]
        self.closed = threading.Event()  # set when an asyncio run is over: feeders stop

    def start(self) -> None:
        self.base_ns = pc() + LEAD_IN_NS


def _deadline_s(tasks: list[Task], w: Workers) -> float:
    """The stall deadline, stretched by the longest planned gap and service time."""
    offsets = [t.payload.arrival_ns for t in tasks]
    gaps = np.diff(offsets, prepend=0).max(initial=0) / 1e9
    return w.deadline_s + gaps + max(t.payload.service_s for t in tasks)


def _producer(run: _Run, face, p: int, barrier: threading.Barrier, sched: _Schedule) -> None:
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


def _consumer(run: _Run, face, c: int, barrier: threading.Barrier, sched: _Schedule) -> None:
    get, append, done = face.get, run.get_logs[c].append, sched.done_logs[c].append
    taken, n, stop, sleep = run.taken, run.n, run.stop, time.sleep
    barrier.wait()
    start = pc()
    while True:
        t0 = pc()
        try:
            task = get()
        except EMPTY_ERRORS:
            if stop.is_set():
                break
            sleep(POLL_S)
            continue
        t1 = pc()
        if task.payload is STOP:
            break
        sleep_until(t1 + round(task.payload[SERVICE_S] * 1e9))
        done(pc())
        append((task.seq, t0, t1))
        if next(taken) == n:
            _finish(run, face.put)
            break
    run.spans.append((start, pc()))


def _threads_pass(spec: QueueSpec, tasks: list[Task], w: Workers) -> tuple[_Run, _Schedule]:
    face = sync_face(spec, spec.factory())
    run = _Run(tasks, w.producers, w.consumers)
    sched = _Schedule(w.consumers)
    barrier = threading.Barrier(w.producers + w.consumers, action=sched.start)
    bodies = [lambda p=p: _producer(run, face, p, barrier, sched) for p in range(w.producers)]
    bodies += [lambda c=c: _consumer(run, face, c, barrier, sched) for c in range(w.consumers)]
    threads = [threading.Thread(target=_guard(run, body), daemon=True) for body in bodies]
    _watch_threads(run, threads, face, _deadline_s(tasks, w))
    return run, sched


def _feeder(run: _Run, loop: asyncio.AbstractEventLoop, q, p: int, sched: _Schedule) -> None:
    """An asyncio producer: a thread that hands each task to the loop at its arrival time.

    Requests reach an asyncio server as socket events, which wake the loop at
    once; a producer coroutine would instead wait on the loop's timer, which
    rounds to whole milliseconds (epoll) and made arrivals 0.6 ms late at the
    median here. A thread's ``sleep_until`` is late by ~1 µs.
    """
    put, append, closed = q.put, run.put_logs[p].append, sched.closed

    async def arrive(task: Task) -> None:
        try:
            t0 = pc()
            await put(task)
            append((t0, pc()))
        except BaseException as exc:  # noqa: BLE001 - reported in the result
            run.errors.append(f"{type(exc).__name__}: {exc}")

    start = pc()
    for task in run.tasks[p :: run.producers]:
        sleep_until(sched.base_ns + task.payload.arrival_ns)
        if closed.is_set():
            break
        asyncio.run_coroutine_threadsafe(arrive(task), loop)
    run.spans.append((start, pc()))


async def _aconsumer(run: _Run, q, c: int, sched: _Schedule) -> None:
    get, append, done = q.get, run.get_logs[c].append, sched.done_logs[c].append
    taken, n, sleep = run.taken, run.n, asyncio.sleep
    start = pc()
    while True:
        t0 = pc()
        task = await get()
        t1 = pc()
        if task.payload is STOP:
            break
        await sleep(task.payload[SERVICE_S])
        done(pc())
        append((task.seq, t0, t1))
        if next(taken) == n:
            for sentinel in run.sentinels[: run.consumers - 1]:
                await q.put(sentinel)
            break
    run.spans.append((start, pc()))


def _async_pass(spec: QueueSpec, tasks: list[Task], w: Workers) -> tuple[_Run, _Schedule]:
    run = _Run(tasks, w.producers, w.consumers)
    sched = _Schedule(w.consumers)

    async def main() -> None:
        q = async_face(spec, spec.factory())
        loop = asyncio.get_running_loop()
        feeders = [threading.Thread(target=_guard(run, lambda p=p: _feeder(run, loop, q, p, sched)),
                                    daemon=True) for p in range(w.producers)]
        sched.start()
        for feeder in feeders:
            feeder.start()
        await _watch_tasks(run, [_aconsumer(run, q, c, sched) for c in range(w.consumers)],
                           _deadline_s(tasks, w))
        sched.closed.set()
        for feeder in feeders:  # done unless the run stalled; then asleep until its next arrival
            feeder.join(1.0)

    asyncio.run(main())
    return run, sched


# What each driver needs of a queue, in the order ``auto`` tries them.
DRIVER_NEEDS = {
    "processes": "a process-safe queue with a sync face",
    "threads": "a thread-safe queue with a sync face",
    "async": "an async-safe queue with an async face",
}


def drivers_for(spec: QueueSpec) -> list[str]:
    """The drivers ``spec`` can run ``load`` on, in the order ``auto`` prefers them."""
    able = {"processes": spec.process_safe and spec.has_sync_face,
            "threads": spec.thread_safe and spec.has_sync_face,
            "async": spec.async_safe and spec.has_async_face}
    return [driver for driver in DRIVER_NEEDS if able[driver]]


def choose_driver(spec: QueueSpec, driver: str = "auto") -> str:
    """The driver ``load`` runs ``spec`` on: ``driver``, or for ``auto`` the first it can of
    processes, threads, async.

    Raises ``ValueError`` naming the queue, what the driver needs and the
    drivers the queue can run on, if it cannot run on ``driver``.
    """
    able = drivers_for(spec)
    if driver == "auto" and able:
        return able[0]
    if driver in able:
        return driver
    if driver not in DRIVERS:
        raise ValueError(f"load driver {driver!r} unknown; allowed: {', '.join(DRIVERS)}")
    need = DRIVER_NEEDS.get(driver, " or ".join(DRIVER_NEEDS.values()))
    allowed = f"allowed for it: {', '.join(['auto', *able])}" if able else "it fits none"
    raise ValueError(f"queue {spec.name!r} cannot run load on driver {driver!r}, which needs "
                     f"{need}; {allowed}")


def _supports(spec: QueueSpec) -> bool:
    return bool(drivers_for(spec))


def _timed(spec: QueueSpec, tasks: list[Task], w: Workers) -> list[Records]:
    params = w.params if isinstance(w.params, LoadParams) else LoadParams()
    driver = choose_driver(spec, params.driver)
    if driver == "processes":
        from pqlab.loadprocesses import processes_pass as timed_pass  # it imports this module
    else:
        timed_pass = _threads_pass if driver == "threads" else _async_pass
    # The cyclic GC stays off during the pass: a full collection of the run's own
    # heap (the workload, the logs, the loaded modules: ~240k tracked objects)
    # took 40-80 ms here and freezes every worker at once, which an open-loop run
    # records as a burst of late arrivals (p99.9 waits of 0.5-2 s over 100,000
    # tasks). The passes make no reference cycles; the runner collects after.
    # Sleeps overshoot by the timer slack and the VM's wake-up (pqlab.timers):
    # with the slack narrowed and sleep_until, the producers' lateness and the
    # service overshoot fell from ~0.1 ms to ~0.01 ms (README, "Sleep precision").
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        with fine_timer_slack() as slack_ns:
            run, sched = timed_pass(spec, tasks, w)
    finally:
        if was_enabled:
            gc.enable()
    rec = run.records(True, driver)
    rec.series.update(_series(run, sched, rec))
    rec.extra.update(load_extra(rec, params, w.consumers))
    rec.extra["timer_slack_ns"] = slack_ns
    return [rec]


def _no_untimed(spec: QueueSpec, tasks: list[Task], w: Workers) -> UntimedPass:
    raise NotImplementedError("the load scenario is open-loop: its timed pass is the measurement")


def _series(run: _Run, sched: _Schedule, rec: Records) -> dict[str, np.ndarray]:
    intended = sched.base_ns + np.fromiter((t.payload.arrival_ns for t in run.tasks),
                                           np.int64, run.n)
    position = {t.seq: i for i, t in enumerate(run.tasks)}
    service_end = np.zeros(run.n, np.int64)
    for gets, dones in zip(run.get_logs, sched.done_logs, strict=True):
        for (seq, _, _), done in zip(gets, dones, strict=True):
            service_end[position[seq]] = done
    planned = np.fromiter((round(t.payload.service_s * 1e9) for t in run.tasks), np.int64, run.n)
    return {"intended_ns": intended, "service_end_ns": service_end,
            "service_planned_ns": planned, **_depth(rec)}


def _depth(rec: Records) -> dict[str, np.ndarray]:
    """Tasks in the queue (put started, not yet taken) after each put and each first take."""
    _, _, taken = first_gets(rec)
    put = rec.put_start[rec.put_end > 0]  # a get can return before its put does
    at = np.concatenate([put, taken])
    step = np.concatenate([np.ones(len(put), np.int64), -np.ones(len(taken), np.int64)])
    order = np.argsort(at, kind="stable")
    return {"depth_at_ns": at[order], "depth": np.cumsum(step[order])}


register_scenario(Scenario(
    "load", "open loop: tasks arrive at a rate, C workers serve them (waits vs theory)",
    "a thread-safe queue with a sync face, an async-safe queue with an async face or a "
    "process-safe queue with a sync face",
    _supports, _timed, _no_untimed, in_poc=False, open_loop=True))
