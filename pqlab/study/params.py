"""Validation of notebook parameters (and of sweep grids): one clear message per bad value.

A notebook's parameters cell holds plain ``NAME = literal`` lines; the next
cell calls ``validate(NAME=NAME, ...)``, which checks each value by its name,
expands ``"all"`` from the registries and returns them as attributes. Any
problem raises ``ParameterError`` naming the parameter, the bad value and
what is allowed, so the notebook stops right there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any

from pqlab.core import checks
from pqlab.harness.runner import supported_pairs
from pqlab.queues import QUEUES
from pqlab.scenarios import SCENARIOS
from pqlab.scenarios.loadparams import policy_queues
from pqlab.study.store import RUN_ID_PATTERN


class ParameterError(ValueError):
    """A notebook parameter with a bad value; the message names it."""


def positive_int(name: str, value: Any) -> int:
    return checks.positive_int(name, value, ParameterError)


def non_negative_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ParameterError(f"{name} must be an integer >= 0, got {value!r}")
    return value


def positive_ints(name: str, value: Any) -> list[int]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value:
        raise ParameterError(f"{name} must be a non-empty list of positive integers, "
                             f"got {value!r}")
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int) or item <= 0:
            raise ParameterError(f"{name} must hold positive integers only, got {item!r} "
                                 f"in {value!r}")
    return sorted(set(value))


def boolean(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ParameterError(f"{name} must be True or False, got {value!r}")
    return value


def text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ParameterError(f"{name} must be a string, got {value!r}")
    return value


def positive_number(name: str, value: Any) -> float:
    return checks.positive_number(name, value, ParameterError)


def non_negative_number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1e12:
        raise ParameterError(f"{name} must be a number >= 0, got {value!r}")
    return float(value)


def utilization(name: str, value: Any) -> float:
    """A utilization ρ strictly between 0 and 1 (the queue has a steady state)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ParameterError(f"{name} must be a utilization between 0 and 1 (exclusive), "
                             f"got {value!r}")
    return float(value)


def _number_list(name: str, value: Any, each: Callable[[str, Any], float],
                 what: str) -> list[float]:
    """A number or a non-empty list of them, each checked by ``each``: sorted, no repeats."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value:
        raise ParameterError(f"{name} must be a non-empty list of {what}, got {value!r}")
    return sorted({each(name, v) for v in value})


def utilizations(name: str, value: Any) -> list[float]:
    return _number_list(name, value, utilization, "utilizations in (0, 1)")


def queue_name(name: str, value: Any) -> str:
    """One registered queue name."""
    value = text(name, value)
    if value not in QUEUES:
        raise ParameterError(f"{name}: unknown queue {value!r}; allowed: {', '.join(QUEUES)}")
    return value


def run_id(name: str, value: Any) -> str:
    """A run id, or "" (a new run for measuring notebooks, the latest for reading ones)."""
    value = text(name, value)
    if value and not RUN_ID_PATTERN.match(value):
        raise ParameterError(f"{name} must be a run id (letters, digits, '.', '_', '-') or "
                             f"\"\", got {value!r}")
    return value


def run_ids(name: str, value: Any) -> list[str]:
    if not isinstance(value, (list, tuple)):
        raise ParameterError(f"{name} must be a list of run ids ([] = every run), got {value!r}")
    return [run_id(name, v) for v in value]


def _names(name: str, value: Any, known: Sequence[str], kind: str) -> list[str]:
    if value == "all":
        return list(known)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value:
        raise ParameterError(f'{name} must be "all" or a non-empty list of {kind} names, '
                             f"got {value!r}")
    unknown = [v for v in value if v not in known]
    if unknown:
        raise ParameterError(f"{name}: unknown {kind} {', '.join(map(repr, unknown))}; "
                             f"allowed: {', '.join(known)}")
    return list(dict.fromkeys(value))


def in_process_queues() -> list[str]:
    """Registered queues that live in the measuring process (not behind a server or manager).

    What ``"all"`` means, as in the POC report: a process-backed queue costs a
    round trip per operation and may need a server, so it is measured where
    processes are the point (scenario ``processes``) or when named explicitly.
    """
    return [name for name, spec in QUEUES.items() if not spec.process_safe]


def queue_names(name: str, value: Any) -> list[str]:
    """``"all"`` (the in-process queues) or a list of registered queue names."""
    if value == "all":
        return in_process_queues()
    return _names(name, value, list(QUEUES), "queue")


def scenario_names(name: str, value: Any) -> list[str]:
    return _names(name, value, list(SCENARIOS), "scenario")


def thread_queues(name: str, value: Any) -> list[str]:
    """Queues that can run scenario ``threads``, for comparison: a list (``[]``: none),
    or ``"all"``: the in-process ones that can."""
    able = [q for q, _ in supported_pairs(list(QUEUES), ["threads"])]
    if value == "all":
        return [q for q in in_process_queues() if q in able]
    if not isinstance(value, (list, tuple)):
        raise ParameterError(f'{name} must be "all" or a list of queue names ([] for none), '
                             f"got {value!r}")
    if not value:
        return []
    names = _names(name, value, list(QUEUES), "queue")
    unfit = [q for q in names if q not in able]
    if unfit:
        raise ParameterError(f"{name}: {', '.join(map(repr, unfit))} cannot run scenario "
                             f"threads; queues that can: {', '.join(able)}")
    return names


def loads(name: str, value: Any) -> list[float]:
    """Offered loads ρ past saturation too: a non-empty list of numbers in (0, 3]."""
    if not isinstance(value, (list, tuple)) or not value:
        raise ParameterError(f"{name} must be a non-empty list of loads ρ in (0, 3], got {value!r}")
    for item in value:
        if isinstance(item, bool) or not isinstance(item, (int, float)) or not 0 < item <= 3:
            raise ParameterError(f"{name} must hold loads ρ in (0, 3] only, got {item!r} "
                                 f"in {value!r}")
    return sorted({float(v) for v in value})


def timeout_action(name: str, value: Any) -> str:
    """A queue policy's action on expiry: "REJECT" or "DELAY" (Triton's)."""
    if value not in ("REJECT", "DELAY"):
        raise ParameterError(f'{name} must be "REJECT" or "DELAY", got {value!r}')
    return value


def policy_queue(name: str, value: Any) -> str:
    """A queue that takes a queue policy (``policy=``)."""
    able = policy_queues()
    if value not in able:
        raise ParameterError(f"{name}: {value!r} takes no queue policy; queues that do: "
                             f"{', '.join(able)}")
    return value


def positive_numbers(name: str, value: Any) -> list[float]:
    """A non-empty list of positive numbers (rates per second), sorted, without repeats."""
    return _number_list(name, value, positive_number, "positive numbers")


def overloads(name: str, value: Any) -> list[float]:
    """Loads ρ past saturation: a list (``[]``: none) of numbers in (1, 3]."""
    if not isinstance(value, (list, tuple)):
        raise ParameterError(f"{name} must be a list of loads ρ in (1, 3] ([] for none), "
                             f"got {value!r}")
    for item in value:
        if isinstance(item, bool) or not isinstance(item, (int, float)) or not 1 < item <= 3:
            raise ParameterError(f"{name} must hold loads ρ in (1, 3] only, got {item!r} "
                                 f"in {value!r}")
    return sorted({float(v) for v in value})


E2E_MODES = ("async", "threads", "threads-gil", "processes")  # pqlab.study.endtoend.MODES


def worker_modes(name: str, value: Any) -> list[str]:
    """Worker modes of the end-to-end study: a non-empty list of ``E2E_MODES``."""
    return _names(name, value, list(E2E_MODES), "worker mode")


def replica_counts(name: str, value: Any) -> list[int]:
    """``min_replicas`` settings of the failover drill: a non-empty list of 0, 1, 2 (the
    deployment has two replicas)."""
    if not isinstance(value, (list, tuple)) or not value or any(
            isinstance(v, bool) or v not in (0, 1, 2) for v in value):
        raise ParameterError(f"{name} must be a non-empty list of 0, 1 or 2 (replicas that "
                             f"must confirm a write), got {value!r}")
    return sorted(set(value))


def queue_or_empty(name: str, value: Any) -> str:
    """A queue name, or "" for "the first registered queue that fits"."""
    value = text(name, value)
    if value and value not in QUEUES:
        raise ParameterError(f"{name}: unknown queue {value!r}; allowed: \"\" or "
                             f"{', '.join(QUEUES)}")
    return value


CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "RUN_ID": run_id,
    "RUN_IDS": run_ids,
    "OUTPUT_DIR": text,
    "QUEUES": queue_names,
    "THREAD_QUEUES": thread_queues,
    "SCENARIOS": scenario_names,
    "BASELINE_QUEUE": queue_or_empty,
    "TASK_COUNTS": positive_ints,
    "WORKER_COUNTS": positive_ints,
    "REPETITIONS": positive_int,
    "REFERENCE_TASKS": positive_int,
    "REFERENCE_WORKERS": positive_int,
    "SEED": non_negative_int,
    "QUEUE": queue_name,
    "RHOS": utilizations,
    "SPECTRUM_RHO": utilization,
    "WORKERS": positive_int,
    "SERVICE_MS": positive_number,
    "DURATION_S": positive_number,
    "TARGET_MS": positive_number,
    "AGING_MS": non_negative_number,
    "FRESH_PROCESS": boolean,
    "PROGRESS": boolean,
    "ALLOW_BUSY": boolean,
    "POLICY_QUEUE": policy_queue,
    "LOADS": loads,
    "DEPTH_RHO": positive_number,
    "PATIENCE_S": positive_number,
    "WAIT_TARGET_MS": positive_number,
    "TIMEOUT_MS": non_negative_number,
    "ACTION": timeout_action,
    "OVERLOAD_LOADS": loads,  # notebook 06's section 5, as LOADS and DURATION_S
    "OVERLOAD_DURATION_S": positive_number,
    # notebook 09, the end-to-end study (pqlab.study.endtoend)
    "MODES": worker_modes,
    "RATES": positive_numbers,
    "PAST_RHOS": overloads,
    "MAX_RHO": utilization,
    "MIN_RESPONSES": positive_int,
    "POINT_CAP_S": positive_number,
    "BASELINE_S": positive_number,
    "CEILING_RATES": positive_numbers,
    "CEILING_STEP_S": positive_number,
    "FAILOVER_RUNS": non_negative_int,  # notebook 06's failover drills per setting (0: none)
    "FAILOVER_PAUSED": boolean,  # also the scenario with the replicas paused before the kill
    "FAILOVER_MIN_REPLICAS": replica_counts,  # the drill's settings, e.g. [0, 1]
}


def check(name: str, value: Any) -> Any:
    """Check one parameter by its name; ``ParameterError`` for an unknown name."""
    if name not in CHECKS:
        raise ParameterError(f"unknown parameter {name}; known: {', '.join(CHECKS)}")
    return CHECKS[name](name, value)


def validate(*, for_scenarios: Sequence[str] | None = None, **values: Any) -> SimpleNamespace:
    """Check every ``NAME=value``; return the checked values as attributes.

    ``QUEUES`` of ``"all"`` becomes the in-process queues (``in_process_queues``),
    ``SCENARIOS`` of ``"all"`` every registered scenario. With
    ``for_scenarios``, ``QUEUES`` keeps only queues that can run one of them
    (``"all"``) or must all be able to (an explicit list).
    """
    checked = {name: check(name, value) for name, value in values.items()}
    if "SPECTRUM_RHO" in checked and "RHOS" in checked \
            and checked["SPECTRUM_RHO"] not in checked["RHOS"]:
        raise ParameterError(f"SPECTRUM_RHO must be one of RHOS {checked['RHOS']}, "
                             f"got {values['SPECTRUM_RHO']!r}")
    if "DEPTH_RHO" in checked and "LOADS" in checked \
            and checked["DEPTH_RHO"] not in checked["LOADS"]:
        raise ParameterError(f"DEPTH_RHO must be one of LOADS {checked['LOADS']}, "
                             f"got {values['DEPTH_RHO']!r}")
    scenarios = checked.get("SCENARIOS", for_scenarios)
    if "QUEUE" in checked and scenarios \
            and not supported_pairs([checked["QUEUE"]], list(scenarios)):
        able = [q for q, _ in supported_pairs(list(QUEUES), list(scenarios))]
        raise ParameterError(f"QUEUE: {checked['QUEUE']!r} cannot run scenario "
                             f"{', '.join(scenarios)}; queues that can: "
                             f"{', '.join(dict.fromkeys(able)) or 'none'}")
    if "QUEUES" in checked and scenarios:
        fitting = {q for q, _ in supported_pairs(list(QUEUES), list(scenarios))}
        if values["QUEUES"] == "all":
            checked["QUEUES"] = [q for q in checked["QUEUES"] if q in fitting]
        unfit = [q for q in checked["QUEUES"] if q not in fitting]
        if unfit:
            able = [q for q in QUEUES if q in fitting]
            raise ParameterError(
                f"QUEUES: {', '.join(map(repr, unfit))} cannot run scenario "
                f"{', '.join(scenarios)}; queues that can: {', '.join(able) or 'none'}")
        if not checked["QUEUES"]:
            raise ParameterError(f"QUEUES: no registered queue can run {', '.join(scenarios)}")
    return SimpleNamespace(**checked)
