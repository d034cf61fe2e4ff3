"""The quiet-machine check: was a unit measured while something else used the CPU?

A unit's row records these readings over its measured run (``UnitWindow``):

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
- ``quiet_window_s``: the window's length.

For ``processes`` the work is in other processes, and the queue's server may
be a process this one did not start (the Redis a sweep shares), which
``/proc/stat`` cannot tell from any other: both readings are NaN there.

``busy_reasons(row, cores)`` is the one rule (``busy`` and ``busy_why`` in
the row come from it); ``busy_cells(summary)`` lists the busy units of a
summary frame with the reason; ``warning_lines`` turns them into the lines
notebooks and the batch print.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import psutil

if TYPE_CHECKING:  # pandas stays out of a sweep worker's start-up (pqlab.harness.worker)
    import pandas as pd

PROC_STAT = "/proc/stat"
TASKS_DIR = "/proc/self/task"
TICK_S = 1 / os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 0.01
# /proc/stat's aggregate line: cpu user nice system idle iowait irq softirq steal ...
BUSY_FIELDS = (1, 2, 3, 6, 7, 8)

# The busy rule. Measured on the 2-core development VM (10,000-task units;
# helpers' test suites kept about one core busy throughout, so no quiet
# baseline could be taken): others_cores 0.3-1.5 beside those jobs, 0.9-1.9
# with `yes > /dev/null` added; a one-thread unit (heapq in `single`) was on a
# CPU 0.91-0.99 of its runnable time while a core was free, 0.33-0.46 when
# both were taken.
OTHERS_CORES_MAX = 0.25  # another process used more than a quarter of a core
ONCPU_SHARE_MIN = 0.90  # a one-thread unit waited runnable more than a tenth of its time
# Judged by oncpu_share: their work runs on one thread. In `threads` the
# producers' sched_yield keeps 3.5 (4/4 workers) to 12 (16/16) of the unit's
# own threads runnable on average (sampled from /proc/self/task/*/stat), so
# its threads wait for each other on 2 cores whatever else runs; for the same
# reason the load average, which our own units push to 4-12, is recorded but
# not judged.
ONE_THREAD_SCENARIOS = ("single", "async")
RULE_TEXT = (f"busy: other processes used more than {OTHERS_CORES_MAX} of a core beyond the "
             f"tick blur, or a one-thread unit ({', '.join(ONE_THREAD_SCENARIOS)}) was on a CPU "
             f"less than {ONCPU_SHARE_MIN:.0%} of its runnable time")

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


def descendants_cpu_ns() -> dict[int, float]:
    """CPU time (user + system, ns) of every living descendant of this process, by pid.

    psutil reads ``/proc/<pid>/stat``, counted in clock ticks (10 ms here).
    """
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
    return (t.user + t.system + t.children_user + t.children_system) * 1e9, descendants_cpu_ns()


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
        """``loadavg_1m``, ``others_cores``, ``oncpu_share`` and the window's length
        (``quiet_window_s``); ``in_process`` false (``processes``) makes
        ``others_cores`` and ``oncpu_share`` NaN."""
        wall = time.perf_counter_ns() - self._wall
        busy = machine_busy_ns() - self._busy
        sched = schedstat_ns()
        own, children = own_cpu_ns()
        own -= self._own
        own += sum(ns - self._children.get(pid, 0.0) for pid, ns in children.items())
        on_cpu, waiting = sched[0] - self._sched[0], sched[1] - self._sched[1]
        if not in_process or wall <= 0:
            others = share = math.nan
        else:
            # Ticks against nanoseconds: a quiet machine can come out a little below 0.
            others = max(0.0, (busy - own) / wall)
            share = on_cpu / (on_cpu + waiting) if on_cpu + waiting > 0 else math.nan
        return {"loadavg_1m": self.loadavg_1m, "others_cores": others, "oncpu_share": share,
                "quiet_window_s": wall / 1e9}


def busy_reasons(row: Mapping[str, Any], cores: int) -> list[str]:
    """Why ``row`` was measured on a busy machine (empty: quiet, or nothing to judge by).

    ``others_cores`` counts only beyond what ``/proc/stat``'s ticks can blur over
    the window (``cores`` ticks: 1 core over 20 ms on 2 cores), so a short unit
    is judged by ``oncpu_share`` alone, and that only where one thread does the
    work (``ONE_THREAD_SCENARIOS``). A NaN reading is not judged.
    """
    why = []
    others, share, window = (row.get(k, math.nan) for k in
                             ("others_cores", "oncpu_share", "quiet_window_s"))
    blur = cores * TICK_S / window if window > 0 else math.inf
    if others - blur > OTHERS_CORES_MAX:
        why.append(f"other processes used {others:.2f} cores (> {OTHERS_CORES_MAX} "
                   f"+ {blur:.2f} for ticks)")
    if row.get("scenario") in ONE_THREAD_SCENARIOS and share < ONCPU_SHARE_MIN:
        why.append(f"on a CPU {share:.0%} of its runnable time (< {ONCPU_SHARE_MIN:.0%})")
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
    import pandas as pd  # here: pandas stays out of a sweep worker's start-up

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
