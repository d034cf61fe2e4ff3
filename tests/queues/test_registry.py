"""The queue registry: plain construction, a declared order, one factory per queue."""

import ast
import inspect
import pathlib

import pqlab.queues
import pqlab.scenarios
from pqlab.queues import BUILTIN_QUEUES, QUEUE_ORDER, QUEUES, PolicyFactory, catalog
from pqlab.queues.asyncqueue import AsyncBucketQueue
from pqlab.queues.bridge import BridgeBucketQueue
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
