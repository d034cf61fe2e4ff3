"""Waiting time under open-loop load (notebook 07's ``load`` frames): the appendix's section
and the record's claims, every number read from the frames.

Each percentile is printed with the count behind it (``tasks`` of its
priority) and "one run": a load frame keeps one run per ρ and its
percentiles, not the waits, so no interval can be drawn. Class means are
judged against Cobham's formula only where the check means something (ρ ≤
``THEORY_MAX_RHO``, theory's mean at least ``THEORY_MIN_MS``); every other
cell is flagged with the reason, and the replay (the same arrivals through
an ideal queue) says whether the sample alone would miss there too.
"""

from __future__ import annotations

import math

import pandas as pd

from pqlab.study.loadframes import crossing_rho

# The seed's only latency target: "<50ms queue overhead". A bound on the queue's overhead,
# read here, as the strictest reading, as a bound on CRITICAL's p99 wait.
TARGET_SOURCE = ("the seed's \"<50ms queue overhead\" target, a bound on the queue's "
                 "overhead, applied here to CRITICAL's p99 wait (the strictest reading)")

LOAD_TARGET_MS = 50.0  # the service's target for CRITICAL's queueing wait (p99)
LOAD_RATES = (10.0, 100.0)  # the service's request rate today (req/s)
LOAD_GROWTH_RATE = 1_000.0  # and the growth it must allow
THEORY_TOLERANCE = 0.15  # measured means within 15% of Cobham at ρ ≤ 0.8
THEORY_MAX_RHO = 0.8
# Below this mean wait a worker's wake-up (a fraction of a ms) is most of the
# measured wait and a relative difference says nothing about the queue.
THEORY_MIN_MS = 1.0


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _fmt_ms(x: float) -> str:
    return "n/a" if pd.isna(x) else f"{x:.2f}" if abs(x) >= 0.1 else f"{x:.4f}"


def _fmt_diff(x: float) -> str:
    return "n/a" if pd.isna(x) else f"{x:+.1%}"


def aging_finding(frame: pd.DataFrame, aging: pd.DataFrame) -> list[str]:
    """One line on the aging runs: CRITICAL's mean wait and LOW's p99, strict against aging."""
    if frame.empty or aging.empty:
        return []
    keys = ["rho", "priority", "tasks"]
    cols = ["queue_wait_mean_ms", "queue_wait_p99_ms"]
    both = frame[keys + cols].merge(aging[keys + cols], on=keys, suffixes=("_strict", "_aging"))
    both["priority"] = both["priority"].astype(str)
    parts = []
    for rho, part in both.groupby("rho", sort=True):
        by = part.set_index("priority")
        if not {"CRITICAL", "LOW"} <= set(by.index):
            continue
        crit, low = by.loc["CRITICAL"], by.loc["LOW"]
        parts.append(f"at ρ = {rho:g} CRITICAL's mean wait goes from "
                     f"{crit['queue_wait_mean_ms_strict']:.2f} to "
                     f"{crit['queue_wait_mean_ms_aging']:.2f} ms, its p99 from "
                     f"{crit['queue_wait_p99_ms_strict']:.2f} to "
                     f"{crit['queue_wait_p99_ms_aging']:.2f} ms (n={int(crit['tasks']):,}), "
                     f"and LOW's p99 from {low['queue_wait_p99_ms_strict']:.2f} to "
                     f"{low['queue_wait_p99_ms_aging']:.2f} ms (n={int(low['tasks']):,})")
    if not parts:
        return []
    return [f"- Aging (`load-aging.parquet`: a level gained per "
            f"{float(aging['aging_ms'].iloc[0]):g} ms waited, same arrivals, one run per ρ): "
            + "; ".join(parts) + "."]


def _sampling_and_chain(frame: pd.DataFrame, judged: pd.DataFrame, worst: float) -> list[str]:
    """Sampling alone (replay vs theory) and what the chain adds (measured − replay).

    The replay is the same arrivals and service times through an ideal queue:
    its distance from theory is what the sample's size alone gives, so when
    the measured means miss, this line says whether the sample or the chain did.
    """
    if "replay_wait_mean_ms" not in frame:
        return []
    sampling = (judged["replay_wait_mean_ms"] / judged["theory_wait_mean_ms"] - 1).abs().dropna()
    low = frame[frame["rho"] <= THEORY_MAX_RHO]
    chain = (low["queue_wait_mean_ms"] - low["replay_wait_mean_ms"]).dropna()
    if sampling.empty or chain.empty:
        return []
    noisy = float(sampling.max())
    if worst <= THEORY_TOLERANCE:
        lead = "Sampling alone"
    elif noisy > THEORY_TOLERANCE:
        lead = ("That is the sample's size, not the measuring chain (more tasks per ρ, a "
                "larger `DURATION_S`, narrow it)")
    else:
        lead = ("The sample alone stays within the tolerance, so the difference is the "
                "measuring chain's (see the producers' lateness in notebook 07)")
    return [f"- {lead}: the same arrivals and service times through an ideal queue "
            f"(`replay_wait_mean_ms`) differ from theory by up to {noisy:.1%} at those class "
            f"means, while the measured means differ from that replay by "
            f"{float(chain.min()):+.3f} to {float(chain.max()):+.3f} ms at every ρ ≤ "
            f"{THEORY_MAX_RHO:g} (a worker's wake-up and the producers' lateness)."]


def replay_diff(row: pd.Series) -> float:
    """The replay's relative difference from theory in one cell (NaN without a replay)."""
    replay, theory = row.get("replay_wait_mean_ms", math.nan), row["theory_wait_mean_ms"]
    return replay / theory - 1 if theory > 0 and replay == replay else math.nan


def _flag(row: pd.Series) -> str:
    """Why a cell is not judged against theory ("" when it is)."""
    if row["theory_wait_mean_ms"] < THEORY_MIN_MS:
        return " *"
    if row["rho"] > THEORY_MAX_RHO:
        return f" † replay {_fmt_diff(replay_diff(row))}"
    return ""


def critical_p99(frame: pd.DataFrame) -> pd.Series:
    """CRITICAL's row at the largest measured ρ (its p99 wait and the ``tasks`` behind it)."""
    crit = frame[frame["priority"].astype(str) == "CRITICAL"]
    return crit.sort_values("rho").iloc[-1]


def load_findings(frame: pd.DataFrame, target_ms: float = LOAD_TARGET_MS,
                  aging: pd.DataFrame | None = None) -> list[str]:
    """The ADR's open-loop paragraph, every number read from the run's ``load`` frame.

    A table of measured mean wait against Cobham's (at each run's measured ρ)
    per priority, the ρ where CRITICAL's p99 reaches ``target_ms`` and what it
    means for the service's request rates. Empty when the run has no load data.
    """
    if frame.empty:
        return []
    frame = frame.copy()
    frame["priority"] = frame["priority"].astype(str)
    priorities = list(dict.fromkeys(frame["priority"]))
    first = frame.iloc[0]
    workers, service_ms = int(first["workers"]), float(first["service_ms"])
    lines = [
        "## Waiting time under open-loop load",
        "",
        f"Open-loop runs (`load.parquet`, notebook 07): `{first['queue']}`, {workers} workers, "
        f"exponential service of {service_ms:g} ms, Poisson arrivals, waits measured from "
        "each task's intended arrival; one run per ρ. Mean wait per priority in ms, measured "
        "against Cobham's formula at the run's measured ρ (relative difference in brackets; "
        f"* not judged: theory's mean below {THEORY_MIN_MS:g} ms, where a worker's wake-up is "
        f"most of the wait; † not judged: ρ above {THEORY_MAX_RHO:g}, with the replay's own "
        "difference from theory, the same arrivals through an ideal queue, after it):",
        "",
        _row(["ρ target", "ρ measured", *priorities]),
        _row(["---"] * (2 + len(priorities))),
    ]
    for rho, part in frame.groupby("rho", sort=True):
        by = part.set_index("priority")
        cells = [f"{_fmt_ms(by.loc[p, 'queue_wait_mean_ms'])} vs "
                 f"{_fmt_ms(by.loc[p, 'theory_wait_mean_ms'])} "
                 f"({_fmt_diff(by.loc[p, 'wait_mean_rel_diff'])}){_flag(by.loc[p])}"
                 for p in priorities]
        lines.append(_row([f"{rho:g}", f"{part['rho_measured'].iloc[0]:.3f}", *cells]))
    lines.append("")
    judged = frame[(frame["rho"] <= THEORY_MAX_RHO)
                   & (frame["theory_wait_mean_ms"] >= THEORY_MIN_MS)]
    checked = judged["wait_mean_rel_diff"].abs().dropna()
    if not checked.empty:
        worst = float(checked.max())
        verdict = ("within" if worst <= THEORY_TOLERANCE else "outside")
        lines.append(f"- At ρ ≤ {THEORY_MAX_RHO:g}, where the theory's mean wait is at least "
                     f"{THEORY_MIN_MS:g} ms (below it a worker's wake-up is most of the wait), "
                     f"the largest difference from theory is "
                     f"{worst:.1%} over {len(checked)} class means, {verdict} the "
                     f"{THEORY_TOLERANCE:.0%} the measuring chain is held to.")
        lines.extend(_sampling_and_chain(frame, judged, worst))
    crossing = crossing_rho(frame, target_ms=target_ms)
    top = float(frame["rho"].max())
    capacity = workers / (service_ms / 1e3)  # tasks per second at ρ = 1
    low, high = (r / capacity for r in LOAD_RATES)
    limit = crossing if crossing == crossing else top
    if crossing == crossing and crossing <= float(frame["rho"].min()):
        lines.append(f"- CRITICAL's p99 wait is at or above {target_ms:g} ms already at the "
                     f"lowest measured ρ = {crossing:g} (about {crossing * capacity:,.0f} "
                     "requests a second with these workers).")
    elif crossing == crossing:
        lines.append(f"- CRITICAL's p99 wait reaches {target_ms:g} ms at ρ ≈ {crossing:.2f} "
                     f"(interpolated between measured ρ values), i.e. about "
                     f"{crossing * capacity:,.0f} requests a second with these workers.")
    else:
        top_row = critical_p99(frame)
        lines.append(f"- CRITICAL's p99 wait stays below {target_ms:g} ms up to the largest "
                     f"measured ρ = {top:g} (as run {top_row['rho_measured']:.2f}, about "
                     f"{top_row['rho_measured'] * capacity:,.0f} requests a second with these "
                     f"workers): {_fmt_ms(top_row['queue_wait_p99_ms'])} ms there "
                     f"(n={int(top_row['tasks']):,}, one run); the crossing lies beyond the "
                     "measured range.")
    fits = "below" if high < limit else "not below"
    needed = math.ceil(LOAD_GROWTH_RATE * service_ms / 1e3 / limit)
    lines.append(f"- The service's {LOAD_RATES[0]:g}-{LOAD_RATES[1]:g} requests a second are "
                 f"ρ = {low:.2f}-{high:.2f} here, {fits} that point"
                 + (": CRITICAL meets its target with room to spare. " if high < limit
                    else ": CRITICAL misses its target at the top of the range. ")
                 + f"Growth to {LOAD_GROWTH_RATE:,.0f} requests a second at the same service "
                 f"time needs at least {needed} workers to stay at ρ ≤ {limit:.2f}.")
    lines += aging_finding(frame, aging if aging is not None else pd.DataFrame())
    lines.append("")
    return lines


def _outliers(frame: pd.DataFrame) -> list[str]:
    """The largest difference among the cells the check does not judge, and why it is not."""
    out = []
    low_theory = frame[frame["theory_wait_mean_ms"] < THEORY_MIN_MS]
    if not low_theory.empty:
        r = low_theory.loc[low_theory["wait_mean_rel_diff"].abs().idxmax()]
        out.append(f"{_fmt_diff(r['wait_mean_rel_diff'])} ({r['priority']}, ρ {r['rho']:g}) is "
                   f"theory's {_fmt_ms(r['theory_wait_mean_ms'])} ms against a measured "
                   f"{_fmt_ms(r['queue_wait_mean_ms'])} ms, a worker's wake-up")
    high = frame[(frame["rho"] > THEORY_MAX_RHO) & (frame["theory_wait_mean_ms"] >= THEORY_MIN_MS)]
    if not high.empty:
        r = high.loc[high["wait_mean_rel_diff"].abs().idxmax()]
        out.append(f"{_fmt_diff(r['wait_mean_rel_diff'])} ({r['priority']}, ρ {r['rho']:g}) "
                   f"is matched by the replay's {_fmt_diff(replay_diff(r))}: the sample is too "
                   "short for that mean")
    return out


def record_claims(frame: pd.DataFrame, aging: pd.DataFrame | None = None,
                  target_ms: float = LOAD_TARGET_MS) -> list[str]:
    """The record's claims from the load frames: CRITICAL's p99 against the target (n, one
    run, the target's source), what aging does to it, and the theory check's outliers."""
    if frame.empty:
        return ["- Waiting under open-loop load: not measured in this run (notebook 07)."]
    frame = frame.copy()
    frame["priority"] = frame["priority"].astype(str)
    top = critical_p99(frame)
    p99 = float(top["queue_wait_p99_ms"])
    verdict = "below" if p99 < target_ms else "at or above"
    lines = [f"- CRITICAL's p99 wait at the highest load measured (ρ {top['rho_measured']:.2f}, "
             f"`{top['queue']}`, {int(top['workers'])} workers): {_fmt_ms(p99)} ms "
             f"(n={int(top['tasks']):,}, one run), {verdict} {target_ms:g} ms: "
             f"{TARGET_SOURCE}."]
    if aging is not None and not aging.empty:
        crit = aging[aging["priority"].astype(str) == "CRITICAL"].sort_values("rho")
        over = crit[crit["queue_wait_p99_ms"] >= target_ms]
        said = ", ".join(f"{_fmt_ms(r['queue_wait_p99_ms'])} ms at ρ {r['rho']:g} "
                         f"(n={int(r['tasks']):,})" for _, r in crit.iterrows())
        lines.append(f"- Aging trades CRITICAL for LOW: with it CRITICAL's p99 is {said}, "
                     + ("past the target; do not age." if not over.empty
                        else "still below the target."))
    judged = frame[(frame["rho"] <= THEORY_MAX_RHO)
                   & (frame["theory_wait_mean_ms"] >= THEORY_MIN_MS)]
    checked = judged["wait_mean_rel_diff"].abs().dropna()
    if not checked.empty:
        worst = float(checked.max())
        noisy = (judged["replay_wait_mean_ms"] / judged["theory_wait_mean_ms"] - 1).abs().max() \
            if "replay_wait_mean_ms" in judged else math.nan
        why = (f"; the replay alone misses by up to {noisy:.1%}, so the sample's size, not "
               "the chain" if worst > THEORY_TOLERANCE and noisy > THEORY_TOLERANCE else "")
        outliers = _outliers(frame)
        lines.append(f"- The measuring chain agrees with queueing theory: class means within "
                     f"{worst:.1%} of Cobham's at ρ ≤ {THEORY_MAX_RHO:g} ({len(checked)} means, "
                     f"tolerance {THEORY_TOLERANCE:.0%}{why})"
                     + (". Not judged: " + "; ".join(outliers) if outliers else "") + ".")
    return lines
