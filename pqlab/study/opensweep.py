"""Open-loop sweeps (notebooks 06, 07, 08): each ``load`` point a unit of the one unit loop.

A study plans its points as ``OpenUnit``s (a ``pqlab.harness.openunit.OpenSpec``,
the frame its rows go to, its ρ and policy) and ``run_open_sweep`` measures
them through ``pqlab.study.sweep.run_units``, as the closed-loop grid is
measured: each in a process forked from the zygote (or, with
``fresh_process=False``, in this process on a helper thread), stored in the
run as soon as it is done (``store.Run.save_open_unit``: its rows by kind and
what it measured), skipped when the run has it already, counted by the tqdm
bar and the batch's console. The study writes its named frames from the
units' rows (``OpenSweepResult.parts``).

Busy units are not measured again. Their quiet-machine readings
(``pqlab.measure.quiet``) are taken and stored with the unit (``busy``,
``busy_why``), but the busy rule does not fit an open-loop run: it was
calibrated on closed-loop units that keep a core busy, where another
process's CPU slows what is measured; a load unit's threads sleep to the
schedule and through their service times (a few percent of a core), its waits
are tens of milliseconds set by arrivals and service times, and how late the
machine let it put each request is measured in the run itself
(``producer_late_p99_ms``). A unit takes as long as its arrivals last (seconds
each), so measuring it again would cost the batch more than the rule can buy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import pandas as pd

from pqlab.harness.openunit import OpenSpec
from pqlab.harness.zygote import Zygote
from pqlab.study import frames
from pqlab.study.store import Run
from pqlab.study.sweep import (
    UNIT_TIMEOUT_S,
    SweepError,
    measure_fresh,
    measure_here,
    run_units,
)


@dataclass(frozen=True)
class OpenUnit:
    """One open-loop point: what to measure (``spec``), the study frame whose rows it gives
    (``frame``: ``load``, ``load-aging``, ``overload``, ``overload-redis``), its target ρ
    and, past saturation, its policy's name."""

    spec: OpenSpec
    frame: str
    rho: float
    policy: str | None = None

    @property
    def queue(self) -> str:
        return self.spec.queue

    @property
    def key(self) -> str:
        """The store key: readable, and exact through the spec's hash (a changed parameter
        is another unit)."""
        return (f"{self.frame}__{frames.file_safe(self.queue)}__rho{self.rho:g}"
                f"__r{self.spec.repetition}__{self.spec.identity()}")

    def label(self) -> str:
        policy = f" policy {self.policy}" if self.policy is not None else ""
        return f"{self.queue} load ρ={self.rho:g}{policy} rep {self.spec.repetition}"


@dataclass
class OpenSweepResult:
    """Every unit's stored info and rows (measured now or found done), in plan order."""

    units: list[OpenUnit]
    infos: list[dict[str, Any]]
    rows: list[dict[str, pd.DataFrame]]
    measured: int = 0
    skipped: int = 0

    def parts(self, frame: str, kind: str = "levels"
              ) -> list[tuple[OpenUnit, dict[str, Any], pd.DataFrame]]:
        """(unit, info, rows of ``kind``) of the units of ``frame`` that have such rows."""
        return [(u, info, rows[kind]) for u, info, rows in
                zip(self.units, self.infos, self.rows, strict=True)
                if u.frame == frame and kind in rows]


OnUnit = Callable[[OpenUnit, dict[str, Any]], None]


@dataclass
class _OpenMeasurer:
    """Measures one open-loop unit and stores it (in the run, else in ``kept``)."""

    run: Run | None
    fresh_process: bool
    unit_timeout_s: float
    on_unit: OnUnit | None = None
    zygote: Zygote | None = None  # forks the fresh processes (else a new interpreter each)
    warmed: set = field(default_factory=set)  # queues warmed up in this process
    kept: dict = field(default_factory=dict)  # unit key -> (info, rows), without a run

    def measure(self, unit: OpenUnit) -> bool:
        """Measure ``unit`` and store it; never asks for it again (see the module)."""
        if self.fresh_process:  # each unit warms up in its own process
            scratch = self.run.open_units_dir if self.run is not None else None
            outcome = measure_fresh(unit.spec, self.unit_timeout_s, scratch, self.zygote,
                                    what=unit.label())
        else:  # in one process a warm-up per queue is enough
            spec = unit.spec if unit.queue not in self.warmed else replace(unit.spec,
                                                                           warmup_s=0.0)
            try:
                outcome = measure_here(spec)
            except Exception as exc:
                raise SweepError(f"{unit.label()}: {type(exc).__name__}: {exc}") from exc
            self.warmed.add(unit.queue)
        info = {"key": unit.key, "label": unit.label(), "frame": unit.frame, "rho": unit.rho,
                "policy": unit.policy, "spec": asdict(unit.spec),
                "fresh_process": self.fresh_process, "pid": outcome["pid"],
                "quiet": outcome["quiet"], "run": outcome["run"],
                "levels": outcome["levels"]}
        if self.run is not None:
            self.run.save_open_unit(unit.key, outcome["rows"], info)
        else:
            self.kept[unit.key] = (info, outcome["rows"])
        if self.on_unit is not None:
            self.on_unit(unit, info)
        return False


def run_open_sweep(units: Sequence[OpenUnit], run: Run | None = None, *,
                   fresh_process: bool = True, progress: bool = True,
                   on_unit: OnUnit | None = None,
                   unit_timeout_s: float = UNIT_TIMEOUT_S) -> OpenSweepResult:
    """Measure every unit not yet in ``run`` (``run_units``); every unit's info and rows.

    ``on_unit(unit, info)`` is called after each unit measured now (not for
    those found done): ``info["run"]`` holds the run's own columns,
    ``info["levels"]`` its levels. Raises ``SweepError`` naming the unit in
    one line when one fails (units done so far are kept), and ``ValueError``
    when two units share a key.
    """
    units = list(units)
    keys = [u.key for u in units]
    if len(set(keys)) != len(keys):
        twice = sorted({k for k in keys if keys.count(k) > 1})
        raise ValueError(f"open-loop units planned twice: {', '.join(twice)}")
    measurer = _OpenMeasurer(run, fresh_process, unit_timeout_s, on_unit)
    done = run.done_open_units() if run is not None else set()
    measured = run_units(units, done, measurer, fresh_process=fresh_process,
                         progress=progress, remeasure_tries=0, desc="load")
    stored = [run.open_unit(u.key) if run is not None else measurer.kept[u.key]
              for u in units]
    return OpenSweepResult(units, [info for info, _ in stored], [rows for _, rows in stored],
                           measured, len(units) - measured)
