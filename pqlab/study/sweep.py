"""Sweeps: a grid of queues × scenarios × task counts × worker counts × repetitions.

Every sweep runs its units through one loop, ``run_units``: the closed-loop grid
here (``run_sweep``) and the open-loop points of notebooks 06, 07 and 08
(``pqlab.study.opensweep``).

Each repetition runs in a fresh Python process by default (as pyperf does),
after a warm-up in that process, so repetitions share no heap, caches or
thread state. The processes are forked from a zygote that has only imported
pqlab (``pqlab.harness.zygote``: a fork instead of 0.5 s of start-up a unit).
``fresh_process=False`` runs everything here, faster, for exploration.
Repetitions are the outer loop (every cell once, then again), so a drift of
the machine spreads over all cells alike. Units measured on a busy machine
are measured again at the end (``REMEASURE_TRIES``). A tqdm bar shows runs
done, the current cell and the time left; under a batch, units done also go
to the batch's console (``pqlab.study.progress``).

With a ``store.Run``, each finished unit is saved at once and units already
there are skipped: that is how ``--resume`` finishes an interrupted sweep.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
from tqdm import tqdm

from pqlab.harness.openunit import OpenSpec, measure_open
from pqlab.harness.runner import frozen_heap, supported_pairs
from pqlab.harness.worker import SAMPLES_PER_RUN, UnitFields, UnitSpec, measure
from pqlab.harness.zygote import Zygote, ZygoteError
from pqlab.queues.redisserver import RedisUnavailable, serving
from pqlab.scenarios import DEFAULT_DEADLINE_S, SCENARIOS
from pqlab.study import config, frames, params
from pqlab.study.progress import Reporter
from pqlab.study.store import TMP_MARK, Run

REDIS_QUEUE = "redis"  # the queue that needs a server for the whole sweep
UNIT_TIMEOUT_S = 1800.0  # a fresh process taking longer is hung (1M tasks with threads: ~2 min)
# Measure a busy unit again at most this often: a burst of load (another job, a test run)
# usually passes within one round; a machine busy for good is not waited out.
REMEASURE_TRIES = 2
ENV_REMEASURE = "PQLAB_REMEASURE_TRIES"  # the batch's plan sets it for the sweeps it runs


class SweepError(RuntimeError):
    """A unit's process failed; the message names the unit and the error."""


@dataclass(frozen=True)
class Unit(UnitFields):
    """One cell of the grid at one repetition, with its store key and progress label."""

    @property
    def key(self) -> str:
        return frames.unit_key(self.queue, self.scenario, self.tasks, self.producers,
                               self.consumers, self.repetition)

    @property
    def cell(self) -> tuple[str, str, int, int, int]:
        return (self.queue, self.scenario, self.tasks, self.producers, self.consumers)

    def label(self) -> str:
        workers = f" {self.producers}p/{self.consumers}c" if self.producers > 1 or \
            self.consumers > 1 or SCENARIOS[self.scenario].uses_workers else ""
        return f"{self.queue} {self.scenario} n={self.tasks:,}{workers} rep {self.repetition}"


@dataclass(frozen=True)
class Grid:
    """What to measure: queues × scenarios × task counts × worker counts × repetitions.

    ``queues=None`` means every in-process queue (``params.in_process_queues``;
    process-backed queues are measured when named), ``scenarios=None`` every
    registered scenario but the open-loop ones (``load`` runs for its planned
    duration; name it to sweep it).

    Worker counts set producers = consumers; scenarios without workers run once
    per task count. Repetition ``r`` uses workload seed ``seed + r`` (the same
    workload for every queue in that repetition).
    """

    queues: tuple[str, ...] | None = None
    scenarios: tuple[str, ...] | None = None
    task_counts: tuple[int, ...] = config.SWEEP_TASK_COUNTS
    worker_counts: tuple[int, ...] = config.SWEEP_WORKER_COUNTS
    repetitions: int = config.SWEEP_REPETITIONS
    seed: int = config.SWEEP_SEED

    def __post_init__(self) -> None:
        for name in ("queues", "scenarios"):
            value = getattr(self, name)
            if value is not None:
                check = params.queue_names if name == "queues" else params.scenario_names
                object.__setattr__(self, name, tuple(check(name, list(value))))
        object.__setattr__(self, "task_counts",
                           tuple(params.positive_ints("task_counts", list(self.task_counts))))
        object.__setattr__(self, "worker_counts",
                           tuple(params.positive_ints("worker_counts",
                                                      list(self.worker_counts))))
        params.positive_int("repetitions", self.repetitions)
        params.non_negative_int("seed", self.seed)
        if not self.pairs():
            raise ValueError(f"empty grid: no queue of {self.queues or 'the in-process ones'} "
                             f"can run {self.scenarios or 'any scenario'}")

    def pairs(self) -> list[tuple[str, str]]:
        """(queue, scenario) pairs that can run, in registry order."""
        queues = list(self.queues) if self.queues is not None else params.in_process_queues()
        scenarios = (list(self.scenarios) if self.scenarios is not None
                     else [s for s, sc in SCENARIOS.items() if not sc.open_loop])
        return supported_pairs(queues, scenarios)

    def cells(self) -> list[tuple[str, str, int, int, int]]:
        cells = []
        for queue, scenario in self.pairs():
            uses_workers = SCENARIOS[scenario].uses_workers
            for tasks in self.task_counts:
                for workers in self.worker_counts if uses_workers else (1,):
                    cells.append((queue, scenario, tasks, workers, workers))
        return cells

    def units(self) -> list[Unit]:
        return [Unit(*cell, rep) for rep in range(self.repetitions) for cell in self.cells()]


@dataclass
class SweepResult:
    """The frames of a sweep's units (measured now or found done), and where they are."""

    summary: pd.DataFrame
    samples: pd.DataFrame
    run: Run | None = None
    measured: int = 0
    skipped: int = 0
    units: list[Unit] = field(default_factory=list, repr=False)


def _child_env() -> dict[str, str]:
    """The environment of a fresh process: it must import this very pqlab."""
    return {**os.environ, "PYTHONPATH": config.package_pythonpath()}


@contextlib.contextmanager
def _result_path(scratch: Path | None) -> Iterator[Path]:
    """Where a worker leaves its result: in ``scratch`` under a temporary name (a killed
    sweep's leftover is removed when the run is resumed), else in a temporary directory."""
    if scratch is None:
        with tempfile.TemporaryDirectory(prefix="pqlab-unit-") as tmp:
            yield Path(tmp) / "unit.pickle"
        return
    scratch.mkdir(parents=True, exist_ok=True)
    path = scratch / f".unit.pickle{TMP_MARK}{os.getpid()}"
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def measure_fresh(spec: UnitSpec | OpenSpec, timeout_s: float = UNIT_TIMEOUT_S,
                  scratch: Path | None = None, zygote: Zygote | None = None,
                  what: str | None = None) -> Any:
    """Measure one unit in a fresh process: forked by ``zygote`` (``pqlab.harness.zygote``),
    else a new ``python -m pqlab.harness.worker`` interpreter. What the worker returns:
    (summary row, samples) for a ``UnitSpec``, ``openunit.measure_open``'s for an
    ``OpenSpec``. A failure is a ``SweepError`` whose one line starts with ``what`` (the
    unit's label; by default its queue, scenario and size)."""
    if what is None:
        what = (f"{spec.queue} load n={spec.tasks}" if isinstance(spec, OpenSpec)
                else f"{spec.queue} {spec.scenario} n={spec.tasks}")
    with _result_path(scratch) as out:
        try:
            if zygote is not None:
                code, last = zygote.run(spec.to_json(), out, timeout_s)
            else:
                code, last = _run_interpreter(spec, out, timeout_s)
        except TimeoutError:
            raise SweepError(f"{what}: no result after {timeout_s:g} s (process killed)") from None
        except ZygoteError as exc:
            raise SweepError(f"{what}: {exc}") from None
        if code != 0 or not out.is_file():
            hint = (" (a queue registered at run time exists only in that process: "
                    "use fresh_process=False)" if "unknown queue" in last else "")
            raise SweepError(f"{what}: fresh process failed: {last}{hint}")
        with open(out, "rb") as fh:
            return pickle.load(fh)


def _run_interpreter(spec: UnitSpec | OpenSpec, out: Path, timeout_s: float) -> tuple[int, str]:
    """Measure one unit in a new interpreter: its exit code and last line of standard error."""
    cmd = [sys.executable, "-m", "pqlab.harness.worker", spec.to_json(), str(out)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s,
                              env=_child_env())
    except subprocess.TimeoutExpired:
        raise TimeoutError(str(out)) from None
    lines = proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"]
    return proc.returncode, lines[-1]


def measure_here(spec: UnitSpec | OpenSpec) -> Any:
    """Measure one unit in this process, on a helper thread (what ``measure_fresh`` returns).

    A notebook kernel runs an event loop in the main thread, and the async
    scenarios need ``asyncio.run``, which refuses to start inside a running loop.
    The objects alive before the unit are frozen out of the collector meanwhile
    (``runner.frozen_heap``), so collections during the unit cost what they cost
    in a fresh process.
    """
    with frozen_heap(), ThreadPoolExecutor(max_workers=1,
                                           thread_name_prefix="pqlab-unit") as pool:
        work = measure_open if isinstance(spec, OpenSpec) else measure
        return pool.submit(work, spec).result()


def _frames(run_id: str, row: dict[str, Any], samples: dict[str, np.ndarray],
            fresh_process: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    summary = frames.summary_rows([{"run_id": run_id, **row, "fresh_process": fresh_process}])
    keys = {"run_id": run_id, **{k: row[k] for k in frames.UNIT}}
    return summary, frames.samples_rows(keys, samples)


def _start_servers(stack: contextlib.ExitStack, units: Sequence[SweepUnit]) -> None:
    """Start what the units need for the whole sweep: one Redis that every unit's process
    shares (``redisserver.serving``), instead of a private server per fresh process."""
    if not any(u.queue == REDIS_QUEUE for u in units):
        return

    try:
        stack.enter_context(serving())
    except RedisUnavailable as exc:
        raise SweepError(f"queue {REDIS_QUEUE}: {exc}") from None


def run_sweep(grid: Grid, run: Run | None = None, *, fresh_process: bool = True,
              progress: bool = True, max_samples: int = SAMPLES_PER_RUN,
              deadline_s: float = DEFAULT_DEADLINE_S,
              unit_timeout_s: float = UNIT_TIMEOUT_S,
              remeasure_tries: int | None = None) -> SweepResult:
    """Measure every unit of ``grid`` not yet in ``run``; return the grid's frames.

    A unit measured now on a busy machine (``measure.quiet``) is measured
    again once the others are done, up to ``remeasure_tries`` more times,
    and its latest measurement kept: a burst of load from another process
    costs a few units' time, not the run. ``None``: ``PQLAB_REMEASURE_TRIES``
    if set (a batch plan's ``remeasure_tries``), else ``REMEASURE_TRIES``.
    Units that stay busy keep their flag (the record says which, or refuses).
    Raises ``SweepError`` if a fresh process fails (units done so far are
    kept) or the Redis that ``redis`` units need cannot be started or reached.
    """
    units = grid.units()
    if run is not None:
        run.update_manifest(samples_per_run_max=max_samples)
    measurer = _Measurer(grid, run, fresh_process, max_samples, deadline_s, unit_timeout_s)
    done = run.done_units() if run is not None else set()
    measured = run_units(units, done, measurer, fresh_process=fresh_process,
                         progress=progress, remeasure_tries=remeasure_tries)
    if run is not None:
        wanted = {u.key for u in units}
        summary_df, samples_df = _select(run.summary(), wanted), _select(run.samples(), wanted)
    else:
        summary_df = frames.concat([measurer.kept[u.key][0] for u in units])
        samples_df = frames.concat([measurer.kept[u.key][1] for u in units],
                                   typed=frames.typed_samples)
    return SweepResult(summary_df, samples_df, run, measured, len(units) - measured, units)


class SweepUnit(Protocol):
    """What the unit loop needs of a unit: its store key, its queue (for the servers it
    needs) and a label for progress and errors."""

    @property
    def key(self) -> str: ...

    @property
    def queue(self) -> str: ...

    def label(self) -> str: ...


class UnitMeasurer(Protocol):
    """Measures and stores one unit; ``zygote`` is set while fresh processes are forked."""

    zygote: Zygote | None
    run: Run | None

    def measure(self, unit: Any) -> bool:
        """Measure ``unit`` and store it; True to measure it again (busy)."""
        ...


def run_units(units: Sequence[SweepUnit], done: set[str], measurer: UnitMeasurer, *,
              fresh_process: bool = True, progress: bool = True,
              remeasure_tries: int | None = None, desc: str = "sweep") -> int:
    """The unit loop every sweep runs: measure each of ``units`` whose key is not in
    ``done`` with ``measurer``, in order; return how many were measured.

    Starts the servers the units need (``_start_servers``) and, for
    ``fresh_process``, one zygote for all of them; shows a tqdm bar and reports
    to the batch's console (``Reporter``); measures again, up to
    ``remeasure_tries`` more times, the units ``measurer.measure`` says were
    measured on a busy machine; consolidates the run's closed-loop units at
    the end, also when a unit fails.
    """
    if remeasure_tries is None:
        remeasure_tries = int(os.environ.get(ENV_REMEASURE, REMEASURE_TRIES))
    params.non_negative_int("remeasure_tries", remeasure_tries)
    todo = [u for u in units if u.key not in done]
    servers = contextlib.ExitStack()
    _start_servers(servers, todo)
    if fresh_process and todo:  # after the servers: the children see their URLs
        measurer.zygote = servers.enter_context(Zygote(_child_env()))
    bar = tqdm(total=len(units), initial=len(units) - len(todo), unit="run", desc=desc,
               disable=not progress, mininterval=1.0, file=sys.stderr, dynamic_ncols=True)
    report = Reporter(len(units), len(units) - len(todo))
    if not fresh_process:  # the units' own frozen_heap then collects only their leftovers
        servers.enter_context(frozen_heap())
    try:
        busy = _measure_all(measurer, todo, bar, report)
        for attempt in range(1, remeasure_tries + 1):
            if not busy:
                break
            note = (f"measuring again {_units(len(busy))} measured on a busy machine "
                    f"(try {attempt} of {remeasure_tries})")
            if progress:
                bar.write(note, file=sys.stderr)
            bar.total += len(busy)
            report.grow(len(busy), note)
            busy = _measure_all(measurer, busy, bar, report)
    finally:
        bar.close()
        servers.close()
        measurer.zygote = None
        if measurer.run is not None:
            measurer.run.consolidate()
    return len(todo)


@dataclass
class _Measurer:
    """Measures one unit of a sweep and stores it (in the run, else in ``kept``)."""

    grid: Grid
    run: Run | None
    fresh_process: bool
    max_samples: int
    deadline_s: float
    unit_timeout_s: float
    zygote: Zygote | None = None  # forks the fresh processes (else a new interpreter each)
    warmed: set = field(default_factory=set)
    kept: dict = field(default_factory=dict)  # unit key -> (summary, samples), without a run

    def measure(self, unit: Unit) -> bool:
        """Measure ``unit``, store it (replacing an earlier measurement); True if busy."""
        spec = UnitSpec(**asdict(unit), seed=self.grid.seed + unit.repetition,
                        max_samples=self.max_samples, deadline_s=self.deadline_s)
        if self.fresh_process:
            row, task_rows = measure_fresh(spec, self.unit_timeout_s,
                                           self.run.cells_dir if self.run is not None else None,
                                           self.zygote)
        else:  # in one process a warm-up per cell is enough
            row, task_rows = measure_here(replace(spec, warmup=unit.cell not in self.warmed))
            self.warmed.add(unit.cell)
        run_id = self.run.run_id if self.run is not None else ""
        summary, sample = _frames(run_id, row, task_rows, self.fresh_process)
        if self.run is not None:
            self.run.save_unit(unit.key, summary, sample)
        else:
            self.kept[unit.key] = (summary, sample)
        return bool(row.get("busy", False))


def _units(n: int) -> str:
    return f"{n} unit" if n == 1 else f"{n} units"


def _measure_all(measurer: UnitMeasurer, units: list[Any], bar: tqdm,
                 report: Reporter) -> list[Any]:
    """Measure ``units`` in order, showing progress; the ones measured on a busy machine."""
    busy = []
    for unit in units:
        bar.set_postfix_str(unit.label(), refresh=False)
        if measurer.measure(unit):
            busy.append(unit)
        bar.update()
        report.advance()
    return busy


def _select(df: pd.DataFrame, keys: set[str]) -> pd.DataFrame:
    """Rows of ``df`` whose unit is one of ``keys``."""
    if df.empty:
        return df
    return frames.categorize(df[frames.in_units(df, keys)].reset_index(drop=True))
