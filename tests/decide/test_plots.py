"""pqlab.decide.plots: one function per figure, exported as SVG + PNG + CSV."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from pqlab import QUEUES
from pqlab.decide import analysis, decision, plots
from pqlab.study import frames
from pqlab.study.sweep import Grid, run_sweep


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


def _overlapping(boxes):
    """Pairs of boxes (name, Bbox) that overlap by more than a pixel each way."""
    return [(a, b) for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2)
            if min(box_a.x1, box_b.x1) - max(box_a.x0, box_b.x0) > 1
            and min(box_a.y1, box_b.y1) - max(box_a.y0, box_b.y0) > 1]


def _readable(fig: Figure) -> None:
    """No two tick labels of an axis overlap, no title crosses another title or a
    legend or runs off the figure, and every legend lies outside every panel's data
    area."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    axes = [ax for ax in fig.axes if ax.get_visible() and ax.axison]
    for ax in axes:
        for axis in (ax.xaxis, ax.yaxis):
            labels = [(t.get_text(), t.get_window_extent(renderer))
                      for t in axis.get_ticklabels() if t.get_visible() and t.get_text()]
            assert not _overlapping(labels), (ax.get_title(), _overlapping(labels))
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend()] + list(fig.legends)
    titles = [(f"title {ax.get_title(loc)!r}", ax.title if loc == "center"
               else getattr(ax, f"_{loc}_title")) for ax in axes
              for loc in ("center", "left") if ax.get_title(loc)]
    if fig._suptitle is not None:
        titles.append(("suptitle", fig._suptitle))
        title = fig._suptitle.get_window_extent(renderer)
        assert title.x0 >= 0 and title.x1 <= fig.bbox.x1, "the title runs off the figure"
    boxes = [(name, text.get_window_extent(renderer)) for name, text in titles]
    boxes += [(f"legend {i}", legend.get_window_extent(renderer))
              for i, legend in enumerate(legends)]
    assert not _overlapping(boxes), _overlapping(boxes)
    for legend, ax in itertools.product(legends, axes):
        assert not _overlapping([("legend", legend.get_window_extent(renderer)),
                                 ("data", ax.get_window_extent(renderer))]), ax.get_title()


@pytest.mark.parametrize("name, draw", [
    ("latency-ecdf-single", lambda s, x, out: plots.latency_ecdf(x, "single", out_dir=out)),
    ("tail-vs-tasks-single", lambda s, x, out: plots.tail_vs_tasks(s, "single", out_dir=out)),
    ("throughput-vs-workers-threads",
     lambda s, x, out: plots.throughput_vs_workers(s, "threads", out_dir=out)),
    ("tail-vs-workers-async", lambda s, x, out: plots.tail_vs_workers(s, "async", out_dir=out)),
    ("wait-by-priority-threads",  # priorities set apart: otherwise it is not drawn
     lambda s, x, out: plots.wait_by_priority(
         s.assign(wait_p99_us_LOW=s["wait_p99_us_CRITICAL"] * 10), "threads", out_dir=out)),
    ("correctness", lambda s, x, out: plots.correctness(s, out_dir=out)),
])
def test_each_figure_is_labelled_and_exported(frames_, tmp_path, name, draw):
    summary, samples = frames_
    fig = draw(summary, samples, tmp_path)
    _labelled(fig)
    _readable(fig)
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
    fig = plots.ratios_across_machines(ratios, out_dir=tmp_path)
    _labelled(fig)
    _readable(fig)
    _exported(tmp_path, "ratios-across-machines")


def test_a_missing_scenario_gives_a_figure_that_says_so(frames_):
    summary, _ = frames_
    fig = plots.throughput_vs_workers(summary, "no-such-scenario")
    assert "no runs" in fig.axes[0].texts[0].get_text()


def test_a_queue_keeps_its_color():
    with_extra = plots.queue_colors(["extra"])
    assert plots.queue_colors() == {q: with_extra[q] for q in QUEUES}
    assert with_extra["extra"] not in plots.queue_colors().values()


# -- one look per queue ---------------------------------------------------------------


def _line_styles(fig):
    return {line.get_label(): (line.get_color(), line.get_marker(), line.get_linestyle())
            for ax in fig.axes for line in ax.get_lines() if line.get_label() in QUEUES}


def test_a_queue_looks_the_same_whatever_else_a_figure_shows(frames_):
    _, samples = frames_
    alone = samples[samples["queue"] == "queue.PriorityQueue"]
    with_others = _line_styles(plots.latency_ecdf(samples, "single"))
    by_itself = _line_styles(plots.latency_ecdf(alone, "single"))
    assert by_itself == {"queue.PriorityQueue": with_others["queue.PriorityQueue"]}
    assert len(set(with_others.values())) == len(with_others) == 3
    expected = plots.queue_style("queue.PriorityQueue")
    assert by_itself["queue.PriorityQueue"] == (expected.color, expected.marker, "--")


# -- decision overview and CPU cost ------------------------------------------------------

CONTEXTS = {"async API server": ["BridgeBucketQueue", "AsyncBucketQueue", "janus.PriorityQueue"],
            "thread workers": ["ThreadSafeHeapQueue", "queue.PriorityQueue"],
            "single-threaded code": list(QUEUES)[:10],
            "async handlers feeding worker threads": ["BridgeBucketQueue",
                                                      "culsans.PriorityQueue"]}


def _decision_table() -> pd.DataFrame:
    rows = []
    for context, queues in CONTEXTS.items():
        for i, queue in enumerate(queues):
            cpu = 2.0 * (i + 1)
            rows.append({"context": context, "queue": queue, "features": max(0, 3 - i),
                         "cpu_us_per_task": cpu, "idle_cores": 0.001 * (i + 1),
                         "chosen": i == 0, "set_aside": "" if cpu < 100
                         else "would spend 11% of a core at 1,000 requests a second"})
    table = pd.DataFrame(rows)
    table.loc[1, "cpu_us_per_task"] = 120.0  # one over the CPU gate
    table.loc[1, "set_aside"] = "would spend 12% of a core at 1,000 requests a second"
    table.loc[2, "idle_cores"] = np.nan  # not measured
    return table


def test_decision_overview_draws_the_rules_gates_and_marks_choice_and_set_aside(tmp_path):
    table = _decision_table()
    fig = plots.decision_overview(table, out_dir=tmp_path)
    _exported(tmp_path, "decision-overview")
    _readable(fig)
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title(loc="left") for ax in panels if ax.get_title(loc="left")] \
        == list(CONTEXTS)
    ticks = [t for ax in panels for t in ax.get_yticklabels()]
    starred = [t.get_text() for t in ticks if t.get_text().startswith("★")]
    assert starred == [f"★ {q[0]}" for q in CONTEXTS.values()]
    hatched = [p for ax in panels for p in ax.patches if p.get_hatch()]
    assert len(hatched) == 3 * (table["set_aside"] != "").sum() > 0  # a bar per gate panel
    gates = sorted({line.get_xdata()[0] for ax in panels for line in ax.get_lines()
                    if line.get_linestyle() == "--"})
    assert gates == [decision.IDLE_LIMIT_CORES, 100 * decision.MATERIAL_SHARE]
    needed = [line.get_xdata()[0] for ax in panels for line in ax.get_lines()
              if line.get_linestyle() == ":"]
    assert needed == [len(decision.context(c).needs) for c in CONTEXTS]
    assert "throughput" not in fig.texts[0].get_text().lower()


def test_decision_overview_without_the_optional_columns():
    table = _decision_table().drop(columns=["chosen", "set_aside"])
    fig = plots.decision_overview(table)
    ticks = [t.get_text() for ax in fig.axes for t in ax.get_yticklabels()]
    assert ticks and not any(t.startswith("★") for t in ticks)
    assert not any(p.get_hatch() for ax in fig.axes for p in ax.patches)


def test_decision_overview_names_missing_columns(tmp_path):
    table = _decision_table().drop(columns=["cpu_us_per_task"])
    with pytest.raises(ValueError, match="missing: cpu_us_per_task"):
        plots.decision_overview(table, out_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_cpu_cost_marks_what_was_not_measured(tmp_path):
    table = _decision_table()[["context", "queue"]]
    table = pd.concat([table, table], ignore_index=True)  # two repetitions
    table["cpu_us_per_task"] = np.linspace(0.5, 40.0, len(table))
    table["idle_cores"] = np.where(table["context"] == "single-threaded code", np.nan,
                                   np.linspace(0.0, 1.5, len(table)))
    fig = plots.cpu_cost(table, out_dir=tmp_path)
    _exported(tmp_path, "cpu-cost")
    _readable(fig)
    drawn = pd.read_csv(tmp_path / "cpu-cost.csv")
    assert len(drawn) == len(table) // 2
    medians = table.groupby(["context", "queue"], sort=False)["cpu_us_per_task"].median()
    assert np.allclose(drawn["cpu_us_per_task"], medians.to_numpy())
    notes = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert notes.count("not measured") == len(CONTEXTS["single-threaded code"])
    limits = [line for ax in fig.axes for line in ax.get_lines()
              if line.get_linestyle() == "--"]
    assert {line.get_xdata()[0] for line in limits} == {0.05}
    assert len(limits) == len(CONTEXTS)
    labels = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    assert any("limit for waiting workers" in label for label in labels)


def test_cpu_cost_names_missing_columns():
    with pytest.raises(ValueError, match="missing: idle_cores"):
        plots.cpu_cost(pd.DataFrame({"context": ["x"], "queue": ["heapq"],
                                     "cpu_us_per_task": [1.0]}))


def test_cpu_cost_of_a_run_without_cpu_readings(tmp_path):
    """A run from before CPU time was recorded draws 'not measured', not an error."""
    table = pd.DataFrame({"context": ["thread workers"] * 2,
                          "queue": ["queue.PriorityQueue", "ThreadSafeHeapQueue"],
                          "cpu_us_per_task": [np.nan, np.nan], "idle_cores": [np.nan, np.nan]})
    plots.cpu_cost(table, out_dir=tmp_path)
    assert (tmp_path / "cpu-cost.png").is_file()


# -- figures that are not drawn when they have nothing to show, and axes that show the tail --


def test_one_machine_is_not_drawn_and_an_old_drawing_goes(frames_, tmp_path):
    summary, _ = frames_
    (tmp_path / "ratios-across-machines.png").write_bytes(b"stale")
    ratios = analysis.ratios_to_baseline(summary.assign(run_id="a", machine="box a"))
    fig = plots.ratios_across_machines(ratios, out_dir=tmp_path)
    assert "not drawn: one machine (box a)" in fig.axes[0].texts[0].get_text()
    assert not any(tmp_path.glob("ratios-across-machines.*"))


def test_priorities_whose_waits_coincide_are_not_drawn(frames_, tmp_path):
    summary, _ = frames_
    alike = summary.copy()
    for p in ("p50", "p99"):
        for level in ("HIGH", "NORMAL", "LOW"):
            alike[f"wait_{p}_us_{level}"] = alike[f"wait_{p}_us_CRITICAL"] * 1.2
    fig = plots.wait_by_priority(alike, "threads", out_dir=tmp_path)
    assert "within 1.20x of each other" in fig.axes[0].texts[0].get_text()
    assert not any(tmp_path.glob("wait-by-priority-threads.*"))
    apart = alike.assign(wait_p99_us_LOW=alike["wait_p99_us_CRITICAL"] * 10)
    plots.wait_by_priority(apart, "threads", out_dir=tmp_path)
    _exported(tmp_path, "wait-by-priority-threads")


def test_one_outlier_does_not_stretch_the_ecdf_axis(frames_):
    _, samples = frames_
    outlier = samples.copy()
    single = outlier.index[outlier["scenario"] == "single"]
    outlier.loc[single[0], "enqueue_ns"] = 50_000_000  # 50 ms, as in the reference run
    fig = plots.latency_ecdf(outlier, "single")
    enqueue = fig.axes[0]
    data = analysis.latency_quantiles(outlier, "single")
    data = data[(data["tasks"] == data["tasks"].max()) & (data["operation"] == "enqueue")]
    p999 = data.loc[data["quantile"] <= plots.ECDF_TOP, "latency_us"].max()
    assert enqueue.get_xlim()[1] == pytest.approx(plots.ECDF_MARGIN * p999)
    assert enqueue.get_xlim()[1] < 50_000


def test_load_points_sit_at_the_measured_rho(tmp_path):
    load = pd.DataFrame({"rho": [0.8, 0.8], "rho_measured": [0.85, 0.85],
                         "priority": ["CRITICAL", "LOW"], "tasks": [300, 300],
                         "queue_wait_mean_ms": [4.0, 46.0], "queue_wait_p99_ms": [30.0, 280.0],
                         "theory_wait_mean_ms": [3.5, 49.0], "workers": 4,
                         "queue": "queue.PriorityQueue", "service_ms": 16.0})
    theory = pd.DataFrame({"rho": [0.5, 0.8, 0.5, 0.8], "priority": ["CRITICAL"] * 2
                           + ["LOW"] * 2, "theory_wait_mean_ms": [0.8, 3.5, 2.2, 49.0]})
    fig = plots.load_wait_vs_rho(load, theory, out_dir=tmp_path)
    points = [line for line in fig.axes[0].get_lines() if line.get_linestyle() == "None"]
    assert points and all(list(line.get_xdata()) == [0.85] for line in points)
    assert fig._suptitle.get_text().count("\n") == 1
    _readable(fig)


def test_a_title_says_one_run_rather_than_a_median_of_one(frames_):
    summary, _ = frames_
    fig = plots.tail_vs_workers(summary, "threads")
    assert "(median of 2 runs)" in fig._suptitle.get_text()
    once = summary[summary["repetition"] == summary["repetition"].min()]
    fig = plots.throughput_vs_workers(once, "threads")
    assert "(one run per point)" in fig._suptitle.get_text()
    assert "band" not in fig._suptitle.get_text() and "median" not in fig._suptitle.get_text()


def test_a_single_task_count_is_said_in_the_title_not_keyed_in_the_legend(frames_):
    summary, _ = frames_
    one = summary[summary["tasks"] == summary["tasks"].max()]
    for fig in (plots.tail_vs_workers(one, "threads"), plots.tail_vs_workers(one, "async")):
        assert f", {int(one['tasks'].max()):,} tasks" in fig._suptitle.get_text()
        keys = [t.get_text() for ax in fig.axes if ax.get_legend()
                for t in ax.get_legend().get_texts()]
        assert keys and "tasks" not in " ".join(keys)
        assert not any(k.replace(",", "").isdigit() for k in keys)
