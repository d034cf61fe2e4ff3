"""Idle burn: the CPU that consumers spend waiting on an EMPTY queue, in cores.

A scheduler's workers wait most of the time; a queue whose ``get`` does not
block makes the scenarios' consumer loop retry (``time.sleep(0)`` after
``queue.Empty``), and that spinning costs a core the serving process could
use. The consumers here are the scenarios' own (``scenarios._consumer``,
``scenarios._aconsumer``), so what is measured is what the sweeps run:

- ``threads``: C consumer threads on the sync face;
- ``async``: C consumer coroutines on one event loop (in a thread of its own);
- ``mixed``: C consumer threads on the sync face of a bridge queue whose
  event loop runs idle beside them.

Only the consumers' CPU counts: ``time.thread_time_ns()`` in each consumer
thread, or in the loop's thread for ``async``, from before the start signal
until the thread stops, so other threads of the process (a notebook kernel's,
a test runner's) do not. Cores = that CPU / the wall time from the start
signal until every consumer stopped (at least ``seconds``). Consumers are
stopped as the scenarios stop them, with one stop sentinel each.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import Callable, Iterable

import pandas as pd

from pqlab import config
from pqlab.loops import run_in_loop_thread
from pqlab.queues import QUEUES, QueueSpec, async_face, sync_face
from pqlab.runner import resolve, supported_pairs
from pqlab.scenarios import _aconsumer, _consumer, _guard, _Run

pc = time.perf_counter_ns
DEFAULT_CONSUMERS = config.REFERENCE_WORKERS  # the workers the decision is judged at
DEFAULT_SECONDS = 1.0  # long enough for a spinning loop's share to settle within a few %
JOIN_S = 10.0  # a consumer gets its sentinel within ms; this only bounds a broken queue
COLUMNS = ["queue", "scenario", "consumers", "seconds", "idle_cores"]


class IdleBurnError(RuntimeError):
    """The consumers raised, or did not stop within ``JOIN_S`` of their sentinels."""


def _check(run: _Run, stuck: int, what: str) -> None:
    if run.errors:
        raise IdleBurnError(f"{what}: {run.errors[0]}")
    if stuck:
        raise IdleBurnError(f"{what}: {stuck} consumers did not stop within {JOIN_S:g} s "
                            "of their stop sentinels")


def _burn_threads(face, consumers: int, seconds: float, what: str) -> float:
    """C scenario consumer threads on ``face`` for ``seconds``: their CPU / wall, cores."""
    run = _Run([], 1, consumers)
    go = threading.Barrier(consumers + 1)
    cpu_ns = [0] * consumers

    def consume(c: int) -> None:
        t0 = time.thread_time_ns()
        try:
            _consumer(run, face, c, go, False)
        finally:
            cpu_ns[c] = time.thread_time_ns() - t0

    threads = [threading.Thread(target=_guard(run, functools.partial(consume, c)), daemon=True)
               for c in range(consumers)]
    for thread in threads:
        thread.start()
    go.wait(JOIN_S)
    start = pc()
    time.sleep(seconds)
    for sentinel in run.sentinels:
        face.put(sentinel)
    deadline = time.monotonic() + JOIN_S
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    wall_ns = pc() - start
    run.stop.set()  # a consumer that spins past its sentinel stops at its next empty get
    _check(run, sum(t.is_alive() for t in threads), what)
    return sum(cpu_ns) / wall_ns


def _threads(spec: QueueSpec, consumers: int, seconds: float) -> float:
    face = sync_face(spec, spec.factory())
    return _burn_threads(face, consumers, seconds, f"{spec.name} in threads")


def _async(spec: QueueSpec, consumers: int, seconds: float) -> float:
    run, what, cores = _Run([], 1, consumers), f"{spec.name} in async", [0.0]

    async def main() -> None:
        q = async_face(spec, spec.factory())
        go = asyncio.Barrier(consumers + 1)
        tasks = [asyncio.ensure_future(_aconsumer(run, q, c, go, False))
                 for c in range(consumers)]
        cpu0 = time.thread_time_ns()
        await go.wait()
        start = pc()
        await asyncio.sleep(seconds)
        for sentinel in run.sentinels:
            await q.put(sentinel)
        _, pending = await asyncio.wait(tasks, timeout=JOIN_S)
        cores[0] = (time.thread_time_ns() - cpu0) / (pc() - start)
        for task in pending:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        _check(run, len(pending), what)

    run_in_loop_thread(main, "pqlab-idle-loop")
    return cores[0]


def _mixed(spec: QueueSpec, consumers: int, seconds: float) -> float:
    ready, faces, what = threading.Event(), {}, f"{spec.name} in mixed"

    async def main() -> None:
        obj = spec.factory()  # inside the running loop: a bridge may bind it when made
        done = asyncio.Event()
        faces.update(sync=sync_face(spec, obj), loop=asyncio.get_running_loop(), done=done)
        ready.set()
        await done.wait()

    result: list[float] = []

    def measure() -> None:
        ready.wait(JOIN_S)
        try:
            result.append(_burn_threads(faces["sync"], consumers, seconds, what))
        finally:
            faces["loop"].call_soon_threadsafe(faces["done"].set)

    orchestrator = threading.Thread(target=measure, daemon=True)
    orchestrator.start()
    run_in_loop_thread(main, "pqlab-idle-loop")
    orchestrator.join()
    if not result:
        raise IdleBurnError(f"{what}: the consumers failed (see above)")
    return result[0]


CONTEXTS: dict[str, Callable[[QueueSpec, int, float], float]] = {
    "threads": _threads, "async": _async, "mixed": _mixed}


def idle_burn(queue: str, scenario: str, consumers: int = DEFAULT_CONSUMERS,
              seconds: float = DEFAULT_SECONDS) -> float:
    """Cores that ``consumers`` of ``scenario`` burn on an empty ``queue`` over ``seconds``.

    Blocks for ``seconds`` plus the consumers' stop. Raises ``ValueError`` for an
    unknown queue or scenario, a scenario the queue cannot do or one without
    idle consumers (allowed: threads, async, mixed), bad counts; ``IdleBurnError``
    when the consumers raise or do not stop.
    """
    if scenario not in CONTEXTS:
        raise ValueError(f"idle burn scenario must be one of {', '.join(CONTEXTS)}, "
                         f"got {scenario!r}")
    spec, _ = resolve(queue, scenario)
    if not isinstance(consumers, int) or isinstance(consumers, bool) or consumers <= 0:
        raise ValueError(f"consumers must be a positive integer, got {consumers!r}")
    if not isinstance(seconds, int | float) or not seconds > 0:
        raise ValueError(f"seconds must be a positive number, got {seconds!r}")
    return CONTEXTS[scenario](spec, consumers, float(seconds))


def idle_frame(queues: Iterable[str], scenarios: Iterable[str],
               consumers: int = DEFAULT_CONSUMERS,
               seconds: float = DEFAULT_SECONDS,
               progress: Callable[[str, str, float], None] | None = None) -> pd.DataFrame:
    """``idle_burn`` for every (queue, scenario) pair that can run, one row each
    (columns ``COLUMNS``); ``progress(queue, scenario, cores)`` after each."""
    queues, scenarios = list(queues), list(scenarios)
    for scenario in scenarios:
        if scenario not in CONTEXTS:
            raise ValueError(f"idle burn scenario must be one of {', '.join(CONTEXTS)}, "
                             f"got {scenario!r}")
    for queue in queues:
        if queue not in QUEUES:
            raise ValueError(f"unknown queue {queue!r}; allowed: {', '.join(QUEUES)}")
    rows = []
    for queue, scenario in supported_pairs(queues, scenarios):
        cores = idle_burn(queue, scenario, consumers, seconds)
        rows.append({"queue": queue, "scenario": scenario, "consumers": consumers,
                     "seconds": float(seconds), "idle_cores": cores})
        if progress is not None:
            progress(queue, scenario, cores)
    return pd.DataFrame(rows, columns=COLUMNS)
