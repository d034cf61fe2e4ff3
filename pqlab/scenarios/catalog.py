"""The scenarios pqlab runs, declared once and in order: ``BUILTIN_SCENARIOS``.

The tuple's order is the order the reports, the sweeps and the frames list
the scenarios: the POC's closed-loop four (``closed``), ``mixed`` and
``mixed-reverse`` (``mixed``), ``processes`` (``processes``), then the
open-loop ``load`` (``load``). Importing this module registers each, in that
order, in ``SCENARIOS`` (``pqlab.scenarios`` imports it); the modules that
define the scenarios register nothing themselves.
"""

from __future__ import annotations

from pqlab.scenarios import closed, load, mixed, processes
from pqlab.scenarios._engine import SCENARIOS, Scenario

BUILTIN_SCENARIOS: tuple[Scenario, ...] = (
    closed.SINGLE, closed.THREADS, closed.ASYNC, closed.ORDERING,
    mixed.MIXED, mixed.MIXED_REVERSE,
    processes.PROCESSES,
    load.LOAD,
)

SCENARIO_ORDER: tuple[str, ...] = tuple(s.name for s in BUILTIN_SCENARIOS)

SCENARIOS.update((s.name, s) for s in BUILTIN_SCENARIOS)
