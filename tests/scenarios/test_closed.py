import threading

import numpy as np
import pytest

from pqlab.core.task import make_workload
from pqlab.queues import QUEUES, register_queue, unregister_queue
from pqlab.scenarios import SCENARIOS, Workers


def timed(queue, scenario, n=800, workers=None):
    tasks = SCENARIOS[scenario].workload(n, 1)
    return SCENARIOS[scenario].timed(QUEUES[queue], tasks, workers or Workers(3, 2)), tasks


@pytest.mark.parametrize("queue, scenario", [
    ("heapq", "single"), ("asyncio.PriorityQueue", "single"),
    ("queue.PriorityQueue", "threads"), ("asyncio.PriorityQueue", "async"),
])
def test_records_hold_four_stamps_per_task_and_worker_ids(queue, scenario):
    [rec], tasks = timed(queue, scenario)
    n = len(tasks)
    assert rec.tasks == n and len(rec.get_task) == n and not rec.errors
    assert sorted(rec.get_task.tolist()) == list(range(n))
    assert (rec.put_start <= rec.put_end).all() and (rec.get_start <= rec.get_end).all()
    assert (rec.put_start > 0).all()
    workers = 1 if scenario == "single" else 3
    assert set(np.unique(rec.producer)) == set(range(workers))
    assert rec.consumer.max() < (1 if scenario == "single" else 2)
    assert rec.concurrent == (scenario != "single")
    assert rec.wall_ns > 0


def test_single_puts_everything_before_the_first_get():
    [rec], _ = timed("heapq", "single")
    assert rec.put_end.max() < rec.get_start.min()


@pytest.mark.parametrize("queue, scenario", [
    ("queue.PriorityQueue", "threads"), ("asyncio.PriorityQueue", "async")])
def test_concurrent_scenarios_overlap_producing_and_consuming(queue, scenario):
    [rec], _ = timed(queue, scenario, n=3000)
    assert rec.get_start.min() < rec.put_end.max()  # consuming began before producing ended


def test_ordering_runs_sequential_and_concurrent_passes():
    records, _ = timed("queue.PriorityQueue", "ordering")
    assert [r.label for r in records] == ["sequential", "concurrent"]
    assert [r.concurrent for r in records] == [False, True]
    records, _ = timed("heapq", "ordering")
    assert [r.label for r in records] == ["sequential"]


def test_untimed_pass_takes_every_task():
    tasks = make_workload(1000, seed=1)
    for queue, scenario in [("heapq", "single"), ("ThreadSafeHeapQueue", "threads"),
                            ("asyncio.PriorityQueue", "async")]:
        result = SCENARIOS[scenario].untimed(QUEUES[queue], tasks, Workers(2, 3))
        assert result.gets == 1000 and result.wall_ns > 0 and not result.errors


class DropsEveryTenth:
    """Loses tasks: a blocking get that would wait forever without the deadline."""

    def __init__(self):
        import queue

        self.q = queue.PriorityQueue()
        self.count = 0

    def put(self, task):
        self.count += 1
        if self.count % 10:
            self.q.put(task)

    def get(self):
        return self.q.get()


class Raises:
    def put(self, task):
        raise RuntimeError("boom")

    def get(self):
        raise RuntimeError("boom")


@pytest.fixture
def broken():
    register_queue("test.drops", DropsEveryTenth, thread_safe=True, async_safe=False)
    register_queue("test.raises", Raises, thread_safe=True, async_safe=False)
    yield
    unregister_queue("test.drops")
    unregister_queue("test.raises")


@pytest.mark.parametrize("scenario", ["single", "threads"])
def test_a_stalled_run_ends_with_an_error_not_a_hang(broken, scenario):
    before = threading.active_count()
    [rec], tasks = timed("test.drops", scenario, n=200, workers=Workers(2, 2, deadline_s=0.5))
    assert any("no progress for 0.5 s" in e for e in rec.errors)
    assert len(rec.get_task) < len(tasks)
    assert threading.active_count() <= before + 4  # abandoned only blocked daemon threads


@pytest.mark.parametrize("scenario", ["single", "threads"])
def test_a_raising_queue_is_reported(broken, scenario):
    [rec], _ = timed("test.raises", scenario, n=50, workers=Workers(1, 1, deadline_s=2))
    assert any("RuntimeError: boom" in e for e in rec.errors)
