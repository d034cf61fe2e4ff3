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
``Records.extra`` holds the summary row's load scalars and ``Records.levels`` the results
per priority (see ``loadstats.load_extra``).

``LoadParams.driver`` says what runs it (``choose_driver``): ``threads`` (a
thread-safe queue with a sync face), ``async`` (an async-safe queue with an
async face; the workers are coroutines and the producers are threads that
hand each task to the loop, as a network connection would) or ``processes``
(a process-safe queue with a sync face, e.g. multiprocessing or redis: each
worker is a spawned process, ``pqlab.scenarios.loadprocesses``). Producers are threads
in this process with every driver, as requests reach one front-end process.
``auto``, the default, picks processes, else threads, else async: the first
the queue can do. The driver is the records' label.

The numbers derived from a run are ``pqlab.scenarios.loadstats``'s; tidy frames for
notebooks, ``pqlab.study.loadframes``'s.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import time

import numpy as np

from pqlab.core.task import STOP, Task
from pqlab.measure.levels import merge
from pqlab.measure.records import Records, UntimedPass, first_gets
from pqlab.measure.timers import fine_timer_slack, sleep_until
from pqlab.measure.verify import delay_timeouts
from pqlab.queues import QueueSpec, async_face, sync_face
from pqlab.scenarios._engine import (
    EMPTY_ERRORS,
    PassState,
    Scenario,
    Workers,
    finish,
    guard,
    watch_tasks,
    watch_threads,
)
from pqlab.scenarios.loadbounded import async_pass, threads_pass
from pqlab.scenarios.loadoutcomes import (
    Ends,
    events_depth,
    level_depth_series,
    outcome_series,
    patience_series,
    queue_depth_series,
)
from pqlab.scenarios.loadparams import (
    SERVICE_S,
    LoadParams,
    choose_driver,
    drivers_for,
    make_load_workload,
)
from pqlab.scenarios.loadprocesses import bounded_processes_pass, processes_pass
from pqlab.scenarios.loadschedule import (
    IDLE_POLL_S,
    Schedule,
    produce_on_schedule,
    stall_deadline_s,
)
from pqlab.scenarios.loadstats import load_extra, overload_extra

pc = time.perf_counter_ns
# -- the passes ------------------------------------------------------------------


def _consumer(run: PassState, face, c: int, barrier: threading.Barrier, sched: Schedule) -> None:
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
            sleep(IDLE_POLL_S)
            continue
        t1 = pc()
        if task.payload is STOP:
            break
        sleep_until(t1 + round(task.payload[SERVICE_S] * 1e9))
        done(pc())
        append((task.seq, t0, t1))
        if next(taken) == n:
            finish(run, face.put)
            break
    run.spans.append((start, pc()))


def _threads_pass(spec: QueueSpec, tasks: list[Task], w: Workers) -> tuple[PassState, Schedule]:
    face = sync_face(spec, spec.factory())
    run = PassState(tasks, w.producers, w.consumers)
    sched = Schedule(w.consumers)
    barrier = threading.Barrier(w.producers + w.consumers, action=sched.start)
    bodies = [lambda p=p: produce_on_schedule(run, face, p, barrier, sched)
              for p in range(w.producers)]
    bodies += [lambda c=c: _consumer(run, face, c, barrier, sched) for c in range(w.consumers)]
    threads = [threading.Thread(target=guard(run, body), daemon=True) for body in bodies]
    watch_threads(run, threads, face, stall_deadline_s(tasks, w))
    return run, sched


def _feeder(run: PassState, loop: asyncio.AbstractEventLoop, q, p: int, sched: Schedule) -> None:
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


async def _aconsumer(run: PassState, q, c: int, sched: Schedule) -> None:
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


def _async_pass(spec: QueueSpec, tasks: list[Task], w: Workers) -> tuple[PassState, Schedule]:
    run = PassState(tasks, w.producers, w.consumers)
    sched = Schedule(w.consumers)

    async def main() -> None:
        q = async_face(spec, spec.factory())
        loop = asyncio.get_running_loop()
        feeders = [threading.Thread(target=guard(run, lambda p=p: _feeder(run, loop, q, p, sched)),
                                    daemon=True) for p in range(w.producers)]
        sched.start()
        for feeder in feeders:
            feeder.start()
        await watch_tasks(run, [_aconsumer(run, q, c, sched) for c in range(w.consumers)],
                           stall_deadline_s(tasks, w))
        sched.closed.set()
        for feeder in feeders:  # done unless the run stalled; then asleep until its next arrival
            feeder.join(1.0)

    asyncio.run(main())
    return run, sched


# What each driver needs of a queue, in the order ``auto`` tries them.
def _supports(spec: QueueSpec) -> bool:
    return bool(drivers_for(spec))


def _timed(spec: QueueSpec, tasks: list[Task], w: Workers) -> list[Records]:
    params: LoadParams = w.params
    driver = choose_driver(spec, params.driver, params)
    if params.bounded:
        timed_pass = {"threads": threads_pass, "async": async_pass,
                      "processes": bounded_processes_pass}[driver]
    else:
        timed_pass = {"threads": _threads_pass, "async": _async_pass,
                      "processes": processes_pass}[driver]
    # The cyclic GC stays off during the pass: a full collection of the run's own
    # heap (the workload, the logs, the loaded modules: ~240k tracked objects)
    # took 40-80 ms here and freezes every worker at once, which an open-loop run
    # records as a burst of late arrivals (p99.9 waits of 0.5-2 s over 100,000
    # tasks). The passes make no reference cycles; the runner collects after.
    # Sleeps overshoot by the timer slack and the VM's wake-up (pqlab.measure.timers):
    # with the slack narrowed and sleep_until, the producers' lateness and the
    # service overshoot fell from ~0.1 ms to ~0.01 ms (README, "Sleep precision").
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        with fine_timer_slack() as slack_ns:
            run, sched, *ends = timed_pass(spec, tasks, w)
    finally:
        if was_enabled:
            gc.enable()
    rec = run.records(True, driver, cpu_elsewhere=driver == "processes")
    if params.bounded:
        rec.series.update(_bounded_series(run, sched, rec, ends[0]))
        rec.series.update(delay_timeouts(rec.priority, params.policy))
    else:
        rec.series.update(_series(run, sched, rec))
    scalars, levels = load_extra(rec, params, w.consumers)
    rec.extra.update(scalars)
    rec.levels = levels
    if params.bounded:
        scalars, levels = overload_extra(rec, params, w.consumers)
        rec.extra.update(scalars)
        rec.levels = merge(rec.levels, levels, ends[0].levels)
        rec.extra["level_depth_source"] = "sampled" if ends[0].samples else "stamps"
        rec.extra.update(ends[0].extra)
    rec.extra["timer_slack_ns"] = slack_ns
    return [rec]


def _no_untimed(spec: QueueSpec, tasks: list[Task], w: Workers) -> UntimedPass:
    raise NotImplementedError("the load scenario is open-loop: its timed pass is the measurement")


def _series(run: PassState, sched: Schedule, rec: Records) -> dict[str, np.ndarray]:
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


def _bounded_series(run: PassState, sched: Schedule, rec: Records,
                    ends: Ends) -> dict[str, np.ndarray]:
    """``_series`` of a bounded pass: outcomes, patience, depth with every way out counted."""
    series = _series(run, sched, rec)
    rec.series.update(outcome_series(run, rec, ends))
    series.update(level_depth_series(rec, ends))
    series.update(queue_depth_series(events_depth(rec, ends)))
    series["patience_s"] = patience_series(run.tasks)
    series["arrival_offset_ns"] = np.fromiter((t.payload.arrival_ns for t in run.tasks),
                                              np.int64, run.n)
    return series


def _depth(rec: Records) -> dict[str, np.ndarray]:
    """Tasks in the queue (put started, not yet taken) after each put and each first take."""
    _, _, taken = first_gets(rec)
    put = rec.put_start[rec.put_end > 0]  # a get can return before its put does
    at = np.concatenate([put, taken])
    step = np.concatenate([np.ones(len(put), np.int64), -np.ones(len(taken), np.int64)])
    order = np.argsort(at, kind="stable")
    return {"depth_at_ns": at[order], "depth": np.cumsum(step[order])}


LOAD = Scenario(
    "load", "open loop: tasks arrive at a rate, C workers serve them (waits vs theory)",
    "a thread-safe queue with a sync face, an async-safe queue with an async face or a "
    "process-safe queue with a sync face",
    _supports, _timed, _no_untimed, workload=make_load_workload, in_poc=False, open_loop=True,
    params_type=LoadParams)
