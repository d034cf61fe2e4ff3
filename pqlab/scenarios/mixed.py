"""Scenarios ``mixed`` and ``mixed-reverse``: coroutines and threads on one bridge queue.

``mixed``: P producer coroutines on an event loop feed C consumer threads
(async request handlers feeding worker threads); ``mixed-reverse``: P
producer threads feed C consumer coroutines. The workers are the ones of
``threads`` and ``async`` (same stamps, same stop rule: the consumer taking
the N-th task puts a sentinel for each other consumer), under the same
deadline watchdog.

While they run, a probe measures the event loop's lag: a ``call_later``
every ``LAG_PERIOD_S`` and how late it fired, since a queue that holds up
the loop delays every request the service handles. The lags go to
``Records.series["loop_lag_ns"]`` and their p50, p99 and max (µs) to
``Records.extra``. The probe runs in the untimed pass too, so throughput is
measured under the same load.
"""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np

from pqlab.core.task import Task
from pqlab.measure.records import Records, UntimedPass
from pqlab.queues import QueueSpec, async_face, sync_face
from pqlab.scenarios._engine import (
    WATCH_POLL_S,
    PassState,
    Scenario,
    Watchdog,
    Workers,
    aconsume,
    aproduce,
    consume,
    finish,
    guard,
    produce,
)

pc = time.perf_counter_ns
# One probe a millisecond: about 1 µs of loop work per ms (0.1 %), and enough
# samples for a p99 in a run of 0.1 s.
LAG_PERIOD_S = 0.001


class LoopLagProbe:
    """Fires a ``call_later(period)`` again and again; records how late each one fired (ns)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, period_s: float = LAG_PERIOD_S) -> None:
        self.loop = loop
        self.period_s = period_s
        self.period_ns = round(period_s * 1e9)
        self.lags_ns: list[int] = []
        self._due_ns = 0
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._due_ns = pc() + self.period_ns
        self._handle = self.loop.call_later(self.period_s, self._fire)

    def _fire(self) -> None:
        now = pc()
        # The loop may run a timer up to its clock resolution early: not a lag.
        self.lags_ns.append(max(0, now - self._due_ns))
        self._due_ns = now + self.period_ns
        self._handle = self.loop.call_later(self.period_s, self._fire)

    def stop(self) -> np.ndarray:
        if self._handle is not None:
            self._handle.cancel()
        return np.asarray(self.lags_ns, np.int64)


def lag_summary(lags_ns: np.ndarray) -> dict[str, float]:
    """p50, p99 and max of the loop lags, in µs (NaN without samples)."""
    if len(lags_ns) == 0:
        return {"loop_lag_p50_us": float("nan"), "loop_lag_p99_us": float("nan"),
                "loop_lag_max_us": float("nan")}
    us = lags_ns / 1e3
    return {"loop_lag_p50_us": float(np.percentile(us, 50)),
            "loop_lag_p99_us": float(np.percentile(us, 99)),
            "loop_lag_max_us": float(us.max())}


class _MixedPass:
    """One pass: worker threads and worker coroutines on one queue, the probe, the watchdog."""

    def __init__(self, spec: QueueSpec, tasks: list[Task], w: Workers, timed: bool,
                 reverse: bool) -> None:
        self.spec, self.w, self.timed, self.reverse = spec, w, timed, reverse
        self.run = PassState(tasks, w.producers, w.consumers, w.producer_yield)
        self.lags_ns = np.zeros(0, np.int64)

    def execute(self) -> _MixedPass:
        asyncio.run(self._main())
        return self

    async def _main(self) -> None:
        run, w, timed = self.run, self.w, self.timed
        loop = asyncio.get_running_loop()
        # Made inside the running loop, so a bridge that binds a loop when made can.
        obj = self.spec.factory()
        sq, aq = sync_face(self.spec, obj), async_face(self.spec, obj)
        go_threads, go_coros = threading.Event(), asyncio.Event()  # start signals
        threads_left = [w.consumers if not self.reverse else w.producers]
        threads_done = loop.create_future()

        def thread_ended() -> None:
            threads_left[0] -= 1
            if not threads_left[0] and not threads_done.done():
                threads_done.set_result(None)

        def in_thread(body):
            def target() -> None:
                try:
                    guard(run, body)()
                finally:
                    loop.call_soon_threadsafe(thread_ended)
            return threading.Thread(target=target, daemon=True)

        if self.reverse:
            threads = [in_thread(lambda p=p: produce(run, sq, p, go_threads, timed))
                       for p in range(w.producers)]
            coros = [aconsume(run, aq, c, go_coros, timed) for c in range(w.consumers)]
        else:
            threads = [in_thread(lambda c=c: consume(run, sq, c, go_threads, timed))
                       for c in range(w.consumers)]
            coros = [aproduce(run, aq, p, go_coros, timed) for p in range(w.producers)]
        for t in threads:
            t.start()
        tasks = [asyncio.ensure_future(c) for c in coros]
        probe = LoopLagProbe(loop)
        probe.start()
        go_coros.set()
        go_threads.set()
        try:
            await self._watch(tasks, threads_done, sq)
        finally:
            self.lags_ns = probe.stop()
        for t in threads:
            t.join(1.0)

    async def _watch(self, tasks: list[asyncio.Task], threads_done: asyncio.Future, sq) -> None:
        """Wait for every worker; after an error or ``deadline_s`` without progress, stop them."""
        run, deadline_s = self.run, self.w.deadline_s
        dog = Watchdog(run.progress, deadline_s)
        pending = {*tasks, threads_done}
        while pending:
            done, pending = await asyncio.wait(pending, timeout=WATCH_POLL_S,
                                               return_when=asyncio.FIRST_COMPLETED)
            for d in done:
                if d is not threads_done and not d.cancelled() and d.exception() is not None:
                    exc = d.exception()
                    run.errors.append(f"{type(exc).__name__}: {exc}")
            if run.errors or dog.stalled():
                break
        if not pending:
            return
        if not run.errors:
            run.errors.append(run.stall_error(deadline_s))
        run.stop.set()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if not self.reverse:  # wake consumer threads blocked in get()
            try:
                finish(run, sq.put)
                sq.put(run.sentinels[-1])
            except Exception:  # noqa: BLE001 - the queue is already broken; errors hold why
                pass

    def records(self) -> Records:
        rec = self.run.records(True, "mixed-reverse" if self.reverse else "mixed")
        rec.extra.update(lag_summary(self.lags_ns))
        rec.series["loop_lag_ns"] = self.lags_ns
        return rec


def _can_mix(spec: QueueSpec) -> bool:
    return spec.has_sync_face and spec.has_async_face and spec.thread_safe and spec.async_safe


def _timed(reverse: bool):
    def timed(spec: QueueSpec, tasks: list[Task], w: Workers) -> list[Records]:
        return [_MixedPass(spec, tasks, w, True, reverse).execute().records()]

    return timed


def _untimed(reverse: bool):
    def untimed(spec: QueueSpec, tasks: list[Task], w: Workers) -> UntimedPass:
        run = _MixedPass(spec, tasks, w, False, reverse).execute().run
        return UntimedPass(run.wall_ns(), run.gets(), list(run.errors), run.cpu_ns())

    return untimed


REQUIREMENT = "a queue with a thread-safe sync face and an async face (api='bridge')"
MIXED = Scenario(
    "mixed", "P producer coroutines on an event loop, C consumer threads; event-loop lag",
    REQUIREMENT, _can_mix, _timed(False), _untimed(False))
MIXED_REVERSE = Scenario(
    "mixed-reverse", "P producer threads, C consumer coroutines on an event loop; event-loop lag",
    REQUIREMENT, _can_mix, _timed(True), _untimed(True), in_poc=False)
