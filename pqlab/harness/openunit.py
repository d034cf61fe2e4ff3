"""Measure one open-loop sweep unit (one ``load`` run at one ρ); the part its process runs.

An ``OpenSpec`` carries everything the measuring process needs as plain values
(the load parameters as ``LoadParams.to_mapping``), so it crosses to a fresh
process as JSON (``pqlab.harness.worker`` reads either kind of spec).
``measure_open`` runs the unit and returns the rows of the study's frames
(``pqlab.measure.loadrows``), never the run's records: ``levels`` (notebook 07's
waits per priority, or notebook 08's long levels rows), and when asked the
wait ``spectrum`` or the ``depth`` per level over time; beside them the run's
own columns and levels (for the notebooks' progress lines) and the
quiet-machine readings over the run.

A unit on the aging queue (``aging_ms`` > 0) registers that queue in the
process that measures it (``aging_queue``), so it exists in a fresh process
too, and removes it afterwards.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from pqlab.harness.runner import run
from pqlab.measure import loadrows, quiet
from pqlab.queues import QUEUES, register_queue, unregister_queue
from pqlab.queues.syncqueue import ThreadSafeAgingQueue
from pqlab.scenarios import DEFAULT_DEADLINE_S
from pqlab.scenarios.loadparams import LoadParams

ROWS = ("waits", "overload")  # which rows a unit's run gives: loadrows.waits_frame / overload_frame
# A unit that warms up first runs its own parameters for this many seconds of arrivals,
# unrecorded: imports, thread start-up and first allocations are paid there.
WARMUP_S = 0.5


def aging_queue_name(age_ms: float) -> str:
    return f"ThreadSafeAgingQueue(age={age_ms:g}ms)"


@contextlib.contextmanager
def aging_queue(age_ms: float) -> Iterator[str]:
    """A ``ThreadSafeAgingQueue`` registered under ``aging_queue_name`` for the block (left
    alone, and left registered, if that name is registered already)."""
    name = aging_queue_name(age_ms)
    if name in QUEUES:
        yield name
        return
    register_queue(name, functools.partial(ThreadSafeAgingQueue, age_s=age_ms / 1e3),
                   thread_safe=True, async_safe=False,
                   description="pqlab: bucket storage with aging (starvation guard)")
    try:
        yield name
    finally:
        unregister_queue(name)


@dataclass(frozen=True)
class OpenSpec:
    """One open-loop unit: ``queue`` through ``load`` with ``load`` (``LoadParams.to_mapping``)
    on ``workers`` workers, ``tasks`` arrivals from ``seed``."""

    queue: str
    load: dict[str, Any]
    tasks: int
    workers: int
    seed: int
    repetition: int = 0
    producers: int = 1
    rows: str = "waits"  # one of ROWS
    policy_name: str = ""  # overload rows: the sweep's name of the run's policy
    spectrum: bool = False  # also the percentiles of its waits (loadrows.wait_spectrum)
    depth: bool = False  # also its depth per level over time (loadrows.level_depth_frame)
    aging_ms: float = 0.0  # > 0: ``queue`` is aging_queue(aging_ms), registered where measured
    warmup_s: float = 0.0  # seconds of unrecorded arrivals first (0: none)
    deadline_s: float = DEFAULT_DEADLINE_S

    def __post_init__(self) -> None:
        if self.rows not in ROWS:
            raise ValueError(f"rows {self.rows!r} unknown; allowed: {', '.join(ROWS)}")
        if self.aging_ms > 0 and self.queue != aging_queue_name(self.aging_ms):
            raise ValueError(f"an aging unit runs on {aging_queue_name(self.aging_ms)!r}, "
                             f"not {self.queue!r}")

    @property
    def params(self) -> LoadParams:
        return LoadParams.from_mapping(self.load)

    def to_json(self) -> str:
        return json.dumps({"open": asdict(self)})

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> OpenSpec:
        return cls(**data)

    def identity(self) -> str:
        """A short hash of what the unit measures (not how it warms up): two specs with the
        same identity measure the same thing."""
        what = {k: v for k, v in asdict(self).items() if k != "warmup_s"}
        return hashlib.sha1(json.dumps(what, sort_keys=True).encode()).hexdigest()[:10]


def _plain(value: Any) -> Any:
    """A JSON-safe value (numpy scalars as Python ones, anything else as text)."""
    item = getattr(value, "item", None)
    return item() if callable(item) else str(value)


def measure_open(spec: OpenSpec) -> dict[str, Any]:
    """Warm up (``warmup_s`` > 0), run the unit, return its rows and readings.

    The result: ``rows`` (kind → DataFrame: ``levels``, and ``spectrum`` or
    ``depth`` when asked), ``run`` (the run's own columns, JSON-safe),
    ``levels`` (its ``Levels``), ``quiet`` (``loadavg_1m``, ``others_cores``,
    ``oncpu_share``, ``quiet_window_s``, ``busy``, ``busy_why``: recorded, see
    ``pqlab.study.opensweep`` on why busy units are not measured again) and
    ``pid``. Raises what ``run`` raises on a bad unit.
    """
    params = spec.params
    kwargs = dict(producers=spec.producers, consumers=spec.workers,
                  deadline_s=spec.deadline_s, params=params)
    with aging_queue(spec.aging_ms) if spec.aging_ms > 0 else contextlib.nullcontext():
        if spec.warmup_s > 0:
            run(spec.queue, "load", tasks=params.tasks_for(spec.warmup_s), seed=spec.seed,
                memory=False, **kwargs)
        window = quiet.UnitWindow()
        result = run(spec.queue, "load", tasks=spec.tasks, seed=spec.seed,
                     repetition=spec.repetition, **kwargs)
        readings = window.close(in_process=not result.records[-1].cpu_elsewhere)
    readings.update(quiet.judge({**readings, "scenario": "load"}, os.cpu_count() or 1))
    rows = {"levels": (loadrows.waits_frame(result) if spec.rows == "waits"
                       else loadrows.overload_frame(result, spec.policy_name))}
    if spec.spectrum:
        rows["spectrum"] = loadrows.wait_spectrum(result)
    if spec.depth:
        rows["depth"] = loadrows.level_depth_frame(result)
    columns = json.loads(json.dumps(result.run_columns(), default=_plain))
    return {"rows": rows, "run": columns,
            "levels": json.loads(json.dumps(result.levels, default=_plain)),
            "quiet": readings, "pid": os.getpid()}
