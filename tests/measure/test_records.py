"""pqlab.measure.records: the one definition of a task's first get, shared by checks and waits."""

import numpy as np

from pqlab.measure import metrics
from pqlab.measure.records import Records, first_gets


def records(get_task, get_start, get_end, priority=(1, 2, 3), put_end=(10, 20, 30)):
    n = len(priority)
    return Records(
        priority=np.asarray(priority, np.int16), seq=np.arange(n, dtype=np.int64),
        put_start=np.asarray(put_end, np.int64) - 5, put_end=np.asarray(put_end, np.int64),
        producer=np.zeros(n, np.int16), get_task=np.asarray(get_task, np.int64),
        get_start=np.asarray(get_start, np.int64), get_end=np.asarray(get_end, np.int64),
        consumer=np.zeros(len(get_task), np.int16), concurrent=True, wall_ns=1)


def test_first_get_is_the_one_that_started_first_even_if_it_ended_later():
    # task 1 taken twice: the get that started at 100 ended at 400, the one at 150 ended at 200
    rec = records(get_task=[1, 0, 1], get_start=[100, 50, 150], get_end=[400, 60, 200])
    idx, start, end = first_gets(rec)
    assert idx.tolist() == [0, 1]
    assert start.tolist() == [50, 100]
    assert end.tolist() == [60, 400]


def test_unknown_tasks_are_ignored_and_positions_come_out_sorted():
    rec = records(get_task=[2, -1, 0], get_start=[30, 10, 20], get_end=[31, 11, 21])
    assert first_gets(rec)[0].tolist() == [0, 2]


def test_waits_pair_with_the_same_first_get():
    """metrics.wait_ns uses first_gets: its waits are that get's end minus the put's end."""
    rec = records(get_task=[1, 0, 1], get_start=[100, 50, 150], get_end=[400, 60, 200])
    priority, wait = metrics.wait_ns(rec)
    idx, _, end = first_gets(rec)
    assert priority.tolist() == rec.priority[idx].tolist()
    assert wait.tolist() == (end - rec.put_end[idx]).tolist() == [50, 380]


def test_no_gets_gives_empty_arrays():
    rec = records(get_task=[], get_start=[], get_end=[])
    assert [len(a) for a in first_gets(rec)] == [0, 0, 0]
