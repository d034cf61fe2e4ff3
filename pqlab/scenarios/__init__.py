"""Scenarios: the ways pqlab drives a queue, and the registry of them (``SCENARIOS``).

Importing this package registers every scenario, in the order
``catalog.BUILTIN_SCENARIOS`` declares: the closed-loop four of the POC
(``closed``), ``mixed`` and ``mixed-reverse`` (``mixed``), ``processes``
(``processes``) and the open-loop ``load`` (``load``, with its processes
driver in ``loadprocesses`` and its derived numbers in ``loadstats``). The
shared machinery is the private engine, ``_engine``; its public names for
code outside this package are re-exported here.
"""

from pqlab.scenarios._engine import (
    DEFAULT_DEADLINE_S,
    EMPTY_ERRORS,
    SCENARIOS,
    PassState,
    Scenario,
    Workers,
    aconsume,
    consume,
    guard,
    register_scenario,
    untimed_of,
)
from pqlab.scenarios.catalog import BUILTIN_SCENARIOS, SCENARIO_ORDER
from pqlab.scenarios.closed import single_async_pass

__all__ = [
    "BUILTIN_SCENARIOS", "DEFAULT_DEADLINE_S", "EMPTY_ERRORS", "SCENARIOS", "SCENARIO_ORDER",
    "PassState", "Scenario", "Workers", "aconsume", "consume", "guard", "register_scenario",
    "single_async_pass", "untimed_of",
]
