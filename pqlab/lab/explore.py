"""The explorer notebook's logic: controls that measure live in the kernel, and the stored runs.

``notebooks/explore.ipynb`` only shows ``Explorer().widget``: a tab **Measure**
with controls for queues, scenario, task count, producers and consumers (and,
for scenario ``load``, the arrival rate, workers and service time) and a Run
button that measures here, in seconds, and redraws throughput, the latency
ECDF and the waits per priority from the result frames; and a tab **Stored
runs** to pick a run in ``data/``, one of its figures, and read its machine.

Everything is testable without a browser: set the widgets' values, call
``run()``, read ``summary``, ``samples`` and the figures' PNG bytes.
"""

from __future__ import annotations

import gc
import html
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import TypeVar

import ipywidgets as widgets
import pandas as pd
from matplotlib.figure import Figure

from pqlab import lab
from pqlab.core.checks import positive_int
from pqlab.decide import plots
from pqlab.harness.runner import run, supported_pairs
from pqlab.harness.worker import SAMPLES_PER_RUN, WARMUP_TASKS, task_samples
from pqlab.measure.metrics import RunResult
from pqlab.scenarios import SCENARIOS
from pqlab.scenarios.loadparams import LoadParams, ServiceTime
from pqlab.study import config, frames, store
from pqlab.study.params import in_process_queues

# Small defaults: two queues × 2,000 tasks measure in about a second here, and a
# load run lasts tasks / rate = 2 s per queue at ρ = rate·E[S]/workers = 0.5.
DEFAULT_QUEUES = ("queue.PriorityQueue", "ThreadSafeBucketQueue")
DEFAULT_SCENARIO = "threads"
DEFAULT_TASKS = 2_000
DEFAULT_WORKERS = 2
DEFAULT_RATE_PER_S = 1_000.0
DEFAULT_SERVICE = "exp:1ms"
MAX_TASKS = 1_000_000  # the largest task count the study itself uses
RUN_ID = "explore"  # the run_id column of frames measured here (nothing is stored)
MACHINE_FACTS = {"machine": "machine", "cpu_model": "CPU", "cpu_logical_cores": "logical cores",
                 "cpu_freq_mhz": "MHz", "memory_total_bytes": "memory (GB)",
                 "os_distribution": "OS", "kernel": "kernel", "python_version": "Python",
                 "gil_enabled": "GIL", "git_commit": "commit", "git_dirty": "uncommitted",
                 "load_avg": "load average", "utc": "started (UTC)"}


@dataclass(frozen=True)
class Settings:
    """What one press of Run measures. ``check`` raises ``ValueError`` naming a bad value."""

    queues: tuple[str, ...]
    scenario: str
    tasks: int
    producers: int
    consumers: int
    rate_per_s: float
    workers: int
    service: str
    seed: int = 1

    @property
    def is_load(self) -> bool:
        return SCENARIOS[self.scenario].open_loop

    def load_params(self) -> LoadParams | None:
        if not self.is_load:
            return None
        return LoadParams(rate_per_s=self.rate_per_s, service=ServiceTime.parse(self.service))

    def check(self) -> None:
        if not self.queues:
            raise ValueError("pick at least one queue")
        if not 1 <= self.tasks <= MAX_TASKS:
            raise ValueError(f"tasks must be between 1 and {MAX_TASKS:,}, got {self.tasks}")
        for name in ("producers", "consumers", "workers"):
            positive_int(name, getattr(self, name))
        self.load_params()  # a bad rate or service time raises here
        able = {q for q, _ in supported_pairs(list(self.queues), [self.scenario])}
        unable = [q for q in self.queues if q not in able]
        if unable:
            raise ValueError(f"{', '.join(unable)} cannot run scenario {self.scenario!r}; "
                             f"queues that can: {', '.join(able_queues(self.scenario))}")


def able_queues(scenario: str) -> list[str]:
    """The in-process queues that can run ``scenario``."""
    return [q for q, _ in supported_pairs(in_process_queues(), [scenario])]


T = TypeVar("T")


def _on_helper_thread(fn: Callable[[], T]) -> T:
    """Run ``fn`` on a helper thread with the kernel's objects frozen out of the collector.

    The kernel's main thread runs an event loop, and the async scenarios need
    ``asyncio.run``; as in ``sweep.measure_here``.
    """
    gc.collect()
    gc.freeze()
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pqlab-explore") as pool:
            return pool.submit(fn).result()
    finally:
        gc.unfreeze()


def measure(settings: Settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Measure each queue once, here, after a warm-up; the ``summary`` and ``samples`` frames.

    Raises ``ValueError`` (from ``Settings.check``) before measuring anything.
    """
    settings.check()
    load = settings.load_params()
    consumers = settings.workers if settings.is_load else settings.consumers
    summaries, samples = [], []
    for queue in settings.queues:
        kwargs = dict(producers=settings.producers, consumers=consumers, seed=settings.seed,
                      params=load if settings.is_load else None)

        def one(queue: str = queue, kwargs: dict = kwargs) -> RunResult:
            if not settings.is_load:  # a load run lasts tasks / rate: no warm-up of that
                run(queue, settings.scenario, tasks=min(settings.tasks, WARMUP_TASKS),
                    memory=False, **kwargs)
            return run(queue, settings.scenario, tasks=settings.tasks, **kwargs)

        result = _on_helper_thread(one)
        row = {**result.to_dict(), "run_id": RUN_ID, "fresh_process": False}
        row["error_messages"] = "; ".join(row["error_messages"])
        rows = task_samples(result.records, SAMPLES_PER_RUN, settings.seed)
        summaries.append(frames.summary_rows([row]))
        samples.append(frames.samples_rows({"run_id": RUN_ID, **{k: row[k] for k in frames.UNIT}},
                                           rows))
    return frames.concat(summaries), frames.concat(samples, typed=frames.typed_samples)


def figures(summary: pd.DataFrame, samples: pd.DataFrame, scenario: str) -> dict[str, Figure]:
    """The explorer's figures, drawn by ``pqlab.decide.plots`` from the frames."""
    return {"throughput": plots.throughput_vs_workers(summary, scenario),
            "latency": plots.latency_ecdf(samples, scenario),
            "waits": plots.wait_by_priority(summary, scenario)}


def png(fig: Figure) -> bytes:
    buffer = BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    return buffer.getvalue()


def caption(summary: pd.DataFrame, settings: Settings) -> str:
    """One line per queue with its measured headline numbers, as HTML."""
    table = lab.headline(summary, decimals=None)  # rounded once, by the format below
    lines = [f"<b>{html.escape(str(r['queue']))}</b>: {r['throughput ops/s']:,.0f} ops/s, "
             f"mean enqueue {r['mean enqueue µs']:.2f} µs, p99 dequeue "
             f"{r['p99 dequeue µs']:.1f} µs, violations {int(r['violations'])}"
             for _, r in table.iterrows()]
    if settings.is_load:
        workers = (f"rate {settings.rate_per_s:g}/s, {settings.workers} workers, service "
                   f"{settings.service}")
    elif SCENARIOS[settings.scenario].uses_workers:
        workers = f"{settings.producers} producers, {settings.consumers} consumers"
    else:
        workers = "one thread"
    head = f"{settings.scenario}, {settings.tasks:,} tasks, {workers}:"
    return "<br>".join([html.escape(head), *lines])


def _labelled(widget: widgets.Widget, css: str) -> widgets.Widget:
    widget.add_class(css)  # a stable handle for the browser test
    return widget


def _workers_box(description: str, name: str, style: dict):
    """A worker-count control (1-64), labelled ``pqlab-<name>`` for the browser test."""
    return _labelled(widgets.BoundedIntText(value=DEFAULT_WORKERS, min=1, max=64,
                                            description=description, style=style),
                     f"pqlab-{name}")


class Explorer:
    """The explorer's widgets and what its Run button and run picker do."""

    def __init__(self, paths: config.Paths | None = None) -> None:
        self.paths = paths or config.paths()
        self.summary, self.samples = pd.DataFrame(), pd.DataFrame()
        style = {"description_width": "8em"}
        self.queues = _labelled(widgets.SelectMultiple(
            options=in_process_queues(), value=DEFAULT_QUEUES, rows=6, description="queues",
            style=style), "pqlab-queues")
        self.scenario = _labelled(widgets.Dropdown(
            options=[s for s in SCENARIOS if able_queues(s)], value=DEFAULT_SCENARIO,
            description="scenario", style=style), "pqlab-scenario")
        self.tasks = _labelled(widgets.BoundedIntText(
            value=DEFAULT_TASKS, min=1, max=MAX_TASKS, description="tasks", style=style),
            "pqlab-tasks")
        self.producers = _workers_box("producers", "producers", style)
        self.consumers = _workers_box("consumers", "consumers", style)
        self.rate = _labelled(widgets.BoundedFloatText(
            value=DEFAULT_RATE_PER_S, min=0.1, max=1e6, description="rate /s", style=style),
            "pqlab-rate")
        self.workers = _workers_box("load workers", "workers", style)
        self.service = _labelled(widgets.Text(
            value=DEFAULT_SERVICE, description="service", style=style), "pqlab-service")
        self.button = _labelled(widgets.Button(description="Run", button_style="primary"),
                                "pqlab-run")
        self.caption = _labelled(widgets.HTML(), "pqlab-caption")
        self.images = {name: _labelled(widgets.Image(format="png", layout={"width": "48%"}),
                                       f"pqlab-figure-{name}")
                       for name in ("throughput", "latency", "waits")}
        self.button.on_click(lambda _button: self.run())
        self.runs = _labelled(widgets.Dropdown(description="run", style=style), "pqlab-runs")
        self.figure = _labelled(widgets.Dropdown(description="figure", style=style),
                                "pqlab-stored-figure")
        self.machine = _labelled(widgets.HTML(), "pqlab-machine")
        self.stored_image = _labelled(widgets.Image(format="png", layout={"width": "70%"}),
                                      "pqlab-stored-image")
        self.runs.observe(lambda _change: self.show_run(), names="value")
        self.figure.observe(lambda _change: self.show_figure(), names="value")
        self.refresh_runs()
        load = widgets.VBox([widgets.HTML("<i>scenario load only:</i>"), self.rate,
                             self.workers, self.service])
        measure_tab = widgets.VBox([
            widgets.HBox([widgets.VBox([self.queues, self.scenario]),
                          widgets.VBox([self.tasks, self.producers, self.consumers]), load]),
            self.button, self.caption, widgets.HBox(list(self.images.values()),
                                                    layout={"flex_flow": "row wrap"})])
        stored_tab = widgets.VBox([widgets.HBox([self.runs, self.figure]), self.machine,
                                   self.stored_image])
        self.widget = widgets.Tab(children=[measure_tab, stored_tab],
                                  titles=("Measure", "Stored runs"))

    def settings(self) -> Settings:
        return Settings(tuple(self.queues.value), self.scenario.value, self.tasks.value,
                        self.producers.value, self.consumers.value, self.rate.value,
                        self.workers.value, self.service.value)

    def run(self) -> bool:
        """Measure with the controls' values and redraw; False (and the reason shown) on a
        bad value, the previous frames and figures kept."""
        settings = self.settings()
        self.button.disabled = True
        self.caption.value = "measuring…"
        try:
            summary, samples = measure(settings)
        except ValueError as exc:
            self.caption.value = f"<span style='color:#b00'>{html.escape(str(exc))}</span>"
            return False
        finally:
            self.button.disabled = False
        self.summary, self.samples = summary, samples
        for name, fig in figures(summary, samples, settings.scenario).items():
            self.images[name].value = png(fig)
        self.caption.value = caption(summary, settings)
        return True

    def refresh_runs(self) -> None:
        """List the runs in ``data/`` (newest first) and show the first."""
        runs = store.list_runs(self.paths.data) if self.paths.data.is_dir() else []
        self.runs.options = sorted(runs, reverse=True)
        self.runs.value = self.runs.options[0] if runs else None
        self.show_run()

    def show_run(self) -> None:
        """The picked run's figures and its machine's facts."""
        run_id = self.runs.value
        if run_id is None:
            self.machine.value, self.figure.options = "no runs in data/", []
            return
        machine = store.Run.open(self.paths.data, run_id).machine()
        if "memory_total_bytes" in machine:
            machine["memory_total_bytes"] = f"{machine['memory_total_bytes'] / 1e9:.1f}"
        rows = "".join(f"<tr><td>{label}</td><td>{html.escape(str(machine[key]))}</td></tr>"
                       for key, label in MACHINE_FACTS.items() if key in machine)
        self.machine.value = f"<table>{rows}</table>"
        pngs = sorted(self.paths.figures_dir(run_id).glob("*.png"))
        self.figure.options = [p.stem for p in pngs]
        self.figure.value = pngs[0].stem if pngs else None
        self.show_figure()

    def show_figure(self) -> None:
        name = self.figure.value
        path = None if name is None else self.paths.figures_dir(self.runs.value) / f"{name}.png"
        self.stored_image.value = Path(path).read_bytes() if path else b""
