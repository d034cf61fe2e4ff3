"""Proof of safety for every registered queue that claims the capability.

The tests loop over ``pqlab.QUEUES`` by capability (sync face, thread-safe,
async face), so a queue a user registers before the tests are collected
gets them too. A case that needs an API a queue does not offer (a
``timeout``, ``task_done``, ``shutdown``, a ``maxsize``) is skipped with the
reason; a queue that offers it and fails is a failing test.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import queue
import sys
import threading
import time
import tracemalloc
import weakref
from contextlib import suppress

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from pqlab.core.task import PRIORITY_LEVELS, STOP, Priority, Task, make_workload, next_seq
from pqlab.queues import QUEUES, async_face, sync_face

EMPTY = (queue.Empty, IndexError, asyncio.QueueEmpty)
SYNC = [n for n, s in QUEUES.items() if s.has_sync_face]
THREAD_SAFE = [n for n, s in QUEUES.items() if s.has_sync_face and s.thread_safe]
ASYNC = [n for n, s in QUEUES.items() if s.has_async_face and s.async_safe]
BRIDGES = [n for n in THREAD_SAFE if n in ASYNC]
ANY_FACE = [(n, "sync") for n in SYNC] + [(n, "async") for n in ASYNC]

# Failures of a library that claims the capability, found by these tests: each
# is expected (strict: a fixed library fails the test until the entry goes).
KNOWN_FAILURES = {
    ("cancelled-getter", "janus.PriorityQueue"): (
        sys.version_info < (3, 13),
        "janus waits on asyncio.Condition, which before Python 3.13 loses a notify "
        "taken by a task cancelled as it was woken (CPython gh-112202): the reader "
        "already waiting is never woken, though the task is in the queue"),
}


def params(case: str, names: list[str]) -> list:
    """``names`` as pytest params, known failures of ``case`` marked as strict xfails."""
    out = []
    for name in names:
        applies, reason = KNOWN_FAILURES.get((case, name), (False, ""))
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if applies else []
        out.append(pytest.param(name, marks=marks))
    return out


def make_task(priority: int = Priority.NORMAL, payload=None) -> Task:
    return Task(priority, next_seq(), 0.0, "t", "model-0",
                {"input_size": 1} if payload is None else payload)


def stop_task() -> Task:
    return Task(max(PRIORITY_LEVELS), next_seq(), 0.0, "stop", "", STOP)


def takes(fn, parameter: str) -> bool:
    """Whether ``fn`` takes ``parameter`` by name (or any keyword, as a proxy forwarding it)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return parameter in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def is_shutdown(exc: BaseException) -> bool:
    """queue.ShutDown, asyncio.QueueShutDown and the backports of libraries and pqlab."""
    return any(c.__name__.endswith("ShutDown") for c in type(exc).__mro__)


def bounded(name: str, maxsize: int):
    try:
        return QUEUES[name].factory(maxsize=maxsize)
    except TypeError:
        pytest.skip(f"{name}: its factory takes no maxsize, so a put never blocks")


class SyncAccess:
    """A sync face driven from the test thread: put, a get that never blocks, qsize."""

    def __init__(self, face) -> None:
        self.face = face
        self.put = face.put
        self.get = getattr(face, "get_nowait", face.get)
        self.qsize = getattr(face, "qsize", None)

    def close(self) -> None:
        pass


class AsyncAccess:
    """An async face driven from the test thread through its own event loop."""

    def __init__(self, face, loop: asyncio.AbstractEventLoop) -> None:
        self.face, self.loop = face, loop
        self.qsize = getattr(face, "qsize", None)

    def _run(self, fn, *args):
        async def call():
            result = fn(*args)
            return await result if inspect.isawaitable(result) else result

        return self.loop.run_until_complete(call())

    def put(self, task: Task) -> None:
        self._run(self.face.put, task)

    def get(self) -> Task:
        return self._run(self.face.get_nowait)

    def close(self) -> None:
        self.loop.close()


def access(name: str, face: str, obj=None):
    spec = QUEUES[name]
    obj = spec.factory() if obj is None else obj
    if face == "sync":
        return SyncAccess(sync_face(spec, obj))
    return AsyncAccess(async_face(spec, obj), asyncio.new_event_loop())


def accesses(name: str) -> list:
    """Every face of one fresh queue: a bridge's two faces share its state."""
    spec, obj = QUEUES[name], QUEUES[name].factory()
    faces = ["sync"] if spec.has_sync_face else []
    faces += ["async"] if spec.has_async_face and spec.async_safe else []
    return [access(name, f, obj) for f in faces]


# -- ordering against a reference model ------------------------------------------


def machine_for(name: str) -> type[RuleBasedStateMachine]:
    class QueueMachine(RuleBasedStateMachine):
        """Random puts and gets, through any face, against a sorted list: (priority, seq)."""

        def __init__(self) -> None:
            super().__init__()
            self.faces = accesses(name)
            self.model: list[Task] = []

        @rule(priority=st.sampled_from(PRIORITY_LEVELS), face=st.integers(0, 1),
              payload=st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
        def put(self, priority, face, payload):
            task = make_task(priority, payload)
            self.faces[face % len(self.faces)].put(task)
            self.model.append(task)

        @rule(face=st.integers(0, 1))
        def get(self, face):
            where = self.faces[face % len(self.faces)]
            if not self.model:
                with pytest.raises(EMPTY):
                    where.get()
                return
            expected = min(self.model, key=lambda t: (t.priority, t.seq))
            assert where.get() == expected  # a process-safe queue gives back a copy
            self.model.remove(expected)

        @invariant()
        def size_matches(self):
            for where in self.faces:
                if where.qsize is not None:
                    assert where.qsize() == len(self.model)

        def teardown(self) -> None:
            for where in self.faces:
                where.close()

    QueueMachine.__name__ = f"QueueMachine[{name}]"
    return QueueMachine


@pytest.mark.parametrize("name", list(QUEUES))
def test_matches_the_reference_model(name):
    run_state_machine_as_test(machine_for(name), settings=settings(
        max_examples=25, stateful_step_count=30, deadline=None))


@pytest.mark.parametrize("name, face", ANY_FACE)
def test_equal_priorities_with_dict_payloads_never_compare(name, face):
    where = access(name, face)
    tasks = [make_task(Priority.HIGH, {"same": "dict"}) for _ in range(300)]
    for task in tasks:
        where.put(task)
    assert [where.get() for _ in tasks] == tasks  # FIFO, and no TypeError
    where.close()


class Payload:
    """A payload that can be weakly referenced."""


@pytest.mark.parametrize("name, face", ANY_FACE)
def test_a_task_is_released_after_get(name, face):
    if QUEUES[name].process_safe:
        pytest.skip(f"{name} holds serialized copies, never the caller's objects")
    where = access(name, face)
    payload = Payload()
    alive = weakref.ref(payload)
    first, second = make_task(Priority.CRITICAL, payload), make_task(Priority.LOW)
    where.put(first)
    where.put(second)
    assert where.get() is first
    del first, payload
    gc.collect()
    assert alive() is None, f"{name} keeps a reference to a task it gave out"
    where.close()


# -- many threads --------------------------------------------------------------------


@pytest.mark.parametrize("name", params("fifty-threads", THREAD_SAFE))
def test_fifty_producers_fifty_consumers_lose_and_duplicate_nothing(name):
    spec = QUEUES[name]
    face = sync_face(spec, spec.factory())
    tasks = make_workload(10_000, seed=11)
    blocking = takes(face.get, "timeout")
    kinds = ["blocking", "nowait", "tiny-timeout"] if blocking else ["retry"]
    taken: list[list[int]] = [[] for _ in range(50)]

    def consume(c: int) -> None:
        kind, log = kinds[c % len(kinds)], taken[c]
        while True:
            try:
                if kind == "blocking":
                    task = face.get()
                elif kind == "nowait":
                    task = face.get_nowait()
                elif kind == "tiny-timeout":
                    task = face.get(timeout=0.0002)
                else:
                    task = face.get()
            except EMPTY:
                if kind != "tiny-timeout":
                    time.sleep(0)
                continue
            if task.payload is STOP:
                return
            log.append(task.seq)

    def produce(p: int) -> None:
        for task in tasks[p::50]:
            face.put(task)
            time.sleep(0)  # let consumers in between puts

    consumers = [threading.Thread(target=consume, args=(c,), daemon=True) for c in range(50)]
    producers = [threading.Thread(target=produce, args=(p,), daemon=True) for p in range(50)]
    for t in consumers + producers:
        t.start()
    join_all(producers, 30)
    for _ in consumers:  # after every real task: LOW and newest, so served last
        face.put(stop_task())
    join_all(consumers, 30)
    got = [seq for log in taken for seq in log]
    assert len(got) == len(set(got)), f"{name} duplicated tasks"
    assert sorted(got) == sorted(t.seq for t in tasks), f"{name} lost tasks"


@pytest.mark.parametrize("name", SYNC)
def test_get_timeout_raises_empty_in_time_and_rejects_a_negative_one(name):
    spec = QUEUES[name]
    face = sync_face(spec, spec.factory())
    if not takes(face.get, "timeout"):
        pytest.skip(f"{name}: get() takes no timeout")
    start = time.monotonic()
    with pytest.raises(queue.Empty):
        face.get(timeout=0.05)
    elapsed = time.monotonic() - start
    assert 0.045 <= elapsed < 2.0
    with pytest.raises(ValueError):
        face.get(timeout=-1)


# -- task_done, join, shutdown -----------------------------------------------------------


@pytest.mark.parametrize("name, face", ANY_FACE)
def test_task_done_too_often_raises_valueerror(name, face):
    where = access(name, face)
    if not hasattr(where.face, "task_done"):
        where.close()
        pytest.skip(f"{name}: no task_done()")
    where.put(make_task())
    where.get()
    where.face.task_done()
    with pytest.raises(ValueError):
        where.face.task_done()
    where.close()


@pytest.mark.parametrize("name", BRIDGES)
def test_a_sync_task_done_releases_an_async_join(name):
    async def main() -> None:
        obj = QUEUES[name].factory()
        sq, aq = sync_face(QUEUES[name], obj), async_face(QUEUES[name], obj)
        await aq.put(make_task())
        joining = asyncio.ensure_future(aq.join())
        await asyncio.sleep(0.01)
        assert not joining.done()

        def worker() -> None:
            sq.get(timeout=5)
            sq.task_done()

        thread = threading.Thread(target=worker, daemon=True)
        thread.start()
        await asyncio.wait_for(joining, 5)
        thread.join(5)

    asyncio.run(main())


def needs_shutdown(name: str, face) -> None:
    if not hasattr(face, "shutdown"):
        pytest.skip(f"{name}: no shutdown() (queue.Queue and asyncio.Queue have one from "
                    "Python 3.13)")


def run_threads(target, count: int):
    """Start ``count`` threads running ``target``: the threads, and each one's exception."""
    outcomes: list[BaseException | None] = [None] * count

    def body(i: int) -> None:
        try:
            target()
        except BaseException as exc:  # noqa: BLE001 - the outcome under test
            outcomes[i] = exc

    threads = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(count)]
    for t in threads:
        t.start()
    return threads, outcomes


def wait_until_parked(threads, timeout_s: float = 10.0) -> None:
    """Poll until every thread's innermost Python frame is a ``wait``; fail after ``timeout_s``.

    Each queue with a shutdown() blocks a thread in a function named ``wait``
    (pqlab's Waiters.wait, threading.Condition.wait in janus, culsans' low-level
    waiter): in it, the thread is registered as a waiter, which is_alive() cannot show.
    """
    idents = {t.ident for t in threads}
    deadline = time.monotonic() + timeout_s
    while True:
        frames = sys._current_frames()
        parked = [i for i in idents if i in frames and frames[i].f_code.co_name == "wait"]
        if len(parked) == len(idents):
            return
        assert time.monotonic() < deadline, f"{len(parked)} of {len(idents)} threads blocked"
        time.sleep(0.001)


def join_all(threads, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), "blocked threads were not released"


@pytest.mark.parametrize("name", THREAD_SAFE)
def test_shutdown_releases_getters_blocked_in_many_threads(name):
    spec = QUEUES[name]
    face = sync_face(spec, spec.factory())
    needs_shutdown(name, face)
    threads, outcomes = run_threads(face.get, 20)
    wait_until_parked(threads)
    face.shutdown()
    join_all(threads)
    assert all(exc is not None and is_shutdown(exc) for exc in outcomes), outcomes


@pytest.mark.parametrize("name", THREAD_SAFE)
def test_shutdown_releases_putters_blocked_in_many_threads(name):
    face = sync_face(QUEUES[name], bounded(name, 1))
    needs_shutdown(name, face)
    face.put(make_task())
    threads, outcomes = run_threads(lambda: face.put(make_task()), 20)
    wait_until_parked(threads)
    face.shutdown()
    join_all(threads)
    assert all(exc is not None and is_shutdown(exc) for exc in outcomes), outcomes


@pytest.mark.parametrize("name", SYNC)
def test_shutdown_semantics_of_python_3_13(name):
    spec = QUEUES[name]
    face = sync_face(spec, spec.factory())
    needs_shutdown(name, face)
    tasks = [make_task(Priority.LOW), make_task(Priority.CRITICAL)]
    for task in tasks:
        face.put(task)
    face.shutdown()
    with pytest.raises(Exception) as put_error:
        face.put(make_task())
    assert is_shutdown(put_error.value)
    assert [face.get(), face.get()] == tasks[::-1]  # drains
    with pytest.raises(Exception) as get_error:
        face.get()
    assert is_shutdown(get_error.value)


@pytest.mark.parametrize("name", THREAD_SAFE)
def test_immediate_shutdown_drops_the_items_and_releases_joiners(name):
    spec = QUEUES[name]
    face = sync_face(spec, spec.factory())
    needs_shutdown(name, face)
    for _ in range(3):
        face.put(make_task())
    threads, outcomes = run_threads(face.join, 5)
    wait_until_parked(threads)
    face.shutdown(immediate=True)
    join_all(threads)
    assert outcomes == [None] * 5
    with pytest.raises(Exception) as get_error:
        face.get()
    assert is_shutdown(get_error.value)


@pytest.mark.parametrize("name", ASYNC)
def test_shutdown_releases_blocked_coroutines(name):
    async def main() -> None:
        face = async_face(QUEUES[name], QUEUES[name].factory())
        needs_shutdown(name, face)
        getters = [asyncio.ensure_future(face.get()) for _ in range(20)]
        await asyncio.sleep(0.01)
        face.shutdown()
        outcomes = await asyncio.wait_for(
            asyncio.gather(*getters, return_exceptions=True), 5)
        assert all(is_shutdown(exc) for exc in outcomes), outcomes

    asyncio.run(main())


# -- cancelled and timed-out async getters -------------------------------------------------


@pytest.mark.parametrize("name", params("cancelled-getter", ASYNC))
def test_a_cancelled_getter_leaves_the_task_to_the_next_reader(name):
    async def main() -> None:
        face = async_face(QUEUES[name], QUEUES[name].factory())
        # Cancelled while waiting:
        first = asyncio.ensure_future(face.get())
        await asyncio.sleep(0.01)
        first.cancel()
        with suppress(asyncio.CancelledError):
            await first
        task = make_task()
        await face.put(task)
        assert await asyncio.wait_for(face.get(), 5) is task
        # Woken by a put, then cancelled before it ran:
        second = asyncio.ensure_future(face.get())
        await asyncio.sleep(0.01)
        task = make_task()
        await face.put(task)
        second.cancel()
        try:
            assert await second is task  # it had already taken the task: nothing lost
        except asyncio.CancelledError:
            assert await asyncio.wait_for(face.get(), 5) is task
        # Woken and cancelled while the next reader already waits: that reader gets it.
        woken, next_reader = asyncio.ensure_future(face.get()), asyncio.ensure_future(face.get())
        await asyncio.sleep(0.01)
        task = make_task()
        await face.put(task)
        woken.cancel()
        try:
            got = await woken
        except asyncio.CancelledError:
            got = await asyncio.wait_for(next_reader, 2)
        else:
            next_reader.cancel()
        assert got is task

    asyncio.run(main())


@pytest.mark.parametrize("name", ASYNC)
def test_cancelled_waiters_are_not_kept(name):
    async def churn(face, count: int) -> None:
        for _ in range(count):
            getter = asyncio.ensure_future(face.get())
            await asyncio.sleep(0)
            getter.cancel()
            await asyncio.gather(getter, return_exceptions=True)

    async def main() -> float:
        face = async_face(QUEUES[name], QUEUES[name].factory())
        await churn(face, 100)
        tracemalloc.start()
        try:
            growth = []
            for _ in range(3):  # the least of three: other threads allocate too
                gc.collect()
                before = tracemalloc.get_traced_memory()[0]
                await churn(face, 500)
                gc.collect()
                growth.append((tracemalloc.get_traced_memory()[0] - before) / 500)
            return min(growth)
        finally:
            tracemalloc.stop()

    bytes_per_cancelled = asyncio.run(main())
    assert bytes_per_cancelled < 32, f"{name} keeps {bytes_per_cancelled:.0f} B per cancelled get"


@pytest.mark.parametrize("name", ASYNC)
def test_wait_for_and_timeout_consumer_loops_lose_nothing(name):
    tasks = make_workload(2000, seed=5)

    async def main() -> list[int]:
        face = async_face(QUEUES[name], QUEUES[name].factory())
        got: list[int] = []

        async def produce(mine) -> None:
            for i, task in enumerate(mine):
                await face.put(task)
                await asyncio.sleep(0.0002 if i % 50 == 0 else 0)

        async def consume_wait_for() -> None:
            while len(got) < len(tasks):
                with suppress(asyncio.TimeoutError):
                    got.append((await asyncio.wait_for(face.get(), 0.0003)).seq)

        async def consume_timeout() -> None:
            while len(got) < len(tasks):
                with suppress(TimeoutError):
                    async with asyncio.timeout(0.0003):
                        got.append((await face.get()).seq)

        workers = [produce(tasks[p::3]) for p in range(3)]
        workers += [consume_wait_for(), consume_wait_for(), consume_timeout(), consume_timeout()]
        await asyncio.wait_for(asyncio.gather(*workers), 60)
        return got

    got = asyncio.run(main())
    assert len(got) == len(set(got)), f"{name} duplicated tasks"
    assert sorted(got) == sorted(t.seq for t in tasks), f"{name} lost tasks"
