"""pqlab.study.store: atomic files, run folders, resume after a kill, loading many runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from pqlab.harness.worker import SAMPLES_PER_RUN
from pqlab.measure import levels
from pqlab.study import config, frames, store
from pqlab.study.sweep import Grid, run_sweep

MACHINE = {"machine_id": "m-test", "machine": "test box", "hostname": "box"}


def test_atomic_write_leaves_the_old_file_when_the_writer_fails(tmp_path):
    target = tmp_path / "x.json"
    store.write_json(target, {"v": 1})

    def broken(tmp: Path) -> None:
        tmp.write_text('{"v": 2')  # half written, then the writer dies
        raise OSError("disk full")

    with pytest.raises(OSError):
        store.atomic_write(target, broken)
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_run_ids_sort_by_time_and_are_checked():
    import datetime as dt

    a = store.new_run_id(dt.datetime(2025, 1, 2, 3, 4, 5), "my host")
    assert a == "20250102T030405Z-my-host"
    with pytest.raises(store.StoreError, match="run id"):
        store.check_run_id("../escape")


def test_create_open_and_refuse_to_overwrite(tmp_path):
    run = store.Run.create(tmp_path, "r1", machine=MACHINE, profile="quick")
    assert run.manifest()["schema_version"] == store.SCHEMA_VERSION
    assert run.manifest()["profile"] == "quick"
    assert run.machine()["machine_id"] == "m-test"
    with pytest.raises(store.StoreError, match="already exists"):
        store.Run.create(tmp_path, "r1", machine=MACHINE)
    assert store.Run.create(tmp_path, "r1", exist_ok=True, machine=MACHINE).dir == run.dir
    with pytest.raises(store.StoreError, match="would mix two machines"):
        store.Run.create(tmp_path, "r1", exist_ok=True,
                         machine={**MACHINE, "machine_id": "other"})
    with pytest.raises(store.StoreError, match="no run 'r2'.*r1"):
        store.Run.open(tmp_path, "r2")
    assert store.list_runs(tmp_path) == ["r1"] and store.latest_run(tmp_path) == "r1"


def test_a_newer_schema_is_refused(tmp_path):
    run = store.Run.create(tmp_path, "r1", machine=MACHINE)
    run.update_manifest(schema_version=store.SCHEMA_VERSION + 1)
    with pytest.raises(store.StoreError, match="schema version") as refused:
        store.Run.open(tmp_path, "r1")
    message = str(refused.value)
    assert "\n" not in message and f"version {store.SCHEMA_VERSION + 1}" in message
    assert "python -m pqlab batch --profile default" in message


def _v1_overload_row(policy: str, served_low: int) -> dict:
    row = {"queue": "ThreadSafeBucketQueue", "policy": policy, "rho": 1.5, "repetition": 0}
    for level, served in zip(levels.LEVELS, (90, 80, 70, served_low), strict=True):
        row.update({f"served_{level}": served, f"share_served_{level}": served / 100,
                    f"goodput_per_s_{level}": served / 5})
    return row


def test_a_version_1_run_opens_with_its_wide_frames_made_long(tmp_path):
    run = store.Run.create(tmp_path, "v1", machine=MACHINE)
    wide = pd.DataFrame([_v1_overload_row("none", 10), _v1_overload_row("limits", 40)])
    run.save_frames(overload=wide, load=pd.DataFrame({"priority": ["LOW"], "rho": [0.3]}))
    run.update_manifest(schema_version=1)
    old = store.Run.open(tmp_path, "v1")
    overload = old.frame("overload")
    assert len(overload) == 2 * len(levels.LEVELS)
    assert {"served", "share_served", "goodput_per_s"} <= set(overload.columns)
    assert not any(c.endswith("_LOW") for c in overload.columns)
    table = levels.table(overload, ["policy"])
    assert table.loc[("limits", "LOW"), "share_served"] == pytest.approx(0.4)
    assert table.loc[("none", "CRITICAL"), "served"] == 90
    pd.testing.assert_frame_equal(old.frame("load"), run.frame("load"))  # long already
    with pytest.raises(store.StoreError, match="schema version 1"):
        store.Run.create(tmp_path, "v1", exist_ok=True, machine=MACHINE)  # read, not added to
    run.update_manifest(schema_version=store.SCHEMA_VERSION)
    assert store.Run.open(tmp_path, "v1").frame("overload").shape == wide.shape  # as stored


def test_the_v1_reader_leaves_a_frame_without_wide_columns_alone():
    frame = pd.DataFrame({"queue": ["q"], "rho": [0.5], "level_depth_source": ["stamps"]})
    assert store.v1_frame(frame) is frame


def _sweep_into(run, queues=("heapq",), tasks=(200,), reps=1):
    grid = Grid(queues=queues, scenarios=("single",), task_counts=tasks, repetitions=reps)
    return run_sweep(grid, run, fresh_process=False, progress=False)


def test_sweeps_add_to_a_run_and_skip_done_units(tmp_path):
    run = store.Run.create(tmp_path, "r1", machine=MACHINE)
    first = _sweep_into(run)
    assert first.measured == 1 and not run.cells_dir.exists()
    again = _sweep_into(run, queues=("heapq", "queue.PriorityQueue"))
    assert (again.measured, again.skipped) == (1, 1)
    summary, samples = run.summary(), run.samples()
    assert sorted(map(str, summary["queue"])) == ["heapq", "queue.PriorityQueue"]
    assert len(samples) == 400
    assert set(run.done_units()) == set(frames.unit_keys(summary))


def test_orphan_samples_of_a_killed_unit_are_dropped(tmp_path):
    run = store.Run.create(tmp_path, "r1", machine=MACHINE)
    _sweep_into(run)
    run.cells_dir.mkdir()
    (run.cells_dir / "single__x__t1__p1c1__r0.samples.parquet").write_bytes(b"partial")
    run.consolidate()
    assert not run.cells_dir.exists() and len(run.summary()) == 1


def test_load_runs_keys_by_run_and_machine(tmp_path):
    for rid, machine in (("r1", MACHINE), ("r2", {**MACHINE, "machine_id": "m2",
                                                   "machine": "other box"})):
        _sweep_into(store.Run.create(tmp_path, rid, machine=machine))
    df = store.load_runs(tmp_path)
    assert list(df.columns[:3]) == ["run_id", "machine", "machine_id"]
    assert set(df["machine"]) == {"test box", "other box"} and len(df) == 2
    assert len(store.load_runs(tmp_path, ["r2"], frame="samples")) == 200
    with pytest.raises(store.StoreError):
        store.load_runs(tmp_path, ["nope"])


def test_csv_export_on_request(tmp_path):
    run = store.Run.create(tmp_path, "r1", machine=MACHINE)
    _sweep_into(run)
    paths = run.export_csv()
    assert [p.name for p in paths] == ["summary.csv", "samples.csv"]
    assert len(pd.read_csv(paths[1])) == 200


def _cells(run_dir: Path) -> int:
    cells = run_dir / store.CELLS_DIR
    return len(list(cells.glob("*.summary.parquet"))) if cells.is_dir() else 0


def test_a_killed_sweep_resumes_and_no_file_is_truncated(tmp_path):
    env = {**os.environ, "PYTHONPATH": config.package_pythonpath()}
    cmd = [sys.executable, "-m", "pqlab", "sweep", "--queues", "heapq,queue.PriorityQueue",
           "--scenarios", "single", "--tasks", "3000", "--repeat", "5", "--run-id", "killed",
           "--output", str(tmp_path), "--no-progress"]
    run_dir = tmp_path / "data" / "killed"
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while _cells(run_dir) < 3 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, "the sweep finished before it could be killed"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its worker process, mid-unit
        proc.wait()
    done_before = _cells(run_dir)
    assert 3 <= done_before < 10
    for path in run_dir.rglob("*.parquet"):
        pq.read_table(path)  # every finished file is whole
    out = subprocess.run([*cmd, "--resume"], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert f"{10 - done_before} runs measured, {done_before} already done" in out.stdout
    run = store.Run.open(tmp_path / "data", "killed")
    summary = run.summary()
    assert len(summary) == 10 and summary[frames.UNIT].drop_duplicates().shape[0] == 10
    assert len(run.samples()) == 10 * min(3000, SAMPLES_PER_RUN)
    assert not list(run_dir.rglob(f"*{store.TMP_MARK}*")) and not run.cells_dir.exists()
    json.loads((run_dir / store.MACHINE_FILE).read_text())


def test_named_frames_round_trip_and_a_rerun_removes_what_it_no_longer_has(tmp_path):
    run = store.Run.create(tmp_path, "20260101T000000Z-t")
    run.save_frames(**{"load": pd.DataFrame({"a": [1]}), "load-aging": pd.DataFrame({"b": [2]})})
    assert run.frame("load")["a"].tolist() == [1] and not run.frame("load-aging").empty
    run.save_frames(replace=("load-aging",), load=pd.DataFrame({"a": [3]}))
    assert run.frame("load")["a"].tolist() == [3] and run.frame("load-aging").empty
    assert run.frame("never").empty
    with pytest.raises(ValueError, match="frame name '../x' must match"):
        run.frame("../x")
