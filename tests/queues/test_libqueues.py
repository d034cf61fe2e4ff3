"""pqlab.queues.libqueues: janus and culsans priority queues fed (priority, order, task) entries."""

import asyncio

import pytest

from pqlab.core.task import make_workload
from pqlab.queues.libqueues import CulsansPriorityQueue, JanusPriorityQueue

LIBRARY_QUEUES = [JanusPriorityQueue, CulsansPriorityQueue]


@pytest.mark.parametrize("cls", [JanusPriorityQueue, CulsansPriorityQueue])
def test_library_bridges_hold_priority_order_entries(cls):
    q = cls()
    tasks = make_workload(100, seed=6)
    for t in tasks:
        q.sync_q.put(t)
    assert [q.sync_q.get() for _ in tasks] == sorted(tasks)


class Unordered:
    """An item with a priority that cannot be compared with another: a heap of bare
    items would raise TypeError at the first tie."""

    def __init__(self, priority: int, name: str) -> None:
        self.priority, self.name = priority, name


@pytest.mark.parametrize("cls", LIBRARY_QUEUES)
def test_ties_leave_in_put_order_and_never_compare_the_items(cls):
    q = cls()
    items = [Unordered(p, f"{p}-{i}") for i in range(5) for p in (3, 1, 2)]
    for item in items:
        q.sync_q.put(item)
    assert q.sync_q.qsize() == len(items)
    taken = [q.sync_q.get().name for _ in items]
    assert taken == [f"{p}-{i}" for p in (1, 2, 3) for i in range(5)]
    assert q.sync_q.empty()


@pytest.mark.parametrize("cls", LIBRARY_QUEUES)
def test_the_async_face_takes_what_the_thread_face_put_in_priority_order(cls):
    async def main():
        q = cls()  # made inside the loop: janus binds its loop here
        tasks = make_workload(50, seed=7)
        for t in tasks:
            q.sync_q.put(t)
        taken = [await asyncio.wait_for(q.async_q.get(), 5) for _ in tasks]
        q.close()
        await q.wait_closed()
        return tasks, taken

    tasks, taken = asyncio.run(main())
    assert taken == sorted(tasks)


def test_culsans_peeks_at_the_head_and_clears_its_entries():
    q = CulsansPriorityQueue()
    low, high = Unordered(4, "low"), Unordered(1, "high")
    q.sync_q.put(low)
    q.sync_q.put(high)
    assert q._peek() is high and q.sync_q.qsize() == 2
    q._clear()
    assert q.sync_q.qsize() == 0 and q.sync_q.empty()
