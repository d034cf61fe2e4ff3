"""Tidy frames of load runs for notebooks (07) and the ADR.

One run's rows (``waits_frame``, ``overload_frame``, ``wait_spectrum``,
``depth_frame``, ``level_depth_frame``) are built in ``pqlab.measure.loadrows``,
where a sweep unit's process builds them too; the studies' sweeps run their
points as units (``pqlab.study.opensweep``). ``sweep_utilization`` runs
``load`` at each target ρ here, in this process, and returns the waits of
all runs (``waits_frame``: one row per priority and run); ``theory_frame``
gives Cobham's lines for the same grid; ``wait_spectrum`` the percentiles of
one run's waits; ``depth_frame`` its queue depth over time; ``crossing_rho``
where a priority's p99 wait reaches a target.

Past saturation (notebook 08, the ADR's "Past saturation"): ``sweep_overload``
runs bounded points here with and without queue policies (one row per run and
priority, ``pqlab.measure.levels``), ``outcomes_frame`` and ``goodput_frame``
select from it,
``level_depth_frame`` gives one run's depth per level over time, and
``policy_for_wait`` sizes a policy from a wait target by Little's law.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from pqlab.core.task import Priority
from pqlab.harness.runner import run
from pqlab.measure import levels
from pqlab.measure.loadrows import (  # noqa: F401 - the frames' builders, named here too
    depth_frame,
    level_depth_frame,
    overload_frame,
    wait_spectrum,
    waits_frame,
)
from pqlab.measure.overload import OUTCOMES
from pqlab.queues.policy import LevelPolicy, QueuePolicy, TimeoutAction
from pqlab.scenarios.loadparams import LoadParams, ServiceTime


def sweep_utilization(queue: str, rhos: Sequence[float], *, workers: int = 4,
                      service: ServiceTime | None = None, duration_s: float = 10.0,
                      arrivals: str = "poisson",
                      weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0),
                      producers: int = 1, seed: int = 0, progress=None,
                      driver: str = "auto") -> pd.DataFrame:
    """Run ``load`` at each target utilization and return the tidy waits of all runs.

    The rate of each run is ρ·C/E[S]; each lasts ``duration_s`` of arrivals
    (plus draining). Seeds are ``seed + i`` for the i-th ρ. ``progress`` is
    an optional callable given each finished ``RunResult`` (e.g. to print);
    ``driver`` is ``LoadParams.driver``.
    """
    service = service or ServiceTime("exp", 0.016)
    frames = []
    for i, rho in enumerate(rhos):
        params = LoadParams.at_utilization(rho, workers, service, arrivals, weights, driver)
        result = run(queue, "load", tasks=params.tasks_for(duration_s), producers=producers,
                     consumers=workers, seed=seed + i, params=params)
        if progress is not None:
            progress(result)
        frames.append(waits_frame(result))
    return pd.concat(frames, ignore_index=True)


def theory_frame(rhos: Sequence[float], *, workers: int = 4,
                 service_mean_s: float = 0.016,
                 weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0)) -> pd.DataFrame:
    """Cobham's mean wait per priority at each ρ (ms): the theory lines for a sweep."""
    rows = []
    for rho in rhos:
        params = LoadParams.at_utilization(rho, workers, ServiceTime("exp", service_mean_s),
                                           "poisson", weights)
        for level, wait_s in zip(Priority, params.theory_waits_s(workers), strict=True):
            rows.append({"rho": rho, "priority": level.name, "theory_wait_mean_ms": wait_s * 1e3})
    return pd.DataFrame(rows)


def crossing_rho(frame: pd.DataFrame, *, priority: str = "CRITICAL",
                 column: str = "queue_wait_p99_ms", target_ms: float = 50.0) -> float:
    """The ρ at which ``column`` of ``priority`` first reaches ``target_ms`` in a sweep frame.

    Values are the median over runs at each ρ; between two swept points the
    crossing is interpolated linearly. NaN if the target is never reached;
    the first swept ρ if it is reached there already.
    """
    curve = frame[frame["priority"] == priority].groupby("rho", observed=True)[column].median()
    rhos, values = curve.index.to_numpy(float), curve.to_numpy(float)
    above = np.flatnonzero(values >= target_ms)
    if len(above) == 0:
        return math.nan
    i = above[0]
    if i == 0:
        return float(rhos[0])
    share = (target_ms - values[i - 1]) / (values[i] - values[i - 1])
    return float(rhos[i - 1] + share * (rhos[i] - rhos[i - 1]))


def sweep_overload(queue: str, rhos: Sequence[float], *,
                   policies: dict[str, QueuePolicy | None], workers: int = 4,
                   service: ServiceTime | None = None, patience: ServiceTime | None = None,
                   duration_s: float = 6.0, seed: int = 0, repetitions: int = 1,
                   weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0), producers: int = 1,
                   progress=None, driver: str = "auto") -> pd.DataFrame:
    """Bounded ``load`` runs at each ρ under each named policy, as one long levels frame:
    one row per run and priority (``levels.frame``), the run's summary columns on each.

    Each run lasts ``duration_s`` (``LoadParams.duration_s``); repetition r of
    the i-th ρ uses seed ``seed + 1000 r + i``, the same for every policy, so
    the policies see the same arrivals. ``policy`` is the name in ``policies``
    (``policy_label`` the run's own label); ``progress`` is given each
    ``RunResult``. Raises ``ValueError`` as ``LoadParams`` and ``run`` do.
    """
    service = service or ServiceTime("exp", 0.02)
    parts = []
    for repetition in range(repetitions):
        for i, rho in enumerate(rhos):
            for name, policy in policies.items():
                params = LoadParams.at_utilization(rho, workers, service, "poisson", weights,
                                                   driver, policy=policy, patience=patience,
                                                   duration_s=duration_s)
                result = run(queue, "load", tasks=params.tasks_for(duration_s),
                             producers=producers, consumers=workers,
                             seed=seed + 1000 * repetition + i, repetition=repetition,
                             params=params)
                if progress is not None:
                    progress(result)
                parts.append(overload_frame(result, name))
    return pd.concat(parts, ignore_index=True)


RUN_KEYS = ("queue", "policy", "rho", "repetition")


def _per_priority(summary: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    """Of ``sweep_overload``'s long frame: ``RUN_KEYS``, priority and ``columns`` (out: in)."""
    summary = levels.long(summary)  # a version-1 frame has one row per run
    frame = summary[[*RUN_KEYS, "priority"]].copy()
    for key in RUN_KEYS:  # plain values, as the runs' own rows give them
        if isinstance(frame[key].dtype, pd.CategoricalDtype):
            frame[key] = frame[key].astype(object)
    for out, col in columns.items():
        frame[out] = summary[col].to_numpy()
    return frame.reset_index(drop=True)


def outcomes_frame(summary: pd.DataFrame) -> pd.DataFrame:
    """Long outcome shares of ``sweep_overload``'s frame: queue, policy, rho, repetition,
    priority, outcome, share, replay_share (shares of the offered requests)."""
    parts = []
    for outcome in OUTCOMES:
        part = _per_priority(summary, {"share": "share_" + outcome,
                                       "replay_share": "replay_share_" + outcome})
        part.insert(5, "outcome", outcome)
        parts.append(part)
    frame = pd.concat(parts, ignore_index=True)
    frame["outcome"] = pd.Categorical(frame["outcome"], list(OUTCOMES), ordered=True)
    return frame


def goodput_frame(summary: pd.DataFrame) -> pd.DataFrame:
    """Goodput and waits of the served per priority of ``sweep_overload``'s frame: queue,
    policy, rho, repetition, priority, goodput_per_s, replay_goodput_per_s,
    served_wait_p50_ms, served_wait_p99_ms."""
    names = ("goodput_per_s", "replay_goodput_per_s", "served_wait_p50_ms",
             "served_wait_p99_ms")
    return _per_priority(summary, {name: name for name in names})


def policy_for_wait(target_wait_s: float, rates_per_s: Sequence[float], service_mean_s: float,
                    workers: int, timeout_s: float = 0.0,
                    action: TimeoutAction | str = TimeoutAction.REJECT) -> QueuePolicy:
    """A policy whose per-level limits keep a queued request's wait near ``target_wait_s``.

    Little's law, L = λW, per level: a level-k request waits behind the
    requests queued at its own level, which drain at the service rate the
    higher levels leave over, C/E[S] − Σ_{i<k} λ_i (they go first, and their
    arrivals keep coming). So at most (C/E[S] − Σ_{i<k} λ_i) · W of them can be
    served within W: that is the level's ``max_queue_size`` (at least 1, since
    0 would mean unbounded; a level the higher ones already saturate gets 1).
    ``rates_per_s`` are the arrival rates of CRITICAL, HIGH, ... in order;
    every level gets ``timeout_s`` (0: none) and ``action``. Raises
    ``ValueError`` on a non-positive target, service mean or worker count.
    """
    if not (target_wait_s > 0 and service_mean_s > 0 and workers > 0):
        raise ValueError(f"target_wait_s, service_mean_s and workers must be positive, got "
                         f"{target_wait_s!r}, {service_mean_s!r}, {workers!r}")
    capacity = workers / service_mean_s
    levels, above = {}, 0.0
    for level, rate in zip(Priority, rates_per_s, strict=False):
        left = capacity - above
        levels[int(level)] = LevelPolicy(max(1, math.floor(left * target_wait_s)), timeout_s,
                                         False, action)
        above += rate
    return QueuePolicy(LevelPolicy(0, timeout_s, False, action), levels)
