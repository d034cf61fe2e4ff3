"""pqlab.scenarios._engine: the pass state, the guard, the one stall rule, scenario hooks."""

import queue
import threading
import time

import pytest

from pqlab.core.task import STOP, make_workload
from pqlab.scenarios import SCENARIOS
from pqlab.scenarios import _engine as engine
from pqlab.scenarios.loadparams import LoadParams


def test_records_put_each_stamp_at_its_tasks_position():
    tasks = make_workload(4, seed=1)
    run = engine.PassState(tasks, producers=2, consumers=1)
    run.put_logs[0] += [(1, 2), (5, 6)]  # producer 0 puts tasks 0 and 2
    run.put_logs[1] += [(3, 4)]  # producer 1 put task 1 only
    run.get_logs[0] += [(tasks[2].seq, 7, 8), (-99, 9, 10)]
    rec = run.records(True, "x")
    assert rec.put_start.tolist() == [1, 3, 5, 0]
    assert rec.producer.tolist() == [0, 1, 0, -1]
    assert rec.get_task.tolist() == [2, -1]  # a get of an unknown task is kept, at -1
    assert (rec.label, rec.concurrent) == ("x", True)


def test_guard_reports_what_the_body_raised_and_stops_the_pass():
    run = engine.PassState([], 1, 1)

    def body():
        raise RuntimeError("boom")

    t = threading.Thread(target=engine.guard(run, body))
    t.start()
    t.join(10)
    assert run.errors == ["RuntimeError: boom"] and run.stop.is_set()


def test_watchdog_fires_only_after_progress_stands_still_for_the_deadline():
    count = [0]
    dog = engine.Watchdog(lambda: count[0], deadline_s=0.2)
    assert not dog.stalled()
    deadline = time.monotonic() + 30
    while not dog.stalled():  # progress never changes: it must fire, after >= 0.2 s
        assert time.monotonic() < deadline, "the watchdog never fired"
        time.sleep(0.01)
    count[0] += 1
    assert not dog.stalled()  # progress resets it


class LosingQueue:
    """Takes every put and never hands anything back: a queue that loses tasks."""

    def put(self, item):
        pass

    def get(self):
        raise queue.Empty


def test_a_pass_that_makes_no_progress_ends_with_the_stall_error():
    tasks = make_workload(20, seed=2)
    run = engine.PassState(tasks, 1, 2)
    face, barrier = LosingQueue(), threading.Barrier(3)
    threads = [threading.Thread(target=engine.guard(run, lambda: engine.produce(
        run, face, 0, barrier, False)), daemon=True)]
    threads += [threading.Thread(target=engine.guard(run, lambda c=c: engine.consume(
        run, face, c, barrier, False)), daemon=True) for c in range(2)]
    start = time.monotonic()
    engine.watch_threads(run, threads, face, deadline_s=0.3)
    assert run.errors == [engine.stall_error(0.3, 0, 20)]
    assert "no progress for 0.3 s: 0 of 20 tasks taken" in run.errors[0]
    assert time.monotonic() - start < 30
    assert all(s.payload is STOP for s in run.sentinels)


def test_scenarios_declare_their_parameters():
    load, single = SCENARIOS["load"], SCENARIOS["single"]
    assert isinstance(load.check_params(None), LoadParams)
    assert single.check_params(None) is None
    with pytest.raises(ValueError, match="scenario 'single' takes no parameters"):
        single.check_params(LoadParams())
    with pytest.raises(ValueError, match="scenario 'load' takes LoadParams, got dict"):
        load.check_params({})
    assert len(load.make_workload(5, 1, LoadParams())) == 5
    assert len(single.make_workload(5, 1)) == 5
