"""Shared fixtures: deliberately wrong queues, registered for a test and removed after."""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import gc
import heapq
import os
import pickle
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict, deque
from pathlib import Path

import pytest

import pqlab

# Sweeps measure a busy unit again (study.sweep.REMEASURE_TRIES): in the suite, which keeps
# the machine busy on purpose, that would only multiply the time of every sweep. The tests
# of that behaviour set their tries themselves; a batch sets its plan's for its notebooks.
os.environ.setdefault("PQLAB_REMEASURE_TRIES", "0")

# The tests mirror the package: tests/<layer>/test_<module>.py for pqlab/<layer>/<module>.py
# (tests/test_layout.py checks it). Each tests/<layer>/ is a package (its __init__.py), so
# two layers may hold test files of one name (study.test_endtoend, decide.test_endtoend);
# tests/ itself is not one, so pytest puts it on sys.path and the helpers beside this file
# import as ``from redis_helpers import ...`` from any folder. Said here too, so that
# holds however pytest is started.
if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(scope="session", autouse=True)
def _frozen_imports():
    """Freeze what the session has imported (pytest, pandas, matplotlib, every test module)
    out of the collector's reach, as a notebook's sweep does (``runner.frozen_heap``):
    ``pqlab.run`` collects three times per run, and each full collection of a test
    worker's heap took ~90 ms, more than a small run. Objects the tests make are
    collected as usual."""
    gc.collect()
    gc.freeze()


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

TESTS_DIR = Path(__file__).resolve().parent
TINY_ENV = "PQLAB_TEST_TINY_BATCH"  # where the tiny batch started at configure time writes
TINY_MODULES = {"test_batch", "test_notebook06"}
TINY_WAIT_S = 1800.0  # the tiny batch takes 2-4 minutes on a busy 2-core machine


def _runs_tiny_batch(config) -> bool:
    """Whether this run certainly includes the tiny batch's tests: no -k or -m, and the
    arguments name the tests folder or one of those modules."""
    if config.option.keyword or config.option.markexpr:
        return False
    for arg in config.args:
        path = Path(arg.split("::")[0]).resolve()
        if path == TESTS_DIR or path == TESTS_DIR.parent or path.stem in TINY_MODULES:
            return True
    return False


def _die_with_parent() -> None:
    """In the batch's process before it runs: SIGTERM when pytest dies (Linux), so a
    killed test run leaves no batch behind."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


PR_SET_PDEATHSIG = 1  # prctl(2)


def pytest_configure(config):
    """Start the tiny batch in its own process at once, when the run will need it.

    It then runs beside the tests from the first second, on no worker; the
    ``tiny_batch`` fixture waits for its result. xdist's workers start after
    this and inherit ``PQLAB_TEST_TINY_BATCH``.
    """
    if hasattr(config, "workerinput") or TINY_ENV in os.environ or not _runs_tiny_batch(config):
        return
    out = Path(tempfile.mkdtemp(prefix="pqlab-test-tiny-batch-"))
    log = open(out / "log.txt", "w")  # noqa: SIM115 - the child writes it until it ends
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(TESTS_DIR), str(TESTS_DIR.parent), os.environ.get("PYTHONPATH")) if p)}
    proc = subprocess.Popen([sys.executable, "-m", "batch_helpers", str(out)], env=env,
                            stdout=log, stderr=subprocess.STDOUT, cwd=TESTS_DIR,
                            preexec_fn=_die_with_parent)
    with contextlib.suppress(OSError):  # not root: it runs at the suite's own priority
        # The batch is the run's longest chain (its readers wait for it): ahead of the
        # workers for the CPU, so a busy machine delays the workers' tests, not it.
        os.setpriority(os.PRIO_PROCESS, proc.pid, -5)
    os.environ[TINY_ENV] = str(out)
    config.pqlab_tiny_batch = (proc, out, log)


def pytest_unconfigure(config):
    started = getattr(config, "pqlab_tiny_batch", None)
    if started is None:
        return
    proc, out, log = started
    if proc.poll() is None:  # an interrupted run: nobody will read it
        proc.kill()
        proc.wait()
    log.close()
    os.environ.pop(TINY_ENV, None)
    shutil.rmtree(out, ignore_errors=True)


def _wait_for_tiny_batch(out: Path):
    from batch_helpers import RESULT_FILE

    deadline = time.monotonic() + TINY_WAIT_S
    while not (out / RESULT_FILE).is_file():
        if (out / "failed").is_file():
            log = (out / "log.txt").read_text(errors="replace").strip().splitlines()
            pytest.fail("the tiny batch failed: " + " | ".join(log[-5:]))
        if time.monotonic() > deadline:
            pytest.fail(f"the tiny batch gave no result within {TINY_WAIT_S:g} s")
        time.sleep(0.2)
    return pickle.loads((out / RESULT_FILE).read_bytes())


@pytest.fixture(scope="session")
def tiny_batch(tmp_path_factory, worker_id):
    """The one tiny batch of a test run: (output dir, result, printed lines).

    Started at configure time when the run includes its modules (see
    ``pytest_configure``); otherwise the first worker to ask runs it under a
    file lock in the run's shared temporary directory and the other reads it.
    """
    if TINY_ENV in os.environ:
        return _wait_for_tiny_batch(Path(os.environ[TINY_ENV]))
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


def pytest_collection_modifyitems(config, items):
    """The order xdist hands the test files out in (``make test`` passes
    ``--no-loadscope-reorder``, so it keeps this one instead of sorting files by
    their number of tests): the files with a ``slow`` or ``browser`` test first, so the long
    ones do not end the run on one worker while the other waits; the tiny batch's
    modules last, so the batch runs beside everything else first, and in them the
    tests that do not read the batch first, while it may still be running."""
    slow = {item.module.__name__ for item in items
            if item.get_closest_marker("slow") or item.get_closest_marker("browser")}

    def key(item):
        tiny = item.module.__name__.rpartition(".")[2] in TINY_MODULES
        return tiny, tiny and "tiny_batch" in getattr(item, "fixturenames", ()), \
            item.module.__name__ not in slow

    items.sort(key=key)


@pytest.fixture(scope="session")
def deployment():
    """A replicated Redis (a primary, two replicas, three Sentinels; 5 s to start) that
    the test files of several modules share (tests/queues/test_redis*.py,
    tests/cli/test_redisbench.py): their tests leave it as they found it. A test that
    fails it over starts its own (tests/scenarios/test_failover.py)."""
    from redis_helpers import require_redis_server

    from pqlab.queues.redisdeploy import Deployment

    require_redis_server()
    d = Deployment().start()
    yield d
    d.stop()
