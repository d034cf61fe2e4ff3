"""The processes scenario: spawned workers, one clock, the usual records and checks, no hangs."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import time
from dataclasses import replace
from functools import partial

import pytest
from redis_helpers import private_server

import pqlab
from pqlab.core.task import make_workload
from pqlab.harness.runner import supported_pairs
from pqlab.measure.verify import verify
from pqlab.queues import QUEUES, QueueSpec
from pqlab.queues.mpqueue import make_queue
from pqlab.queues.redisqueue import make_queue as redis_queue
from pqlab.scenarios import SCENARIOS, Workers


class LossyQueue:
    """A process-safe queue that drops one task: the run must end with an error, not hang."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def put(self, task) -> None:
        if task.task_id != "task-3":
            self.inner.put(task)

    def get(self):
        return self.inner.get()


class RaisingQueue(LossyQueue):
    def put(self, task) -> None:
        raise RuntimeError("disk on fire")


class DyingQueue(LossyQueue):
    def put(self, task) -> None:
        os._exit(3)


def spec_for(cls) -> QueueSpec:
    return QueueSpec(cls.__name__, lambda: cls(make_queue()), thread_safe=True,
                     async_safe=False, process_safe=True)


@pytest.fixture(scope="module")
def stamped():
    """One run with the parent's clock read just before and just after it."""
    before = time.perf_counter_ns()
    result = pqlab.run("multiprocessing", "processes", tasks=300, producers=2, consumers=2,
                       seed=4)
    return before, result, time.perf_counter_ns()


def test_multiprocessing_run_is_correct(stamped):
    _, r, _ = stamped
    assert r.ok, r.error_messages
    assert (r.producers, r.consumers, r.scenario) == (2, 2, "processes")
    (rec,) = r.records
    assert rec.concurrent and rec.label == "processes"
    assert sorted(rec.get_task) == list(range(300))
    assert set(rec.producer) == {0, 1} and set(rec.consumer) == {0, 1}


def test_child_stamps_share_the_parent_clock(stamped):
    before, r, after = stamped
    (rec,) = r.records
    assert before < rec.put_start.min() and rec.get_end.max() < after
    assert (rec.put_end >= rec.put_start).all() and (rec.get_end >= rec.get_start).all()


@pytest.mark.redis
def test_redis_run_is_correct(monkeypatch):
    server = private_server()
    try:
        monkeypatch.setenv("PQLAB_REDIS_URL", server.url)
        r = pqlab.run("redis", "processes", tasks=300, producers=2, consumers=2, seed=3)
        assert r.ok, r.error_messages
    finally:
        server.stop()


@pytest.mark.redis
def test_redis_batches_leave_stop_sentinels_to_others():
    server = private_server()
    try:
        spec = replace(QUEUES["redis"], factory=partial(redis_queue, count=8, url=server.url))
        rec = SCENARIOS["processes"].timed(spec, make_workload(200, seed=6), Workers(1, 3))[0]
        verdict = verify(rec)
        assert not rec.errors and (verdict.lost, verdict.duplicated) == (0, 0), rec.errors
    finally:
        server.stop()


def test_only_process_safe_queues_qualify():
    pairs = supported_pairs(scenarios=["processes"])
    assert {q for q, _ in pairs} == {"multiprocessing", "redis"}


def workers_alive() -> list:
    return [p for p in multiprocessing.active_children() if p.name.startswith("pqlab-")]


def _timed(cls, deadline_s: float = 1.0):
    tasks = make_workload(40, seed=1)
    return SCENARIOS["processes"].timed(spec_for(cls), tasks, Workers(2, 2, deadline_s))[0]


def test_a_lost_task_ends_the_run_with_an_error():
    rec = _timed(LossyQueue)
    assert any("no progress for 1 s" in e for e in rec.errors), rec.errors
    assert not workers_alive()


def test_a_raising_worker_is_reported():
    rec = _timed(RaisingQueue)
    assert any("RuntimeError: disk on fire" in e for e in rec.errors), rec.errors
    assert not workers_alive()


def test_a_dying_worker_is_reported():
    rec = _timed(DyingQueue)
    assert any("died before reporting (exit code 3)" in e for e in rec.errors), rec.errors
    assert not workers_alive()


@pytest.mark.parametrize("module", ["pqlab.scenarios.processes", "pqlab.scenarios.loadprocesses",
                                    "pqlab.service.workers"])
def test_a_spawned_worker_starts_without_pandas(module):
    # Each worker process is a fresh interpreter that imports pqlab: pandas alone would
    # double what that import costs (0.4 s against 0.7 s here), and a worker makes no frame.
    code = f"import sys, {module}; print(sorted({{'pandas', 'matplotlib'}} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
