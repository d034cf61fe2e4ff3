"""The ADR's section "Past saturation", every number read from the run's overload frames.

Notebook 08 stores ``overload.parquet``: the long levels frame of the open-loop
runs past saturation (``pqlab.measure.levels``: one row per run and priority,
with the run's queue, policy label, ρ, repetition, and the level's counts and
shares of each outcome, goodput and the waits of the served, beside the
replay's through an ideal queue with the same policy). ``findings`` turns it
into the section: what each priority gets without limits, the policy the
notebook sized (limits per level from a wait target by Little's law,
timeouts, action) and its measured effect, and whether the measurement
agrees with the replay. Notebook 06 stores ``overload-redis``, the same rows
for the Redis queue with worker processes; ``multi_node`` writes its
paragraph (the multi-node path).
"""

from __future__ import annotations

import json
import math

import pandas as pd

from pqlab.core.task import Priority
from pqlab.measure import levels
from pqlab.scenarios.loadparams import NO_POLICY_LABEL as NO_POLICY

LEVELS = list(levels.LEVELS)
OUTCOMES = ("served", "rejected", "expired", "cancelled", "queued")
# The replay check of issue 12: a share of at least 5% within 15% of the replay's,
# a smaller one within one percentage point.
SHARE_FLOOR, SHARE_REL_TOL, SHARE_ABS_TOL = 0.05, 0.15, 0.01


def _row(cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _pct(x: float) -> str:
    return "-" if not math.isfinite(x) else f"{100 * x:.0f}%" if x >= 0.095 else f"{100 * x:.1f}%"


def _ms(x: float) -> str:
    if not math.isfinite(x):
        return "-"
    return f"{x / 1e3:.2f} s" if x >= 1000 else f"{x:.0f} ms" if x >= 10 else f"{x:.1f} ms"


def medians(summary: pd.DataFrame) -> pd.DataFrame:
    """Per (policy, ρ, priority): the median over repetitions of every numeric column;
    ``medians(s).loc[(policy, rho)]`` is indexed by priority (``.loc[level, metric]``)."""
    summary = levels.long(summary)
    numeric = summary.select_dtypes("number").columns.difference(["rho", "repetition"])
    return summary.groupby(["policy", "rho", "priority"], sort=True,
                           observed=True)[list(numeric)].median()


def replay_gaps(summary: pd.DataFrame) -> pd.DataFrame:
    """Each run's outcome shares beside the replay's: (policy, ρ, priority, outcome, share,
    replay_share, ok) with ``ok`` the issue's agreement rule."""
    rows = []
    for _, run in levels.long(summary).iterrows():  # run by run, level by level
        for outcome in OUTCOMES:
            share = float(run.get("share_" + outcome, math.nan))
            replay = float(run.get("replay_share_" + outcome, math.nan))
            if not (math.isfinite(share) and math.isfinite(replay)):
                continue
            ok = (abs(share - replay) <= SHARE_REL_TOL * replay if replay >= SHARE_FLOOR
                  else abs(share - replay) <= SHARE_ABS_TOL)
            rows.append({"policy": run["policy"], "rho": run["rho"],
                         "priority": str(run["priority"]), "outcome": outcome, "share": share,
                         "replay_share": replay, "ok": ok})
    return pd.DataFrame(rows)


def _policy_lines(spec_text: str) -> list[str]:
    """The policy's levels as a table, from its ``QueuePolicy.to_mapping`` JSON."""
    try:
        spec = json.loads(spec_text)
    except (TypeError, ValueError):
        return []
    default = spec.get("default", {})
    levels = {str(k): v for k, v in spec.get("levels", {}).items()}
    lines = [_row(["level", "max queued", "timeout", "action"]), _row(["---"] * 4)]
    for p in Priority:
        level = {**default, **levels.get(str(int(p)), levels.get(p.name, {}))}
        limit = int(level.get("max_queue_size", 0))
        timeout = float(level.get("default_timeout_s", 0.0))
        lines.append(_row([p.name, limit or "unbounded",
                           _ms(timeout * 1e3) if timeout else "none",
                           level.get("timeout_action", "REJECT")]))
    return lines


def runs_text(summary: pd.DataFrame) -> str:
    """How many runs stand behind each point: "one run per point" or "N runs ..., medians"."""
    n = summary["repetition"].nunique()
    return "one run per point" if n == 1 else f"{n} runs per point, medians shown"


def _p99(row: pd.Series, level: str) -> str:
    """A p99 wait of the served with the count behind it."""
    return f"{_ms(row.loc[level, 'served_wait_p99_ms'])} (n={int(row.loc[level, 'served']):,})"


def _recommendation(med: pd.DataFrame, chosen: str, top: float) -> str:
    """One sentence: the policy to adopt and what it measurably changes at the highest load."""
    a, b = med.loc[(NO_POLICY, top)], med.loc[(chosen, top)]
    first, last = LEVELS[0], LEVELS[-1]
    waiting = a.loc[last, "share_queued"] + a.loc[last, "share_cancelled"]
    return (f"**Recommended:** bound the request queue per priority with a policy of this "
            f"shape (limits sized from the wait target, a timeout, `REJECT`). At ρ = {top:g} "
            f"{first}'s p99 wait is {_p99(b, first)} with it, {_p99(a, first)} without, and "
            f"its goodput {b.loc[first, 'goodput_per_s']:.1f}/s against "
            f"{a.loc[first, 'goodput_per_s']:.1f}/s; of {last}'s requests "
            f"{_pct(b.loc[last, 'share_rejected'])} are refused at once (a 503 the client can "
            f"retry elsewhere) and {_pct(b.loc[last, 'share_expired'])} expire after waiting "
            f"their timeout, where without it {_pct(waiting)} waited until their client gave "
            f"up or the run ended.")


def target_misses(summary: pd.DataFrame) -> tuple[float, list[tuple[float, str, float, int]]]:
    """The policy's own wait target and every (ρ, level, p99 wait of the served, n) over it,
    at every measured ρ; (NaN, []) without a sized policy."""
    chosen = next((p for p in dict.fromkeys(summary["policy"]) if p != NO_POLICY), None)
    if chosen is None or "wait_target_ms" not in summary:
        return math.nan, []
    target = float(summary.loc[summary["policy"] == chosen, "wait_target_ms"].iloc[0])
    med = medians(summary)
    misses = []
    for rho in sorted(summary["rho"].unique()):
        if (chosen, rho) not in med.index:
            continue
        row = med.loc[(chosen, rho)]
        misses += [(float(rho), level, float(row.loc[level, "served_wait_p99_ms"]),
                    int(row.loc[level, "served"])) for level in LEVELS
                   if row.loc[level, "served_wait_p99_ms"] > target]
    return target, misses


def record_claims(summary: pd.DataFrame) -> list[str]:
    """The record's claims on the policy: its effect at the highest ρ and its own target
    judged at every measured ρ, each miss said."""
    if summary.empty or "policy" not in summary:
        return ["- Past saturation: not measured in this run (notebook 08)."]
    policies = list(dict.fromkeys(summary["policy"]))
    chosen = next((p for p in policies if p != NO_POLICY), None)
    if chosen is None or NO_POLICY not in policies:
        return []
    top = float(summary["rho"].max())
    rhos = ", ".join(f"{r:g}" for r in sorted(summary["rho"].unique()))
    effect = _recommendation(medians(summary), chosen, top).split(" At ρ", 1)[1]
    lines = [f"- The policy on `{summary['queue'].iloc[0]}`, {runs_text(summary)}: at ρ{effect}"]
    target, misses = target_misses(summary)
    if target == target:
        said = "; ".join(f"{level} {_ms(p99)} at ρ {rho:g} (n={n:,})"
                         for rho, level, p99, n in misses)
        lines.append(f"- Judged against its own target (a request admitted at its level's "
                     f"limit waits about {target:g} ms) at every measured ρ ({rhos}): "
                     + (f"the p99 wait of the served misses it for {said}: Little's law sizes "
                        "the limits for a typical wait, not the tail." if misses
                        else "no level's p99 wait of the served exceeds it."))
    return lines


def findings(summary: pd.DataFrame) -> list[str]:
    """The ADR's "Past saturation" section; empty when the run has no overload runs."""
    if summary.empty or "policy" not in summary:
        return []
    med = medians(summary)
    first = summary.iloc[0]
    policies = list(dict.fromkeys(summary["policy"]))
    chosen = next((p for p in policies if p != NO_POLICY), None)
    top = float(summary["rho"].max())
    lines = [
        "## Past saturation",
        "",
        f"Open-loop runs from below to past saturation (`overload.parquet`, notebook 08): "
        f"`{first['queue']}`, {int(first['consumers'])} workers, arrivals for "
        f"{float(first['duration_s']):g} s per point, clients that give up after "
        f"{float(first['patience_mean_s']):g} s on average (exponential) cancel their queued "
        f"request; {runs_text(summary)}.",
        "",
    ]
    if NO_POLICY in policies:
        base = med.loc[(NO_POLICY, top)]
        lines += [f"**Without limits**, at ρ = {top:g}:", "",
                  _row(["priority", "served", "still queued at the end", "cancelled by the client",
                        "p99 wait of the served (n)", "goodput (/s)"]),
                  _row(["---"] * 6)]
        for level in LEVELS:
            lines.append(_row([level, _pct(base.loc[level, "share_served"]),
                               _pct(base.loc[level, "share_queued"]),
                               _pct(base.loc[level, "share_cancelled"]),
                               _p99(base, level),
                               f"{base.loc[level, 'goodput_per_s']:.1f}"]))
        lines.append("")
    if chosen is not None:
        spec = summary.loc[summary["policy"] == chosen, "policy_spec"].iloc[0] \
            if "policy_spec" in summary else ""
        target = summary.loc[summary["policy"] == chosen, "wait_target_ms"].iloc[0] \
            if "wait_target_ms" in summary else math.nan
        sized = (f", limits sized by Little's law so that a request admitted at its level's limit "
                 f"waits about {float(target):g} ms" if math.isfinite(float(target)) else "")
        lines += [f"**The policy** (`{chosen}`){sized}:", "", *_policy_lines(spec), ""]
        if NO_POLICY in policies:
            lines += ["**Its measured effect** (no policy → the policy):", "",
                      _row(["ρ", "priority", "goodput (/s)", "p99 wait of the served (n)",
                            "rejected", "expired"]),
                      _row(["---"] * 6)]
            for rho in sorted(summary["rho"].unique()):
                if rho < 1 or (NO_POLICY, rho) not in med.index or (chosen, rho) not in med.index:
                    continue
                a, b = med.loc[(NO_POLICY, rho)], med.loc[(chosen, rho)]
                for level in LEVELS:
                    lines.append(_row([
                        f"{rho:g}", level,
                        f"{a.loc[level, 'goodput_per_s']:.1f} → "
                        f"{b.loc[level, 'goodput_per_s']:.1f}",
                        f"{_p99(a, level)} → {_p99(b, level)}",
                        _pct(b.loc[level, "share_rejected"]), _pct(b.loc[level, "share_expired"])]))
            lines.append("")
            lines += [_recommendation(med, chosen, top), ""]
    gaps = replay_gaps(summary)
    if not gaps.empty:
        bad = gaps[~gaps["ok"]]
        lines.append(
            f"- The measured outcome shares agree with the replay (the same arrivals, service "
            f"times and give-ups through an ideal queue with the same policy) in "
            f"{len(gaps) - len(bad)} of {len(gaps)} comparisons (a share of at least "
            f"{SHARE_FLOOR:.0%} within {SHARE_REL_TOL:.0%}, a smaller one within "
            f"{SHARE_ABS_TOL * 100:g} percentage point)"
            + ("." if bad.empty else "; the largest gap: "
               + ", ".join(f"{r.priority} {r.outcome} at ρ = {r.rho:g} ({r.policy}): "
                           f"{_pct(r.share)} vs {_pct(r.replay_share)}"
                           for r in bad.assign(gap=(bad["share"] - bad["replay_share"]).abs())
                           .nlargest(1, "gap").itertuples()) + "."))
    lines.append("")
    return lines


def _runs(n: int) -> str:
    return f"{n} run" if n == 1 else f"{n} runs"


def _gap(seconds: pd.Series) -> str:
    """A time without service over runs: the value of one run, else median and max."""
    if len(seconds) == 1:
        return f"{seconds.iloc[0]:.2f} s (1 run)"
    return f"median {seconds.median():.2f} s, max {seconds.max():.2f} s ({_runs(len(seconds))})"


def _failover_loss(wide: pd.DataFrame, scenario: str) -> str:
    """Lost puts of one scenario per ``min_replicas`` measured: "L of A (n runs)"."""
    part = wide[wide["scenario"] == scenario]
    said = []
    for m, rows in part.groupby("min_replicas", sort=True):
        said.append(f"{int(rows['lost'].sum()):,} of {int(rows['acknowledged'].sum()):,} "
                    f"acknowledged puts with `min_replicas={int(m)}` ({_runs(len(rows))})")
    return "; ".join(said)


def failover_findings(drills: pd.DataFrame) -> str:
    """What the multi-node deployment needs, from notebook 06's ``failover`` frame
    (``pqlab.scenarios.failover.drill_frame``); without it, which command measures it."""
    if drills.empty:
        return ("**Losing the primary** was not measured in this run (notebook 06 runs no "
                "failover drill in this profile): `python -m pqlab failover --runs 5` and "
                "`--paused-replica`, or the `full` profile, measure the time without service "
                "and the puts lost with and without replica acknowledgement.")
    wide = drills.pivot_table(index=["scenario", "min_replicas", "run"], columns="metric",
                              values="value", observed=True).reset_index()
    first = drills.iloc[0]
    text = (f"**Losing the primary** (`failover`, notebook 06): the deployment needs a primary, "
            f"{int(first['replicas'])} replicas and {int(first['sentinels'])} Sentinels (as "
            "measured here), clients that ask the Sentinels for the primary, and "
            "`min_replicas=1` on the puts and acks that must survive a failover: without it, a "
            "write the primary acknowledged and no replica received is lost with the primary. "
            "Its cost per call was not measured in this run (`python -m pqlab redis-bench` "
            f"measures it). In the drill, {int(first['producers'])} producer and "
            f"{int(first['consumers'])} consumer processes put {first['rate_per_s']:g} tasks/s "
            f"each for {first['duration_s']:g} s and the primary was SIGKILLed half-way.")
    for scenario in dict.fromkeys(drills["scenario"]):
        part = wide[wide["scenario"] == scenario]
        gaps = "; ".join(f"`min_replicas={int(m)}` {_gap(rows['no_service_s'])}"
                         for m, rows in part.groupby("min_replicas", sort=True))
        where = {"plain": "With the replicas running",
                 "paused replica": "With every replica stopped and cut off just before the "
                                   "kill"}.get(scenario, f"Scenario {scenario}")
        text += (f" {where}: time without service (the longest gap between claims) {gaps}; "
                 f"lost (acknowledged, never served) {_failover_loss(wide, scenario)}.")
    measured = set(wide["min_replicas"].astype(int))
    if not {0, 1} <= measured or "paused replica" not in set(drills["scenario"]):
        text += (" What this run did not measure (the other `min_replicas`, or the replicas "
                 "paused before the kill): `python -m pqlab failover --runs 5 --paused-replica "
                 "--min-replicas 0,1`, or notebook 06 in the `full` profile.")
    return text


def multi_node(summary: pd.DataFrame, drills: pd.DataFrame | None = None) -> list[str]:
    """The "Past saturation" paragraph on the multi-node path, from notebook 06's
    ``overload-redis`` frame (Redis, worker processes), then what the deployment needs from
    its ``failover`` frame (``failover_findings``); empty without either frame."""
    drills = pd.DataFrame() if drills is None else drills
    if summary.empty or "policy" not in summary:
        return [failover_findings(drills), ""] if not drills.empty else []
    med = medians(summary)
    policies = list(dict.fromkeys(summary["policy"]))
    chosen = next((p for p in policies if p != NO_POLICY), None)
    top = float(summary["rho"].max())
    first, last = LEVELS[0], LEVELS[-1]
    lines = [
        f"**Across processes** (`overload-redis`, notebook 06): the same kind of runs on "
        f"`{summary['queue'].iloc[0]}` with {int(summary['consumers'].iloc[0])} worker "
        f"processes that claim, serve and acknowledge, arrivals for "
        f"{float(summary['duration_s'].iloc[0]):g} s per point, {runs_text(summary)}; the "
        "policy is enforced by "
        "the queue's scripts in the server, for every process at once."]
    if chosen is not None and (chosen, top) in med.index:
        b = med.loc[(chosen, top)]
        lines[0] += (f" With it, at ρ = {top:g}: {first} served "
                     f"{_pct(b.loc[first, 'share_served'])} (p99 wait {_p99(b, first)}), {last} "
                     f"refused at once {_pct(b.loc[last, 'share_rejected'])} and expired "
                     f"{_pct(b.loc[last, 'share_expired'])}")
        if (NO_POLICY, top) in med.index:
            a = med.loc[(NO_POLICY, top)]
            lines[0] += (f"; without it {first}'s p99 wait was {_p99(a, first)} and "
                         f"{_pct(a.loc[last, 'share_queued'] + a.loc[last, 'share_cancelled'])} of "
                         f"{last} waited until the client gave up or the run ended")
        lines[0] += "."
    if "redelivered" in summary:
        times = int(levels.runs(summary)["redelivered"].fillna(0).sum())
        lines[0] += (f" Leases ran out and requests were redelivered {times} "
                     f"{'time' if times == 1 else 'times'} in these runs.")
    gaps = replay_gaps(summary)
    if not gaps.empty:
        lines[0] += (f" Outcome shares agree with the replay in {int(gaps['ok'].sum())} of "
                     f"{len(gaps)} comparisons (the rule above); the replay knows no round "
                     "trips, and each service here also waits for its claim and its "
                     "acknowledgement.")
    return [*lines, "", failover_findings(drills), ""]


def chosen_policy(summary: pd.DataFrame) -> tuple[str | None, str | None]:
    """The sized policy of an overload frame: (label, its ``QueuePolicy`` JSON), or Nones."""
    if summary.empty or "policy" not in summary:
        return None, None
    chosen = next((p for p in dict.fromkeys(summary["policy"]) if p != NO_POLICY), None)
    if chosen is None or "policy_spec" not in summary:
        return chosen, None
    return chosen, str(summary.loc[summary["policy"] == chosen, "policy_spec"].iloc[0])


def policy_summary(spec_text: str) -> str:
    """The policy in one phrase: limits per level, timeouts, action."""
    rows = [line.strip("| ").split(" | ") for line in _policy_lines(spec_text)[2:]]
    if not rows:
        return "a policy this run does not describe"
    limits = ", ".join(f"{level} {limit}" for level, limit, _, _ in rows)
    timeouts = sorted({timeout for _, _, timeout, _ in rows})
    actions = sorted({action for *_, action in rows})
    return (f"at most {limits} requests queued, timeout {' or '.join(timeouts)}, "
            f"action {'/'.join(actions)}")


def level_limits(spec_text: str | None) -> dict[str, int]:
    """``max_queue_size`` per level name of a policy's JSON (levels without a limit left out)."""
    rows = [line.strip("| ").split(" | ") for line in _policy_lines(spec_text or "")[2:]]
    return {level: int(limit) for level, limit, _, _ in rows if limit.isdigit()}
