import functools
import queue

import pytest

import pqlab
from pqlab.core.task import make_workload
from pqlab.queues import QUEUES, get_spec, register_queue
from pqlab.queues.registry import HeapqQueue, ThreadSafeHeapQueue

POC_QUEUES = {
    "heapq": (False, False),
    "queue.PriorityQueue": (True, False),
    "asyncio.PriorityQueue": (False, True),
    "ThreadSafeHeapQueue": (True, False),
}


@pytest.mark.parametrize("name", POC_QUEUES)
def test_poc_queues_registered_with_capabilities(name):
    spec = QUEUES[name]
    assert (spec.thread_safe, spec.async_safe) == POC_QUEUES[name]
    assert pqlab.QUEUES is QUEUES


def test_heapq_adapter_binds_the_builtins():
    q = HeapqQueue()
    assert isinstance(q.put, functools.partial) and q.put.func.__name__ == "heappush"
    assert isinstance(q.get, functools.partial) and q.get.func.__name__ == "heappop"
    tasks = make_workload(100, seed=1)
    for t in tasks:
        q.put(t)
    assert [q.get() for _ in tasks] == sorted(tasks)
    with pytest.raises(IndexError):
        q.get()


def test_thread_safe_heap_queue_orders_and_raises_empty():
    q = ThreadSafeHeapQueue()
    tasks = make_workload(100, seed=2)
    for t in reversed(tasks):
        q.put(t)
    assert [q.get() for _ in tasks] == sorted(tasks)
    with pytest.raises(queue.Empty):
        q.get()


def test_register_and_unregister_a_user_queue():
    spec = register_queue("test.user", list, thread_safe=False, async_safe=False)
    try:
        assert QUEUES["test.user"] is spec and spec.api == "sync"
        with pytest.raises(ValueError, match="already registered"):
            register_queue("test.user", list, thread_safe=False, async_safe=False)
    finally:
        pqlab.unregister_queue("test.user")
    assert "test.user" not in QUEUES


def test_register_defaults_async_api_for_async_only_queues():
    spec = register_queue("test.async", list, thread_safe=False, async_safe=True)
    try:
        assert spec.api == "async" and spec.has_async_face and not spec.has_sync_face
    finally:
        pqlab.unregister_queue("test.async")


@pytest.mark.parametrize("kwargs, message", [
    ({"name": "", "factory": list}, "non-empty string"),
    ({"name": "x", "factory": 3}, "must be callable"),
    ({"name": "x", "factory": list, "api": "grpc"}, "api .* must be one of"),
])
def test_register_rejects_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        register_queue(thread_safe=False, async_safe=False, **kwargs)


def test_unknown_queue_names_the_allowed_ones():
    with pytest.raises(KeyError, match="heapq"):
        get_spec("nope")
