"""What a scheduler needs of its queue beyond speed, probed on each registered queue.

Each probe builds a fresh queue and tries the feature for real (nothing is
read from documentation or typed in): a blocking ``get`` with a timeout, a
``shutdown`` that wakes waiting getters, an async ``get`` that loses no task
when it is cancelled, one queue with a thread face and an asyncio face, a
bounded capacity that refuses a put past it, and what a serving queue needs
(the model servers' request queues: Triton, vLLM): a limit per priority
level, deadlines (an expired request is never served), cancelling a queued
request, and outcome counters for metrics. ``probe(name)`` returns a
``Features`` record; ``features_frame()`` one row per queue for the ADR.

Process-safe queues (``multiprocessing``, ``redis``) are not probed: they
need a server or a manager and serve no in-process context.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue as stdlib_queue
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import pandas as pd

from pqlab.core.loops import run_in_loop_thread
from pqlab.core.task import Priority, Task
from pqlab.queues import QUEUES, QueueSpec, async_face, sync_face
from pqlab.queues.policy import LevelPolicy, QueuePolicy

# A probe waits this long for a get that should time out or be woken: long
# enough to tell "blocks then returns" from "returns at once" on a busy
# machine, short enough that probing every queue takes well under a second.
PROBE_TIMEOUT_S = 0.02
# A get that should have returned (woken by shutdown, or timed out) but is
# still blocked after this long counts as "does not".
PROBE_DEADLINE_S = 5.0
# A get of a task that is already queued returns at once; a second is room for a busy box.
PRESENT_WAIT_S = 1.0

FEATURES = ("get_timeout", "shutdown", "cancel_safe_get", "sync_and_async", "bounded",
            "level_limits", "deadlines", "cancel_queued", "counters")
FEATURE_TITLES = {
    "get_timeout": "blocking get with timeout",
    "shutdown": "shutdown",
    "cancel_safe_get": "cancel-safe async get",
    "sync_and_async": "sync and async face",
    "bounded": "bounded capacity",
    "level_limits": "limit per priority level",
    "deadlines": "deadlines",
    "cancel_queued": "cancel a queued request",
    "counters": "outcome counters",
}
# The features a serving queue needs beyond put and get (the model servers' queues).
SERVING = ("level_limits", "deadlines", "cancel_queued", "counters")


@dataclass(frozen=True)
class Features:
    """One queue's probed features (``None``: does not apply to its faces)."""

    queue: str
    get_timeout: bool | None  # sync face: get(timeout=) raises Empty once the time is up
    shutdown: bool | None  # shutdown() wakes a blocked getter, which then raises
    cancel_safe_get: bool | None  # async face: a cancelled get() leaves the task queued
    sync_and_async: bool  # one queue object with a thread face and an asyncio face
    bounded: bool  # factory(maxsize=1) refuses a second put without blocking
    level_limits: bool = False  # a full level refuses a put at once; other levels still admit
    deadlines: bool = False  # a request past its timeout is skipped by get and reported
    cancel_queued: bool = False  # cancel(item) removes a queued request
    counters: bool = False  # counts() per level: admitted, served, ...

    def has(self, feature: str) -> bool:
        return bool(getattr(self, feature))


def _task(seq: int = 0) -> Task:
    return Task(priority=Priority.NORMAL, seq=seq, timestamp=0.0, task_id=f"probe-{seq}",
                model_id="probe")


def _raises(call: Callable[[], object]) -> BaseException | None:
    try:
        call()
    except BaseException as exc:  # noqa: BLE001 - any refusal counts, and says which
        return exc
    return None


def probe_get_timeout(spec: QueueSpec) -> bool | None:
    """``get(timeout=PROBE_TIMEOUT_S)`` on an empty queue raises ``queue.Empty`` after waiting."""
    if not spec.has_sync_face:
        return None
    face = sync_face(spec, spec.factory())
    start = time.perf_counter()
    exc = _raises(lambda: face.get(timeout=PROBE_TIMEOUT_S))
    waited = time.perf_counter() - start
    return isinstance(exc, stdlib_queue.Empty) and waited >= PROBE_TIMEOUT_S * 0.9


def _shutdown_of(spec: QueueSpec, obj: object) -> Callable[[], object] | None:
    return getattr(obj, "shutdown", None) or getattr(sync_face(spec, obj), "shutdown", None)


def probe_shutdown(spec: QueueSpec) -> bool | None:
    """``shutdown()`` wakes a getter blocked on the empty queue, which then raises.

    A thread getter on a sync face; on an async-only queue, a getter coroutine.
    """
    obj = spec.factory()
    shutdown = _shutdown_of(spec, obj)
    if shutdown is None:
        return False
    if spec.has_sync_face:
        return _sync_shutdown_wakes(sync_face(spec, obj), shutdown)
    return run_in_loop_thread(lambda: _async_shutdown_wakes(async_face(spec, obj), shutdown))


def _sync_shutdown_wakes(face, shutdown: Callable[[], object]) -> bool:
    outcome: list[BaseException | None] = []
    blocked = threading.Event()

    def getter() -> None:
        blocked.set()
        outcome.append(_raises(lambda: face.get(timeout=PROBE_DEADLINE_S)))

    thread = threading.Thread(target=getter, daemon=True)
    thread.start()
    blocked.wait(PROBE_DEADLINE_S)
    time.sleep(PROBE_TIMEOUT_S)  # let the getter reach its wait; a late shutdown is fine too
    with contextlib.suppress(Exception):
        shutdown()
    thread.join(PROBE_DEADLINE_S)
    woken = bool(outcome) and outcome[0] is not None
    return woken and not isinstance(outcome[0], stdlib_queue.Empty)


async def _async_shutdown_wakes(face, shutdown: Callable[[], object]) -> bool:
    getter = asyncio.ensure_future(face.get())
    await asyncio.sleep(0)
    with contextlib.suppress(Exception):
        shutdown()
    done, _ = await asyncio.wait([getter], timeout=PROBE_DEADLINE_S)
    if not done:
        getter.cancel()
        return False
    return getter.exception() is not None


def probe_cancel_safe_get(spec: QueueSpec) -> bool | None:
    """A get() cancelled just after a put woke it leaves the task in the queue.

    The race a request handler meets when its client disconnects: the task
    was handed to the getter, the getter is cancelled before it runs. Safe
    means the task is still there (or the get returned it despite the cancel).
    """
    if not spec.has_async_face:
        return None
    return run_in_loop_thread(lambda: _cancel_race(spec))


async def _cancel_race(spec: QueueSpec) -> bool:
    face = async_face(spec, spec.factory())
    getter = asyncio.ensure_future(face.get())
    await asyncio.sleep(0)  # the getter now waits on the empty queue
    await face.put(_task())
    getter.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await getter
    if not getter.cancelled() and getter.exception() is None:
        return True  # the get won the race and returned the task: nothing lost
    try:  # the task is queued: a get returns it at once, not after a wait
        await asyncio.wait_for(face.get(), PRESENT_WAIT_S)
    except TimeoutError:
        return False
    return True


def probe_bounded(spec: QueueSpec) -> bool:
    """``factory(maxsize=1)`` takes one put and refuses a second without blocking."""
    try:
        obj = spec.factory(maxsize=1)
    except TypeError:
        return False
    if spec.has_sync_face:
        face = sync_face(spec, obj)
        first = _raises(lambda: face.put(_task(0), block=False))
        second = _raises(lambda: face.put(_task(1), block=False))
        return first is None and isinstance(second, stdlib_queue.Full)
    face = async_face(spec, obj)
    first = _raises(lambda: face.put_nowait(_task(0)))
    second = _raises(lambda: face.put_nowait(_task(1)))
    return first is None and isinstance(second, asyncio.QueueFull)


# -- the serving features: tried through the object's (or its sync face's) methods ----------

PROBE_LEVEL = Priority.LOW  # the level a probe limits or times out; CRITICAL stays free


class _Clock:
    """A clock the probe moves by hand, so a deadline passes without waiting."""

    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


def _with_policy(spec: QueueSpec, level: dict, clock: _Clock | None = None) -> object | None:
    """``factory(policy=...)`` limiting or timing out ``PROBE_LEVEL``; None when refused."""
    policy = QueuePolicy(levels={int(PROBE_LEVEL): LevelPolicy(**level)})
    try:
        return spec.factory(policy=policy, **({"clock": clock} if clock else {}))
    except Exception:  # noqa: BLE001 - a factory without policies refuses in its own way
        return None


def _method(spec: QueueSpec, obj: object, name: str) -> Callable | None:
    face = sync_face(spec, obj) if spec.has_sync_face else async_face(spec, obj)
    return getattr(obj, name, None) or getattr(face, name, None)


def _put(spec: QueueSpec, obj: object, item: Task) -> None:
    if spec.has_sync_face:
        sync_face(spec, obj).put(item)
    else:
        async_face(spec, obj).put_nowait(item)


def _get(spec: QueueSpec, obj: object) -> object:
    """A get that must not wait: the probes call it only with a live request queued."""
    if spec.has_sync_face:
        face = sync_face(spec, obj)
        try:
            return face.get(timeout=PRESENT_WAIT_S)
        except TypeError:
            return face.get()
    return async_face(spec, obj).get_nowait()


def _level_task(priority: Priority, seq: int) -> Task:
    return Task(priority=priority, seq=seq, timestamp=0.0, task_id=f"probe-{seq}",
                model_id="probe")


def probe_level_limits(spec: QueueSpec) -> bool:
    """A limit of 1 on LOW: a second LOW put raises at once, a CRITICAL put still fits."""
    obj = _with_policy(spec, {"max_queue_size": 1})
    if obj is None:
        return False
    first = _raises(lambda: _put(spec, obj, _level_task(PROBE_LEVEL, 0)))
    second = _raises(lambda: _put(spec, obj, _level_task(PROBE_LEVEL, 1)))
    other = _raises(lambda: _put(spec, obj, _level_task(Priority.CRITICAL, 2)))
    return first is None and second is not None and other is None


def probe_deadlines(spec: QueueSpec) -> bool:
    """LOW times out after 1 s: past it, get skips the LOW request for a later CRITICAL one
    and the expired request is reported (``drain_expired``)."""
    clock = _Clock()
    obj = _with_policy(spec, {"default_timeout_s": 1.0}, clock)
    drain = _method(spec, obj, "drain_expired") if obj is not None else None
    if drain is None:
        return False
    late = _level_task(PROBE_LEVEL, 0)
    _put(spec, obj, late)
    clock.now_s = 2.0
    fresh = _level_task(Priority.CRITICAL, 1)
    _put(spec, obj, fresh)
    got = _get(spec, obj)
    return got is fresh and late in drain()


def probe_cancel_queued(spec: QueueSpec) -> bool:
    """``cancel(item)`` on a queued request removes it: the next get returns the one behind."""
    obj = spec.factory()
    cancel = _method(spec, obj, "cancel")
    if cancel is None:
        return False
    first, second = _level_task(Priority.NORMAL, 0), _level_task(Priority.NORMAL, 1)
    _put(spec, obj, first)
    _put(spec, obj, second)
    return bool(cancel(first)) and _get(spec, obj) is second


def probe_counters(spec: QueueSpec) -> bool:
    """``counts()`` after one put and one get at LOW says one admitted and one served."""
    obj = _with_policy(spec, {"max_queue_size": 1})
    counts = _method(spec, obj, "counts") if obj is not None else None
    if counts is None:
        return False
    _put(spec, obj, _level_task(PROBE_LEVEL, 0))
    _get(spec, obj)
    level = counts().get(int(PROBE_LEVEL), {})
    return level.get("admitted") == 1 and level.get("served") == 1


def probe(name: str) -> Features:
    """Every feature of the registered queue ``name``; ``KeyError`` names the allowed ones."""
    if name not in QUEUES:
        raise KeyError(f"unknown queue {name!r}; allowed: {', '.join(QUEUES)}")
    spec = QUEUES[name]
    return Features(
        queue=name,
        get_timeout=probe_get_timeout(spec),
        shutdown=probe_shutdown(spec),
        cancel_safe_get=probe_cancel_safe_get(spec),
        sync_and_async=spec.api == "bridge",
        bounded=probe_bounded(spec),
        level_limits=probe_level_limits(spec),
        deadlines=probe_deadlines(spec),
        cancel_queued=probe_cancel_queued(spec),
        counters=probe_counters(spec),
    )


def features_frame(queues: list[str] | None = None) -> pd.DataFrame:
    """One row per in-process queue (or those named): its probed features."""
    names = [q for q in (queues if queues is not None else QUEUES)
             if q in QUEUES and not QUEUES[q].process_safe]
    return pd.DataFrame([asdict(probe(q)) for q in names],
                        columns=["queue", *FEATURES])
