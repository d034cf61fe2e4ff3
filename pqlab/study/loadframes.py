"""Tidy frames of load runs for notebooks (07) and the ADR.

``sweep_utilization`` runs ``load`` at each target ρ and returns the waits of
all runs (``waits_frame``: one row per priority and run); ``theory_frame``
gives Cobham's lines for the same grid; ``wait_spectrum`` the percentiles of
one run's waits; ``depth_frame`` its queue depth over time; ``crossing_rho``
where a priority's p99 wait reaches a target.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from pqlab.core.task import Priority
from pqlab.harness.runner import run
from pqlab.measure.records import first_gets
from pqlab.scenarios.loadparams import LoadParams, ServiceTime


def waits_frame(result) -> pd.DataFrame:
    """Tidy per-priority waits of one load ``RunResult``: one row per priority.

    Columns: rho, rho_measured, priority, tasks, theory_wait_mean_ms,
    replay_wait_mean_ms, wait_mean_rel_diff and, for each measure
    (queue_wait, queue_wait_uncorrected, sojourn, sojourn_uncorrected) and
    stat, ``{measure}_{stat}_ms``.
    """
    extra = result.extra
    rows = []
    for level in Priority:
        suffix = f"_{level.name}"
        row = {"queue": result.queue, "seed": result.seed, "workers": result.consumers,
               "rate_target_per_s": extra["rate_target_per_s"], "rho": extra["rho"],
               "rho_measured": extra["rho_measured"], "priority": level.name}
        row.update({k[: -len(suffix)]: v for k, v in extra.items() if k.endswith(suffix)})
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame["priority"] = pd.Categorical(frame["priority"], [p.name for p in Priority],
                                       ordered=True)
    return frame


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


def wait_spectrum(result, percentiles: Sequence[float] = (50, 75, 90, 95, 99, 99.5, 99.9, 100),
                  measure: str = "queue_wait") -> pd.DataFrame:
    """Percentiles of one load run's waits per priority (ms), tidy: priority, percentile, ms.

    ``measure`` is ``queue_wait`` or ``sojourn``, measured from the intended
    arrival; add ``_uncorrected`` to measure from the actual put.
    """
    rec = result.records[-1]
    idx, _, started = first_gets(rec)
    end = {"queue_wait": started, "sojourn": rec.series["service_end_ns"][idx]}
    base = measure.removesuffix("_uncorrected")
    if base not in end:
        raise ValueError(f"measure {measure!r} unknown; allowed: queue_wait, sojourn, "
                         "queue_wait_uncorrected, sojourn_uncorrected")
    start = rec.put_start[idx] if measure.endswith("_uncorrected") else rec.series[
        "intended_ns"][idx]
    ms = (end[base] - start) / 1e6
    prio = rec.priority[idx]
    rows = [{"priority": level.name, "percentile": q,
             "ms": float(np.percentile(ms[prio == level], q))}
            for level in Priority if (prio == level).any() for q in percentiles]
    return pd.DataFrame(rows)


def depth_frame(result) -> pd.DataFrame:
    """Queue depth over one load run: seconds since the first intended arrival, depth."""
    rec = result.records[-1]
    start = rec.series["intended_ns"].min()
    return pd.DataFrame({"t_s": (rec.series["depth_at_ns"] - start) / 1e9,
                         "depth": rec.series["depth"]})


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
