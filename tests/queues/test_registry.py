"""The queue registry: plain construction, a declared order, one factory per queue."""

import ast
import functools
import inspect
import pathlib
import queue

import pytest

import pqlab
import pqlab.queues
import pqlab.scenarios
from pqlab.core.task import make_workload
from pqlab.queues import (
    BUILTIN_QUEUES,
    QUEUE_ORDER,
    QUEUES,
    PolicyFactory,
    catalog,
    get_spec,
    register_queue,
)
from pqlab.queues.asyncqueue import AsyncBucketQueue
from pqlab.queues.bridge import BridgeBucketQueue
from pqlab.queues.registry import HeapqQueue, ThreadSafeHeapQueue
from pqlab.queues.syncqueue import ThreadSafeBucketQueue
from pqlab.scenarios import BUILTIN_SCENARIOS, SCENARIO_ORDER, SCENARIOS

QUEUES_DIR = pathlib.Path(pqlab.queues.__file__).parent


def test_no_queue_class_swaps_itself_in_new_and_no_module_fills_a_class_map():
    for path in QUEUES_DIR.glob("*.py"):
        source = path.read_text()
        assert "POLICY_CLASSES" not in source and "policy_class_for" not in source, path.name
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef):
                assert node.name != "__new__", f"{path.name}:{node.lineno} defines __new__"
    for cls in (ThreadSafeBucketQueue, AsyncBucketQueue, BridgeBucketQueue):
        assert "__new__" not in vars(cls) and cls.__new__ is object.__new__


def test_the_builtin_order_is_a_declared_tuple_and_the_registry_keeps_it():
    assert isinstance(BUILTIN_QUEUES, tuple) and isinstance(QUEUE_ORDER, tuple)
    assert list(QUEUES)[:len(QUEUE_ORDER)] == list(QUEUE_ORDER)
    assert len(set(QUEUE_ORDER)) == len(QUEUE_ORDER)
    init = (QUEUES_DIR / "__init__.py").read_text()
    assert "isort: off" not in init
    # The modules that define queues register none: only the catalog does.
    for path in QUEUES_DIR.glob("*.py"):
        if path.name not in ("catalog.py", "registry.py"):
            assert "register_queue(" not in path.read_text(), path.name
    assert "register_queue(" not in inspect.getsource(catalog)


def test_the_bucket_queues_take_a_policy_through_a_policy_factory():
    takes = [spec.name for spec in BUILTIN_QUEUES if spec.takes_policy]
    assert takes == ["ThreadSafeBucketQueue", "AsyncBucketQueue", "BridgeBucketQueue"]
    for name in takes:
        factory = QUEUES[name].factory
        assert isinstance(factory, PolicyFactory) and factory.plain.__name__ == name
        assert factory.policed.__name__ == f"Policy{name}"
        assert issubclass(factory.policed, factory.plain)


def test_the_scenario_order_is_a_declared_tuple_too():
    assert isinstance(BUILTIN_SCENARIOS, tuple) and isinstance(SCENARIO_ORDER, tuple)
    assert list(SCENARIOS)[:len(SCENARIO_ORDER)] == list(SCENARIO_ORDER)
    package = pathlib.Path(pqlab.scenarios.__file__).parent
    assert "isort: off" not in (package / "__init__.py").read_text()
    for path in package.glob("*.py"):
        if path.name != "_engine.py":
            assert "register_scenario(" not in path.read_text(), path.name


# -- registering and unregistering queues; the heapq adapters --

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
