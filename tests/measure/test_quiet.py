"""The quiet-machine check: the readings, the busy rule, the lists and warnings."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import threading
import time

import pandas as pd
import pytest

from pqlab.harness.worker import UnitSpec, measure
from pqlab.lab import batch
from pqlab.measure import quiet
from pqlab.scenarios import PassState, guard
from pqlab.study import frames, store

QUIET = {"scenario": "single", "others_cores": 0.0, "oncpu_share": 0.99, "loadavg_1m": 0.1,
         "quiet_window_s": 1.0}
linux = pytest.mark.skipif(not os.path.exists("/proc/thread-self/schedstat"),
                           reason="needs /proc/stat and schedstat")


def test_a_quiet_row_is_not_busy():
    assert quiet.busy_reasons(QUIET, 2) == []
    assert quiet.judge(QUIET, 2) == {"busy": False, "busy_why": ""}


def test_other_processes_beyond_the_threshold_and_the_ticks_make_a_row_busy():
    assert quiet.busy_reasons({**QUIET, "others_cores": 0.5}, 2) == [
        "other processes used 0.50 cores (> 0.25 + 0.02 for ticks)"]
    # Over 40 ms two cores' ticks blur 0.5 core: 0.7 cannot be told from 0.25.
    assert quiet.busy_reasons({**QUIET, "others_cores": 0.7, "quiet_window_s": 0.04}, 2) == []
    assert quiet.busy({**QUIET, "others_cores": 0.8, "quiet_window_s": 0.04}, 2)


def test_waiting_for_a_cpu_makes_a_one_thread_unit_busy_not_a_threads_one():
    row = {**QUIET, "oncpu_share": 0.5}
    assert quiet.judge(row, 2) == {"busy": True,
                                   "busy_why": "on a CPU 50% of its runnable time (< 90%)"}
    assert quiet.judge({**row, "scenario": "async"}, 2)["busy"]
    assert not quiet.busy({**row, "scenario": "threads"}, 2)


def test_nan_readings_and_the_load_average_are_not_judged():
    assert not quiet.busy({**QUIET, "others_cores": math.nan, "oncpu_share": math.nan}, 2)
    assert not quiet.busy({**QUIET, "loadavg_1m": 12.0}, 2)


def _summary(busy_rows):
    rows = []
    for i, why in enumerate(busy_rows):
        rows.append({"queue": "heapq", "scenario": "single", "tasks": 1000, "producers": 1,
                     "consumers": 1, "repetition": i, "busy": bool(why), "busy_why": why})
    return frames.summary_rows(rows)


def test_busy_cells_name_the_unit_and_why():
    cells = quiet.busy_cells(_summary(["", "other processes used 0.90 cores", ""]))
    assert cells.to_dict("records") == [
        {"queue": "heapq", "scenario": "single", "tasks": 1000, "producers": 1,
         "consumers": 1, "repetition": 1, "why": "other processes used 0.90 cores"}]
    assert quiet.busy_cells(_summary(["", ""])).empty
    assert quiet.busy_cells(pd.DataFrame({"queue": ["heapq"]})).empty  # before the check


def test_warning_lines_count_and_cap_the_busy_units():
    assert quiet.warning_lines(_summary(["", ""])) == []
    lines = quiet.warning_lines(_summary(["a", "b", "", "c"]), limit=2)
    assert lines[0].startswith("WARNING: 3 of 4 units were measured on a busy machine")
    assert lines[1:] == ["  heapq single tasks=1000 workers=1/1 rep=0: a",
                         "  heapq single tasks=1000 workers=1/1 rep=1: b",
                         "  ... and 1 more"]


def test_the_batch_warns_on_stderr_only_of_busy_units(tmp_path):
    run = store.Run.create(tmp_path, "r1", machine={"machine_id": "m"})
    store.write_parquet(run.dir / store.SUMMARY_FILE, _summary(["", ""]))
    assert batch.busy_warnings(run) == []
    store.write_parquet(run.dir / store.SUMMARY_FILE, _summary(["", "load"]))
    assert batch.busy_warnings(run)[1] == "  heapq single tasks=1000 workers=1/1 rep=1: load"


@linux
def test_a_thread_that_ended_keeps_its_cpu_time_in_the_totals():
    before = quiet.schedstat_ns()[0]

    def spin() -> None:
        end = time.thread_time() + 0.05
        while time.thread_time() < end:
            pass

    thread = threading.Thread(target=guard(PassState([], 1, 1), spin))
    thread.start()
    thread.join()
    assert quiet.schedstat_ns()[0] - before >= 0.04e9


@linux
def test_a_process_outside_this_one_shows_in_others_cores():
    # `sh` leaves `yes` to init, so it is no descendant of this process.
    window = quiet.UnitWindow()
    subprocess.run(["sh", "-c", "timeout 0.5 yes > /dev/null &"], check=True)
    deadline = time.monotonic() + 0.6
    while time.monotonic() < deadline:
        time.sleep(0.05)
    row = window.close()
    assert row["others_cores"] > 0.3  # `yes` alone takes most of a core on 2
    assert row["quiet_window_s"] >= 0.6


@linux
def test_a_child_of_this_process_is_its_own_cpu_not_others():
    child = subprocess.Popen([sys.executable, "-c", "import time\nt=time.time()+0.6\n"
                              "while time.time() < t: pass"])
    try:
        _, children = quiet.own_cpu_ns()
        assert child.pid in children
    finally:
        child.wait(10)


@linux
def test_a_unit_row_carries_the_readings_and_the_verdict():
    row, _ = measure(UnitSpec("heapq", "single", 2_000, 1, 1, 0, seed=1))
    assert row["loadavg_1m"] >= 0 and row["others_cores"] >= 0
    assert 0 < row["oncpu_share"] <= 1 and row["quiet_window_s"] > 0
    assert row["busy"] == bool(row["busy_why"])
    assert row["busy"] == quiet.busy(row, os.cpu_count())
    assert row["cpu_us_per_task"] > 0 and row["cpu_cores"] > 0
