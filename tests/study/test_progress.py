"""pqlab.study.progress: sweeps report units to a file; the batch reads it and prints lines."""

from __future__ import annotations

import json
import os
import time

from pqlab.study import progress
from pqlab.study.sweep import Grid, run_sweep


def test_without_the_variable_a_reporter_writes_nothing(monkeypatch, tmp_path):
    monkeypatch.delenv(progress.ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    reporter = progress.Reporter(3)
    reporter.advance()
    assert reporter.path is None and list(tmp_path.iterdir()) == []


def test_a_sweep_reports_each_unit(monkeypatch, tmp_path):
    path = tmp_path / "progress.jsonl"
    monkeypatch.setenv(progress.ENV, str(path))
    grid = Grid(queues=("heapq",), scenarios=("single",), task_counts=(200, 300), repetitions=2)
    run_sweep(grid, fresh_process=False, progress=False, remeasure_tries=0)
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    assert [e["done"] for e in entries] == [0, 1, 2, 3, 4]
    assert {e["total"] for e in entries} == {4} and len({e["sweep"] for e in entries}) == 1
    snap = progress.read(path)
    assert (snap.done, snap.total) == (4, 4) and snap.left_s == 0


def _line(path, sweep, done, total, at):
    with open(path, "a") as fh:
        fh.write(json.dumps({"sweep": sweep, "done": done, "total": total, "time": at}) + "\n")


def test_time_left_is_units_left_at_the_rate_so_far_over_all_sweeps(tmp_path):
    path = tmp_path / "p.jsonl"
    assert progress.read(path) is None
    _line(path, "a", 2, 10, 100.0)  # resumed: 2 units were done before
    assert progress.read(path, now=101.0).left_s is None  # nothing measured yet
    _line(path, "a", 6, 10, 104.0)
    _line(path, "b", 0, 10, 104.0)
    with open(path, "a") as fh:
        fh.write('{"sweep": "b", "do')  # a line being written is skipped
    snap = progress.read(path, now=108.0)
    assert (snap.done, snap.total) == (6, 20)
    assert snap.left_s == 14 * 8.0 / 4  # 4 units measured in 8 s, 14 to go
    assert snap.line("02-threads") == "  02-threads: 6/20 units, ~28 s left"


def test_watching_prints_changes_and_restores_the_environment(monkeypatch):
    monkeypatch.setenv(progress.ENV, "before")
    lines: list[str] = []
    with progress.watching("01-single-baseline", lines.append, every_s=0.0) as path:
        reporter = progress.Reporter(5)  # as a sweep in the notebook's kernel would
        assert reporter.path == str(path) == os.environ[progress.ENV]
        reporter.advance()
        deadline = time.monotonic() + 30
        while not lines and time.monotonic() < deadline:
            time.sleep(0.05)
    assert lines and lines[-1].startswith("  01-single-baseline: 1/5 units")
    assert not path.exists()
    assert os.environ[progress.ENV] == "before"


def test_a_load_sweep_reports_each_rho_and_each_aging_run(monkeypatch, tmp_path):

    from pqlab.studies import load
    from pqlab.study import store

    path = tmp_path / "progress.jsonl"
    monkeypatch.setenv(progress.ENV, str(path))
    p = load.Params(queue="queue.PriorityQueue", rhos=[0.2, 0.5], spectrum_rho=0.5, workers=1,
                    service_ms=2.0, duration_s=0.3, seed=1, progress=False, aging_ms=5.0)
    load.sweep(p, store.Run.create(tmp_path / "data", "load"))
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    assert [e["done"] for e in entries] == [0, 1, 2, 3]  # ρ 0.2, ρ 0.5, ρ 0.5 with aging
    assert {e["total"] for e in entries} == {3}


def test_a_sweeps_note_is_printed_at_once_and_only_once(monkeypatch):
    lines = []
    with progress.watching("01-single-baseline", lines.append, every_s=3600.0):
        reporter = progress.Reporter(2)
        reporter.grow(1, "measuring again 1 unit measured on a busy machine (try 1 of 2)")
        reporter.advance()
        deadline = time.monotonic() + 30
        while not any("measuring again" in line for line in lines):
            assert time.monotonic() < deadline, lines
            time.sleep(0.02)
        reporter.advance()
        time.sleep(0.2)  # more polls: the note is not printed again
    assert sum("measuring again" in line for line in lines) == 1
    assert any(line.startswith("  01-single-baseline: measuring again 1 unit") for line in lines)
