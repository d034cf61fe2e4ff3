import asyncio

import pytest

from pqlab.core.task import Priority, Task, make_workload, next_seq
from pqlab.queues.asyncqueue import AsyncBucketQueue, AsyncQueue, QueueShutDown
from pqlab.queues.storage import HeapStorage


class AsyncHeapQueue(HeapStorage, AsyncQueue):
    """The heap policy in the same base class."""


def task(priority=Priority.NORMAL) -> Task:
    return Task(priority, next_seq(), 0.0, "t", "m", {})


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 10))


@pytest.mark.parametrize("cls", [AsyncBucketQueue, AsyncHeapQueue])
def test_the_api_of_asyncio_queue(cls):
    async def main():
        q = cls()
        tasks = make_workload(300, seed=8)
        for t in tasks[:150]:
            await q.put(t)
        for t in tasks[150:]:
            q.put_nowait(t)
        assert q.qsize() == 300 and not q.empty() and not q.full()
        out = [await q.get() for _ in range(150)] + [q.get_nowait() for _ in range(150)]
        assert out == sorted(tasks)
        with pytest.raises(asyncio.QueueEmpty):
            q.get_nowait()
        for _ in tasks:
            q.task_done()
        await q.join()
        with pytest.raises(ValueError, match="too many"):
            q.task_done()

    run(main())


def test_a_getter_waits_for_a_put_and_join_for_task_done():
    async def main():
        q = AsyncBucketQueue()
        getter = asyncio.ensure_future(q.get())
        await asyncio.sleep(0)
        assert not getter.done()
        t = task()
        await q.put(t)
        assert await getter is t
        joiner = asyncio.ensure_future(q.join())
        await asyncio.sleep(0)
        assert not joiner.done()
        q.task_done()
        await joiner

    run(main())


def test_a_bounded_put_waits_for_room():
    async def main():
        q = AsyncBucketQueue(maxsize=1)
        await q.put(task(Priority.LOW))
        with pytest.raises(asyncio.QueueFull):
            q.put_nowait(task())
        critical = task(Priority.CRITICAL)
        putter = asyncio.ensure_future(q.put(critical))
        await asyncio.sleep(0)
        assert not putter.done() and q.full()
        assert (await q.get()).priority == Priority.LOW
        await putter
        assert await q.get() is critical

    run(main())


def test_many_getters_are_served_in_priority_order_once_each():
    async def main():
        q = AsyncBucketQueue()
        getters = [asyncio.ensure_future(q.get()) for _ in range(20)]
        await asyncio.sleep(0)
        tasks = make_workload(20, seed=9)
        for t in tasks:
            await q.put(t)
        got = await asyncio.gather(*getters)
        assert sorted(got) == sorted(tasks) and q.empty()
        assert q._getters.woken == 0 and not q._getters.waiting

    run(main())


def test_shutdown_of_python_3_13():
    async def main():
        q = AsyncBucketQueue()
        first, second = task(Priority.LOW), task(Priority.HIGH)
        await q.put(first)
        await q.put(second)
        q.shutdown()
        with pytest.raises(QueueShutDown):
            await q.put(task())
        with pytest.raises(QueueShutDown):
            q.put_nowait(task())
        assert [await q.get(), q.get_nowait()] == [second, first]
        with pytest.raises(QueueShutDown):
            await q.get()
        with pytest.raises(QueueShutDown):
            q.get_nowait()

        q = AsyncBucketQueue(maxsize=1)
        await q.put(task())
        putter = asyncio.ensure_future(q.put(task()))
        joiner = asyncio.ensure_future(q.join())
        await asyncio.sleep(0)
        q.shutdown(immediate=True)
        with pytest.raises(QueueShutDown):
            await putter
        await joiner  # the dropped item counts as done
        assert q.empty()

    run(main())


def test_a_refused_priority_changes_nothing():
    async def main():
        q = AsyncBucketQueue(levels=(1,))
        with pytest.raises(ValueError, match="levels 1"):
            await q.put(task(Priority.HIGH))
        assert q.empty()
        await q.join()  # nothing unfinished

    run(main())
