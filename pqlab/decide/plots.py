"""The figures: one function each, one seaborn style, exported as SVG + PNG + CSV.

Every function takes stored frames, derives the small frame it draws (via
``pqlab.decide.analysis``), and returns a ``matplotlib.figure.Figure`` (not managed by
pyplot, so a notebook shows it once). With ``out_dir`` it also writes
``<name>.svg``, ``<name>.png`` and ``<name>.csv`` (the frame behind the
figure) there, usually ``figures/<run-id>/``.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib.colors as mcolors
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from pqlab.decide import analysis
from pqlab.decide.decision import (
    IDLE_LIMIT_CORES,
    MATERIAL_SHARE,
    SERVICE_RATES_PER_S,
)
from pqlab.decide.decision import (
    context as context_named,
)
from pqlab.decide.style import LINESTYLES, queue_style
from pqlab.queues import QUEUES
from pqlab.study import store

STYLE = {"style": "whitegrid", "context": "notebook", "palette": "colorblind"}
PNG_DPI = 120  # about 100 KB per figure, sharp enough on screen
PANEL_INCHES = (5.2, 3.6)
LEGEND_INCHES = 2.4  # the legend beside the panels (outside them, on the right)
MARKER_SIZE = 6


def use_style() -> None:
    """The one style every figure uses."""
    sns.set_theme(**STYLE)


def queue_colors(names=None) -> dict[str, str]:
    """Every registered queue's colour (``pqlab.decide.style``), then those of ``names``, in
    registry order, so a queue looks the same everywhere."""
    names = list(QUEUES) + [str(n) for n in (names or []) if n not in QUEUES]
    return {name: queue_style(name).color for name in names}


def _queue_order(names) -> list[str]:
    """``names`` in registry order, unregistered ones after them, sorted."""
    names = {str(n) for n in names}
    return [q for q in QUEUES if q in names] + sorted(names - set(QUEUES))


def _queue_line(ax, x, y, queue: str, linestyle=None, **kwargs) -> None:
    """One line in the queue's colour and marker, and its line style unless given."""
    style = queue_style(queue)
    ax.plot(x, y, color=style.color, marker=style.marker, markersize=MARKER_SIZE,
            linestyle=style.linestyle if linestyle is None else linestyle, label=queue,
            **kwargs)


def _dashes(levels) -> dict:
    """A line style per level of a second variable (percentile, task count), in order."""
    return {v: LINESTYLES[i % len(LINESTYLES)] for i, v in enumerate(sorted(set(levels)))}


def _queue_lines(ax, data: pd.DataFrame, x: str, y: str, dash_by: str | None = None,
                 dashes: dict | None = None, **kwargs) -> None:
    """A line per queue, or per queue and level of ``dash_by`` drawn in that level's
    line style from ``dashes``."""
    keys = ["queue", dash_by] if dash_by else ["queue"]
    for key, part in data.groupby(keys, observed=True):
        part = part.sort_values(x)
        dash = dashes[key[1]] if dash_by else None
        _queue_line(ax, part[x], part[y], str(key[0]), dash, **kwargs)


def _criterion_line(ax, value: float, label: str, vertical: bool = False) -> Line2D:
    """The dashed grey line of a criterion or limit; return it for the legend."""
    draw = ax.axvline if vertical else ax.axhline
    return draw(value, color="dimgrey", linestyle="--", linewidth=1.2, label=label)


def _queue_legend(fig: Figure, queues, dashes: dict | None = None, dash_title: str = "",
                  extra: list | tuple = ()) -> None:
    """One legend for all panels, outside them on the right: a key per queue, then a line
    style per ``dashes`` level labelled ``dash_title`` (queues are keyed solid then, as
    the style belongs to the level), then the ``extra`` artists."""
    handles = []
    for queue in _queue_order(queues):
        style = queue_style(queue)
        handles.append(Line2D([], [], color=style.color, marker=style.marker,
                              markersize=MARKER_SIZE,
                              linestyle="-" if dashes else style.linestyle, label=queue))
    if dashes and len(dashes) > 1:  # one level is said in the title, not keyed
        handles.append(Line2D([], [], linestyle="none", label=dash_title))
        handles += [Line2D([], [], color="dimgrey", linestyle=dash,
                           label=f"{level:,}" if isinstance(level, int | np.integer)
                           else str(level))
                    for level, dash in dashes.items()]
    handles += list(extra)
    _figure_legend(fig, handles, "queue")


def _figure_legend(fig: Figure, handles: list, title: str) -> None:
    """One legend right of the top-right panel, below the figure's title, which a legend
    in the figure's corner would cross when the title is wide."""
    top_right = max((ax for ax in fig.axes if ax.get_visible()),
                    key=lambda ax: (-ax.get_subplotspec().rowspan.start,
                                    ax.get_subplotspec().colspan.stop))
    _small(top_right.legend(handles=handles, title=title, loc="upper left",
                            bbox_to_anchor=(1.02, 1.0), handlelength=3.0))


def panels(count: int = 1, cols: int | None = None, sharey: bool = False):
    """A figure of ``count`` panels in rows of ``cols``, in pqlab's style: (figure, axes)."""
    use_style()
    cols = cols or count
    rows = -(-count // cols)
    fig = Figure(figsize=(PANEL_INCHES[0] * cols + LEGEND_INCHES, PANEL_INCHES[1] * rows + 0.6),
                 layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False, sharey=sharey).ravel()
    for ax in axes[count:]:
        ax.set_visible(False)
    return fig, list(axes[:count])


def _plain(value: float, _pos: int | None = None) -> str:
    return f"{value:,.0f}" if value >= 10 else f"{value:g}"


def _workers_axis(ax, values) -> None:
    """Log-2 x axis with a plain label at each worker count."""
    values = sorted({int(v) for v in values})
    ax.set_xscale("log", base=2)
    ax.set_xticks(values, [str(v) for v in values])
    ax.xaxis.set_minor_formatter(NullFormatter())


def _tasks_axis(ax, values) -> None:
    """Log x axis with a label at each task count (1,000  10,000 …)."""
    values = sorted({int(v) for v in values})
    ax.set_xscale("log")
    ax.set_xticks(values, [f"{v:,}" for v in values])
    ax.xaxis.set_minor_formatter(NullFormatter())


def log_axis(ax, axis: str = "y") -> None:
    """Log axis labelled with plain numbers (1, 10, 100, 1,000), no minor labels.

    Call it after drawing: the tick steps depend on the data's range.
    """
    target = ax.yaxis if axis == "y" else ax.xaxis
    (ax.set_yscale if axis == "y" else ax.set_xscale)("log")
    low, high = ax.get_ylim() if axis == "y" else ax.get_xlim()
    decades = np.log10(high / low) if low > 0 and high > low else 0.0
    # Over a short range, 1-2-5 steps so more than one tick is labelled; within a
    # decade, evenly spaced round numbers (0.6 0.8 1 1.2).
    target.set_major_locator(MaxNLocator(nbins=5, steps=[1, 2, 2.5, 5, 10]) if decades < 1
                             else LogLocator(base=10, subs=(1.0, 2.0, 5.0) if decades < 2.5
                                             else (1.0,)))
    target.set_major_formatter(FuncFormatter(_plain))
    target.set_minor_formatter(NullFormatter())


def _small(legend) -> None:
    for text in legend.get_texts():
        text.set_fontsize("x-small")
    legend.get_title().set_fontsize("small")


def _tidy_legends(fig: Figure) -> None:
    """Small legends outside the data: panels that repeat one legend share a single one;
    any legend goes on its panel's right."""
    axes = [ax for ax in fig.axes if ax.get_legend() is not None]
    labels = [[t.get_text() for t in ax.get_legend().get_texts()] for ax in axes]
    if len(axes) > 1 and all(lab == labels[0] for lab in labels):
        legend = axes[0].get_legend()
        handles, title = legend.legend_handles, legend.get_title().get_text()
        for handle, label in zip(handles, labels[0], strict=True):
            handle.set_label(label)
        for ax in axes:
            ax.get_legend().remove()
        _figure_legend(fig, handles, title)
        return
    for ax in axes:
        if ax.get_legend().get_bbox_to_anchor() is ax.bbox:  # placed inside, by default
            sns.move_legend(ax, "upper left", bbox_to_anchor=(1.02, 1.0))
        _small(ax.get_legend())


def _wrap_title(fig: Figure) -> None:
    """Wrap the figure title's lines to the figure's width, which a long line overran."""
    title = fig._suptitle
    if title is None:
        return
    # A character of the title font is about 0.55 of its size wide.
    width = int(fig.get_figwidth() * 72 / (0.55 * title.get_fontsize()))
    title.set_text("\n".join(textwrap.fill(line, width) for line in
                             title.get_text().split("\n")))


def export(fig: Figure, data: pd.DataFrame, name: str, out_dir: Path | None) -> Figure:
    """Write ``name``.svg/.png/.csv to ``out_dir`` (atomically); return the figure."""
    _tidy_legends(fig)
    _wrap_title(fig)
    if out_dir is None:
        return fig
    out_dir = Path(out_dir)
    store.atomic_write(out_dir / f"{name}.svg", lambda tmp: fig.savefig(tmp, format="svg"))
    store.atomic_write(out_dir / f"{name}.png",
                       lambda tmp: fig.savefig(tmp, format="png", dpi=PNG_DPI))
    store.write_csv(out_dir / f"{name}.csv", data)
    return fig


def not_drawn(title: str, why: str, name: str, out_dir: Path | None) -> Figure:
    """A figure with nothing to show: says why on screen, writes no file, and removes the
    files an earlier drawing of ``name`` left in ``out_dir``."""
    if out_dir is not None:
        for suffix in (".svg", ".png", ".csv"):
            (Path(out_dir) / f"{name}{suffix}").unlink(missing_ok=True)
    fig = no_data(title, f"not drawn: {why}")
    _wrap_title(fig)
    return fig


def _used(df: pd.DataFrame) -> pd.DataFrame:
    """Drop unused categories, so legends and axes list only what is drawn."""
    df = df.copy()
    for col in df.select_dtypes("category").columns:
        df[col] = df[col].cat.remove_unused_categories()
    return df


def _present(df: pd.DataFrame, col: str) -> list[str]:
    return [str(v) for v in df[col].unique()] if col in df else []


def _runs_note(summary: pd.DataFrame, scenario: str, band: bool = False) -> str:
    """What a point stands for: "one run per point", or "median of N runs" (with the
    min-max band when ``band``); never a median or a band over one run."""
    df = summary[summary["scenario"].astype(str) == scenario]
    keys = [c for c in ("queue", "tasks", "producers") if c in df]
    counts = df.groupby(keys, observed=True).size() if keys and not df.empty else pd.Series()
    low, high = (int(counts.min()), int(counts.max())) if not counts.empty else (1, 1)
    if high <= 1:
        return "one run per point"
    runs = f"{low}-{high}" if low != high else f"{high}"
    return f"median of {runs} runs" + ("; band: min-max" if band else "")


def no_data(title: str, message: str) -> Figure:
    """A figure that says what is missing instead of drawing empty axes."""
    fig, (ax,) = panels()
    ax.set_axis_off()
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    fig.suptitle(title)
    return fig


ECDF_TOP = 0.999  # the ECDF's x axis ends past every queue's p99.9 ...
ECDF_MARGIN = 1.5  # ... by this factor


def latency_ecdf(samples: pd.DataFrame, scenario: str = "single", *,
                 out_dir: Path | None = None) -> Figure:
    """ECDF of enqueue and dequeue latency per queue (largest task count), log x axis."""
    data = analysis.latency_quantiles(samples, scenario)
    name, title = f"latency-ecdf-{scenario}", f"Latency per operation, scenario {scenario}"
    if data.empty:
        return export(no_data(title, "no samples"), data, name, out_dir)
    data = _used(data[data["tasks"] == data["tasks"].max()])
    fig, axes = panels(2, sharey=True)
    for ax, op in zip(axes, ("enqueue", "dequeue"), strict=True):
        part = data[data["operation"] == op]
        # A marker every fifth of a line's length names the line without hiding its steps.
        _queue_lines(ax, part, "latency_us", "quantile", drawstyle="steps-post",
                     markevery=0.2)
        log_axis(ax, "x")
        # The axis ends past the slowest queue's p99.9: one outlier would stretch it
        # decades beyond every tail, and the tails are what this figure is for.
        tail = part.loc[part["quantile"] <= ECDF_TOP, "latency_us"].max()
        beyond = int((part["latency_us"] > ECDF_MARGIN * tail).sum())
        ax.set_xlim(right=ECDF_MARGIN * tail)
        off = f", {beyond} off the axis" if beyond else ""
        ax.set(xlabel=f"µs, log scale{off}", ylabel="fraction of operations",
               title=f"{op} latency")
    _queue_legend(fig, data["queue"])
    fig.suptitle(f"{title}\n{int(data['tasks'].max()):,} tasks (ECDF); the x axis ends at "
                 f"{ECDF_MARGIN:g}x the slowest queue's p{100 * ECDF_TOP:g}")
    return export(fig, data, name, out_dir)


def tail_vs_tasks(summary: pd.DataFrame, scenario: str = "single", *,
                  out_dir: Path | None = None) -> Figure:
    """P99 and P99.9 of enqueue and dequeue latency (µs) against task count, log-log."""
    df = summary[summary["scenario"] == scenario]
    name, title = f"tail-vs-tasks-{scenario}", f"Tail latency against task count, {scenario}"
    metrics = {"enqueue_p99_us": "enqueue p99", "enqueue_p99_9_us": "enqueue p99.9",
               "dequeue_p99_us": "dequeue p99", "dequeue_p99_9_us": "dequeue p99.9"}
    if df.empty:
        return export(no_data(title, "no runs"), df, name, out_dir)
    long = analysis.metric_long(df, metrics)
    data = long.groupby(["queue", "tasks", "metric"], observed=True)["value"].median() \
        .reset_index(name="latency_us")
    data["operation"] = data["metric"].astype(str).str.split().str[0]
    data["percentile"] = data["metric"].astype(str).str.split().str[1]
    data = _used(data)
    fig, axes = panels(2, sharey=True)
    dashes = _dashes(data["percentile"])
    for ax, op in zip(axes, ("enqueue", "dequeue"), strict=True):
        part = data[data["operation"] == op]
        _queue_lines(ax, part, "tasks", "latency_us", "percentile", dashes)
        _tasks_axis(ax, data["tasks"])
        log_axis(ax, "y")
        ax.set(xlabel="tasks (log scale)", ylabel="latency (µs, log scale)", title=op)
    _queue_legend(fig, data["queue"], dashes, "percentile")
    fig.suptitle(f"{title}\n({_runs_note(summary, scenario)})")
    return export(fig, data, name, out_dir)


def throughput_vs_workers(summary: pd.DataFrame, scenario: str, *,
                          out_dir: Path | None = None) -> Figure:
    """Throughput (ops/s) against workers: median line, min–max band over repetitions."""
    df = summary[summary["scenario"] == scenario]
    name = f"throughput-vs-workers-{scenario}"
    title = f"Throughput against workers, {scenario}"
    if df.empty:
        return export(no_data(title, "no runs"), df, name, out_dir)
    data = _used(analysis.cell_stats(df, "throughput_ops_s"))
    task_counts = sorted(data["tasks"].unique())
    fig, axes = panels(len(task_counts), cols=min(2, len(task_counts)))
    for ax, tasks in zip(axes, task_counts, strict=True):
        part = data[data["tasks"] == tasks]
        _queue_lines(ax, part, "producers", "median")
        for queue, q in part.groupby("queue", observed=True):
            q = q.sort_values("producers")
            ax.fill_between(q["producers"], q["low"], q["high"],
                            color=queue_style(str(queue)).color, alpha=0.15, linewidth=0)
        criterion = _criterion_line(ax, analysis.MIN_THROUGHPUT_OPS_S,
                                    f"criterion ({analysis.MIN_THROUGHPUT_OPS_S:,} ops/s)")
        _workers_axis(ax, part["producers"])
        ax.yaxis.set_major_formatter(FuncFormatter(_plain))
        ax.set(xlabel="producers = consumers (log scale)", ylabel="throughput (ops/s)",
               title=f"{tasks:,} tasks")
    _queue_legend(fig, data["queue"], extra=[criterion])
    fig.suptitle(f"{title}\n({_runs_note(summary, scenario, band=True)})")
    return export(fig, data, name, out_dir)


def tail_vs_workers(summary: pd.DataFrame, scenario: str, *,
                    out_dir: Path | None = None) -> Figure:
    """P99 of enqueue and dequeue latency (µs) against workers, log y."""
    df = summary[summary["scenario"] == scenario]
    name, title = f"tail-vs-workers-{scenario}", f"P99 latency against workers, {scenario}"
    if df.empty:
        return export(no_data(title, "no runs"), df, name, out_dir)
    long = analysis.metric_long(df, {"enqueue_p99_us": "enqueue", "dequeue_p99_us": "dequeue"})
    data = long.groupby(["queue", "tasks", "producers", "metric"], observed=True)["value"] \
        .median().reset_index(name="p99_us")
    data = _used(data)
    fig, axes = panels(2)
    dashes = _dashes(data["tasks"])
    for ax, op in zip(axes, ("enqueue", "dequeue"), strict=True):
        part = data[data["metric"] == op]
        _queue_lines(ax, part, "producers", "p99_us", "tasks", dashes)
        _workers_axis(ax, part["producers"])
        log_axis(ax, "y")
        ax.set(xlabel="producers = consumers (log scale)", ylabel="p99 latency (µs, log scale)",
               title=f"{op} (a blocking get includes its wait)" if op == "dequeue" else op)
    _queue_legend(fig, data["queue"], dashes, "tasks")
    fig.suptitle(f"{title}{_one_task_count(data)}\n({_runs_note(summary, scenario)})")
    return export(fig, data, name, out_dir)


def _one_task_count(data: pd.DataFrame) -> str:
    """", 10,000 tasks" when every point has that task count (no line style keys it), else ""."""
    counts = data["tasks"].unique()
    return f", {int(counts[0]):,} tasks" if len(counts) == 1 else ""


def loop_lag_vs_workers(summary: pd.DataFrame, scenario: str, *,
                        out_dir: Path | None = None) -> Figure:
    """How late the event loop's 1 ms timer fired (p99, µs) against workers."""
    name, title = f"loop-lag-vs-workers-{scenario}", f"Event-loop lag against workers, {scenario}"
    df = summary[summary["scenario"] == scenario]
    if df.empty or "loop_lag_p99_us" not in df.columns:
        return export(no_data(title, "no runs with loop-lag probes"), df, name, out_dir)
    data = df.groupby(["queue", "tasks", "producers"], observed=True)["loop_lag_p99_us"] \
        .median().reset_index()
    data = _used(data)
    fig, [ax] = panels(1)
    dashes = _dashes(data["tasks"])
    _queue_lines(ax, data, "producers", "loop_lag_p99_us", "tasks", dashes)
    _queue_legend(fig, data["queue"], dashes, "tasks")
    _workers_axis(ax, data["producers"])
    log_axis(ax, "y")
    ax.set(xlabel="producers = consumers (log scale)",
           ylabel="p99 lag of a 1 ms timer (µs, log scale)")
    fig.suptitle(f"{title}{_one_task_count(data)}\n({_runs_note(summary, scenario)}; every "
                 "request on the loop waits this long)")
    return export(fig, data, name, out_dir)


# Priorities whose p99 waits lie within this factor in every cell draw coinciding lines.
PRIORITY_SPREAD = 2.0


def wait_by_priority(summary: pd.DataFrame, scenario: str, *,
                     out_dir: Path | None = None) -> Figure:
    """Time waited in the queue (p99, µs) per priority against workers, one panel per queue;
    not drawn (``not_drawn``) when the priorities' lines would coincide."""
    name, title = f"wait-by-priority-{scenario}", f"Time waited per priority, {scenario}"
    if summary[summary["scenario"] == scenario].empty:
        return export(no_data(title, "no runs"), pd.DataFrame(), name, out_dir)
    data = analysis.wait_by_priority(summary, scenario)
    data = _used(data[data["tasks"] == data["tasks"].max()])
    p99 = data[data["percentile"] == "p99"]
    spread = p99.groupby(["queue", "producers"], observed=True)["wait_us"].agg(
        lambda w: w.max() / w.min() if w.min() > 0 else np.inf)
    if not spread.empty and float(spread.max()) < PRIORITY_SPREAD:
        return not_drawn(title, f"the priorities' p99 waits lie within {spread.max():.2f}x of "
                         f"each other in every cell: in this closed loop priority does not "
                         "change the wait; notebook 07's load-p99-vs-rho shows waits per "
                         "priority under open-loop load", name, out_dir)
    queues = _present(data, "queue")
    fig, axes = panels(len(queues), cols=min(3, len(queues)), sharey=True)
    for ax, queue in zip(axes, queues, strict=True):
        part = data[(data["queue"] == queue) & (data["percentile"] == "p99")]
        sns.lineplot(part, x="producers", y="wait_us", hue="priority", marker="o",
                     palette="rocket", ax=ax)
        _workers_axis(ax, part["producers"])
        log_axis(ax, "y")
        ax.set(xlabel="producers = consumers (log scale)",
               ylabel="p99 wait in queue (µs, log scale)", title=queue)
    fig.suptitle(f"{title}\n{int(data['tasks'].max()):,} tasks ({_runs_note(summary, scenario)})")
    return export(fig, data, name, out_dir)


def correctness(summary: pd.DataFrame, *, out_dir: Path | None = None) -> Figure:
    """Violations + lost + duplicated + errors per queue and scenario (0 is a pass)."""
    data = analysis.correctness_table(summary)
    data["problems"] = data[["violations", "lost", "duplicated", "errors"]].sum(axis=1)
    grid = data.pivot(index="queue", columns="scenario", values="problems")
    use_style()
    fig = Figure(figsize=(1.6 * max(3, grid.shape[1]) + 3, 0.5 * max(3, grid.shape[0]) + 1.5),
                 layout="constrained")
    ax = fig.subplots()
    sns.heatmap(grid.astype(float), annot=True, fmt=".0f", cmap="Reds", vmin=0,
                vmax=max(1.0, float(np.nanmax(grid.to_numpy(float)))), cbar=False,
                linewidths=0.5, ax=ax)
    ax.grid(False)  # the style's grid lines would cross the blank (not run) cells
    ax.set(xlabel="scenario", ylabel="queue")
    fig.suptitle("Correctness: violations + lost + duplicated + errors\n"
                 "(count summed over runs; 0 passes, blank: not run)")
    return export(fig, data, "correctness", out_dir)


MACHINE_HATCHES = ("", "///", "...", "xxx", "\\\\\\", "ooo")


def _machine_bars(ax, part: pd.DataFrame, machines: list[str], rows: int) -> None:
    """Per queue (a row, in registry order; ``rows`` rows drawn, so bars are as thick in
    every panel) a bar per machine from the ratio 1 to the median ratio, in the queue's
    colour, machines told apart by hatching."""
    medians = part.groupby(["queue", "machine"], observed=True)["ratio"].median()
    queues = _queue_order(part["queue"])
    height = 0.8 / len(machines)
    for i, queue in enumerate(queues):
        color = queue_style(queue).color
        # White hatching on dark bars, black on light ones (relative luminance).
        hatch_color = "white" if np.dot(mcolors.to_rgb(color), (0.2126, 0.7152, 0.0722)) \
            < 0.4 else "black"
        for j, machine in enumerate(machines):
            if (queue, machine) in medians.index:
                ratio = medians[(queue, machine)]
                ax.barh(i - 0.4 + height * (j + 0.5), ratio - 1, left=1, height=height,
                        color=color, hatch=MACHINE_HATCHES[j % len(MACHINE_HATCHES)],
                        hatchcolor=hatch_color, edgecolor="white", linewidth=0.5)
    baseline = str(part["baseline"].iloc[0])
    ax.set_yticks(range(len(queues)), [f"{q} (baseline)" if q == baseline else q
                                       for q in queues], fontsize="small")
    ax.set_ylim(rows - 0.5, -0.5)
    ax.grid(axis="y", visible=False)


def ratios_across_machines(ratios: pd.DataFrame, *, out_dir: Path | None = None) -> Figure:
    """Median throughput as a ratio to each machine's baseline queue, per scenario: a
    bar from 1 per queue and machine, on a log axis so 2x and 0.5x look alike."""
    name, title = "ratios-across-machines", "Throughput relative to a baseline queue"
    if ratios.empty:
        return export(no_data(title, "no runs"), ratios, name, out_dir)
    scenarios = _present(ratios, "scenario")
    machines = _present(ratios, "machine")
    if len(machines) < 2:
        return not_drawn(title, f"one machine ({', '.join(machines)}): nothing to compare; "
                         "the ratios are in the table above", name, out_dir)
    counts = [ratios[ratios["scenario"] == s]["queue"].nunique() for s in scenarios]
    cols = min(2, len(scenarios))
    rows = -(-len(scenarios) // cols)
    heights = [max(counts[r * cols:(r + 1) * cols]) for r in range(rows)]
    use_style()
    # About 0.16 in per bar: the queue names keep apart; 1 in per row for its labels.
    fig = Figure(figsize=(5.6 * cols + 1.6,
                          0.9 + sum((0.16 * len(machines) + 0.12) * h + 1.0 for h in heights)),
                 layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False,
                        gridspec_kw={"height_ratios": heights}).ravel()
    for ax in axes[len(scenarios):]:
        ax.set_visible(False)
    for i, (ax, scenario) in enumerate(zip(axes, scenarios, strict=False)):
        part = _used(ratios[ratios["scenario"] == scenario])
        _machine_bars(ax, part, machines, heights[i // cols])
        ax.axvline(1.0, color="dimgrey", linewidth=1)
        log_axis(ax, "x")
        ax.set(xlabel=f"throughput / {part['baseline'].iloc[0]} (ratio, log scale)",
               ylabel="queue", title=scenario)
    _figure_legend(fig, [Patch(facecolor="lightgrey", edgecolor="white",
                               hatch=MACHINE_HATCHES[j % len(MACHINE_HATCHES)],
                               hatchcolor="black", label=machine)
                         for j, machine in enumerate(machines)], "machine")
    fig.suptitle(f"{title} on the same machine\n(median over cells and repetitions)")
    return export(fig, ratios, name, out_dir)


# -- a row of bar panels per context (decision overview, CPU cost) ----------------------

BAR_INCHES = 0.3  # per bar: the queue names on the y axis keep apart at the "small" font
DECISION_COLUMNS = ("context", "queue", "features", "cpu_us_per_task", "idle_cores")
CPU_COLUMNS = ("context", "queue", "cpu_us_per_task", "idle_cores")
SET_ASIDE_ALPHA = 0.3


def _require(table: pd.DataFrame, columns, figure: str) -> None:
    """Raise ``ValueError`` naming the columns ``figure`` needs and the ones missing."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{figure} needs columns {', '.join(columns)}; "
                         f"missing: {', '.join(missing)}")


def _context_panels(table: pd.DataFrame, columns: int):
    """A row of panels per context (in table order), ``columns`` metrics side by side,
    each row as tall as its number of queues; return the figure, contexts and axes."""
    contexts = list(dict.fromkeys(table["context"].astype(str)))
    counts = [int((table["context"].astype(str) == c).sum()) for c in contexts]
    use_style()
    fig = Figure(figsize=(4.4 * columns + 3.0,
                          1.4 + sum(BAR_INCHES * n + 0.5 for n in counts)),
                 layout="constrained")
    axes = fig.subplots(len(contexts), columns, squeeze=False, sharex="col",
                        gridspec_kw={"height_ratios": counts})
    for row, context in zip(axes, contexts, strict=True):
        row[0].set_title(context, loc="left", fontsize="medium", fontweight="bold")
    return fig, contexts, axes


def _queue_bars(ax, part: pd.DataFrame, column: str, set_aside=None, chosen=None) -> None:
    """Horizontal bars, one per queue from the top in ``part``'s order, in the queue's
    colour; ``set_aside`` bars faded and hatched, ``chosen`` ones edged in black."""
    count = len(part)
    set_aside = np.zeros(count, bool) if set_aside is None else np.asarray(set_aside, bool)
    chosen = np.zeros(count, bool) if chosen is None else np.asarray(chosen, bool)
    queues = [str(q) for q in part["queue"]]
    for i, (queue, value) in enumerate(zip(queues, part[column], strict=True)):
        color = queue_style(queue).color
        face = mcolors.to_rgba(color, SET_ASIDE_ALPHA if set_aside[i] else 1.0)
        ax.barh(i, value, height=0.7, color=face, hatch="///" if set_aside[i] else None,
                edgecolor="black" if chosen[i] else color, linewidth=2.0 if chosen[i] else 0.8)
    ax.set_yticks(range(count), [f"★ {q}" if c else q for q, c in zip(queues, chosen,
                                                                       strict=True)])
    for label, is_chosen, is_set_aside in zip(ax.get_yticklabels(), chosen, set_aside,
                                              strict=True):
        label.set_fontsize("small")
        label.set_fontweight("bold" if is_chosen else "normal")
        label.set_color("dimgrey" if is_set_aside else "black")
    ax.set_ylim(count - 0.5, -0.5)
    ax.grid(axis="y", visible=False)
    # A row's panels list the same queues: only the first names them.
    ax.tick_params(axis="y", labelleft=ax.get_subplotspec().is_first_col())


def _flag(table: pd.DataFrame, column: str) -> pd.Series:
    """``chosen`` as booleans, ``set_aside`` as "has a reason"; all False when absent."""
    if column not in table.columns:
        return pd.Series(False, index=table.index)
    values = table[column]
    if column == "set_aside":
        return values.fillna("").astype(str).str.strip() != ""
    return values.fillna(False).astype(bool)


def decision_overview(table: pd.DataFrame, *, out_dir: Path | None = None) -> Figure:
    """The rule's gates per candidate, a row of panels per context: needed features met,
    CPU at the service's top rate (% of a core, worst cell) and idle burn, each with its
    gate drawn as a dashed line; what the rule reads, not the POC's throughput criteria.

    ``table`` (``decision.decision_table``) has one row per context and queue with
    columns ``context, queue, features, cpu_us_per_task, idle_cores``, optionally
    ``chosen`` (bool: starred, edged black) and ``set_aside`` (str, empty when eligible:
    faded, hatched). Raises ``ValueError`` naming missing columns or a repeated context
    and queue.
    """
    name, title = "decision-overview", "The rule's gates per context"
    if table.empty:
        return export(no_data(title, "no runs"), table, name, out_dir)
    _require(table, DECISION_COLUMNS, "decision_overview")
    repeated = table.duplicated(["context", "queue"])
    if repeated.any():
        row = table[repeated].iloc[0]
        raise ValueError(f"decision_overview needs one row per context and queue; "
                         f"{row['queue']!r} appears twice in {row['context']!r}")
    data = table.copy()
    top = SERVICE_RATES_PER_S[-1]
    data["needed"] = [len(context_named(str(c)).needs) for c in data["context"]]
    data["cpu_pct_at_top"] = data["cpu_us_per_task"] * top / 1e4
    specs = [("features", "needed features met (count; the most wins)", None),
             ("cpu_pct_at_top", f"CPU at {top:,}/s, worst cell (% of a core, log)",
              100 * MATERIAL_SHARE),
             ("idle_cores", "idle burn (cores used waiting, log)", IDLE_LIMIT_CORES)]
    fig, contexts, axes = _context_panels(data, len(specs))
    chosen, set_aside = _flag(data, "chosen"), _flag(data, "set_aside")
    for row, ctx in zip(axes, contexts, strict=True):
        mask = data["context"].astype(str) == ctx
        part = data[mask]
        for ax, (col, _, gate) in zip(row, specs, strict=True):
            values = part.assign(**{col: part[col].fillna(0)})
            _queue_bars(ax, values, col, set_aside[mask], chosen[mask])
            if gate is not None:
                ax.axvline(gate, color="dimgrey", linestyle="--", linewidth=1.2)
        needed = int(part["needed"].iloc[0])
        row[0].axvline(needed, color="black", linestyle=":", linewidth=1.2)
        row[0].set_xlim(0, max(int(data["needed"].max()), 1) + 0.5)
    for ax, (_, label, gate) in zip(axes[-1], specs, strict=True):
        if gate is not None:
            log_axis(ax, "x")
        ax.set_xlabel(label)
    handles = [_criterion_legend(f"gate: at most {100 * MATERIAL_SHARE:g}% of a core, "
                                 f"at most {IDLE_LIMIT_CORES:g} cores idle"),
               Line2D([], [], color="black", linestyle=":", label="features the context needs"),
               Patch(facecolor="lightgrey", edgecolor="black", linewidth=2.0,
                     label="★ chosen"),
               Patch(facecolor=mcolors.to_rgba("grey", SET_ASIDE_ALPHA), edgecolor="grey",
                     hatch="///", label="set aside")]
    _small(fig.legend(handles=handles, loc="outside lower center", ncols=2))
    fig.suptitle(f"{title}\nleft of a dashed line passes; then the most features decide")
    return export(fig, data, name, out_dir)


def _criterion_legend(label: str) -> Line2D:
    return Line2D([], [], color="dimgrey", linestyle="--", linewidth=1.2, label=label)


def cpu_cost(table: pd.DataFrame, out_dir: Path | None = None) -> Figure:
    """CPU µs per task and idle burn (cores used by consumers waiting on an empty queue),
    median per context and queue, side by side; a row of panels per context.

    ``table`` has columns ``context, queue, cpu_us_per_task, idle_cores`` (NaN where
    not measured, drawn as "not measured"). Raises ``ValueError`` naming missing columns.
    """
    name, title = "cpu-cost", "CPU cost per context"
    if table.empty:
        return export(no_data(title, "no runs"), table, name, out_dir)
    _require(table, CPU_COLUMNS, "cpu_cost")
    data = table.groupby(["context", "queue"], observed=True, sort=False)[
        ["cpu_us_per_task", "idle_cores"]].median().reset_index()
    fig, contexts, axes = _context_panels(data, 2)
    for (cpu_ax, idle_ax), context in zip(axes, contexts, strict=True):
        part = data[data["context"].astype(str) == context]
        _queue_bars(cpu_ax, part, "cpu_us_per_task")
        _queue_bars(idle_ax, part, "idle_cores")
        idle_ax.axvline(IDLE_LIMIT_CORES, color="dimgrey", linestyle="--", linewidth=1.2)
        # The value beside each bar: a blocked consumer's 0 core draws no bar at all.
        for i, idle in enumerate(part["idle_cores"]):
            measured = not np.isnan(idle)
            idle_ax.text(idle if measured else 0.02, i, f" {idle:.2g}" if measured
                         else "not measured", va="center", fontsize="x-small",
                         color="black" if measured else "dimgrey",
                         transform=idle_ax.transData if measured
                         else idle_ax.get_yaxis_transform())
    cpu_ax, idle_ax = axes[-1]
    if (data["cpu_us_per_task"] > 0).any():
        log_axis(cpu_ax, "x")
        cpu_ax.set_xlabel("CPU per task (µs, median, log scale)")
    else:  # a run from before CPU time was recorded
        for ax, _ in axes:
            ax.text(0.02, 0.5, "not measured", transform=ax.transAxes, color="dimgrey",
                    fontsize="x-small", va="center")
            ax.set_xticks([])
        cpu_ax.set_xlabel("CPU per task (µs, median)")
    # Idle burn runs from 0 (a blocked get) to whole cores (polling): linear up to
    # 0.01 core, log above, so 0 and the 0.05 limit both show.
    idle_ax.set_xscale("symlog", linthresh=0.01, linscale=0.5)
    # Room on the right for the value beside the longest bar.
    idle_ax.set_xlim(0, max(2 * IDLE_LIMIT_CORES, 4 * np.nanmax(
        [0.0, *data["idle_cores"].to_numpy(float)])))
    idle_ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    idle_ax.set_xlabel("idle burn (cores, median, symlog scale)")
    _small(fig.legend(handles=[_criterion_legend(
        f"limit for waiting workers ({IDLE_LIMIT_CORES:g} core)")],
        loc="outside lower center"))
    fig.suptitle(f"{title}\n(idle burn: cores used by the consumers while they wait "
                 "on an empty queue)")
    return export(fig, data, name, out_dir)


PROCESSES_XLABEL = "producers = consumers (log scale)"
PROCESSES_KEY = "solid: processes; dashed: threads in one process, for scale"


def _process_lines(ax, data: pd.DataFrame, y: str, band: tuple[str, str] | None) -> None:
    """One line per queue and scenario in the queue's colour and marker: solid across
    processes, dashed for the in-process queues beside them (scenario ``threads``)."""
    for (queue, scenario), part in data.groupby(["queue", "scenario"], observed=True):
        part = part.sort_values("producers")
        style = queue_style(str(queue))
        dashed = str(scenario) != analysis.PROCESS_SCENARIO
        ax.plot(part["producers"], part[y], marker=style.marker, markersize=MARKER_SIZE,
                linestyle="--" if dashed else "-", color=style.color,
                label=analysis.series_label(str(queue), str(scenario)))
        if band is not None:
            ax.fill_between(part["producers"], part[band[0]], part[band[1]],
                            color=style.color, alpha=0.15, linewidth=0)


def throughput_vs_processes(summary: pd.DataFrame, *, out_dir: Path | None = None) -> Figure:
    """Throughput (ops/s, log) against processes for process-safe queues (scenario
    ``processes``), beside in-process queues with as many threads (``threads``, dashed):
    median line, min–max band over repetitions, one panel per task count."""
    name, title = "throughput-vs-processes", "Throughput against processes"
    data = _used(analysis.across_processes(summary, "throughput_ops_s"))
    if data.empty:
        return export(no_data(title, "no runs"), data, name, out_dir)
    task_counts = sorted(data["tasks"].unique())
    fig, axes = panels(len(task_counts), cols=min(2, len(task_counts)))
    fig.set_figwidth(fig.get_figwidth() + 3.0)  # room for the legend on the right
    for ax, tasks in zip(axes, task_counts, strict=True):
        part = data[data["tasks"] == tasks]
        _process_lines(ax, part, "median", ("low", "high"))
        _workers_axis(ax, part["producers"])
        log_axis(ax, "y")
        ax.set(xlabel=PROCESSES_XLABEL, ylabel="throughput (ops/s, log scale)",
               title=f"{tasks:,} tasks")
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.suptitle(f"{title}\n{PROCESSES_KEY}\n"
                 f"({_runs_note(summary, analysis.PROCESS_SCENARIO, band=True)})")
    return export(fig, data, name, out_dir)


def tail_vs_processes(summary: pd.DataFrame, *, out_dir: Path | None = None) -> Figure:
    """P99 of enqueue and dequeue latency (µs, log) against processes (largest task
    count), process-safe queues solid, in-process queues with threads dashed."""
    name, title = "tail-vs-processes", "P99 latency against processes"
    df = summary[summary["scenario"].isin([analysis.PROCESS_SCENARIO,
                                           analysis.SCALE_SCENARIO])]
    if df.empty:
        return export(no_data(title, "no runs"), df, name, out_dir)
    df = df[df["tasks"] == df["tasks"].max()]
    long = analysis.metric_long(df, {"enqueue_p99_us": "enqueue", "dequeue_p99_us": "dequeue"})
    data = _used(long.groupby(["queue", "scenario", "tasks", "producers", "metric"],
                              observed=True)["value"].median().reset_index(name="p99_us"))
    fig, axes = panels(2, sharey=True)
    for ax, op in zip(axes, ("enqueue", "dequeue"), strict=True):
        part = data[data["metric"] == op]
        _process_lines(ax, part, "p99_us", None)
        _workers_axis(ax, part["producers"])
        log_axis(ax, "y")
        ax.set(xlabel=PROCESSES_XLABEL, ylabel="p99 latency (µs, log scale)",
               title=f"{op} (a blocking get includes its wait)" if op == "dequeue" else op)
        ax.legend()
    fig.suptitle(f"{title}, {int(data['tasks'].max()):,} tasks\n{PROCESSES_KEY}\n"
                 f"({_runs_note(summary, analysis.PROCESS_SCENARIO)})")
    return export(fig, data, name, out_dir)


# -- open-loop load (notebook 07) -------------------------------------------------------

PRIORITY_PALETTE = "rocket"
LOAD_INCHES = (7.8, 5.0)  # one wide panel: the titles carry the run's settings


def priority_colors(names) -> dict[str, tuple]:
    """One colour per priority name, from CRITICAL's darkest to LOW's lightest."""
    names = list(names)
    return dict(zip(names, sns.color_palette(PRIORITY_PALETTE, len(names)), strict=True))


def load_wait_vs_rho(load: pd.DataFrame, theory: pd.DataFrame, *,
                     out_dir: Path | None = None) -> Figure:
    """Mean wait per priority (ms, log) against utilization ρ: measured points, Cobham lines."""
    name, title = "load-wait-vs-rho", "Mean wait per priority against utilization"
    if load.empty:
        return export(no_data(title, "no load runs"), load, name, out_dir)
    measured = load[["rho", "rho_measured", "priority", "tasks", "queue_wait_mean_ms",
                     "queue_wait_p99_ms", "theory_wait_mean_ms"]].copy()
    measured["priority"] = measured["priority"].astype(str)
    data = measured.merge(theory.rename(columns={"theory_wait_mean_ms": "cobham_ms"}),
                          on=["rho", "priority"], how="outer").sort_values(["priority", "rho"])
    fig, [ax] = panels(1)
    fig.set_size_inches(*LOAD_INCHES)
    colors = priority_colors(dict.fromkeys(measured["priority"]))
    for prio, color in colors.items():
        line = theory[theory["priority"] == prio].sort_values("rho")
        ax.plot(line["rho"], line["theory_wait_mean_ms"], color=color, linewidth=1.2,
                linestyle="--")
        points = measured[measured["priority"] == prio]
        ax.plot(points["rho_measured"], points["queue_wait_mean_ms"], color=color,
                marker="o", linestyle="none", label=prio)
    ax.plot([], [], color="grey", linestyle="--", label="theory (Cobham)")
    positive = measured["queue_wait_mean_ms"][measured["queue_wait_mean_ms"] > 0]
    if not positive.empty:
        log_axis(ax, "y")
    ax.set(xlabel="utilization ρ = λ·E[S]/C, as measured", ylabel="mean wait (ms, log scale)")
    ax.legend(title="priority", loc="upper left", bbox_to_anchor=(1.02, 1.0),
              fontsize="x-small")
    workers = int(load["workers"].iloc[0])
    fig.suptitle(f"{title}\n{load['queue'].iloc[0]}, {workers} workers; points: as measured")
    return export(fig, data, name, out_dir)


def load_wait_spectrum(spectrum: pd.DataFrame, *, out_dir: Path | None = None) -> Figure:
    """Waiting-time percentiles (ms) per priority at one ρ, from p50 to the maximum."""
    name, title = "load-wait-spectrum", "Percentile spectrum of waiting time per priority"
    if spectrum.empty:
        return export(no_data(title, "no load run at the chosen ρ"), spectrum, name, out_dir)
    data = spectrum.copy()
    data["priority"] = data["priority"].astype(str)
    fig, [ax] = panels(1)
    fig.set_size_inches(*LOAD_INCHES)
    colors = priority_colors(dict.fromkeys(data["priority"]))
    labels = [f"p{q:g}" if q < 100 else "max" for q in sorted(data["percentile"].unique())]
    for prio, color in colors.items():
        part = data[data["priority"] == prio].sort_values("percentile")
        ax.plot(range(len(part)), part["ms"].clip(lower=1e-3), marker="o", color=color,
                label=prio)
    ax.set_xticks(range(len(labels)), labels)
    log_axis(ax, "y")
    ax.set(xlabel="percentile", ylabel="wait, intended arrival → service (ms, log scale)")
    ax.legend(title="priority")
    fig.suptitle(f"{title}\nat ρ = {float(data['rho'].iloc[0]):g} (free of coordinated "
                 "omission: from the intended arrival)")
    return export(fig, data, name, out_dir)


def load_p99_vs_rho(load: pd.DataFrame, target_ms: float = 50.0, *,
                    crossing: float | None = None, out_dir: Path | None = None) -> Figure:
    """P99 wait per priority (ms, log) against ρ, with the target line and CRITICAL's crossing."""
    name, title = "load-p99-vs-rho", "P99 wait per priority against utilization"
    if load.empty:
        return export(no_data(title, "no load runs"), load, name, out_dir)
    data = load[["rho", "rho_measured", "priority", "tasks", "queue_wait_p99_ms",
                 "queue_wait_uncorrected_p99_ms"]].copy()
    data["priority"] = data["priority"].astype(str)
    data["target_ms"] = target_ms
    fig, [ax] = panels(1)
    fig.set_size_inches(*LOAD_INCHES)
    for prio, color in priority_colors(dict.fromkeys(data["priority"])).items():
        part = data[data["priority"] == prio].sort_values("rho_measured")
        ax.plot(part["rho_measured"], part["queue_wait_p99_ms"].clip(lower=1e-3), marker="o",
                color=color, label=prio)
        if prio == "CRITICAL":  # the level the target is about: its n at every point
            for _, r in part.iterrows():
                ax.annotate(f"n={int(r['tasks']):,}", (r["rho_measured"], r["queue_wait_p99_ms"]),
                            textcoords="offset points", xytext=(4, -12), fontsize=7,
                            color=color)
    ax.axhline(target_ms, color="grey", linestyle="--", linewidth=1,
               label=f"{target_ms:g} ms: the seed's overhead bound")
    if crossing is not None and np.isfinite(crossing):
        ax.axvline(crossing, color="black", linestyle=":", linewidth=1,
                   label=f"CRITICAL crosses near ρ {crossing:.2f}")
    log_axis(ax, "y")
    ax.set(xlabel="utilization ρ = λ·E[S]/C, as measured", ylabel="p99 wait (ms, log scale)")
    ax.legend(title="priority", loc="upper left", bbox_to_anchor=(1.02, 1.0),
              fontsize="x-small")
    where = (f"CRITICAL's p99 reaches {target_ms:g} ms near ρ {crossing:.2f}"
             if crossing is not None and np.isfinite(crossing)
             else f"CRITICAL's p99 stays below {target_ms:g} ms in the measured range")
    fig.suptitle(f"{title}\n{where} (one run per ρ)")
    return export(fig, data, name, out_dir)


def load_aging_effect(load: pd.DataFrame, aging: pd.DataFrame, *,
                      out_dir: Path | None = None) -> Figure:
    """Mean and p99 wait per priority: strict priority order against aging, per ρ."""
    name, title = "load-aging-effect", "What aging costs CRITICAL and saves LOW"
    if aging.empty or load.empty:
        return export(no_data(title, "no aging runs (AGING_MS = 0)"), aging, name, out_dir)
    keys, cols = ["rho", "priority"], ["queue_wait_mean_ms", "queue_wait_p99_ms"]
    strict = load[load["rho"].isin(aging["rho"])][keys + cols].assign(policy="strict")
    aged = aging[keys + cols].assign(policy=f"aging {float(aging['aging_ms'].iloc[0]):g} ms")
    data = pd.concat([strict, aged], ignore_index=True)
    data["priority"] = data["priority"].astype(str)
    order = list(dict.fromkeys(str(p) for p in load["priority"]))
    data["level"] = data["priority"].map({p: i + 1 for i, p in enumerate(order)})
    data["ρ"] = data["rho"].map(lambda r: f"{r:g}")
    fig, axes = panels(2)
    for ax, (col, label) in zip(axes, (("queue_wait_mean_ms", "mean wait (ms, log scale)"),
                                       ("queue_wait_p99_ms", "p99 wait (ms, log scale)")),
                                strict=True):
        sns.lineplot(data.assign(**{col: data[col].clip(lower=1e-3)}), x="level", y=col,
                     hue="policy", style="ρ", markers=True, palette="colorblind", ax=ax)
        ax.set_xticks(range(1, len(order) + 1), order)
        log_axis(ax, "y")
        ax.set(xlabel="priority", ylabel=label)
    fig.suptitle(f"{title}\n(aging: a level gained per {float(aging['aging_ms'].iloc[0]):g} "
                 "ms waited; the same arrivals and service times as strict)")
    return export(fig, data, name, out_dir)
