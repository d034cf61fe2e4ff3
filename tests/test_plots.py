"""pqlab.plots: one function per figure, exported as SVG + PNG + CSV."""

from __future__ import annotations

import pandas as pd
import pytest

from pqlab import QUEUES, analysis, frames, plots
from pqlab.sweep import Grid, run_sweep


@pytest.fixture(scope="module")
def frames_():
    grid = Grid(queues=("heapq", "queue.PriorityQueue", "asyncio.PriorityQueue"),
                scenarios=("single", "threads", "async"), task_counts=(200, 400),
                worker_counts=(1, 2), repetitions=2)
    result = run_sweep(grid, fresh_process=False, progress=False)
    return result.summary, result.samples


def _labelled(fig):
    assert fig._suptitle is not None and fig._suptitle.get_text()
    for ax in fig.axes:
        if ax.get_visible() and ax.get_xlabel():
            assert ax.get_ylabel()
    text = fig._suptitle.get_text() + " ".join(ax.get_xlabel() + ax.get_ylabel()
                                               for ax in fig.axes)
    assert any(u in text for u in ("µs", "ops/s", "ratio", "count", "fraction")), text


def _exported(tmp_path, name):
    for ext in ("svg", "png", "csv"):
        assert (tmp_path / f"{name}.{ext}").stat().st_size > 0, ext


@pytest.mark.parametrize("name, draw", [
    ("latency-ecdf-single", lambda s, x, out: plots.latency_ecdf(x, "single", out_dir=out)),
    ("tail-vs-tasks-single", lambda s, x, out: plots.tail_vs_tasks(s, "single", out_dir=out)),
    ("throughput-vs-workers-threads",
     lambda s, x, out: plots.throughput_vs_workers(s, "threads", out_dir=out)),
    ("tail-vs-workers-async", lambda s, x, out: plots.tail_vs_workers(s, "async", out_dir=out)),
    ("wait-by-priority-threads",
     lambda s, x, out: plots.wait_by_priority(s, "threads", out_dir=out)),
    ("correctness", lambda s, x, out: plots.correctness(s, out_dir=out)),
])
def test_each_figure_is_labelled_and_exported(frames_, tmp_path, name, draw):
    summary, samples = frames_
    fig = draw(summary, samples, tmp_path)
    _labelled(fig)
    _exported(tmp_path, name)


def test_the_csv_is_the_frame_behind_the_figure(frames_, tmp_path):
    summary, _ = frames_
    plots.throughput_vs_workers(summary, "threads", out_dir=tmp_path)
    data = pd.read_csv(tmp_path / "throughput-vs-workers-threads.csv")
    expected = analysis.cell_stats(summary[summary["scenario"] == "threads"],
                                   "throughput_ops_s")
    assert len(data) == len(expected)
    assert sorted(data["median"].round(3)) == sorted(expected["median"].round(3))


def test_ratios_across_machines(frames_, tmp_path):
    summary, _ = frames_
    two = frames.concat([summary.assign(run_id="a", machine="box a"),
                         summary.assign(run_id="b", machine="box b")])
    ratios = analysis.ratios_to_baseline(two)
    assert (ratios[ratios["queue"] == ratios["baseline"]]["ratio"] == 1.0).all()
    _labelled(plots.ratios_across_machines(ratios, out_dir=tmp_path))
    _exported(tmp_path, "ratios-across-machines")


def test_a_missing_scenario_gives_a_figure_that_says_so(frames_):
    summary, _ = frames_
    fig = plots.throughput_vs_workers(summary, "no-such-scenario")
    assert "no runs" in fig.axes[0].texts[0].get_text()


def test_a_queue_keeps_its_color():
    with_extra = plots.queue_colors(["extra"])
    assert plots.queue_colors() == {q: with_extra[q] for q in QUEUES}
    assert with_extra["extra"] not in plots.queue_colors().values()
