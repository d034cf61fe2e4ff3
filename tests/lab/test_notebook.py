"""What the notebooks call (pqlab.lab.notebook): runs opened and read, features stored once,
the headline table, the files a run produced."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest

from pqlab.harness import features
from pqlab.lab import notebook
from pqlab.record import adr
from pqlab.study import store


def _ns(tmp_path, run_id=""):
    return SimpleNamespace(OUTPUT_DIR=str(tmp_path / "out"), RUN_ID=run_id)


def test_a_measuring_notebook_creates_or_resumes_and_a_reading_one_reads_the_latest(tmp_path):
    paths, first = notebook.open_run(_ns(tmp_path, "20260101T000000Z-a"))
    assert first.dir == paths.data / "20260101T000000Z-a" and first.dir.is_dir()
    _, again = notebook.open_run(_ns(tmp_path, "20260101T000000Z-a"))  # resumed, not refused
    assert again.dir == first.dir
    store.Run.create(paths.data, "20260102T000000Z-b")
    _, read = notebook.read_run(_ns(tmp_path))
    assert read.run_id == "20260102T000000Z-b"
    _, named = notebook.read_run(_ns(tmp_path, "20260101T000000Z-a"))
    assert named.dir == first.dir


def test_store_features_probes_once_and_keeps_an_existing_file(tmp_path, monkeypatch):
    run = store.Run.create(tmp_path, "r1", machine={"machine_id": "m"})
    probed = pd.DataFrame({"queue": ["heapq"], "bounded": [False]})
    calls = []
    monkeypatch.setattr(features, "features_frame", lambda: calls.append(1) or probed)
    pd.testing.assert_frame_equal(notebook.store_features(run), probed)
    assert (run.dir / adr.FEATURES_FILE).is_file() and calls == [1]
    monkeypatch.setattr(features, "features_frame", lambda: pytest.fail("probed again"))
    pd.testing.assert_frame_equal(notebook.store_features(run), probed)  # the stored ones


def test_produced_lists_the_runs_files_its_figures_and_extras_that_exist(tmp_path):
    paths, run = notebook.open_run(_ns(tmp_path, "r1"))
    figures = paths.figures_dir(run.run_id)
    figures.mkdir(parents=True)
    (figures / "a.svg").write_text("x" * 2000)
    extra = tmp_path / "adr.md"
    extra.write_text("# ADR")
    table = notebook.produced(paths, run, extra, tmp_path / "missing.md")
    files = list(table["file"])
    assert str(run.dir / store.RUN_FILE) in files
    assert str(figures / "a.svg") in files and str(extra) in files
    assert str(tmp_path / "missing.md") not in files
    assert table.loc[files.index(str(figures / "a.svg")), "kB"] == 2.0


def test_the_headline_is_the_median_per_cell_with_its_repetitions():
    summary = pd.DataFrame([{"queue": "heapq", "scenario": "single", "tasks": 100,
                             "producers": 1, "throughput_ops_s": ops, "enqueue_mean_us": 1.0,
                             "enqueue_p99_us": 2.0, "dequeue_mean_us": 1.5,
                             "dequeue_p99_us": 3.0, "violations": 0}
                            for ops in (100.0, 300.0, 200.0)])
    [row] = notebook.headline(summary).to_dict("records")
    assert row["throughput ops/s"] == 200.0 and row["repetitions"] == 3
    assert row["p99 dequeue µs"] == 3.0


def test_the_quiet_check_says_when_no_unit_was_busy(capsys):
    notebook.quiet_check(pd.DataFrame({"busy": [False, False], "busy_why": ["", ""]}))
    assert capsys.readouterr().out.strip() == (
        "quiet machine: none of the 2 units was measured on a busy one")


def test_versions_name_python_and_each_package():
    v = notebook.versions()
    assert v["python"].split()[0] in {"CPython", "PyPy"}
    assert set(notebook.VERSION_PACKAGES) <= set(v) and v["pandas"] == pd.__version__
