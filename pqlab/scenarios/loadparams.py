"""The load scenario's parameters and workload: arrivals, service times, priority mix, driver.

``LoadParams`` is the ``Scenario.params_type`` of ``load``; ``make_load_workload``
its workload hook. Each task's payload is a ``Request``: when it should
arrive and how long serving it takes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple

import numpy as np

from pqlab.core.checks import priority_weights
from pqlab.core.task import PRIORITY_LEVELS, Task, make_workload
from pqlab.measure import theory
from pqlab.queues import QUEUES, QueueSpec
from pqlab.queues.policy import QueuePolicy, check_policy, is_active
from pqlab.queues.redisqueue import make_queue as make_redis_queue

ARRIVALS = ("poisson", "constant")
SERVICE_KINDS = ("exp", "const")
DRIVERS = ("auto", "threads", "async", "processes")  # auto: the first of the last three it can


@dataclass(frozen=True)
class ServiceTime:
    """A service-time distribution: ``exp`` (exponential) or ``const``, with its mean."""

    kind: str = "exp"
    mean_s: float = 0.02

    def __post_init__(self) -> None:
        if self.kind not in SERVICE_KINDS:
            raise ValueError(f"service distribution {self.kind!r} is unknown; allowed: "
                             f"{', '.join(SERVICE_KINDS)}")
        if not (self.mean_s > 0 and math.isfinite(self.mean_s)):
            raise ValueError(f"service mean must be a positive number of seconds, "
                             f"got {self.mean_s!r}")

    @classmethod
    def parse(cls, text: str) -> ServiceTime:
        """``exp:0.016``, ``exp:16ms`` or ``const:20ms`` (seconds unless ``ms``/``s`` follows).

        Raises ``ValueError`` naming the allowed forms.
        """
        kind, sep, mean = text.partition(":")
        scale = 1.0
        if mean.endswith("ms"):
            mean, scale = mean[:-2], 1e-3
        elif mean.endswith("s"):
            mean = mean[:-1]
        try:
            mean_s = float(mean) * scale
        except ValueError:
            mean_s = math.nan
        if not sep or kind not in SERVICE_KINDS or not 0 < mean_s < math.inf:
            raise ValueError(f"bad service time {text!r}; expected KIND:MEAN with KIND one of "
                             f"{', '.join(SERVICE_KINDS)} and MEAN > 0 in s or ms "
                             "(e.g. exp:0.016 or exp:16ms)")
        return cls(kind, mean_s)

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` service times in seconds."""
        if self.kind == "exp":
            return rng.exponential(self.mean_s, n)
        return np.full(n, self.mean_s)

    def __str__(self) -> str:
        return f"{self.kind}:{self.mean_s * 1e3:g}ms"

    def to_mapping(self) -> dict[str, Any]:
        """``kind`` and ``mean_s`` as plain values (exact, unlike ``str``'s ``:g``)."""
        return {"kind": self.kind, "mean_s": self.mean_s}


@dataclass(frozen=True)
class LoadParams:
    """Parameters of the open-loop ``load`` scenario (workers are ``run(consumers=…)``).

    ``weights`` are the relative frequencies of CRITICAL, HIGH, NORMAL, LOW.
    Past saturation (``pqlab.scenarios.loadbounded``): ``duration_s`` bounds the
    run (arrivals stop then, nothing starts service after it, what is left is
    ``queued``); ``policy`` is given to the queue (only queues that take
    ``policy=``: ``policy_queues()``); ``patience`` is the distribution of the
    time after which a client cancels its still-queued request. Policy and
    patience need ``duration_s``. Raises ``ValueError`` on a bad value, naming it.
    """

    rate_per_s: float = 100.0  # the service's range is 10-100 requests a second
    arrivals: str = "poisson"
    service: ServiceTime = field(default_factory=ServiceTime)
    weights: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0)
    driver: str = "auto"  # what runs producers and workers: see ``choose_driver``
    policy: QueuePolicy | None = None
    patience: ServiceTime | None = None
    duration_s: float | None = None

    def __post_init__(self) -> None:
        if self.driver not in DRIVERS:
            raise ValueError(f"load driver {self.driver!r} unknown; allowed: {', '.join(DRIVERS)}")
        if not (self.rate_per_s > 0 and math.isfinite(self.rate_per_s)):
            raise ValueError(f"rate must be a positive number of tasks per second, "
                             f"got {self.rate_per_s!r}")
        if self.arrivals not in ARRIVALS:
            raise ValueError(f"arrivals {self.arrivals!r} unknown; allowed: {', '.join(ARRIVALS)}")
        object.__setattr__(self, "weights", tuple(priority_weights(self.weights)))
        self._check_overload()

    def _check_overload(self) -> None:
        check_policy(self.policy, PRIORITY_LEVELS)
        if self.patience is not None and not isinstance(self.patience, ServiceTime):
            raise ValueError(f"patience must be a ServiceTime (e.g. exp:2s) or None, "
                             f"got {self.patience!r}")
        if self.duration_s is not None and (isinstance(self.duration_s, bool) or not isinstance(
                self.duration_s, (int, float)) or not 0 < self.duration_s < math.inf):
            raise ValueError(f"duration_s must be a positive number of seconds or None, "
                             f"got {self.duration_s!r}")
        if self.duration_s is None and (self.policy is not None or self.patience is not None):
            raise ValueError("a policy or patience needs duration_s: past saturation each "
                             "point is bounded (set duration_s, or --duration)")

    def to_mapping(self) -> dict[str, Any]:
        """Plain values (JSON) that ``from_mapping`` turns back into equal parameters: how a
        sweep unit's parameters reach the process that measures it."""
        return {"rate_per_s": self.rate_per_s, "arrivals": self.arrivals,
                "service": self.service.to_mapping(), "weights": list(self.weights),
                "driver": self.driver,
                "policy": self.policy.to_mapping() if self.policy is not None else None,
                "patience": self.patience.to_mapping() if self.patience is not None else None,
                "duration_s": self.duration_s}

    @classmethod
    def from_mapping(cls, data: Any) -> LoadParams:
        """The parameters ``to_mapping`` gave; ``ValueError`` names a bad or unknown field."""
        if not isinstance(data, dict):
            raise ValueError(f"load parameters must be a mapping, got {data!r}")
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"{unknown[0]} is not a load parameter: allowed are "
                             f"{', '.join(f.name for f in fields(cls))}")
        values = dict(data)
        for name in ("service", "patience"):
            if isinstance(values.get(name), dict):
                values[name] = ServiceTime(**values[name])
        if values.get("policy") is not None:
            values["policy"] = QueuePolicy.from_mapping(values["policy"])
        if "weights" in values:
            values["weights"] = tuple(values["weights"])
        return cls(**values)

    @property
    def bounded(self) -> bool:
        """Whether the run ends at ``duration_s`` (``pqlab.scenarios.loadbounded``)."""
        return self.duration_s is not None

    @classmethod
    def at_utilization(cls, rho: float, workers: int, service: ServiceTime | None = None,
                       arrivals: str = "poisson",
                       weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0),
                       driver: str = "auto", **overload) -> LoadParams:
        """The parameters whose target rate makes ρ = λ·E[S]/C equal ``rho``.

        ``overload`` takes ``policy``, ``patience`` and ``duration_s``.
        """
        service = service or ServiceTime()
        if not (rho > 0 and math.isfinite(rho)):
            raise ValueError(f"utilization must be a positive number, got {rho!r}")
        return cls(rho * workers / service.mean_s, arrivals, service, tuple(weights), driver,
                   **overload)

    def tasks_for(self, duration_s: float) -> int:
        """Task count for arrivals lasting ``duration_s`` seconds at the target rate."""
        if not (duration_s > 0 and math.isfinite(duration_s)):
            raise ValueError(f"duration must be a positive number of seconds, got {duration_s!r}")
        return max(1, round(self.rate_per_s * duration_s))

    def utilization(self, workers: int) -> float:
        """ρ = λ·E[S]/C at the target rate."""
        return self.rate_per_s * self.service.mean_s / workers

    def class_rates(self, rate_per_s: float | None = None) -> list[float]:
        """Arrival rate of each class, CRITICAL first."""
        rate = self.rate_per_s if rate_per_s is None else rate_per_s
        return [rate * w / sum(self.weights) for w in self.weights]

    def theory_waits_s(self, workers: int) -> list[float]:
        """Cobham's mean wait per class at the target rate; NaN where it does not apply."""
        if not theory_applies(self):
            return [math.nan] * len(self.weights)
        return theory.priority_waits(self.class_rates(), self.service.mean_s, workers)


def overload_warning(params: LoadParams, workers: int) -> str | None:
    """A one-line warning when ρ ≥ 1, else None: without limits the queue grows for the whole
    run; with a policy or patience it sheds requests instead. Either way the theory is off."""
    rho = params.utilization(workers)
    if rho < 1:
        return None
    what = ("requests will be shed (rejected, expired or cancelled)"
            if is_active(params.policy) or params.patience is not None
            else "the queue grows for the whole run")
    return (f"ρ = {params.rate_per_s:g}/s × {params.service.mean_s * 1e3:g} ms / {workers} "
            f"= {rho:.2f} ≥ 1: {what} and the theory does not apply")


class Request(NamedTuple):
    """The payload of a load task: when it should arrive, how long serving it takes, and
    after how long its client gives up (0: never)."""

    arrival_ns: int  # intended arrival, after the start of the schedule
    service_s: float
    patience_s: float = 0.0


# Workers read the service time by position: a queue that stores tasks as JSON
# (redis) hands the Request back as a list.
SERVICE_S = Request._fields.index("service_s")


def make_load_workload(n: int, seed: int | None, params: LoadParams) -> list[Task]:
    """``n`` tasks with the priority mix of ``params``, each carrying its ``Request``.

    Priorities come from ``make_workload`` (same seed, same mix); arrival times,
    service times and patience each from a seeded stream of their own, so
    changing one distribution leaves the others alone.
    """
    tasks = make_workload(n, seed, params.weights)
    arrivals_rng, service_rng, patience_rng = (np.random.default_rng([stream, seed or 0])
                                               for stream in (1, 2, 3))
    if params.arrivals == "poisson":
        offsets_s = np.cumsum(arrivals_rng.exponential(1.0 / params.rate_per_s, n))
    else:
        offsets_s = np.arange(n) / params.rate_per_s
    offsets_ns = np.round(offsets_s * 1e9).astype(np.int64)
    service_s = params.service.draw(service_rng, n)
    if params.patience is None:
        for task, offset, service in zip(tasks, offsets_ns.tolist(), service_s.tolist(),
                                         strict=True):
            task.payload = Request(offset, service)
        return tasks
    patience_s = params.patience.draw(patience_rng, n)
    for task, offset, service, patience in zip(tasks, offsets_ns.tolist(), service_s.tolist(),
                                               patience_s.tolist(), strict=True):
        task.payload = Request(offset, service, patience)
    return tasks


def theory_applies(params: LoadParams) -> bool:
    """Cobham's formula needs Poisson arrivals and exponential service."""
    return params.arrivals == "poisson" and params.service.kind == "exp"


DRIVER_NEEDS = {
    "processes": "a process-safe queue with a sync face",
    "threads": "a thread-safe queue with a sync face",
    "async": "an async-safe queue with an async face",
}


def drivers_for(spec: QueueSpec) -> list[str]:
    """The drivers ``spec`` can run ``load`` on, in the order ``auto`` prefers them."""
    able = {"processes": spec.process_safe and spec.has_sync_face,
            "threads": spec.thread_safe and spec.has_sync_face,
            "async": spec.async_safe and spec.has_async_face}
    return [driver for driver in DRIVER_NEEDS if able[driver]]


# Queues that take ``policy=`` and cancel by id across processes: their bounded runs go
# to the processes driver (``loadprocesses.bounded_processes_pass``), which claims and
# acknowledges (``claim``/``ack_each``) and reads the queue's shared ``counts()``.
PROCESS_POLICY_FACTORIES = (make_redis_queue,)


def policy_queues() -> list[str]:
    """The registered queues that take ``policy=`` and can ``cancel``: those a policy or
    patience can run on."""
    return [name for name, spec in QUEUES.items()
            if spec.takes_policy or spec.factory in PROCESS_POLICY_FACTORIES]


def bounded_drivers(spec: QueueSpec, params: LoadParams) -> list[str]:
    """The drivers a bounded run of ``spec`` can use, in ``auto``'s order.

    Processes only for a queue of ``PROCESS_POLICY_FACTORIES``; with a policy
    or patience such a queue runs only there (its policy lives in the server,
    not behind the in-process hooks the threads driver gives the queue).
    """
    able = drivers_for(spec)
    if spec.factory not in PROCESS_POLICY_FACTORIES:
        return [d for d in able if d != "processes"]
    if params.policy is not None or params.patience is not None:
        return [d for d in able if d == "processes"]
    return able


NO_POLICY_LABEL = "none"  # the label of a run without an active policy


def policy_label(params: LoadParams) -> str:
    """A short label of the run's policy: ``none``, ``limits+timeouts (REJECT)``, ..."""
    policy = params.policy
    if not is_active(policy):
        return NO_POLICY_LABEL
    rules = (policy.default, *policy.levels.values())
    parts = [name for name, on in (("limits", any(r.max_queue_size for r in rules)),
                                   ("timeouts", any(r.has_timeouts for r in rules))) if on]
    actions = sorted({r.timeout_action.value for r in rules if r.has_timeouts})
    return "+".join(parts) + (f" ({'/'.join(actions)})" if actions else "")


def choose_driver(spec: QueueSpec, driver: str = "auto",
                  params: LoadParams | None = None) -> str:
    """The driver ``load`` runs ``spec`` on: ``driver``, or for ``auto`` the first it can of
    processes, threads, async (threads, async when ``params`` has a policy or patience).

    Raises ``ValueError`` naming the queue, what the driver needs and the
    drivers the queue can run on, if it cannot run on ``driver``; and, for a
    policy or patience, if the queue takes no ``policy=`` (naming those that
    do, ``policy_queues``), and for a bounded run on a driver that
    ``bounded_drivers`` excludes (``processes`` bounds runs only of queues that
    cancel by id and count across processes: redis).
    """
    overload = params is not None and (params.policy is not None or params.patience is not None)
    if overload and spec.name not in policy_queues():
        able = ", ".join(policy_queues())
        raise ValueError(f"queue {spec.name!r} takes no queue policy and cannot cancel, which "
                         f"a policy or patience needs; queues that can: {able}")
    able = drivers_for(spec)
    if params is not None and params.bounded:
        bounded = bounded_drivers(spec, params)
        if (driver in able or driver == "processes") and driver not in bounded:
            allowed = ", ".join(["auto", *bounded]) if bounded else "none"
            raise ValueError(
                f"load driver {driver!r} cannot bound a run of queue {spec.name!r} (duration_s, "
                f"policy, patience): processes needs a queue that cancels by id and counts "
                f"across processes ({', '.join(_names(PROCESS_POLICY_FACTORIES))}), threads and "
                f"async a policy in-process; allowed for it: {allowed}")
        able = bounded
    if driver == "auto" and able:
        return able[0]
    if driver in able:
        return driver
    if driver not in DRIVERS:
        raise ValueError(f"load driver {driver!r} unknown; allowed: {', '.join(DRIVERS)}")
    need = DRIVER_NEEDS.get(driver, " or ".join(DRIVER_NEEDS.values()))
    allowed = f"allowed for it: {', '.join(['auto', *able])}" if able else "it fits none"
    raise ValueError(f"queue {spec.name!r} cannot run load on driver {driver!r}, which needs "
                     f"{need}; {allowed}")




def _names(factories: tuple) -> list[str]:
    return [name for name, spec in QUEUES.items() if spec.factory in factories]
