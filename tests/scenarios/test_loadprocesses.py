"""The processes driver of ``load``: worker processes, producer threads here, no hangs."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from redis_helpers import private_server

import pqlab
from pqlab.core.task import Priority
from pqlab.queues import QueueSpec
from pqlab.queues.mpqueue import make_queue
from pqlab.scenarios import SCENARIOS, Workers
from pqlab.scenarios.loadparams import LoadParams, ServiceTime, make_load_workload
from pqlab.study.loadframes import waits_frame

ON_PROCESSES = LoadParams(300, "poisson", ServiceTime("const", 0.001), driver="processes")


@pytest.fixture(scope="module")
def stamped():
    """One multiprocessing run, with the parent's clock read just before and just after it."""
    before = time.perf_counter_ns()
    r = pqlab.run("multiprocessing", "load", tasks=300, producers=1, consumers=2, seed=3,
                  params=ON_PROCESSES)
    return before, r, time.perf_counter_ns()


def test_multiprocessing_run_is_complete_and_ordered(stamped):
    _, r, _ = stamped
    assert r.ok, r.error_messages  # no violations, lost or duplicated tasks, no errors
    assert (r.violations, r.lost, r.duplicated) == (0, 0, 0)
    [rec] = r.records
    assert rec.label == "processes" and rec.concurrent
    assert sorted(rec.get_task) == list(range(300)) and set(rec.consumer) <= {0, 1}
    assert rec.extra["timer_slack_ns"] is None or rec.extra["timer_slack_ns"] >= 1


def test_every_task_is_served_after_it_arrived(stamped):
    before, r, after = stamped
    [rec] = r.records
    order = np.argsort(rec.get_task)
    started, done = rec.get_end[order], rec.series["service_end_ns"]
    intended = rec.series["intended_ns"]
    assert before < intended.min() and done.max() < after  # one clock across processes
    assert (rec.put_start >= intended).all() and (started >= rec.put_start).all()
    assert (done >= started + rec.series["service_planned_ns"]).all()
    assert rec.series["depth"].min() >= 0 and rec.series["depth"][-1] == 0


def test_summary_row_has_the_waits_of_each_priority(stamped):
    _, r, _ = stamped
    row = r.to_dict()
    for level in Priority:
        n = level.name
        for key in (f"queue_wait_mean_ms_{n}", f"queue_wait_p99_9_ms_{n}", f"sojourn_max_ms_{n}",
                    f"queue_wait_uncorrected_p50_ms_{n}", f"tasks_{n}"):
            assert key in row, key
        assert row[f"queue_wait_mean_ms_{n}"] >= 0
    assert row["rho"] == pytest.approx(300 * 0.001 / 2)
    assert len(waits_frame(r)) == len(Priority)


@pytest.mark.redis
def test_redis_run_on_worker_processes(monkeypatch):
    # redis stores tasks as JSON: the Request payload comes back as a list.
    server = private_server()
    try:
        monkeypatch.setenv("PQLAB_REDIS_URL", server.url)
        params = LoadParams(400, "poisson", ServiceTime("exp", 0.002))
        r = pqlab.run("redis", "load", tasks=100, producers=2, consumers=2, seed=2, params=params)
        assert r.ok, r.error_messages
        assert r.records[0].label == "processes"  # auto picks it for a process-safe queue
        assert (r.records[0].series["service_end_ns"] > 0).all()
    finally:
        server.stop()


# -- failures end the run -------------------------------------------------------------------


class RaisingGet:
    """A process-safe queue whose get raises: only worker processes call get."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def put(self, task) -> None:
        self.inner.put(task)

    def get(self):
        raise RuntimeError("model server on fire")


class DyingGet(RaisingGet):
    calls = 0  # per process

    def get(self):
        DyingGet.calls += 1
        if DyingGet.calls == 5:
            os._exit(3)
        return self.inner.get()


class LosingPut(RaisingGet):
    def put(self, task) -> None:
        if task.task_id != "task-3":
            self.inner.put(task)

    def get(self):
        return self.inner.get()


def workers_alive() -> list:
    return [p for p in multiprocessing.active_children() if p.name.startswith("pqlab-")]


def _timed(cls):
    spec = QueueSpec(cls.__name__, lambda: cls(make_queue()), thread_safe=True,
                     async_safe=False, process_safe=True)
    params = LoadParams(1000, "constant", ServiceTime("const", 0.001), driver="processes")
    w = Workers(1, 2, deadline_s=1.0, params=params)
    return SCENARIOS["load"].timed(spec, make_load_workload(40, 1, params), w)[0]


@pytest.mark.parametrize("cls, message", [
    (RaisingGet, ": RuntimeError: model server on fire"),  # from worker 0 or 1
    (DyingGet, "died before reporting (exit code 3)"),
    (LosingPut, "s: 39 of 40 tasks taken"),  # no progress for the deadline (~1 s)
])
def test_a_failing_worker_ends_the_run_with_an_error(cls, message):
    rec = _timed(cls)
    assert rec.label == "processes"
    assert any(message in e for e in rec.errors), rec.errors
    assert not workers_alive()


def test_cli_runs_load_on_worker_processes():
    p = subprocess.run([sys.executable, "-m", "pqlab", "run", "--queues", "multiprocessing",
                        "--scenarios", "load", "--rate", "400", "--workers", "2", "--service",
                        "exp:2ms", "--tasks", "80", "--seed", "1", "--load-driver", "processes"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "load: multiprocessing on processes, 2 workers" in p.stdout
    assert "CRITICAL" in p.stdout and "theory" in p.stdout
