"""Numbers derived from records: latency percentiles, waits, overlap, throughput, memory.

``RunResult`` holds one run. Every field is measured in that run; nothing is
typed in.
"""

from __future__ import annotations

import math
import time
import tracemalloc
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import psutil

from pqlab.core.task import Priority
from pqlab.measure import levels as per_level
from pqlab.measure.records import Records, first_gets

if TYPE_CHECKING:  # no frame is made here (``levels.frame`` imports pandas when it makes one)
    import pandas as pd

PERCENTILES = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p99_9": 99.9}
LATENCY_STATS = ("mean", *PERCENTILES, "max")
WAIT_PERCENTILES = ("p50", "p99")  # of the wait per priority: levels' wait_p50_us, wait_p99_us
TIMER_PAIRS = 20_000  # about 2 ms: enough pairs for a stable median


def duration_stats(ns: np.ndarray, unit_ns: float) -> dict[str, float]:
    """Mean, p50, p90, p99, p99.9 and max of nanosecond durations, in units of ``unit_ns``."""
    if len(ns) == 0:
        return {k: math.nan for k in LATENCY_STATS}
    values = np.asarray(ns, np.float64) / unit_ns
    stats = {"mean": float(values.mean())}
    stats.update({k: float(np.percentile(values, q)) for k, q in PERCENTILES.items()})
    stats["max"] = float(values.max())
    return stats


def latency_stats_us(ns: np.ndarray) -> dict[str, float]:
    """Mean, p50, p90, p99, p99.9 and max of nanosecond durations, in microseconds."""
    return duration_stats(ns, 1e3)


def enqueue_ns(rec: Records) -> np.ndarray:
    """Duration of every put that happened."""
    done = rec.put_end > 0
    return (rec.put_end - rec.put_start)[done]


def dequeue_ns(rec: Records) -> np.ndarray:
    """Duration of every get that returned a task (a blocking get includes its wait)."""
    return rec.get_end - rec.get_start


def wait_ns(rec: Records) -> tuple[np.ndarray, np.ndarray]:
    """Per dequeued task: (priority, time from put finished to its first get finished),
    in task order (``records.first_gets``)."""
    tasks, _, get_end = first_gets(rec)
    return rec.priority[tasks], get_end - rec.put_end[tasks]


def wait_by_priority_us(rec: Records) -> per_level.Levels:
    """p50 and p99 of the time waited in the queue per priority level, in µs:
    ``wait_p50_us`` and ``wait_p99_us`` of each level."""
    prio, waits = wait_ns(rec)
    out = per_level.empty()
    for level in Priority:
        mine = waits[prio == level] / 1e3
        for name in WAIT_PERCENTILES:
            value = float(np.percentile(mine, PERCENTILES[name])) if len(mine) else math.nan
            out[level.name]["wait_" + name + "_us"] = value
    return out


def overlap(rec: Records) -> float:
    """Share of gets that finished while producing was still under way (0 = none)."""
    if len(rec.get_end) == 0 or not (rec.put_end > 0).any():
        return 0.0
    last_put = rec.put_end.max()
    return float(np.count_nonzero(rec.get_end < last_put) / len(rec.get_end))


def timer_overhead_ns(pairs: int = TIMER_PAIRS) -> float:
    """Median cost of one ``perf_counter_ns`` pair around nothing, in ns."""
    pc = time.perf_counter_ns
    deltas = np.empty(pairs, np.int64)
    for i in range(pairs):
        t0 = pc()
        t1 = pc()
        deltas[i] = t1 - t0
    return float(np.median(deltas))


def throughput_ops_s(tasks: int, wall_ns: int) -> float:
    """Operations per second, counting one put and one get per task."""
    return 2 * tasks / (wall_ns / 1e9) if wall_ns > 0 else math.nan


def cpu_us_per_task(cpu_ns: float, tasks: int) -> float:
    """CPU µs spent per task (NaN when the CPU time is unknown)."""
    return cpu_ns / 1e3 / tasks if tasks > 0 else math.nan


def cpu_cores(cpu_ns: float, wall_ns: int) -> float:
    """Cores kept busy: CPU time over wall time (NaN when either is unknown)."""
    return cpu_ns / wall_ns if wall_ns > 0 else math.nan


@dataclass(frozen=True)
class Memory:
    """Memory of a queue holding every task of the workload."""

    bytes_per_task: float  # tracemalloc: bytes the queue allocated per queued task
    rss_bytes: int  # psutil: resident set of the whole process, queue full


def measure_memory(fill, tasks: int) -> Memory:
    """Run ``fill()`` under tracemalloc; it fills a queue and returns (bytes allocated, queue)."""
    tracemalloc.start()
    try:
        allocated, keep = fill()
    finally:
        tracemalloc.stop()
    rss = psutil.Process().memory_info().rss
    del keep
    return Memory(allocated / tasks, rss)


@dataclass
class RunResult:
    """One queue through one scenario: every number derived from that run's records."""

    queue: str
    scenario: str
    tasks: int
    producers: int
    consumers: int
    seed: int | None
    repetition: int
    throughput_ops_s: float
    wall_s: float
    enqueue_us: dict[str, float]
    dequeue_us: dict[str, float]
    levels: per_level.Levels  # per priority: {metric: value} (pqlab.measure.levels)
    violations: int
    lost: int
    duplicated: int
    errors: int
    error_messages: list[str]
    overlap: float
    bytes_per_task: float
    rss_bytes: int
    timer_overhead_ns: float
    # CPU over the pass throughput comes from (user + system; for ``processes``
    # the worker processes and the queue's server when this process started it).
    cpu_us_per_task: float = math.nan
    cpu_cores: float = math.nan  # that CPU time / that pass's wall time
    extra: dict[str, Any] = field(default_factory=dict)
    records: list[Records] = field(default_factory=list, repr=False)

    @property
    def ok(self) -> bool:
        return self.violations == 0 and self.lost == 0 and self.duplicated == 0 and not self.errors

    def run_columns(self) -> dict[str, Any]:
        """The flat record without the levels: a run's own columns (latencies as
        ``enqueue_p99_us`` …), repeated on each row of its long levels frame."""
        data = asdict(self)
        for name in ("records", "enqueue_us", "dequeue_us", "levels", "extra"):
            data.pop(name)
        for op in ("enqueue", "dequeue"):
            for stat, value in getattr(self, f"{op}_us").items():
                data[f"{op}_{stat}_us"] = value
        data.update(self.extra)
        return data

    def to_dict(self) -> dict[str, Any]:
        """A flat record: one ``summary`` row, the run's columns and its levels flattened
        (``levels.flat``)."""
        return {**self.run_columns(), **per_level.flat(self.levels)}

    def levels_frame(self) -> pd.DataFrame:
        """This run's long levels frame: one row per priority (``levels.frame``)."""
        return per_level.frame([(self.run_columns(), self.levels)])
