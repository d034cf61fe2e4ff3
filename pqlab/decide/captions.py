"""The figures the record embeds, each with the one claim its caption makes.

A caption is computed from the run's frames, never typed in, and a figure is
embedded only when its file exists and its data holds the claim; the
record numbers them in order and its text cites them. Every other figure of
the run is listed in the appendix.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from pqlab.decide import endtoend, loadwait, saturation
from pqlab.decide.decision import Decision
from pqlab.measure import significance


@dataclass(frozen=True)
class Embedded:
    """A figure of the run (its file's stem) and the claim its caption makes."""

    stem: str
    section: str  # the record's evidence section it stands in
    claim: str


def e2e(frame: pd.DataFrame) -> Embedded | None:
    lines = endtoend.answer(frame)
    if frame.empty or not lines or "not measured" in lines[0]:
        return None
    first = lines[0].split("one run per point): ", 1)[-1].split("; CRITICAL's p99", 1)[0]
    first = first.split("; not judged", 1)[0]
    return Embedded("e2e-latency", "end to end",
                    f"In the reference service, the queue's effect on p99 per priority: "
                    f"{first} (n of each point above it, at the top of its panel).")


def gates(d: Decision) -> Embedded | None:
    if d.choice is None or d.table.empty:
        return None
    passing = d.table[(d.table["set_aside"] == "")
                      & (d.table["features"] == len(d.context.needs))]["queue"]
    return Embedded("decision-overview", "gates",
                    f"In the {d.context.name} context only "
                    + " and ".join(f"`{q}`" for q in passing)
                    + f" pass every gate with all {len(d.context.needs)} needed features; "
                    "speed is far inside its gate for every candidate.")


def load(frame: pd.DataFrame) -> Embedded | None:
    if frame.empty:
        return None
    top = loadwait.critical_p99(frame)
    p99 = float(top["queue_wait_p99_ms"])
    side = "below" if p99 < loadwait.LOAD_TARGET_MS else "above"
    return Embedded("load-p99-vs-rho", "load",
                    f"CRITICAL's p99 wait stays {side} {loadwait.LOAD_TARGET_MS:g} ms up to "
                    f"ρ {top['rho_measured']:.2f} ({p99:.1f} ms, n={int(top['tasks']):,}, "
                    "one run per ρ); the lower levels pay for it.")


def overload(summary: pd.DataFrame) -> Embedded | None:
    if summary.empty or "policy" not in summary:
        return None
    label, _ = saturation.chosen_policy(summary)
    if label is None:
        return None
    med = saturation.medians(summary)
    top = float(summary["rho"].max())
    if (label, top) not in med.index or (saturation.NO_POLICY, top) not in med.index:
        return None
    with_, without = med.loc[(label, top)], med.loc[(saturation.NO_POLICY, top)]
    first, last = saturation.LEVELS[0], saturation.LEVELS[-1]
    waited = without.loc[last, "share_queued"] + without.loc[last, "share_cancelled"]
    return Embedded("overload-outcomes", "overload",
                    f"At ρ {top:g} the policy refuses {with_.loc[last, 'share_rejected']:.0%} of "
                    f"{last} at once where without it {waited:.0%} waited until their client "
                    f"gave up or the run ended; {first} is served "
                    f"{with_.loc[first, 'share_served']:.0%} with it, "
                    f"{without.loc[first, 'share_served']:.0%} without.")


def loop_lag(summary: pd.DataFrame) -> tuple[str, str] | None:
    """At the most workers measured in `mixed`: the bridge with the lowest p99 loop lag
    against the highest, as "median of N runs (interval)" texts; None without two."""
    mixed = summary[summary["scenario"] == "mixed"]
    if mixed.empty or "loop_lag_p99_us" not in mixed:
        return None
    cell = mixed[mixed["producers"] == mixed["producers"].max()]
    stats = {str(q): significance.summarize([v / 1e3 for v in part["loop_lag_p99_us"]
                                             if v == v])
             for q, part in cell.groupby("queue", observed=True) if len(part)}
    if len(stats) < 2:
        return None
    ranked = sorted(stats, key=lambda q: stats[q].median)
    low, high = ranked[0], ranked[-1]

    def said(q: str) -> str:
        s = stats[q]
        runs = ("one run" if s.n == 1 else f"median of {s.n} runs, {s.confidence:.0%} interval "
                f"{s.ci_low:.2f}-{s.ci_high:.2f}")
        return f"`{q}` {s.median:.2f} ms ({runs})"
    workers = int(cell["producers"].iloc[0])
    return (f"p99 event-loop lag at {workers} worker threads: {said(low)} against "
            f"{said(high)}"), low


def loop_lag_leaders(summary: pd.DataFrame) -> list[str]:
    """At the most workers measured in `mixed`: the queues whose p99 loop lag the
    repetitions cannot tell from the lowest (``significance.tie_groups``), lowest first;
    empty without two queues."""
    mixed = summary[summary["scenario"] == "mixed"]
    if mixed.empty or "loop_lag_p99_us" not in mixed:
        return []
    cell = mixed[mixed["producers"] == mixed["producers"].max()]
    samples = {str(q): [v for v in part["loop_lag_p99_us"] if v == v]
               for q, part in cell.groupby("queue", observed=True) if len(part)}
    samples = {q: v for q, v in samples.items() if v}
    if len(samples) < 2:
        return []
    return significance.tie_groups(samples, higher_is_better=False)[0]


def mixed(summary: pd.DataFrame) -> Embedded | None:
    found = loop_lag(summary)
    if found is None:
        return None
    text, _ = found
    return Embedded("loop-lag-vs-workers-mixed", "threads",
                    f"With handlers on the loop and workers in threads, {text}.")


def markdown(figure: Embedded, number: int, link: str) -> list[str]:
    """The figure and its caption: "Figure N. claim"."""
    return [f"![Figure {number}]({link})", "", f"*Figure {number}. {figure.claim}*", ""]

