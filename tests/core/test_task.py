import numpy as np
import pytest

from pqlab.core.task import (
    MODEL_POOL,
    PRIORITY_LEVELS,
    Priority,
    Task,
    make_ordering_workload,
    make_workload,
    next_seq,
)


def test_priority_values():
    assert [(p.name, int(p)) for p in Priority] == [
        ("CRITICAL", 1), ("HIGH", 2), ("NORMAL", 3), ("LOW", 4)]
    assert PRIORITY_LEVELS == (1, 2, 3, 4)


def test_task_orders_by_priority_then_seq_and_never_compares_payloads():
    a = Task(2, 10, 5.0, "a", "m", {"x": 1})
    b = Task(2, 11, 1.0, "b", "m", {"y": 2})  # earlier timestamp, later seq
    c = Task(1, 99, 9.0, "c", "m", {"z": 3})
    assert sorted([b, a, c]) == [c, a, b]
    assert a < b and not b < a
    assert a.key == (2, 10)


def test_task_uses_slots():
    with pytest.raises(AttributeError):
        Task(1, 1, 0.0, "t", "m").extra = 1  # type: ignore[attr-defined]


def test_seq_is_monotonic_across_workloads():
    first = make_workload(10, seed=1)
    second = make_workload(10, seed=1)
    seqs = [t.seq for t in first + second]
    assert seqs == sorted(seqs) and len(set(seqs)) == 20
    assert next_seq() > seqs[-1]


def test_workload_is_seeded():
    a, b = make_workload(500, seed=7), make_workload(500, seed=7)
    assert [(t.priority, t.model_id, t.payload) for t in a] == [
        (t.priority, t.model_id, t.payload) for t in b]
    assert [t.priority for t in make_workload(500, seed=8)] != [t.priority for t in a]


def test_workload_mix_uniform_and_weighted():
    tasks = make_workload(4000, seed=3)
    counts = {p: sum(t.priority == p for t in tasks) for p in PRIORITY_LEVELS}
    assert all(800 < c < 1200 for c in counts.values())
    assert {t.model_id for t in tasks} == set(MODEL_POOL)
    only_low = make_workload(50, seed=3, weights=[0, 0, 0, 1])
    assert {t.priority for t in only_low} == {Priority.LOW}


@pytest.mark.parametrize("n", [0, -1, 2.5, True])
def test_workload_rejects_bad_counts(n):
    with pytest.raises(ValueError, match="tasks must be a positive integer"):
        make_workload(n)


@pytest.mark.parametrize("weights", [[1, 2], [-1, 1, 1, 1], [0, 0, 0, 0]])
def test_workload_rejects_bad_weights(weights):
    with pytest.raises(ValueError, match="priority weights"):
        make_workload(10, weights=weights)


def test_ordering_workload_puts_critical_bursts_behind_low_runs():
    tasks = make_ordering_workload(2000, seed=1)
    assert len(tasks) == 2000
    pairs = sum(1 for a, b in zip(tasks, tasks[1:], strict=False)
                if a.priority == Priority.LOW and b.priority == Priority.CRITICAL)
    assert pairs >= 10
    # many tasks share one wall-clock tick: only seq keeps them FIFO
    assert len({t.timestamp for t in tasks}) < len(tasks)


@pytest.mark.parametrize("priority", [1.5, True, False, "1", None])
def test_a_task_refuses_a_priority_that_is_not_an_integer(priority):
    with pytest.raises(ValueError, match=f"priority must be an integer .* got {priority!r}"):
        Task(priority, 1, 0.0, "t", "m")


def test_a_task_takes_any_integer_type_as_its_priority():
    assert Task(np.int64(2), 1, 0.0, "t", "m").priority == 2
