"""The load scenario's derived numbers: the summary row's scalars, theory and replay.

``load_extra`` turns one run's ``Records`` (with the series ``pqlab.scenarios.load``
adds: intended arrivals, service ends, planned service times) into the
run's load scalars and its results per priority (``pqlab.measure.levels``):
waits and sojourns per priority measured from the
intended arrival and from the actual put, the rates, ρ, how late producers
put and how far service sleeps overshot, and beside the measured means
Cobham's (``pqlab.measure.theory``) and the replay's (the same arrivals through an
ideal queue). ``overload_extra`` adds, for a bounded run, the outcomes per
priority beside the replay's under the same policy (``pqlab.measure.overload``).
Both return ``(scalars, levels)``: the run's own columns and a ``levels.Levels``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from pqlab.core.task import PRIORITY_LEVELS, Priority
from pqlab.measure import levels as per_level
from pqlab.measure import overload, theory
from pqlab.measure.metrics import duration_stats
from pqlab.measure.records import Records, first_gets
from pqlab.scenarios.loadparams import LoadParams, policy_label, theory_applies


def _stats_ms(ns: np.ndarray) -> dict[str, float]:
    return duration_stats(ns, 1e6)


def _rate(stamps_ns: np.ndarray) -> float:
    if len(stamps_ns) < 2:
        return math.nan
    span = (stamps_ns.max() - stamps_ns.min()) / 1e9
    return float((len(stamps_ns) - 1) / span) if span > 0 else math.nan


def load_extra(rec: Records, params: LoadParams,
               workers: int) -> tuple[dict[str, Any], per_level.Levels]:
    """The load scalars of the run and its levels, all derived from ``rec``.

    Per priority (the levels' metrics): ``tasks``, ``queue_wait_{stat}_ms``
    (intended arrival → start of service) and ``sojourn_{stat}_ms`` (intended
    arrival → done) for stat in mean, p50, p90, p99, p99_9, max, each also
    ``…_uncorrected_…`` (from the actual put instead); ``theory_wait_mean_ms``
    (Cobham at the realized arrival rate and measured mean service time),
    ``wait_mean_rel_diff`` ((measured − theory)/theory) and ``replay_wait_mean_ms``
    (the same arrivals and service times through an ideal queue: sampling noise alone).
    Run-wide: rates, ρ (target and measured), service mean (target and
    measured) and how late the producers put tasks.
    """
    idx, _, started = first_gets(rec)
    intended = rec.series["intended_ns"]
    done = rec.series["service_end_ns"][idx]
    served = done > 0
    idx, started, done = idx[served], started[served], done[served]
    prio = rec.priority[idx]
    arrived = rec.put_start[idx]
    service_s = (done - started) / 1e9
    offered_rate = _rate(intended)
    service_mean_s = float(service_s.mean()) if len(service_s) else math.nan
    extra: dict[str, Any] = {
        "load_arrivals": params.arrivals, "load_service": str(params.service),
        "load_weights": ",".join(f"{w:g}" for w in params.weights),
        "rate_target_per_s": params.rate_per_s, "rate_offered_per_s": offered_rate,
        "rate_achieved_per_s": _rate(rec.put_start[rec.put_end > 0]),
        "service_mean_target_ms": params.service.mean_s * 1e3,
        "service_mean_ms": service_mean_s * 1e3,
        "rho": params.utilization(workers),
        "rho_measured": float(offered_rate * service_mean_s / workers),
    }
    late = _stats_ms(rec.put_start[rec.put_end > 0] - intended[rec.put_end > 0])
    extra.update({f"producer_late_{k}_ms": late[k] for k in ("mean", "p50", "p99", "max")})
    if "service_planned_ns" in rec.series:
        over = _stats_ms(done - started - rec.series["service_planned_ns"][idx])
        extra.update({f"service_over_{k}_ms": over[k] for k in ("mean", "p50", "p99", "max")})
    measured = {
        "queue_wait": started - intended[idx], "queue_wait_uncorrected": started - arrived,
        "sojourn": done - intended[idx], "sojourn_uncorrected": done - arrived,
    }
    theory_s = _theory_s(rec, params, workers, offered_rate, service_mean_s)
    replay_s = _replay_s(intended[idx], service_s, prio, workers)
    levels = per_level.empty()
    for k, level in enumerate(Priority):
        mine, out = prio == level, levels[level.name]
        out["tasks"] = int(np.count_nonzero(rec.priority == level))
        for name, ns in measured.items():
            for stat, value in _stats_ms(ns[mine]).items():
                out[name + "_" + stat + "_ms"] = value
        mean_ms = out["queue_wait_mean_ms"]
        out["theory_wait_mean_ms"] = theory_s[k] * 1e3
        out["wait_mean_rel_diff"] = (mean_ms / (theory_s[k] * 1e3) - 1
                                     if theory_s[k] > 0 else math.nan)
        out["replay_wait_mean_ms"] = (float(replay_s[mine].mean()) * 1e3
                                      if mine.any() else math.nan)
    return extra, levels


def _theory_s(rec: Records, params: LoadParams, workers: int, offered_rate: float,
              service_mean_s: float) -> list[float]:
    """Cobham at the realized class rates and the measured mean service time."""
    if not theory_applies(params) or not (offered_rate > 0 and service_mean_s > 0):
        return [math.nan] * len(PRIORITY_LEVELS)
    shares = np.array([np.count_nonzero(rec.priority == p) for p in Priority]) / rec.tasks
    return theory.priority_waits(list(offered_rate * shares), service_mean_s, workers)


def _replay_s(intended_ns: np.ndarray, service_s: np.ndarray, prio: np.ndarray,
              workers: int) -> np.ndarray:
    order = np.argsort(intended_ns, kind="stable")
    waits = np.empty(len(order))
    if len(order):
        waits[order] = theory.simulate_waits((intended_ns[order] - intended_ns.min()) / 1e9,
                                             service_s[order], prio[order], workers)
    return waits


def overload_extra(rec: Records, params: LoadParams,
                   workers: int) -> tuple[dict[str, Any], per_level.Levels]:
    """The outcome scalars of a bounded run and its levels, measured and replayed.

    Per priority (the levels' metrics): ``offered`` and the count of each outcome
    (``served``, ``rejected``, ``expired``, ``cancelled``, ``queued``: they add up
    to ``offered``, which the pass checked), ``share_{outcome}`` (of offered),
    ``goodput_per_s`` (served within the deadline, per second of the run: the
    level's timeout under the policy, else the request's patience, else none),
    ``served_wait_p50_ms`` and ``served_wait_p99_ms`` (intended arrival → start of
    service); the replay's ``replay_share_{outcome}``, ``replay_goodput_per_s``,
    ``replay_served_wait_p99_ms``, and ``replay_wait_mean_ms`` now over the
    replay's served requests. Run-wide: ``policy`` (a label), ``duration_s``,
    ``patience``, ``patience_mean_s``.
    """
    codes, prio = rec.series["outcome"], rec.priority
    waits_s = np.full(rec.tasks, math.nan)
    idx, _, started = first_gets(rec)
    waits_s[idx] = (started - rec.series["intended_ns"][idx]) / 1e9
    waits_s[codes != overload.SERVED] = math.nan
    patience_s = rec.series["patience_s"]
    deadline_s = overload.deadlines_s(prio, params.policy,
                                      patience_s if params.patience else None)
    replay_codes, replay_waits_s = _replay_outcomes(rec, params, workers, idx, started)
    extra: dict[str, Any] = {
        "policy": policy_label(params), "duration_s": params.duration_s,
        "patience": str(params.patience) if params.patience else "none",
        "patience_mean_s": params.patience.mean_s if params.patience else math.nan}
    levels = per_level.empty()
    for name, (c, w) in {"": (codes, waits_s), "replay_": (replay_codes, replay_waits_s)}.items():
        for level, counts in overload.outcome_counts(c, prio, PRIORITY_LEVELS).items():
            out = levels[Priority(level).name]
            offered = counts["offered"]
            if not name:
                out.update(counts)
            for outcome in overload.OUTCOMES:
                out[name + "share_" + outcome] = (counts[outcome] / offered if offered
                                                  else math.nan)
            good = overload.goodput_count(c, w, deadline_s, prio == level)
            out[name + "goodput_per_s"] = good / params.duration_s
            served_ms = w[(prio == level) & (c == overload.SERVED)] * 1e3
            stats = _percentiles(served_ms)
            out[name + "served_wait_p50_ms"] = stats[0]
            out[name + "served_wait_p99_ms"] = stats[1]
            if name:
                out["replay_wait_mean_ms"] = (float(served_ms.mean()) if len(served_ms)
                                              else math.nan)
    return extra, levels


def _percentiles(ms: np.ndarray) -> tuple[float, float]:
    if not len(ms):
        return math.nan, math.nan
    p50, p99 = np.percentile(ms, [50, 99])
    return float(p50), float(p99)


def _replay_outcomes(rec: Records, params: LoadParams, workers: int, idx: np.ndarray,
                     started: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same arrivals, service times and patience through the ideal queue with the policy.

    Service times are the measured ones where a task was served, else the drawn ones.
    """
    arrival_s = rec.series["arrival_offset_ns"] / 1e9
    service_s = rec.series["service_planned_ns"] / 1e9
    served = rec.series["service_end_ns"][idx] > 0
    service_s[idx[served]] = (rec.series["service_end_ns"][idx[served]] - started[served]) / 1e9
    order = np.argsort(arrival_s, kind="stable")
    codes, waits = overload.simulate_outcomes(
        arrival_s[order], service_s[order], rec.priority[order], workers, policy=params.policy,
        patience_s=rec.series["patience_s"][order] if params.patience else None,
        end_s=params.duration_s)
    out_codes, out_waits = np.empty_like(codes), np.empty_like(waits)
    out_codes[order], out_waits[order] = codes, waits
    return out_codes, out_waits
