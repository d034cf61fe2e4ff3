"""Shared fixtures: deliberately wrong queues, registered for a test and removed after."""

from __future__ import annotations

import heapq
import os
import queue
import threading
from collections import defaultdict, deque

import pytest

import pqlab

# Sweeps measure a busy unit again (study.sweep.REMEASURE_TRIES): in the suite, which keeps
# the machine busy on purpose, that would only multiply the time of every sweep. The tests
# of that behaviour set their tries themselves; a batch sets its plan's for its notebooks.
os.environ.setdefault("PQLAB_REMEASURE_TRIES", "0")


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



# -- running the suite on two workers (`make test`: pytest -n 2 --dist loadfile) ---------


@pytest.fixture(scope="session")
def tiny_batch(tmp_path_factory, worker_id):
    """The one tiny batch of a test run: (output dir, result, printed lines).

    Run once per test run even on two workers: the first worker to ask runs it
    under a file lock in the run's shared temporary directory and pickles the
    result; the other waits on the lock and reads it.
    """
    import fcntl
    import pickle

    from batch_helpers import run_tiny_batch

    root = tmp_path_factory.getbasetemp()
    shared = root.parent if worker_id != "master" else root
    done = shared / "tiny-batch.pickle"
    with open(shared / "tiny-batch.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.is_file():
            result = run_tiny_batch(shared / "tiny-batch")
            done.write_bytes(pickle.dumps(result))
        return pickle.loads(done.read_bytes())


# The tiny batch's first user first, its other users last: on two workers one worker
# runs the batch (minutes) while the other works through the rest of the suite, and the
# modules that only read the batch come after it instead of waiting on its lock.
FIRST_MODULES = ("test_batch",)
LAST_MODULES = ("test_notebooks", "test_notebook06")


def pytest_collection_modifyitems(config, items):
    def rank(item) -> int:
        module = item.module.__name__.rpartition(".")[2]
        return 0 if module in FIRST_MODULES else 2 if module in LAST_MODULES else 1

    items.sort(key=rank)  # stable: the order within each rank stays
