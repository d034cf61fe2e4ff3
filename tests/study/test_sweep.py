"""pqlab.study.sweep and pqlab.harness.worker: the grid, the frames, fresh processes, samples."""

from __future__ import annotations

import queue

import numpy as np
import pandas as pd
import pytest

from pqlab import QUEUES, SCENARIOS, register_queue, unregister_queue
from pqlab.harness.runner import run, supported_pairs
from pqlab.harness.worker import UnitSpec, task_samples
from pqlab.measure import metrics
from pqlab.study.params import in_process_queues
from pqlab.study.sweep import Grid, SweepError, measure_fresh, run_sweep


def test_grid_follows_the_registries():
    grid = Grid(task_counts=(100,), worker_counts=(1, 2), repetitions=1)
    closed_loop = [s for s, sc in SCENARIOS.items() if not sc.open_loop]  # load: when named
    pairs = supported_pairs(in_process_queues(), closed_loop)
    assert grid.pairs() == pairs and "load" not in {s for _, s in pairs}
    expected = sum(2 if SCENARIOS[s].uses_workers else 1 for _, s in pairs)
    assert len(grid.cells()) == expected


def test_scenarios_without_workers_run_once_per_task_count():
    grid = Grid(scenarios=("single",), task_counts=(100, 200), worker_counts=(1, 4, 8))
    assert {(c[2], c[3], c[4]) for c in grid.cells()} == {(100, 1, 1), (200, 1, 1)}


def test_repetitions_are_the_outer_loop():
    grid = Grid(queues=("heapq",), scenarios=("single",), task_counts=(100, 200),
                repetitions=2)
    assert [u.repetition for u in grid.units()] == [0, 0, 1, 1]


@pytest.mark.parametrize("kwargs, word", [
    ({"queues": ("nope",)}, "nope"),
    ({"scenarios": ("nope",)}, "nope"),
    ({"task_counts": (0,)}, "task_counts"),
    ({"worker_counts": (-1,)}, "worker_counts"),
    ({"repetitions": 0}, "repetitions"),
    ({"queues": ("heapq",), "scenarios": ("threads",)}, "empty grid"),
])
def test_bad_grids_name_the_problem(kwargs, word):
    with pytest.raises(ValueError, match=word):
        Grid(**kwargs)


@pytest.fixture(scope="module")
def small():
    grid = Grid(queues=("heapq", "queue.PriorityQueue"), scenarios=("single", "threads"),
                task_counts=(300,), worker_counts=(2,), repetitions=2)
    return run_sweep(grid, fresh_process=False, progress=False)


def test_summary_has_one_typed_row_per_unit(small):
    s = small.summary
    assert len(s) == len(small.units) == 6
    for col in ("queue", "scenario", "run_id"):
        assert isinstance(s[col].dtype, pd.CategoricalDtype)
    assert list(s["queue"].cat.categories)[:2] == [q for q in QUEUES][:2]
    for col in ("tasks", "producers", "consumers", "repetition", "violations", "lost"):
        assert pd.api.types.is_integer_dtype(s[col])
    assert (s["violations"] == 0).all() and (s["errors"] == 0).all()
    assert (s["throughput_ops_s"] > 0).all()
    assert not s["fresh_process"].any()


def test_samples_are_integer_nanoseconds(small):
    df = small.samples
    assert len(df) == small.summary["samples_stored"].sum() == 6 * 300
    for col in ("enqueue_ns", "dequeue_ns", "wait_ns", "seq"):
        assert df[col].dtype == np.int64
    assert df["priority"].dtype == np.int8
    assert (df["enqueue_ns"] >= 0).all() and (df["wait_ns"] >= 0).all()
    assert isinstance(df["queue"].dtype, pd.CategoricalDtype)


def test_samples_reuse_the_core_definitions():
    result = run("queue.PriorityQueue", "threads", tasks=400, producers=2, consumers=2,
                 seed=3, memory=False)
    rec = result.records[0]
    rows = task_samples(result.records, max_samples=10_000, seed=3)
    assert sorted(rows["enqueue_ns"]) == sorted(metrics.enqueue_ns(rec))
    assert sorted(rows["dequeue_ns"]) == sorted(metrics.dequeue_ns(rec))
    prio, waits = metrics.wait_ns(rec)
    assert np.array_equal(rows["wait_ns"], waits) and np.array_equal(rows["priority"], prio)


def test_large_runs_are_thinned_and_say_so():
    grid = Grid(queues=("heapq",), scenarios=("single",), task_counts=(2_000,), repetitions=1)
    result = run_sweep(grid, fresh_process=False, progress=False, max_samples=500)
    row = result.summary.iloc[0]
    assert row["samples_total"] == 2_000 and row["samples_stored"] == 500
    assert len(result.samples) == 500
    assert result.samples["seq"].is_monotonic_increasing  # a sorted subset, not a shuffle


def test_fresh_process_mode_measures_in_a_child():
    grid = Grid(queues=("heapq",), scenarios=("single",), task_counts=(300,), repetitions=1)
    result = run_sweep(grid, progress=False)
    assert result.summary["fresh_process"].all()
    assert result.summary.iloc[0]["violations"] == 0
    assert len(result.samples) == 300


def test_a_failing_child_names_the_unit():
    spec = UnitSpec("not-registered", "single", 10, 1, 1, 0, 1)
    with pytest.raises(SweepError, match="not-registered single n=10.*unknown queue"):
        measure_fresh(spec, timeout_s=60)


def test_a_newly_registered_queue_is_swept():
    register_queue("test.sweep.fifo_pq", queue.PriorityQueue, thread_safe=True,
                   async_safe=False)
    try:
        grid = Grid(task_counts=(200,), worker_counts=(2,), repetitions=1)
        assert any(u.queue == "test.sweep.fifo_pq" for u in grid.units())
        grid = Grid(queues=("test.sweep.fifo_pq",), task_counts=(200,), worker_counts=(2,),
                    repetitions=1)
        result = run_sweep(grid, fresh_process=False, progress=False)
        assert set(result.summary["scenario"]) == {"single", "threads", "ordering"}
    finally:
        unregister_queue("test.sweep.fifo_pq")


def test_process_backed_queues_are_swept_only_when_named():
    register_queue("test.sweep.remote", queue.PriorityQueue, thread_safe=True,
                   async_safe=False, process_safe=True)
    try:
        assert "test.sweep.remote" not in {u.queue for u in Grid(task_counts=(10,)).units()}
        named = Grid(queues=("test.sweep.remote",), scenarios=("single",), task_counts=(10,))
        assert {u.queue for u in named.units()} == {"test.sweep.remote"}
    finally:
        unregister_queue("test.sweep.remote")


# -- units measured on a busy machine are measured again --------------------------------------


class BusyFor:
    """A busy rule that calls the first ``n`` units busy, then every one quiet."""

    def __init__(self, n: int) -> None:
        self.left = n
        self.calls = 0

    def __call__(self, row, cores):
        self.calls += 1
        if self.left > 0:
            self.left -= 1
            return ["a burst of load (test)"]
        return []


def tiny_grid() -> Grid:
    return Grid(queues=("heapq",), scenarios=("single",), task_counts=(200, 300), repetitions=1)


def test_busy_units_are_measured_again_and_their_quiet_measurement_is_kept(monkeypatch, tmp_path):
    from pqlab.measure import quiet
    from pqlab.study import progress
    from pqlab.study.store import Run

    rule = BusyFor(1)  # the first unit measured is busy, its second measurement quiet
    monkeypatch.setattr(quiet, "busy_reasons", rule)
    path = tmp_path / "progress.jsonl"
    monkeypatch.setenv(progress.ENV, str(path))
    run = Run.create(tmp_path / "data", "busy-once")
    result = run_sweep(tiny_grid(), run, fresh_process=False, progress=False, remeasure_tries=2)
    assert rule.calls == 3  # two units, one of them twice
    assert not result.summary["busy"].any() and len(result.summary) == 2
    snap = progress.read(path)
    assert (snap.done, snap.total) == (3, 3)
    assert snap.notes == ("measuring again 1 unit measured on a busy machine (try 1 of 2)",)


def test_units_that_stay_busy_are_tried_a_bounded_number_of_times_and_keep_the_flag(
        monkeypatch):
    from pqlab.measure import quiet

    rule = BusyFor(10**6)
    monkeypatch.setattr(quiet, "busy_reasons", rule)
    result = run_sweep(tiny_grid(), fresh_process=False, progress=False, remeasure_tries=2)
    assert rule.calls == 2 * 3  # each unit: measured, then twice again
    assert result.summary["busy"].all() and len(result.summary) == 2


def test_remeasure_tries_comes_from_the_batch_environment_and_is_checked(monkeypatch):
    from pqlab.measure import quiet
    from pqlab.study.sweep import ENV_REMEASURE

    rule = BusyFor(10**6)
    monkeypatch.setattr(quiet, "busy_reasons", rule)
    monkeypatch.setenv(ENV_REMEASURE, "0")
    run_sweep(tiny_grid(), fresh_process=False, progress=False)
    assert rule.calls == 2
    with pytest.raises(ValueError, match="remeasure_tries"):
        run_sweep(tiny_grid(), fresh_process=False, progress=False, remeasure_tries=-1)
