"""Shared fixtures: deliberately wrong queues, registered for a test and removed after."""

from __future__ import annotations

import heapq
import queue
import threading
from collections import defaultdict, deque

import pytest

import pqlab


class LifoWithinPriority:
    """Wrong on purpose: priority order kept, but last in first out within a priority."""

    def __init__(self) -> None:
        self._stacks: dict[int, deque] = defaultdict(deque)
        self._lock = threading.Lock()

    def put(self, task) -> None:
        with self._lock:
            self._stacks[task.priority].append(task)

    def get(self):
        with self._lock:
            for level in sorted(self._stacks):
                if self._stacks[level]:
                    return self._stacks[level].pop()
        raise queue.Empty


@pytest.fixture
def lifo_queue():
    name = "test.LifoWithinPriority"
    pqlab.register_queue(name, LifoWithinPriority, thread_safe=True, async_safe=False)
    yield name
    pqlab.unregister_queue(name)


class UnlockedHeap:
    """Wrong on purpose: a heap shared by threads without its lock."""

    def __init__(self) -> None:
        self.heap: list = []

    def put(self, task) -> None:
        heapq.heappush(self.heap, task)

    def get(self):
        return heapq.heappop(self.heap)


@pytest.fixture
def unlocked_heap():
    name = "test.UnlockedHeap"
    pqlab.register_queue(name, UnlockedHeap, thread_safe=True, async_safe=False)
    yield name
    pqlab.unregister_queue(name)


# -- running the suite on two workers (`make test`: pytest -n 2 --dist loadgroup) --------

# Modules that share the one tiny batch (batch_helpers.tiny_batch, cached per process):
# on one worker, so it runs once per test run.
TINY_BATCH_MODULES = {"test_batch", "test_notebooks", "test_notebook06"}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Each module's tests run on one worker, so a module-scoped fixture (a redis-server,
    the ADR's lab) is made once; the tiny batch's modules share a worker."""
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            module = item.module.__name__.rpartition(".")[2]
            group = "tiny_batch" if module in TINY_BATCH_MODULES else module
            item.add_marker(pytest.mark.xdist_group(group))
