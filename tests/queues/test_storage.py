import asyncio
from dataclasses import dataclass

import pytest

from pqlab.queues.asyncqueue import AsyncQueue
from pqlab.queues.bridge import BridgeQueue
from pqlab.queues.storage import BucketStorage, HeapStorage
from pqlab.queues.syncqueue import SyncQueue


@dataclass(eq=False)
class Item:
    """Raises on any comparison: a storage that compares items fails loudly."""

    priority: int
    name: str

    def __lt__(self, other):
        raise TypeError("items must never be compared")

    __gt__ = __le__ = __ge__ = __lt__


def storage(policy, **options):
    s = policy()
    s._init(**options)
    return s


@pytest.mark.parametrize("policy", [BucketStorage, HeapStorage])
def test_priority_order_fifo_within_and_no_comparisons(policy):
    s = storage(policy)
    items = [Item(p, f"{p}-{i}") for i in range(5) for p in (4, 2, 1, 3, 2)]
    for item in items:
        s._put(item)
    assert s._qsize() == len(items)
    out = [s._get() for _ in items]
    assert out == sorted(items, key=lambda it: it.priority)  # sorted() is stable: FIFO within
    with pytest.raises(IndexError):
        s._get()


def test_bucket_refuses_priorities_outside_its_levels_and_names_them():
    s = storage(BucketStorage, levels=(1, 2, 3))
    with pytest.raises(ValueError, match=r"priority 7 .* levels 1, 2, 3"):
        s._put(Item(7, "x"))
    assert s._qsize() == 0
    with pytest.raises(ValueError, match="at least one"):
        storage(BucketStorage, levels=())


def test_heap_takes_any_integer_priority():
    s = storage(HeapStorage)
    for p in (100, -5, 3):
        s._put(Item(p, str(p)))
    assert [s._get().priority for _ in range(3)] == [-5, 3, 100]


class NewestFirst:
    """A third policy in four hooks (LIFO within a priority): the base classes need no change."""

    def _init(self) -> None:
        self._items: list = []

    def _qsize(self) -> int:
        return len(self._items)

    def _put(self, item) -> None:
        self._items.append(item)
        self._items.sort(key=lambda it: -it.priority)  # stable: newest last within a level

    def _get(self):
        return self._items.pop()


def test_a_new_policy_is_four_hooks_in_every_base_class():
    items = [Item(2, "a"), Item(1, "b"), Item(2, "c")]
    expected = [items[1], items[2], items[0]]

    class SyncNewest(NewestFirst, SyncQueue):
        pass

    q = SyncNewest()
    for item in items:
        q.put(item)
    assert [q.get() for _ in items] == expected

    class BridgeNewest(NewestFirst, BridgeQueue):
        pass

    class AsyncNewest(NewestFirst, AsyncQueue):
        pass

    async def main():
        for q in (BridgeNewest().async_q, AsyncNewest()):
            for item in items:
                await q.put(item)
            assert [await q.get() for _ in items] == expected

    asyncio.run(main())


# -- aging (the starvation guard) ----------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _aging(age_s=1.0):
    from pqlab.queues.syncqueue import ThreadSafeAgingQueue

    clock = _Clock()
    return ThreadSafeAgingQueue(age_s=age_s, clock=clock), clock


def _task(priority, name):
    from pqlab.core.task import Task

    return Task(priority, 0, 0.0, name, "m", payload=name)


def test_aging_without_waiting_is_a_strict_priority_queue():
    q, _ = _aging()
    for p, name in [(4, "low"), (1, "crit"), (3, "normal"), (1, "crit2")]:
        q.put(_task(p, name))
    assert [q.get_nowait().payload for _ in range(4)] == ["crit", "crit2", "normal", "low"]


def test_a_waiting_low_task_rises_one_level_per_age_step():
    q, clock = _aging(age_s=1.0)
    q.put(_task(4, "low"))
    clock.now = 2.5  # LOW has gained two levels: it competes as HIGH
    q.put(_task(2, "high"))
    q.put(_task(1, "crit"))
    assert q.get_nowait().payload == "crit"
    assert q.get_nowait().payload == "low"  # equal level, put first
    clock.now = 10.0
    q.put(_task(1, "crit2"))
    # HIGH has waited 7.5 s: it competes as CRITICAL and was put before crit2
    assert q.get_nowait().payload == "high"
    assert q.get_nowait().payload == "crit2"


def test_aging_rejects_a_bad_age_and_unknown_levels():
    from pqlab.queues.syncqueue import ThreadSafeAgingQueue

    with pytest.raises(ValueError, match="age_s"):
        ThreadSafeAgingQueue(age_s=0)
    q, _ = _aging()
    with pytest.raises(ValueError, match="levels"):
        q.put(_task(9, "x"))
