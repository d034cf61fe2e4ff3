"""What the closed-loop studies share (notebooks 01-04, 06): their parameters, sweep, idle burn.

A closed-loop study measures a grid of queues × task counts × worker counts ×
repetitions in its scenarios through the one sweep machinery
(``pqlab.study.sweep.run_sweep``: fresh processes, resume, progress) into the
run's summary. The decision rule reads these units.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import pandas as pd

from pqlab.harness import idleburn
from pqlab.studies.base import typed
from pqlab.study import config, store
from pqlab.study.sweep import Grid, SweepResult, run_sweep


@dataclass(frozen=True)
class Params:
    """A closed-loop notebook's parameters (its upper-case names, checked)."""

    queues: list[str]
    task_counts: list[int]
    repetitions: int
    seed: int
    worker_counts: list[int] = field(default_factory=lambda: list(config.SWEEP_WORKER_COUNTS))
    scenarios: list[str] = field(default_factory=list)
    thread_queues: list[str] = field(default_factory=list)
    fresh_process: bool = True
    progress: bool = True

    @classmethod
    def of(cls, p: SimpleNamespace) -> Params:
        return typed(cls, p)


def sweep(p: Params, run: store.Run, scenarios: list[str],
          queues: list[str] | None = None) -> SweepResult:
    """Sweep the grid into ``run``; ``queues`` replaces ``p.queues`` (a notebook that sweeps
    two sets of queues)."""
    grid = Grid(queues=tuple(p.queues if queues is None else queues),
                scenarios=tuple(scenarios), task_counts=tuple(p.task_counts),
                worker_counts=tuple(p.worker_counts), repetitions=p.repetitions, seed=p.seed)
    return run_sweep(grid, run, fresh_process=p.fresh_process, progress=p.progress)


def idle_burn(p: Params, run: store.Run, scenarios: list[str]) -> pd.DataFrame:
    """Idle burn (``pqlab.harness.idleburn``) of ``p.queues`` in ``scenarios``, stored in ``run``.

    Rows the run already holds are not measured again (a resumed batch), so
    each new (queue, scenario) pair costs about ``idleburn.DEFAULT_SECONDS``.
    Returns the run's rows for those queues and scenarios.
    """
    def shown(queue: str, scenario: str, cores: float) -> None:
        if p.progress:
            print(f"{queue} in {scenario}: {cores:.3f} cores while idle")

    have, consumers = run.idle(), idleburn.DEFAULT_CONSUMERS
    done = set() if have.empty else set(zip(have["queue"], have["scenario"],
                                            have["consumers"], strict=True))
    for scenario in scenarios:
        todo = [q for q in p.queues if (q, scenario, consumers) not in done]
        run.save_idle(idleburn.idle_frame(todo, [scenario], progress=shown))
    idle = run.idle()
    if idle.empty:
        return idle
    mine = (idle["queue"].isin(p.queues) & idle["scenario"].isin(scenarios)
            & (idle["consumers"] == consumers))
    return idle[mine].reset_index(drop=True).round({"idle_cores": 3})
