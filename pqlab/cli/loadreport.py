"""Console lines for ``load`` runs: waits per priority beside Cobham's formula.

Formatting only: every number comes from the run's ``extra`` and, per priority,
its ``levels`` (see ``loadstats.load_extra``, ``pqlab.measure.levels``).
``load_options`` turns the ``run`` command's load arguments into ``LoadParams``
and a task count.
"""

from __future__ import annotations

import math

from pqlab.cli.errors import UsageError
from pqlab.measure.levels import LEVELS, Levels
from pqlab.measure.metrics import RunResult
from pqlab.measure.overload import OUTCOMES
from pqlab.measure.timers import SPIN_NS
from pqlab.scenarios.loadparams import LoadParams, ServiceTime

STAT_LABELS = {"mean": "mean", "p50": "p50", "p90": "p90", "p99": "p99", "p99_9": "p99.9",
               "max": "max"}


def load_options(args) -> tuple[LoadParams, int]:
    """``LoadParams`` and the task count from parsed ``run`` arguments.

    ``--rho`` sets the rate from the workers and the service mean. ``--duration``
    bounds the run (``LoadParams.duration_s``) and its task count, rate ×
    duration, wins over ``--tasks``. A policy or patience without a duration
    raises ``UsageError``.
    """
    service = args.service or ServiceTime()
    rate = args.rate if args.rho is None else args.rho * args.consumers / service.mean_s
    try:
        params = LoadParams(rate, args.arrivals, service,
                            tuple(args.weights) if args.weights else LoadParams().weights,
                            args.load_driver, args.policy, args.patience, args.duration)
    except ValueError as exc:
        raise UsageError(f"pqlab run: {exc}") from None
    tasks = params.tasks_for(args.duration) if args.duration else args.tasks
    return params, tasks


def _ms(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:.1f}" if abs(x) >= 100 else f"{x:.2f}"


def _pct(x: float) -> str:
    return "n/a" if x is None or math.isnan(x) else f"{x:+.1%}"


def _header(r: RunResult) -> list[str]:
    e = r.extra
    driver = r.records[-1].label if r.records else "?"
    return [
        f"load: {r.queue} on {driver}, {r.consumers} workers, {r.producers} "
        f"producer{'s' * (r.producers > 1)}, {r.tasks:,} tasks in {r.wall_s:.1f} s, seed {r.seed}",
        f"  arrivals {e['load_arrivals']} at {e['rate_target_per_s']:g}/s (offered "
        f"{e['rate_offered_per_s']:.1f}/s, achieved {e['rate_achieved_per_s']:.1f}/s), "
        f"mix {e['load_weights']}",
        f"  service {e['load_service']} (measured mean {e['service_mean_ms']:.2f} ms) · "
        f"ρ = {e['rho']:.3f} target, {e['rho_measured']:.3f} measured",
        _lateness("producers late (actual put − intended arrival)", e, "producer_late"),
    ] + ([_lateness("service overshoot (measured − drawn service time)", e, "service_over")]
         if "service_over_mean_ms" in e else []) + (
        [f"  sleeps: timer slack {e['timer_slack_ns']:,} ns, the last "
         f"{SPIN_NS / 1e3:.0f} µs before each deadline spun (pqlab.measure.timers)"]
        if e.get("timer_slack_ns") is not None else [])


def _lateness(title: str, e: dict, key: str) -> str:
    return (f"  {title}: mean {_ms(e[f'{key}_mean_ms'])} ms, p50 {_ms(e[f'{key}_p50_ms'])} ms, "
            f"p99 {_ms(e[f'{key}_p99_ms'])} ms, max {_ms(e[f'{key}_max_ms'])} ms")


def _wait_table(levels: Levels) -> list[str]:
    head = (f"  {'priority':<10}{'tasks':>7}" + "".join(f"{v:>7}" for v in STAT_LABELS.values())
            + f"{'theory':>8}{'diff':>7}{'replay':>7}{'uncorr':>8}{'p99':>7}")
    lines = ["  waiting time, arrival → start of service, ms (from the intended arrival;"
             " uncorr: from the put):", head]
    for n in LEVELS:
        v = levels[n]
        lines.append(
            f"  {n:<10}{v['tasks']:>7,}"
            + "".join(f"{_ms(v['queue_wait_' + s + '_ms']):>7}" for s in STAT_LABELS)
            + f"{_ms(v['theory_wait_mean_ms']):>8}{_pct(v['wait_mean_rel_diff']):>7}"
            f"{_ms(v['replay_wait_mean_ms']):>7}"
            f"{_ms(v['queue_wait_uncorrected_mean_ms']):>8}"
            f"{_ms(v['queue_wait_uncorrected_p99_ms']):>7}")
    return lines


def _sojourn_table(levels: Levels) -> list[str]:
    head = (f"  {'priority':<10}{'':>7}" + "".join(f"{v:>7}" for v in STAT_LABELS.values())
            + f"{'uncorr':>8}{'p99':>7}")
    lines = ["  sojourn time, arrival → done (ms, from the intended arrival):", head]
    for n in LEVELS:
        v = levels[n]
        lines.append(
            f"  {n:<10}{'':>7}"
            + "".join(f"{_ms(v['sojourn_' + s + '_ms']):>7}" for s in STAT_LABELS)
            + f"{_ms(v['sojourn_uncorrected_mean_ms']):>8}"
            f"{_ms(v['sojourn_uncorrected_p99_ms']):>7}")
    return lines


def _theory_note(levels: Levels) -> list[str]:
    diffs = [levels[n]["wait_mean_rel_diff"] for n in LEVELS]
    known = [abs(d) for d in diffs if not math.isnan(d)]
    if not known:
        return ["  theory: n/a (Cobham's formula needs Poisson arrivals, exponential service "
                "and ρ < 1)"]
    return [
        "  theory: Cobham's mean wait (M/M/C, non-preemptive priorities) at the offered rate",
        "  and the measured mean service time; diff = measured/theory − 1; replay: the same",
        "  arrivals and service times through an ideal queue (what the sample alone gives);",
        f"  largest |diff| {max(known):.1%}",
    ]


def _share(x: float) -> str:
    return "n/a" if x is None or math.isnan(x) else f"{x:.1%}"


def _pair(v: dict, key: str) -> str:
    return f"{_share(v[key])} / {_share(v['replay_' + key])}"


def outcome_lines(e: dict, levels: Levels) -> list[str]:
    """A bounded run's outcomes per priority, each measured beside the replay's."""
    head = (f"  {'priority':<10}{'offered':>8}" + "".join(f"{o:>16}" for o in OUTCOMES)
            + f"{'goodput/s':>14}{'wait p50':>10}{'p99 ms':>9}")
    lines = [f"  outcomes in {e['duration_s']:g} s, policy {e['policy']}, patience "
             f"{e['patience']} (measured / replay, shares of offered):", head]
    for n in LEVELS:
        v = levels[n]
        lines.append(
            f"  {n:<10}{v['offered']:>8,}"
            + "".join(f"{_pair(v, 'share_' + o):>16}" for o in OUTCOMES)
            + f"{v['goodput_per_s']:>7.1f} / {v['replay_goodput_per_s']:<4.1f}"
            f"{_ms(v['served_wait_p50_ms']):>10}{_ms(v['served_wait_p99_ms']):>9}")
    lines.append("  goodput: served within the deadline (the level's timeout, else the "
                 "client's patience), per second; waits of the served, from the intended arrival")
    return lines


def load_lines(r: RunResult) -> list[str]:
    """The block printed for one ``load`` run (with the outcomes of a bounded one)."""
    e = r.extra
    lines = _header(r) + _wait_table(r.levels) + _sojourn_table(r.levels) + _theory_note(r.levels)
    if "policy" in e:
        lines += outcome_lines(e, r.levels)
    if r.violations or r.lost or r.duplicated:
        lines.append(f"  ! {r.violations} priority violations, {r.lost} lost, "
                     f"{r.duplicated} duplicated")
    lines += [f"  ! {m}" for m in r.error_messages]
    return lines
