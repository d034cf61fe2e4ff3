"""The quiet-machine check: was a unit measured while something else used the CPU?

A unit's row records three readings over its measured run (``UnitWindow``):

- ``loadavg_1m``: the 1-minute load average when the unit starts;
- ``others_cores``: CPU used by every other process meanwhile, in cores: the
  machine's busy time from ``/proc/stat`` (user, nice, system, irq, softirq,
  steal) minus this process's own CPU and its children's, over the wall time.
  ``/proc/stat`` counts in clock ticks (10 ms here), so over a short run it is
  coarse: a few ticks either way;
- ``oncpu_share``: the share of its runnable time this process's threads spent
  on a CPU rather than waiting on a run queue, from
  ``/proc/<pid>/task/<tid>/schedstat`` (field 1: ns on a CPU, field 2: ns
  waiting runnable). Threads alive at the end are read then; a worker thread
  that ends earlier is read as it ends (``thread_ended``, called by the
  scenarios' thread wrapper). Threads that end without it are not counted.
  NaN for ``processes``, whose work is in other processes.

``busy_reasons(row, cores)`` is the one rule (``busy`` and ``busy_why`` in the
row come from it); ``busy_cells(summary)`` lists the busy units of a summary
frame with the reason; ``warning_lines`` turns them into the lines notebooks
and the batch print.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import psutil

if TYPE_CHECKING:  # pandas stays out of a sweep worker's start-up (pqlab._worker)
    import pandas as pd

PROC_STAT = "/proc/stat"
TASKS_DIR = "/proc/self/task"
TICK_S = 1 / os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 0.01
# /proc/stat's aggregate line: cpu user nice system idle iowait irq softirq steal ...
BUSY_FIELDS = (1, 2, 3, 6, 7, 8)

# Thresholds of the busy rule. Measured on the 2-core development VM with
# `pqlab.quiet` units of ThreadSafeBucketQueue and queue.PriorityQueue in
# `threads` (4/4, 20,000 tasks): see the README's "Stored data" for the figures.
OTHERS_CORES_MAX = 0.25  # another process used more than a quarter of a core
ONCPU_SHARE_MIN = 0.90  # our threads waited runnable more than a tenth of their time
LOADAVG_OVER_CORES = 1.0  # load average above cores + this many runnable tasks

_exited = [0, 0]  # on-CPU and run-queue ns of threads that ended (thread_ended)
_exited_lock = threading.Lock()


def loadavg_1m() -> float:
    """The 1-minute load average; NaN where the OS has none."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return math.nan


def machine_busy_ns() -> float:
    """Busy time of all CPUs since boot (``/proc/stat``), ns; NaN where it does not exist."""
    try:
        with open(PROC_STAT, encoding="ascii") as fh:
            fields = fh.readline().split()
    except OSError:
        return math.nan
    return sum(int(fields[i]) for i in BUSY_FIELDS if i < len(fields)) * TICK_S * 1e9


def _descendants_cpu_ns() -> dict[int, float]:
    out: dict[int, float] = {}
    for child in psutil.Process().children(recursive=True):
        try:
            times = child.cpu_times()
        except psutil.Error:  # gone meanwhile
            continue
        out[child.pid] = (times.user + times.system) * 1e9
    return out


def own_cpu_ns() -> tuple[float, dict[int, float]]:
    """CPU time of this process and its reaped children (ns), and of each living descendant."""
    t = os.times()
    return (t.user + t.system + t.children_user + t.children_system) * 1e9, _descendants_cpu_ns()


def _schedstat(path: str) -> tuple[int, int]:
    with open(path, encoding="ascii") as fh:
        on_cpu, waiting, _ = fh.read().split()
    return int(on_cpu), int(waiting)


def thread_ended() -> None:
    """Add the calling thread's on-CPU and run-queue time to the ended threads' total.

    Call it last thing in a worker thread; a no-op where schedstat does not exist.
    """
    try:
        on_cpu, waiting = _schedstat("/proc/thread-self/schedstat")
    except (OSError, ValueError):
        return
    with _exited_lock:
        _exited[0] += on_cpu
        _exited[1] += waiting


def schedstat_ns() -> tuple[float, float]:
    """(on-CPU, run-queue wait) ns of this process's living threads plus ended ones; NaN
    where schedstat does not exist."""
    try:
        tids = os.listdir(TASKS_DIR)
    except OSError:
        return math.nan, math.nan
    on_cpu, waiting = 0, 0
    for tid in tids:
        try:
            c, w = _schedstat(f"{TASKS_DIR}/{tid}/schedstat")
        except FileNotFoundError:  # ended between the listing and the read
            continue
        except (OSError, ValueError):
            return math.nan, math.nan
        on_cpu, waiting = on_cpu + c, waiting + w
    with _exited_lock:
        return float(on_cpu + _exited[0]), float(waiting + _exited[1])


class UnitWindow:
    """Readings at the start of a unit's measured run; ``close()`` gives the row's fields.

    Blocks only to read a few ``/proc`` files (about a millisecond).
    """

    def __init__(self) -> None:
        self.loadavg_1m = loadavg_1m()
        self._own, self._children = own_cpu_ns()
        self._sched = schedstat_ns()
        self._busy = machine_busy_ns()
        self._wall = time.perf_counter_ns()

    def close(self, in_process: bool = True) -> dict[str, float]:
        """``loadavg_1m``, ``others_cores`` and ``oncpu_share`` since the window opened;
        ``in_process`` false (``processes``) makes ``oncpu_share`` NaN."""
        wall = time.perf_counter_ns() - self._wall
        busy = machine_busy_ns() - self._busy
        sched = schedstat_ns()
        own, children = own_cpu_ns()
        own -= self._own
        own += sum(ns - self._children.get(pid, 0.0) for pid, ns in children.items())
        # Ticks against nanoseconds: a quiet machine can come out a little below 0.
        others = max(0.0, (busy - own) / wall) if wall > 0 else math.nan
        on_cpu, waiting = sched[0] - self._sched[0], sched[1] - self._sched[1]
        share = on_cpu / (on_cpu + waiting) if in_process and on_cpu + waiting > 0 else math.nan
        return {"loadavg_1m": self.loadavg_1m, "others_cores": others, "oncpu_share": share}


def busy_reasons(row: Mapping[str, Any], cores: int) -> list[str]:
    """Why ``row`` was measured on a busy machine (empty: quiet, or nothing to judge by).

    A NaN reading is not judged. ``cores`` is the machine's logical CPU count.
    """
    why = []
    others, share, load = (row.get(k, math.nan) for k in
                           ("others_cores", "oncpu_share", "loadavg_1m"))
    if others > OTHERS_CORES_MAX:
        why.append(f"other processes used {others:.2f} cores (> {OTHERS_CORES_MAX})")
    if share < ONCPU_SHARE_MIN:
        why.append(f"on a CPU {share:.0%} of its runnable time (< {ONCPU_SHARE_MIN:.0%})")
    if load > cores + LOADAVG_OVER_CORES:
        why.append(f"load average {load:.2f} (> {cores} cores + {LOADAVG_OVER_CORES:g})")
    return why


def busy(row: Mapping[str, Any], cores: int) -> bool:
    """The busy rule: any reading past its threshold (``busy_reasons``)."""
    return bool(busy_reasons(row, cores))


def judge(row: Mapping[str, Any], cores: int) -> dict[str, Any]:
    """The row's ``busy`` flag and ``busy_why`` ("; "-joined reasons, "" when quiet)."""
    why = busy_reasons(row, cores)
    return {"busy": bool(why), "busy_why": "; ".join(why)}


BUSY_COLUMNS = ["queue", "scenario", "tasks", "producers", "consumers", "repetition"]


def busy_cells(summary: pd.DataFrame) -> pd.DataFrame:
    """The units of ``summary`` measured on a busy machine: their keys and ``why``.

    Empty (same columns) when every unit was quiet or the frame predates the check.
    """
    import pandas as pd

    columns = [c for c in BUSY_COLUMNS if c in summary.columns]
    if "busy" not in summary.columns or summary.empty:
        return pd.DataFrame(columns=[*columns, "why"])
    hit = summary[summary["busy"].fillna(False).astype(bool)]
    out = hit[columns].astype({c: str for c in ("queue", "scenario") if c in columns})
    return out.assign(why=hit["busy_why"].to_numpy()).reset_index(drop=True)


def warning_lines(summary: pd.DataFrame, limit: int = 5) -> list[str]:
    """One warning line per busy unit (the first ``limit``, then a count); [] when quiet."""
    cells = busy_cells(summary)
    if cells.empty:
        return []
    lines = [f"WARNING: {len(cells)} of {len(summary)} units were measured on a busy "
             "machine; their numbers may be unstable (rerun them on a quiet machine):"]
    for row in cells.head(limit).itertuples(index=False):
        lines.append(f"  {row.queue} {row.scenario} tasks={row.tasks} "
                     f"workers={row.producers}/{row.consumers} rep={row.repetition}: {row.why}")
    if len(cells) > limit:
        lines.append(f"  ... and {len(cells) - limit} more")
    return lines
