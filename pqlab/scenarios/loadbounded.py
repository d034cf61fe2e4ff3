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
- **Accounting.** Every offered request ends in exactly one of
  ``measure.overload.OUTCOMES``; ``outcome_series`` checks that (and, with a
  policy, that the queue's own ``counts()`` agree) and records any mismatch
  as an error of the run.

Per-level depth over time: sampled from the queue's ``depths()`` every
``DEPTH_SAMPLE_S`` where it has one, else derived from the stamps.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from pqlab.core.task import PRIORITY_LEVELS, STOP, Priority, Task
from pqlab.measure.levels import key
from pqlab.measure.overload import (
    CANCELLED,
    EXPIRED,
    NOT_OFFERED,
    OUTCOME_CODES,
    QUEUED,
    REJECTED,
    SERVED,
)
from pqlab.measure.records import Records
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
from pqlab.scenarios.loadparams import SERVICE_S, LoadParams
from pqlab.scenarios.loadschedule import IDLE_POLL_S, Schedule, stall_deadline_s

pc = time.perf_counter_ns
# 100 samples a second: a depths() call took 1.3 µs here (ThreadSafeBucketQueue with a
# policy, 400 queued), so sampling costs the queue's lock about 0.01% of the run.
DEPTH_SAMPLE_S = 0.01
ASYNC_EMPTY = (asyncio.QueueEmpty, *EMPTY_ERRORS)


class Ends:
    """How the requests of one bounded pass ended, appended by the threads that saw it.

    Lists of seqs (and stamps where the moment matters); ``counts`` is the
    queue's own ``counts()`` at the end (with a policy), ``samples`` the sampled
    ``depths()``.
    """

    def __init__(self) -> None:
        self.end_ns = 2**62  # set when the schedule starts
        self.rejected: list[int] = []
        self.cancelled: list[tuple[int, int]] = []  # (seq, stamp)
        self.expired_at: dict[int, int] = {}  # seq -> when the queue reported it
        self.expired: list[int] = []
        self.late: list[tuple[int, int]] = []  # taken after the end: (seq, stamp), queued
        self.left: list[int] = []  # still in the queue at the end
        self.counts: dict[int, dict[str, int]] | None = None
        self.samples: list[tuple[int, dict[int, int]]] = []
        self.extra: dict[str, Any] = {}  # the driver's own summary columns (redeliveries...)
        self.levels: dict[str, dict[str, Any]] = {}  # the driver's own per level (levels.Levels)

    def stamp_expiry(self, task: Task) -> None:
        """The queue's ``on_expired``: when it found ``task`` expired."""
        self.expired_at[task.seq] = pc()

    def clock(self) -> float:
        """The policy's clock (monotonic seconds, as ``perf_counter_ns``), stopped at the end.

        Nothing expires after the end, so emptying the queue then finds the
        requests expired by the end and no others, as the replay counts them.
        """
        return min(pc(), self.end_ns) / 1e9


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


def outcome_series(run: PassState, rec: Records, ends: Ends) -> dict[str, np.ndarray]:
    """Per task its outcome code (``measure.overload.OUTCOME_CODES``), ``ended_unserved``
    and ``cancel_ns`` (when a cancel removed it; 0 if none did).

    Appends to ``rec.errors`` when conservation fails: an offered task with no
    outcome or more than one, an outcome for a task never offered, or (with a
    policy) counts that differ from the queue's own ``counts()``.
    """
    position = {t.seq: i for i, t in enumerate(run.tasks)}
    served = [seq for log in run.get_logs for seq, _, _ in log]
    by_code = {SERVED: served, REJECTED: ends.rejected,
               CANCELLED: [seq for seq, _ in ends.cancelled], EXPIRED: ends.expired,
               QUEUED: [seq for seq, _ in ends.late] + ends.left}
    outcome = np.full(run.n, NOT_OFFERED, np.int8)
    hits = np.zeros(run.n, np.int64)
    for code, seqs in by_code.items():
        idx = np.fromiter((position[s] for s in seqs), np.int64, len(seqs))
        outcome[idx] = code
        np.add.at(hits, idx, 1)
    offered = rec.put_end > 0
    bad = int(np.count_nonzero(offered & (hits != 1)) + np.count_nonzero(~offered & (hits > 0)))
    if bad:
        rec.errors.append(f"conservation: {bad} tasks did not end in exactly one of "
                          f"{', '.join(OUTCOME_CODES)} (offered {int(offered.sum())})")
    if ends.counts is not None:
        late = np.zeros(run.n, bool)
        late[[position[seq] for seq in [*(s for s, _ in ends.late), *ends.left]]] = True
        rec.errors.extend(_counts_mismatch(outcome, rec.priority, late, ends.counts))
    cancel_ns = np.zeros(run.n, np.int64)
    for seq, stamp in ends.cancelled:
        cancel_ns[position[seq]] = stamp
    return {"outcome": outcome, "ended_unserved": outcome != SERVED, "cancel_ns": cancel_ns}


def _counts_mismatch(outcome: np.ndarray, priority: np.ndarray, late: np.ndarray,
                     counts: dict[int, dict[str, int]]) -> list[str]:
    """Where the queue's own counts differ from what the pass saw, one message per level.

    ``late`` marks the tasks the pass counts queued that the queue counts
    served: taken after the end, or emptied out of it then.
    """
    errors = []
    for level, got in counts.items():
        mine = priority == level
        seen = {name: int(np.count_nonzero(mine & (outcome == code)))
                for name, code in OUTCOME_CODES.items()}
        expected = {"rejected": seen["rejected"], "expired": seen["expired"],
                    "cancelled": seen["cancelled"],
                    "served": seen["served"] + int(np.count_nonzero(mine & late)),
                    "admitted": sum(seen.values()) - seen["rejected"]}
        wrong = {k: (got[k], v) for k, v in expected.items() if got[k] != v}
        if wrong:
            errors.append(f"conservation at {Priority(level).name}: the queue counted "
                          + ", ".join(f"{k} {q} against {v} seen" for k, (q, v) in wrong.items()))
    return errors


def level_depth_series(rec: Records, ends: Ends) -> dict[str, Any]:
    """Per-level depth over time: ``level_depth_at_ns`` and ``level_depth_{P}`` per priority.

    Sampled from the queue's ``depths()`` where it has one; else from the
    stamps (+1 at each admitted put's end, −1 at each take, cancel or expiry).
    """
    if ends.samples:
        at = np.fromiter((t for t, _ in ends.samples), np.int64, len(ends.samples))
        series = {key("level_depth", p): np.fromiter(
            (d.get(int(p), 0) for _, d in ends.samples), np.int64, len(ends.samples))
            for p in Priority}
        return {"level_depth_at_ns": at, **series}
    return events_depth(rec, ends)


def events_depth(rec: Records, ends: Ends) -> dict[str, np.ndarray]:
    """Per-level depth from the stamps: +1 at each admitted put's end, −1 at each way out."""
    outcome = rec.series["outcome"]
    admitted = (rec.put_end > 0) & (outcome != REJECTED) & (outcome != NOT_OFFERED)
    seq_pos = {int(s): i for i, s in enumerate(rec.seq)}
    leave_pos, leave_at = [], []
    valid = rec.get_task >= 0
    leave_pos += rec.get_task[valid].tolist()
    leave_at += rec.get_end[valid].tolist()
    for seq, t in [*ends.cancelled, *ends.late]:
        leave_pos.append(seq_pos[seq])
        leave_at.append(t)
    for seq in ends.expired:
        leave_pos.append(seq_pos[seq])
        leave_at.append(ends.expired_at.get(seq, ends.end_ns))
    pos = np.concatenate([np.flatnonzero(admitted), np.asarray(leave_pos, np.int64)])
    at = np.concatenate([rec.put_end[admitted], np.asarray(leave_at, np.int64)])
    step = np.concatenate([np.ones(int(admitted.sum()), np.int64),
                           -np.ones(len(leave_pos), np.int64)])
    order = np.argsort(at, kind="stable")
    pos, at, step = pos[order], at[order], step[order]
    prio = rec.priority[pos]
    series = {"level_depth_at_ns": at}
    for level in PRIORITY_LEVELS:
        series[key("level_depth", level)] = np.cumsum(np.where(prio == level, step, 0))
    return series


def queue_depth_series(level_series: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The total depth (``depth_at_ns``, ``depth``) from the per-level series."""
    total = sum(level_series[key("level_depth", p)] for p in Priority)
    return {"depth_at_ns": level_series["level_depth_at_ns"], "depth": np.asarray(total)}


def patience_series(tasks: list[Task]) -> np.ndarray:
    """Each task's patience in seconds (inf: never gives up)."""
    return np.fromiter((t.payload.patience_s or math.inf for t in tasks), float, len(tasks))
