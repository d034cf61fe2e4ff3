"""What the closed-loop studies share (pqlab.studies.closedloop): their parameters, the sweep
into a run, and idle burn measured once per run."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest

from pqlab.harness import idleburn
from pqlab.studies import closedloop
from pqlab.study import store


def test_the_lab_measures_once_and_a_rerun_reads_what_is_stored(tmp_path, monkeypatch):
    run = store.Run.create(tmp_path, "r1", machine={"machine_id": "m"})
    p = closedloop.Params(queues=["queue.PriorityQueue"], task_counts=[1], repetitions=1,
                          seed=1, progress=False)
    first = closedloop.idle_burn(p, run, ["threads"])
    assert list(first["queue"]) == ["queue.PriorityQueue"] and first["idle_cores"][0] < 0.05

    def measured_again(*args, **kwargs):
        raise AssertionError("a stored row was measured again")

    monkeypatch.setattr(idleburn, "idle_burn", measured_again)
    again = closedloop.idle_burn(p, run, ["threads"])
    pd.testing.assert_frame_equal(first, again)


def test_params_of_reads_the_upper_case_names_and_keeps_the_defaults():
    ns = SimpleNamespace(QUEUES=["heapq"], TASK_COUNTS=[200], REPETITIONS=2, SEED=7,
                         FRESH_PROCESS=False, OTHER="ignored")
    p = closedloop.Params.of(ns)
    assert p == closedloop.Params(queues=["heapq"], task_counts=[200], repetitions=2, seed=7,
                                  fresh_process=False)
    assert p.worker_counts == list(closedloop.config.SWEEP_WORKER_COUNTS) and p.progress
    with pytest.raises(TypeError, match="seed"):
        closedloop.Params.of(SimpleNamespace(QUEUES=["heapq"], TASK_COUNTS=[1], REPETITIONS=1))


def test_sweep_stores_one_unit_per_queue_task_count_and_repetition(tmp_path):
    run = store.Run.create(tmp_path, "r1", machine={"machine_id": "m"})
    p = closedloop.Params(queues=["heapq", "ThreadSafeHeapQueue"], task_counts=[100, 200],
                          repetitions=1, seed=1, fresh_process=False, progress=False)
    result = closedloop.sweep(p, run, ["single"])
    summary = run.summary()
    assert sorted(zip(summary["queue"].astype(str), summary["tasks"], strict=True)) == [
        ("ThreadSafeHeapQueue", 100), ("ThreadSafeHeapQueue", 200), ("heapq", 100),
        ("heapq", 200)]
    assert set(summary["scenario"].astype(str)) == {"single"}
    assert len(result.summary) == 4 and result.measured == 4
    again = closedloop.sweep(p, run, ["single"], queues=["heapq"])  # done units: not again
    assert (again.measured, again.skipped) == (0, 2) and len(run.summary()) == 4
