"""The load scenario past saturation: runs bounded in time, with a queue policy and patience.

Used when ``LoadParams.duration_s`` is set (``LoadParams.bounded``); the
unbounded passes of ``pqlab.scenarios.load`` stay as they were. A bounded pass
differs in four ways:

- **The end.** Arrivals stop at ``duration_s`` (later tasks are not offered)
  and no service starts after it: a worker waits for a task at most until the
  end (``get(timeout=)``, ``asyncio.wait_for``), a task it takes after the end
  is counted ``queued``, as is everything left in the queue, which is then
  emptied without being served. A worker busy at the end finishes that
  service, so a run lasts ``duration_s`` plus at most one service time, even
  at ρ = 1.5 with no policy (draining a queue that grew for the whole run
  would take (ρ − 1) · duration more).
- **Policy.** The queue is made with ``policy=`` (``LoadParams.policy``) and an
  ``on_expired`` callback that stamps each expiry; a put that raises
  ``Rejected`` is logged ``rejected``; at the end ``drain_expired()`` finds
  every request expired under ``REJECT`` not yet reported.
- **Patience.** Each request's give-up time (intended arrival + its drawn
  patience) is known before the run, so one canceller (a thread, or a
  coroutine on the event loop for an asyncio queue) walks them in time order
  with ``sleep_until`` and calls ``queue.cancel(task)``: True means it was still
  queued (``cancelled``); a request served or expired before is unaffected. A
  request whose producer put it after its give-up time (a busy machine) stays.
- **Accounting.** What the threads see goes into an ``Ends``; every offered
  request then ends in exactly one of ``measure.overload.OUTCOMES``
  (``pqlab.scenarios.loadoutcomes``, which also gives the depth per level).

This module holds the thread and coroutine drivers; the queue's ``depths()``
is sampled every ``DEPTH_SAMPLE_S`` where it has one.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import Callable
from typing import Any

from pqlab.core.task import STOP, Task
from pqlab.measure.timers import sleep_until
from pqlab.queues import QueueSpec, async_face, sync_face
from pqlab.queues.policy import Rejected, is_active
from pqlab.scenarios._engine import (
    EMPTY_ERRORS,
    PassState,
    Workers,
    guard,
    watch_tasks,
    watch_threads,
)
from pqlab.scenarios.loadoutcomes import Ends
from pqlab.scenarios.loadparams import SERVICE_S, LoadParams
from pqlab.scenarios.loadschedule import IDLE_POLL_S, Schedule, stall_deadline_s

pc = time.perf_counter_ns
# 100 samples a second: a depths() call took 1.3 µs here (ThreadSafeBucketQueue with a
# policy, 400 queued), so sampling costs the queue's lock about 0.01% of the run.
DEPTH_SAMPLE_S = 0.01
ASYNC_EMPTY = (asyncio.QueueEmpty, *EMPTY_ERRORS)


def make_queue(spec: QueueSpec, params: LoadParams, ends: Ends) -> Any:
    """A fresh queue of ``spec``, with ``params.policy`` and the expiry stamp if it has one."""
    if params.policy is None:
        return spec.factory()
    return spec.factory(policy=params.policy, on_expired=ends.stamp_expiry, clock=ends.clock)


def give_ups(tasks: list[Task], end_offset_ns: int) -> list[tuple[int, Task]]:
    """(intended give-up ns after the schedule start, task) in time order, before the end."""
    times = [(t.payload.arrival_ns + round(t.payload.patience_s * 1e9), t) for t in tasks
             if t.payload.patience_s > 0 and t.payload.arrival_ns < end_offset_ns]
    times.sort(key=lambda pair: pair[0])
    return [(at, task) for at, task in times if at < end_offset_ns]


# -- threads ------------------------------------------------------------------------


def produce_until_end(run: PassState, face, p: int, barrier: threading.Barrier,
                      sched: Schedule, ends: Ends, end_offset_ns: int,
                      ids: dict[int, int] | None = None) -> None:
    """Producer thread ``p`` of a bounded pass: each of its tasks arriving before the end,
    put on time; a ``Rejected`` put is logged ``rejected``.

    ``ids`` (seq -> what ``put`` returned: the Redis queue's id) is filled for
    a canceller that cancels by id (``cancel_on_give_up``).
    """
    put, append, stop, rejected = face.put, run.put_logs[p].append, run.stop, ends.rejected
    barrier.wait()
    base, start = sched.base_ns, pc()
    for task in run.tasks[p :: run.producers]:
        if task.payload.arrival_ns >= end_offset_ns:
            break  # arrivals stop at the end: this and later tasks are not offered
        sleep_until(base + task.payload.arrival_ns)
        if stop.is_set():
            break
        t0 = pc()
        try:
            got = put(task)
        except Rejected:
            rejected.append(task.seq)
        else:
            if ids is not None:
                ids[task.seq] = got
        append((t0, pc()))
    run.spans.append((start, pc()))


def _takes_timeout(get: Callable) -> bool:
    try:
        return "timeout" in inspect.signature(get).parameters
    except (TypeError, ValueError):
        return False


def _consumer(run: PassState, face, c: int, barrier: threading.Barrier, sched: Schedule,
              ends: Ends) -> None:
    get, append, done = face.get, run.get_logs[c].append, sched.done_logs[c].append
    blocking, stop = _takes_timeout(get), run.stop
    barrier.wait()
    start = pc()
    end_ns = ends.end_ns
    while not stop.is_set():
        t0 = pc()
        if t0 >= end_ns:
            break
        try:
            task = get(timeout=(end_ns - t0) / 1e9) if blocking else get()
        except EMPTY_ERRORS:
            if not blocking:
                time.sleep(IDLE_POLL_S)
            continue
        t1 = pc()
        if task.payload is STOP:
            break
        if t1 >= end_ns:
            ends.late.append((task.seq, t1))
            break
        sleep_until(t1 + round(task.payload[SERVICE_S] * 1e9))
        done(pc())
        append((task.seq, t0, t1))
    run.spans.append((start, pc()))


def cancel_on_give_up(queue, barrier: threading.Barrier, sched: Schedule, ends: Ends,
                      times: list[tuple[int, Task]], stop: threading.Event,
                      ids: dict[int, int] | None = None) -> None:
    """The canceller thread: at each give-up time, ``queue.cancel`` the request; a True
    (it was still queued) is logged ``cancelled``.

    With ``ids`` it cancels by the id its put returned, and skips a request
    not put yet (a late producer) or rejected.
    """
    cancel, cancelled = queue.cancel, ends.cancelled.append
    barrier.wait()
    for at, task in times:
        sleep_until(sched.base_ns + at)
        if stop.is_set():
            break
        target = task if ids is None else ids.get(task.seq)
        if target is not None and cancel(target):
            cancelled((task.seq, pc()))


def sample_depths(queue, barrier: threading.Barrier, sched: Schedule, ends: Ends,
                  stop: threading.Event) -> None:
    """The sampler thread: ``queue.depths()`` every ``DEPTH_SAMPLE_S`` until the end."""
    depths, append, step = queue.depths, ends.samples.append, round(DEPTH_SAMPLE_S * 1e9)
    barrier.wait()
    at = sched.base_ns
    while at <= ends.end_ns and not stop.is_set():
        sleep_until(at)
        append((pc(), depths()))
        at += step


def threads_pass(spec: QueueSpec, tasks: list[Task], w: Workers
                 ) -> tuple[PassState, Schedule, Ends]:
    """One bounded pass with producer and worker threads (see the module doc)."""
    params: LoadParams = w.params
    end_offset_ns = round(params.duration_s * 1e9)
    ends = Ends()
    queue = make_queue(spec, params, ends)
    face = sync_face(spec, queue)
    run = PassState(tasks, w.producers, w.consumers)
    sched = Schedule(w.consumers)
    helpers = helpers_for(queue, params)

    def start() -> None:
        sched.start()
        ends.end_ns = sched.base_ns + end_offset_ns

    barrier = threading.Barrier(w.producers + w.consumers + len(helpers), action=start)
    bodies = [lambda p=p: produce_until_end(run, face, p, barrier, sched, ends, end_offset_ns)
              for p in range(w.producers)]
    bodies += [lambda c=c: _consumer(run, face, c, barrier, sched, ends)
               for c in range(w.consumers)]
    if "cancel" in helpers:
        times = give_ups(tasks, end_offset_ns)
        bodies.append(lambda: cancel_on_give_up(queue, barrier, sched, ends, times, run.stop))
    if "sample" in helpers:
        bodies.append(lambda: sample_depths(queue, barrier, sched, ends, run.stop))
    threads = [threading.Thread(target=guard(run, body), daemon=True) for body in bodies]
    watch_threads(run, threads, face, stall_deadline_s(tasks, w))
    _settle(queue, face.get_nowait if hasattr(face, "get_nowait") else face.get, ends,
            EMPTY_ERRORS)
    return run, sched, ends


def helpers_for(queue, params: LoadParams) -> list[str]:
    """Which helpers a pass runs beside producers and workers: canceller, depth sampler."""
    return ((["cancel"] if params.patience is not None else [])
            + (["sample"] if hasattr(queue, "depths") else []))


def _settle(queue, get_nowait: Callable, ends: Ends, empty: tuple) -> None:
    """After the pass: empty what is left, collect the expired, read the queue's counts."""
    while True:
        try:
            task = get_nowait()
        except empty:
            break
        if task.payload is not STOP:
            ends.left.append(task.seq)
    if is_active(getattr(queue, "policy", None)):
        queue.drain_expired()  # finds the rest; each goes to on_expired (Ends.stamp_expiry)
        ends.expired = list(ends.expired_at)
        ends.counts = queue.counts()


# -- asyncio ------------------------------------------------------------------------


def _feeder(run: PassState, loop: asyncio.AbstractEventLoop, q, p: int, sched: Schedule,
            ends: Ends, end_offset_ns: int) -> None:
    """An asyncio producer thread, as ``load``'s: each task handed to the loop on time."""
    put, append, closed, rejected = q.put, run.put_logs[p].append, sched.closed, ends.rejected

    async def arrive(task: Task) -> None:
        t0 = pc()
        try:
            await put(task)
        except Rejected:
            rejected.append(task.seq)
        except BaseException as exc:  # noqa: BLE001 - reported in the result
            run.errors.append(f"{type(exc).__name__}: {exc}")
        append((t0, pc()))

    start = pc()
    for task in run.tasks[p :: run.producers]:
        if task.payload.arrival_ns >= end_offset_ns:
            break
        sleep_until(sched.base_ns + task.payload.arrival_ns)
        if closed.is_set():
            break
        asyncio.run_coroutine_threadsafe(arrive(task), loop)
    run.spans.append((start, pc()))


async def _aconsumer(run: PassState, q, c: int, sched: Schedule, ends: Ends) -> None:
    get, append, done = q.get, run.get_logs[c].append, sched.done_logs[c].append
    start = pc()
    while True:
        t0 = pc()
        if t0 >= ends.end_ns:
            break
        try:
            task = await asyncio.wait_for(get(), (ends.end_ns - t0) / 1e9)
        except TimeoutError:
            break
        t1 = pc()
        if t1 >= ends.end_ns:
            ends.late.append((task.seq, t1))
            break
        await asyncio.sleep(task.payload[SERVICE_S])
        done(pc())
        append((task.seq, t0, t1))
    run.spans.append((start, pc()))


async def _asleep_until(at_ns: int) -> None:
    await asyncio.sleep(max(0, at_ns - pc()) / 1e9)


async def _acanceller(queue, sched: Schedule, ends: Ends, times: list[tuple[int, Task]]) -> None:
    cancelled = ends.cancelled.append
    for at, task in times:
        await _asleep_until(sched.base_ns + at)
        if queue.cancel(task):
            cancelled((task.seq, pc()))


async def _asampler(queue, sched: Schedule, ends: Ends) -> None:
    at, step = sched.base_ns, round(DEPTH_SAMPLE_S * 1e9)
    while at <= ends.end_ns:
        await _asleep_until(at)
        ends.samples.append((pc(), queue.depths()))
        at += step


def async_pass(spec: QueueSpec, tasks: list[Task], w: Workers
               ) -> tuple[PassState, Schedule, Ends]:
    """One bounded pass with worker coroutines and feeder threads (see the module doc)."""
    params: LoadParams = w.params
    end_offset_ns = round(params.duration_s * 1e9)
    run = PassState(tasks, w.producers, w.consumers)
    sched = Schedule(w.consumers)
    ends = Ends()

    async def main() -> None:
        queue = make_queue(spec, params, ends)
        q = async_face(spec, queue)
        loop = asyncio.get_running_loop()
        feeders = [threading.Thread(target=guard(run, lambda p=p: _feeder(
            run, loop, q, p, sched, ends, end_offset_ns)), daemon=True)
            for p in range(w.producers)]
        sched.start()
        ends.end_ns = sched.base_ns + end_offset_ns
        coros = [_aconsumer(run, q, c, sched, ends) for c in range(w.consumers)]
        helpers = helpers_for(queue, params)
        if "cancel" in helpers:
            coros.append(_acanceller(queue, sched, ends, give_ups(tasks, end_offset_ns)))
        if "sample" in helpers:
            coros.append(_asampler(queue, sched, ends))
        for feeder in feeders:
            feeder.start()
        await watch_tasks(run, coros, stall_deadline_s(tasks, w))
        sched.closed.set()
        for feeder in feeders:
            feeder.join(1.0)
        await asyncio.sleep(0)  # puts the feeders handed over before the end land first
        _settle(queue, q.get_nowait, ends, ASYNC_EMPTY)

    asyncio.run(main())
    return run, sched, ends


# -- what the pass gives the records --------------------------------------------------
