import asyncio
import queue
import sys
import threading
import time

import pytest

from pqlab.core.task import Priority, Task, make_workload, next_seq
from pqlab.queues.asyncqueue import QueueShutDown
from pqlab.queues.bridge import HANDOFF_PUTS, BridgeBucketQueue
from pqlab.queues.libqueues import CulsansPriorityQueue, JanusPriorityQueue
from pqlab.queues.syncqueue import ShutDown

BRIDGES = [BridgeBucketQueue, JanusPriorityQueue, CulsansPriorityQueue]


def task(priority=Priority.NORMAL) -> Task:
    return Task(priority, next_seq(), 0.0, "t", "m", {})


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


def wait_for_getters(q: BridgeBucketQueue, count: int, timeout_s: float = 10.0) -> None:
    """Poll until ``count`` getters wait on ``q``; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while len(q.not_empty.waiting) < count:
        assert time.monotonic() < deadline, f"{len(q.not_empty.waiting)} of {count} getters wait"
        time.sleep(0.001)


def test_the_faces_are_the_bridge_s_own_methods():
    q = BridgeBucketQueue()
    assert q.sync_q.put == q.put and q.sync_q.get == q.get
    assert q.async_q.put == q.async_put and q.async_q.get == q.async_get
    assert q.async_q.task_done == q.task_done


def test_both_faces_share_one_queue_in_priority_order():
    async def main():
        q = BridgeBucketQueue()
        tasks = make_workload(200, seed=2)
        for i, t in enumerate(tasks):
            if i % 2:
                q.sync_q.put(t)
            else:
                await q.async_q.put(t)
        out = [q.sync_q.get() if i % 3 else await q.async_q.get() for i in range(200)]
        assert out == sorted(tasks)
        with pytest.raises(asyncio.QueueEmpty):
            q.async_q.get_nowait()
        with pytest.raises(queue.Empty):
            q.sync_q.get_nowait()

    run(main())


@pytest.mark.parametrize("cls", BRIDGES)
@pytest.mark.parametrize("reverse", [False, True], ids=["coroutines-to-threads",
                                                        "threads-to-coroutines"])
def test_one_side_feeds_the_other(cls, reverse):
    tasks = make_workload(3000, seed=4)
    got: list[int] = []

    async def main():
        q = cls()
        stop = [Task(Priority.LOW, next_seq(), 0.0, "stop", "", None) for _ in range(3)]

        def thread_consumer():
            while (t := q.sync_q.get()).model_id:
                got.append(t.seq)

        def thread_producer(mine):
            for t in mine:
                q.sync_q.put(t)

        async def coro_consumer():
            while (t := await q.async_q.get()).model_id:
                got.append(t.seq)

        async def coro_producer(mine):
            for t in mine:
                await q.async_q.put(t)
                await asyncio.sleep(0)

        if reverse:
            threads = [threading.Thread(target=thread_producer, args=(tasks[p::3],))
                       for p in range(3)]
            consumers = [asyncio.ensure_future(coro_consumer()) for _ in range(3)]
            for t in threads:
                t.start()
            await asyncio.to_thread(lambda: [t.join() for t in threads])
            for s in stop:
                await q.async_q.put(s)
            await asyncio.gather(*consumers)
        else:
            threads = [threading.Thread(target=thread_consumer) for _ in range(3)]
            for t in threads:
                t.start()
            await asyncio.gather(*(coro_producer(tasks[p::3]) for p in range(3)))
            for s in stop:
                await q.async_q.put(s)
            await asyncio.to_thread(lambda: [t.join() for t in threads])

    run(main())
    assert sorted(got) == sorted(t.seq for t in tasks)


def test_a_thread_wakes_a_coroutine_on_another_loop():
    """Coroutines on two loops in two threads and a plain thread share one bridge."""
    q = BridgeBucketQueue()
    results: dict[str, Task] = {}

    def loop_thread(name: str) -> threading.Thread:
        async def wait_for_one():
            results[name] = await asyncio.wait_for(q.async_q.get(), 10)

        return threading.Thread(target=asyncio.run, args=(wait_for_one(),))

    threads = [loop_thread("a"), loop_thread("b")]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 5
    while len(q.not_empty.waiting) < 2 and time.monotonic() < deadline:
        time.sleep(0.005)
    tasks = [task(), task()]
    for t in tasks:
        q.sync_q.put(t)
    for t in threads:
        t.join(10)
    assert sorted(results.values()) == tasks


def test_a_waiter_of_a_closed_loop_is_skipped():
    q = BridgeBucketQueue()
    loop = asyncio.new_event_loop()
    loop.set_exception_handler(lambda loop, context: None)  # "destroyed but pending": meant
    abandoned = loop.create_task(q.async_q.get())
    loop.run_until_complete(asyncio.sleep(0.01))
    assert not abandoned.done()  # the get waits
    loop.close()  # with the get still pending
    got = []
    reader = threading.Thread(target=lambda: got.append(q.sync_q.get(timeout=5)))
    reader.start()
    wait_for_getters(q, 2)  # the dead loop's waiter, then the thread's
    t = task()
    q.sync_q.put(t)  # skips the dead waiter, wakes the thread
    reader.join(5)
    assert got == [t]


def test_a_bounded_async_put_waits_for_a_thread_get():
    async def main():
        q = BridgeBucketQueue(maxsize=1)
        await q.async_q.put(task(Priority.LOW))
        with pytest.raises(asyncio.QueueFull):
            q.async_q.put_nowait(task())
        critical = task(Priority.CRITICAL)
        putter = asyncio.ensure_future(q.async_q.put(critical))
        await asyncio.sleep(0.01)
        assert not putter.done()
        assert (await asyncio.to_thread(q.sync_q.get, True, 5)).priority == Priority.LOW
        await asyncio.wait_for(putter, 5)
        assert q.sync_q.get_nowait() is critical

    run(main())


def test_each_face_raises_its_own_shutdown():
    async def main():
        q = BridgeBucketQueue()
        getter = asyncio.ensure_future(q.async_q.get())
        joiner = asyncio.ensure_future(q.async_q.join())
        await q.async_q.put(task())
        assert (await getter).priority == Priority.NORMAL
        await asyncio.sleep(0.01)
        assert not joiner.done()
        blocked = asyncio.ensure_future(q.async_q.get())
        await asyncio.sleep(0.01)
        q.sync_q.shutdown(immediate=True)
        with pytest.raises(QueueShutDown):
            await blocked
        with pytest.raises(QueueShutDown):
            await q.async_q.put(task())
        with pytest.raises(QueueShutDown):
            q.async_q.get_nowait()
        with pytest.raises(ShutDown):
            q.sync_q.put(task())
        q.async_q.task_done()
        await asyncio.wait_for(joiner, 5)

    run(main())


@pytest.mark.timing
def test_the_loop_hands_a_starving_getter_thread_the_gil():
    """Puts that never suspend would keep the GIL from a woken thread for 5 ms."""
    q = BridgeBucketQueue()
    done_putting = threading.Event()
    taken_while_putting = []

    def consume() -> None:
        while (t := q.sync_q.get(timeout=5)).model_id:
            if not done_putting.is_set():
                taken_while_putting.append(t)

    thread = threading.Thread(target=consume)
    thread.start()
    wait_for_getters(q, 1)

    async def produce() -> None:
        for _ in range(100 * HANDOFF_PUTS):
            await q.async_q.put(task())  # never suspends
        done_putting.set()
        await q.async_q.put(Task(Priority.LOW, next_seq(), 0.0, "stop", "", None))

    # A 100 s switch interval leaves the hand-off the only way in (without it the count
    # is 0); one of 100 hand-offs where the OS runs the thread within 1 ms gives >= 128.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(100.0)
    try:
        asyncio.run(produce())
    finally:
        sys.setswitchinterval(interval)
    thread.join(5)
    assert len(taken_while_putting) >= HANDOFF_PUTS
    assert q.not_empty.threads_woken == 0 and q._gate is None
