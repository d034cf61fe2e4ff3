"""The four closed-loop scenarios of the POC: single, threads, async, ordering.

A closed loop puts a fixed workload as fast as the producers can and takes it
all; the passes here are built from the engine's worker loops
(``pqlab.scenarios._engine``). Open-loop load and the other drivers live in
their own modules.
"""

from __future__ import annotations

import asyncio
import threading

from pqlab.core.task import Task, make_ordering_workload
from pqlab.measure.records import Records, UntimedPass
from pqlab.queues import QueueSpec, async_face, sync_face
from pqlab.scenarios._engine import (
    PassState,
    Scenario,
    Workers,
    aconsume,
    aproduce,
    consume,
    cpu,
    guard,
    pc,
    produce,
    timed_of,
    untimed_of,
    watch_tasks,
    watch_threads,
)


def _threads_pass(spec: QueueSpec, tasks: list[Task], w: Workers, timed: bool) -> PassState:
    face = sync_face(spec, spec.factory())
    run = PassState(tasks, w.producers, w.consumers, w.producer_yield)
    barrier = threading.Barrier(w.producers + w.consumers)
    threads = [threading.Thread(target=guard(run, lambda p=p: produce(run, face, p, barrier,
                                                                          timed)), daemon=True)
               for p in range(w.producers)]
    threads += [threading.Thread(target=guard(run, lambda c=c: consume(run, face, c, barrier,
                                                                           timed)), daemon=True)
                for c in range(w.consumers)]
    watch_threads(run, threads, face, w.deadline_s)
    return run


def _single_sync_body(run: PassState, face, timed: bool) -> None:
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


def _single_sync_pass(spec: QueueSpec, tasks: list[Task], w: Workers, timed: bool) -> PassState:
    face = sync_face(spec, spec.factory())
    run = PassState(tasks, 1, 1)
    body = guard(run, lambda: _single_sync_body(run, face, timed))
    watch_threads(run, [threading.Thread(target=body, daemon=True)], face, w.deadline_s)
    return run


async def _asingle_body(run: PassState, q, timed: bool) -> None:
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


def _async_pass(spec: QueueSpec, tasks: list[Task], w: Workers, timed: bool) -> PassState:
    run = PassState(tasks, w.producers, w.consumers, w.producer_yield)

    async def main() -> None:
        q = async_face(spec, spec.factory())
        barrier = asyncio.Barrier(w.producers + w.consumers)
        coros = [aproduce(run, q, p, barrier, timed) for p in range(w.producers)]
        coros += [aconsume(run, q, c, barrier, timed) for c in range(w.consumers)]
        await watch_tasks(run, coros, w.deadline_s)

    asyncio.run(main())
    return run


def single_async_pass(spec: QueueSpec, tasks: list[Task], w: Workers, timed: bool) -> PassState:
    run = PassState(tasks, 1, 1)

    async def main() -> None:
        q = async_face(spec, spec.factory())
        await watch_tasks(run, [_asingle_body(run, q, timed)], w.deadline_s)

    asyncio.run(main())
    return run


def _single_pass(spec: QueueSpec, tasks: list[Task], w: Workers, timed: bool) -> PassState:
    if spec.has_sync_face:
        return _single_sync_pass(spec, tasks, w, timed)
    return single_async_pass(spec, tasks, w, timed)


def _concurrent_pass(spec: QueueSpec, tasks: list[Task], w: Workers, timed: bool) -> PassState:
    if spec.has_sync_face and spec.thread_safe:
        return _threads_pass(spec, tasks, w, timed)
    return _async_pass(spec, tasks, w, timed)


def _can_single(spec: QueueSpec) -> bool:
    return True


def _can_threads(spec: QueueSpec) -> bool:
    return spec.has_sync_face and spec.thread_safe


def _can_async(spec: QueueSpec) -> bool:
    return spec.has_async_face and spec.async_safe


def _ordering_timed(spec: QueueSpec, tasks: list[Task], w: Workers) -> list[Records]:
    passes = [_single_pass(spec, tasks, w, True).records(False, "sequential")]
    if _can_threads(spec) or _can_async(spec):
        passes.append(_concurrent_pass(spec, tasks, w, True).records(True, "concurrent"))
    return passes


def _ordering_untimed(spec: QueueSpec, tasks: list[Task], w: Workers) -> UntimedPass:
    pass_fn = _concurrent_pass if (_can_threads(spec) or _can_async(spec)) else _single_pass
    return untimed_of(pass_fn)(spec, tasks, w)


SINGLE = Scenario(
    "single", "Test 1: enqueue N, then dequeue all, one thread", "any queue",
    _can_single, timed_of(_single_pass, False, "sequential"), untimed_of(_single_pass),
    uses_workers=False)
THREADS = Scenario(
    "threads", "Test 2: P producer and C consumer threads", "a thread-safe queue with a sync face",
    _can_threads, timed_of(_threads_pass, True, "threads"), untimed_of(_threads_pass))
ASYNC = Scenario(
    "async", "Test 3: P producer and C consumer coroutines",
    "an async-safe queue with an async face",
    _can_async, timed_of(_async_pass, True, "async"), untimed_of(_async_pass))
ORDERING = Scenario(
    "ordering", "Test 4: a workload built to expose ordering bugs, sequential and concurrent",
    "any queue", _can_single, _ordering_timed, _ordering_untimed,
    workload=make_ordering_workload)
