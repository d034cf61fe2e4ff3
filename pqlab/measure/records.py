"""``Records``: what a timed pass stamped, the data every measurement is computed from.

Also the one definition of a task's *first get* (``first_gets``): the
checks (``verify``), the waits (``metrics``) and the stored samples
(``harness.worker``) all pair a task with the get event that started first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Records:
    """The stamps of one timed pass (all ``perf_counter_ns``).

    Per task, in workload order: ``priority``, ``seq``, ``put_start``,
    ``put_end``, ``producer``. Per get event (a duplicated task appears twice,
    a lost one not at all): ``get_task`` (task position), ``get_start``,
    ``get_end``, ``consumer``. ``concurrent`` says whether puts and gets ran
    in parallel workers (so the concurrent ordering rule applies).
    ``extra`` holds scenario-specific scalars for the summary row, ``levels``
    scenario-specific results per priority (``pqlab.measure.levels``), ``series``
    scenario-specific arrays.
    """

    priority: np.ndarray
    seq: np.ndarray
    put_start: np.ndarray
    put_end: np.ndarray
    producer: np.ndarray
    get_task: np.ndarray
    get_start: np.ndarray
    get_end: np.ndarray
    consumer: np.ndarray
    concurrent: bool
    wall_ns: int
    errors: list[str] = field(default_factory=list)
    label: str = ""
    # True when the work ran in worker processes: this process's CPU clock did not see it,
    # and the quiet-machine readings cannot tell their load from another program's.
    cpu_elsewhere: bool = False
    # Scenario-specific scalars (copied into the run's summary row) and arrays
    # (per task or over time, e.g. intended arrival times or event-loop lag).
    extra: dict[str, Any] = field(default_factory=dict)
    levels: dict[str, dict[str, Any]] = field(default_factory=dict)  # level -> {metric: value}
    series: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def tasks(self) -> int:
        return len(self.seq)


@dataclass
class UntimedPass:
    """An untimed pass: wall time from the first put to the last get, and the CPU
    time spent over it (ns; NaN where the scenario cannot tell)."""

    wall_ns: int
    gets: int
    errors: list[str] = field(default_factory=list)
    cpu_ns: float = math.nan


def first_gets(rec: Records) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per dequeued task, its first get event: (task positions, get_start, get_end).

    "First" is the get that *started* first (a stable sort, so equal starts keep
    their log order); positions come out sorted, so two calls pair by index.
    """
    valid = rec.get_task >= 0
    order = np.argsort(rec.get_start[valid], kind="stable")
    tasks = rec.get_task[valid][order]
    uniq, first = np.unique(tasks, return_index=True)
    return uniq, rec.get_start[valid][order][first], rec.get_end[valid][order][first]
