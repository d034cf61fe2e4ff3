"""One load run's tidy rows, from its ``RunResult``: what a sweep unit of the open-loop
studies returns (``pqlab.harness.openunit``) and ``pqlab.study.loadframes`` builds on.

``waits_frame``: waits per priority (notebook 07's ``load``); ``overload_frame``: a
bounded run's long levels rows (notebook 08's ``overload``); ``wait_spectrum``: the
percentiles of its waits; ``depth_frame``: its queue depth over time;
``level_depth_frame``: its depth per level over time.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from pqlab.core.task import Priority
from pqlab.measure import levels
from pqlab.measure.records import first_gets


def waits_frame(result) -> pd.DataFrame:
    """Tidy per-priority waits of one load ``RunResult``: one row per priority.

    Columns: rho, rho_measured, priority, tasks, theory_wait_mean_ms,
    replay_wait_mean_ms, wait_mean_rel_diff and, for each measure
    (queue_wait, queue_wait_uncorrected, sojourn, sojourn_uncorrected) and
    stat, ``{measure}_{stat}_ms``.
    """
    extra = result.extra
    run_columns = {"queue": result.queue, "seed": result.seed, "workers": result.consumers,
                   "rate_target_per_s": extra["rate_target_per_s"], "rho": extra["rho"],
                   "rho_measured": extra["rho_measured"]}
    return levels.frame([(run_columns, result.levels)])


def overload_frame(result, policy: str) -> pd.DataFrame:
    """One bounded load ``RunResult`` as rows of notebook 08's long frame: one per priority,
    the run's own columns on each (``RunResult.run_columns``) with ``policy`` the sweep's
    name of its policy and ``policy_label`` the run's own label."""
    row = result.run_columns()
    row["policy_label"], row["policy"] = row["policy"], policy
    return levels.frame([(row, result.levels)])


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


def level_depth_frame(result) -> pd.DataFrame:
    """Depth per level over one bounded load run, tidy: t_s (since the schedule's start),
    priority, depth. Sampled from the queue where it has ``depths()``, else from stamps
    (the run's ``level_depth_source``)."""
    series = result.records[-1].series
    if "level_depth_at_ns" not in series:
        raise ValueError("level_depth_frame needs a bounded load run (LoadParams.duration_s)")
    base_ns = int(series["intended_ns"][0] - series["arrival_offset_ns"][0])
    t_s = (series["level_depth_at_ns"] - base_ns) / 1e9
    frame = pd.concat([pd.DataFrame({"t_s": t_s, "priority": level.name,
                                     "depth": series[levels.key("level_depth", level)]})
                       for level in Priority], ignore_index=True)
    frame["priority"] = pd.Categorical(frame["priority"], [p.name for p in Priority],
                                       ordered=True)
    return frame
