"""The service's worker modes: who takes requests out of the queue and how inference runs.

Each mode stands in for a real kind of inference:

- ``async``: worker coroutines on the event loop awaiting I/O (a GPU or a
  model process answering): a sleep of ``work`` on the loop's timers (never
  shorter, ``sleep_at_least``; often longer, so every reply carries the
  measured ``service_ms``).
- ``threads``: worker threads fed through a bridging queue (handlers put on
  its asyncio face, threads get on its thread face) sleeping ``work``; with
  ``holds_gil`` they busy-loop in Python instead, holding the GIL as
  CPU-bound inference in Python does, which the event loop then waits on.
- ``processes``: CPU inference in worker processes (spawned: a fork of a
  process running uvloop and threads is unsafe); one dispatcher coroutine
  per process takes a request from the queue and awaits its process's reply.

A queue fits a mode by its faces (``modes_for``); ``check_fit`` refuses the
rest in one line. Workers stop through the queue's own ``shutdown`` where it
has one (its gets then raise once the queue is empty), else through stop
sentinels, which go after every request.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import culsans
import janus

from pqlab.queues import QUEUES, QueueSpec
from pqlab.queues.asyncqueue import QueueShutDown
from pqlab.queues.policy import QueuePolicy
from pqlab.queues.syncqueue import ShutDown
from pqlab.service.requests import Job

MODES = ("async", "threads", "processes")
MODE_NEEDS = {
    "async": "a queue with an asyncio face",
    "threads": "a bridging queue (an asyncio face for handlers, a thread face for workers)",
    "processes": "a queue with an asyncio face (its dispatchers are coroutines)",
}
# What a get raises on a queue that was shut down and is empty, per library.
SHUTDOWN_ERRORS = (QueueShutDown, ShutDown, janus.SyncQueueShutDown, janus.AsyncQueueShutDown,
                   culsans.SyncQueueShutDown, culsans.AsyncQueueShutDown)
STOP_WAIT_S = 5.0  # the longest stop() waits for a worker beyond its current service


class ServiceError(ValueError):
    """A queue, mode or policy the service cannot run: the message names what fits."""


def modes_for(spec: QueueSpec) -> list[str]:
    """The worker modes ``spec`` can serve, in ``MODES`` order."""
    asyncio_face = spec.async_safe and spec.has_async_face
    able = {"async": asyncio_face, "threads": spec.api == "bridge", "processes": asyncio_face}
    return [mode for mode in MODES if able[mode]]


def takes_policy(spec: QueueSpec) -> bool:
    """Whether ``spec``'s queues take ``policy=`` (the bucket queues)."""
    return spec.takes_policy


def check_fit(spec: QueueSpec, mode: str, policy: QueuePolicy | None) -> None:
    """``ServiceError`` in one line unless ``spec`` serves ``mode`` and takes ``policy``."""
    if mode not in MODES:
        raise ServiceError(f"worker mode {mode!r} unknown; allowed: {', '.join(MODES)}")
    able = modes_for(spec)
    if mode not in able:
        fits = f"it fits {', '.join(able)}" if able else "it fits no mode"
        others = [name for name, s in QUEUES.items() if mode in modes_for(s)]
        raise ServiceError(f"queue {spec.name!r} cannot serve worker mode {mode!r}, which "
                           f"needs {MODE_NEEDS[mode]}; {fits} (queues for {mode}: "
                           f"{', '.join(others)})")
    if policy is not None and not takes_policy(spec):
        others = [name for name, s in QUEUES.items() if takes_policy(s) and mode in modes_for(s)]
        raise ServiceError(f"queue {spec.name!r} takes no queue policy (--policy); queues that "
                           f"do in mode {mode}: {', '.join(others)}")


def spin(seconds: float) -> int:
    """Busy-loop in Python for ``seconds`` (holding the GIL as it runs); the ns it took."""
    pc = time.perf_counter_ns
    start = pc()
    end = start + round(seconds * 1e9)
    while pc() < end:
        pass
    return pc() - start


async def sleep_at_least(seconds: float) -> None:
    """``asyncio.sleep`` that never returns early: uvloop's millisecond timers do.

    Measured here: ``asyncio.sleep(0.005)`` under uvloop returned after 4.2 ms;
    the remainder is slept again (a few wake-ups of under a millisecond).
    """
    pc = time.perf_counter
    end = pc() + seconds
    while (left := end - pc()) > 0:
        await asyncio.sleep(left)


def _ignore_sigint() -> None:
    # A Ctrl-C reaches the whole process group: the server shuts the pool down itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class Workers:
    """A mode's workers over one queue; ``scheduler`` takes, serves and answers each job.

    ``get`` is the face the workers take from; ``stop`` the queue's shutdown,
    or None (then stop sentinels are put).
    """

    def __init__(self, scheduler: Any, count: int, holds_gil: bool = False) -> None:
        self.scheduler = scheduler
        self.count = count
        self.holds_gil = holds_gil

    async def start(self) -> None:
        """Start the workers on the running loop; returns when every one can take a job."""
        raise NotImplementedError

    async def stop(self) -> None:
        """Stop every worker; each finishes the service it is in (bounded by STOP_WAIT_S)."""
        raise NotImplementedError

    async def _stop_queue(self) -> None:
        shutdown = getattr(self.scheduler.raw_queue, "shutdown", None)
        if callable(shutdown):
            self.scheduler.queue.shutdown()
        else:
            for _ in range(self.count):
                await self.scheduler.put(Job.sentinel())

    async def _jobs(self, get: Callable) -> AsyncIterator[Job]:
        """The jobs a worker coroutine serves, until shutdown or a stop sentinel: each one
        the scheduler let it take (a job whose client left is skipped)."""
        while True:
            try:
                job = await get()
            except SHUTDOWN_ERRORS:
                return
            if job.is_stop:
                return
            if self.scheduler.take(job):
                yield job

    async def _stop_tasks(self) -> None:
        """Stop the queue, then wait for the worker coroutines (cancelled past STOP_WAIT_S)."""
        await self._stop_queue()
        _, late = await asyncio.wait(self.tasks, timeout=STOP_WAIT_S)
        for task in late:
            task.cancel()


class AsyncWorkers(Workers):
    """Worker coroutines: ``await get()``, then ``await asyncio.sleep(work)``."""

    async def start(self) -> None:
        get = self.scheduler.async_face.get
        self.tasks = [asyncio.create_task(self._work(get)) for _ in range(self.count)]

    async def _work(self, get: Callable) -> None:
        scheduler, pc = self.scheduler, time.perf_counter_ns
        async for job in self._jobs(get):
            start = pc()
            await sleep_at_least(job.work_s)
            scheduler.served(job, pc() - start)

    async def stop(self) -> None:
        await self._stop_tasks()


class ThreadWorkers(Workers):
    """Worker threads on the bridge's thread face: ``get()``, then sleep (or spin) ``work``."""

    async def start(self) -> None:
        get = self.scheduler.sync_face.get
        self.threads = [threading.Thread(target=self._work, args=(get,), daemon=True,
                                         name=f"pqlab-worker-{i}") for i in range(self.count)]
        for thread in self.threads:
            thread.start()

    def _work(self, get: Callable) -> None:
        scheduler, pc, sleep = self.scheduler, time.perf_counter_ns, time.sleep
        holds_gil = self.holds_gil
        while True:
            try:
                job = get()
            except SHUTDOWN_ERRORS:
                return
            if job.is_stop:
                return
            if not scheduler.take(job):
                continue
            start = pc()
            if holds_gil:
                spin(job.work_s)
            else:
                sleep(job.work_s)
            scheduler.served(job, pc() - start)

    async def stop(self) -> None:
        await self._stop_queue()
        deadline = time.monotonic() + STOP_WAIT_S
        while any(t.is_alive() for t in self.threads) and time.monotonic() < deadline:
            await asyncio.sleep(0.005)


class ProcessWorkers(Workers):
    """Worker processes spinning the CPU; a dispatcher coroutine per process feeds each."""

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.pool = ProcessPoolExecutor(self.count, multiprocessing.get_context("spawn"),
                                        initializer=_ignore_sigint)
        # Start every process now (each imports pqlab), not on the first requests.
        await asyncio.gather(*(loop.run_in_executor(self.pool, spin, 0.05)
                               for _ in range(self.count)))
        get = self.scheduler.async_face.get
        self.tasks = [asyncio.create_task(self._dispatch(get)) for _ in range(self.count)]

    async def _dispatch(self, get: Callable) -> None:
        scheduler, loop = self.scheduler, asyncio.get_running_loop()
        async for job in self._jobs(get):
            try:
                service_ns = await loop.run_in_executor(self.pool, spin, job.work_s)
            except Exception as exc:  # noqa: BLE001 - a worker process died: answered 500
                scheduler.failed(job, exc)
            else:
                scheduler.served(job, service_ns)

    async def stop(self) -> None:
        await self._stop_tasks()
        with contextlib.suppress(Exception):  # a pool broken by a killed process: nothing left
            await asyncio.to_thread(self.pool.shutdown, wait=True, cancel_futures=True)


WORKERS: dict[str, type[Workers]] = {"async": AsyncWorkers, "threads": ThreadWorkers,
                                     "processes": ProcessWorkers}
