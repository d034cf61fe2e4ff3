"""The decision rule: which queue to use in each context, from measured frames only.

The service runs 10-100 requests a second (1,000 with growth) and spends
10 ms to 1 s on each; every queue pqlab measures does a put and a get in
microseconds. So speed is a gate, not a ranking: a queue is *fast enough*
when, in the worst measured cell of its context, serving the top rate would
cost it at most ``MATERIAL_SHARE`` of one core and add at most that share
of the 10 ms service time. Among the queues that are correct, fast enough
and do not burn a core while their workers wait, the features a scheduler
needs decide (``pqlab.harness.features``), then memory per queued task (only a
difference of ``MEMORY_FACTOR`` or more counts), then registry order (the
standard library first): every step is deterministic given the
measurements, and no step turns on a difference the repetitions cannot
resolve.

Speed is still ranked, with a significance test (``pqlab.measure.significance``):
per cell, queues the test cannot separate from the fastest form its tie
group. The ranking is shown; it decides only between queues that fail the
gate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pqlab.decide import analysis
from pqlab.harness.features import FEATURE_TITLES, SERVING
from pqlab.measure import significance
from pqlab.queues import QUEUES
from pqlab.study import config

CORRECTNESS_SCENARIO = "ordering"
# A consumer waiting on an empty queue should sleep. Blocking queues measured
# 0.00-0.01 of a core with 4 waiting consumers here; a polling one 0.89.
IDLE_LIMIT_CORES = 0.05
SERVICE_RATES_PER_S = (10, 100, 1_000)  # the service today (10-100) and its growth (1,000)
SERVICE_TIME_MS = 10.0  # the shortest inference the service runs
# Speed is material when serving the top rate would cost a queue more than
# this share of one core, or add more than this share of the service time.
MATERIAL_SHARE = 0.10
# Bytes per queued task: heaps and buckets hold 8-9 B, tuple-wrapping queues
# ~100 B. Differences below this factor do not separate candidates.
MEMORY_FACTOR = 2.0


@dataclass(frozen=True)
class Context:
    """Where the request queue would live, the scenario that models it, what it needs."""

    name: str
    scenario: str
    description: str
    needs: tuple[str, ...]  # features (pqlab.harness.features.FEATURES) this context's code uses
    workers_wait: bool = True  # consumers block on an empty queue (idle burn matters)
    sync_only: bool = False  # the caller is plain synchronous code: a sync face is required


CONTEXTS = (
    Context("async API server", "async",
            "request handlers are coroutines on one event loop (FastAPI, gRPC async); "
            "workers are coroutines too",
            needs=("cancel_safe_get", "shutdown", "bounded", *SERVING)),
    Context("thread workers", "threads",
            "handlers put requests from threads; a pool of worker threads takes them",
            needs=("get_timeout", "shutdown", "bounded", *SERVING)),
    Context("single-threaded code", "single",
            "one thread puts and takes (a scheduler loop that owns the queue and can bound it "
            "by its length)",
            needs=(), workers_wait=False, sync_only=True),
    Context("async handlers feeding worker threads", "mixed",
            "handlers are coroutines that put; a pool of worker threads takes (one queue "
            "with an async face and a sync face)",
            needs=("sync_and_async", "cancel_safe_get", "get_timeout", "shutdown", "bounded",
                   *SERVING)),
)
# ModelMora's own context, from the seed (the POC's "Production Implications"): FastAPI
# handlers enqueue, worker coroutines dequeue; inference leaves the loop for a worker
# process (POC 1), so the queue itself never leaves the event loop.
MODELMORA = "async API server"
MODELMORA_WHY = (
    "the seed's scheduler enqueues from FastAPI request handlers and dequeues from worker "
    "coroutines, and POC 1 runs inference in worker processes that a worker coroutine "
    "awaits, so the queue never leaves the event loop")

RULE = (
    "Set aside any queue with a violation, lost or duplicated task or error, any queue whose "
    f"waiting consumers burn more than {IDLE_LIMIT_CORES:g} of a core where workers wait, and "
    f"any queue that in its worst measured cell would spend more than {MATERIAL_SHARE:.0%} of "
    f"a core, or add more than {MATERIAL_SHARE:.0%} to a {SERVICE_TIME_MS:g} ms service, at "
    f"{SERVICE_RATES_PER_S[-1]:,} requests a second; among the rest, choose the queue with the "
    "most of the context's needed features, then, of those, the ones within "
    f"{MEMORY_FACTOR:g}x of the least memory per queued task, then the first in registry order "
    "(standard library first)."
)


def context(name_or_scenario: str) -> Context:
    """The context called ``name_or_scenario`` (or modelled by that scenario)."""
    for c in CONTEXTS:
        if name_or_scenario in (c.name, c.scenario):
            return c
    raise KeyError(f"unknown context {name_or_scenario!r}; known: "
                   + ", ".join(c.name for c in CONTEXTS))


@dataclass(frozen=True)
class Decision:
    context: Context
    choice: str | None  # None: no candidate passes every gate
    table: pd.DataFrame  # this context's candidates in rule order, the choice first
    tie_group: tuple[str, ...] = ()  # equal to the choice under the rule but registry order
    resolution: float = math.nan  # smallest ratio of medians the reference cell resolves
    notes: tuple[str, ...] = field(default_factory=tuple)


# -- speed, with ties -------------------------------------------------------------------


def _cells(df: pd.DataFrame) -> list[tuple[int, int]]:
    return sorted({(int(t), int(w)) for t, w in zip(df["tasks"], df["producers"], strict=True)})


def _samples(cell: pd.DataFrame, value: str) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for queue, part in cell.groupby("queue", observed=True, sort=True):
        values = [float(v) for v in part[value] if v == v]
        if values:
            out[str(queue)] = values
    return out


def speed_table(summary: pd.DataFrame, scenario: str) -> pd.DataFrame:
    """Per cell and queue: throughput median, its CI, repetitions, and its tie group.

    Group 1 holds the fastest queue and every queue the significance test
    cannot separate from it (``significance.tie_groups``), group 2 the next,
    and so on.
    """
    df = summary[summary["scenario"] == scenario]
    rows = []
    for tasks, workers in _cells(df):
        cell = df[(df["tasks"] == tasks) & (df["producers"] == workers)]
        samples = _samples(cell, "throughput_ops_s")
        groups = significance.tie_groups(samples, higher_is_better=True)
        group_of = {q: i for i, g in enumerate(groups, 1) for q in g}
        for queue, values in samples.items():
            s = significance.summarize(values)
            rows.append({"tasks": tasks, "workers": workers, "queue": queue,
                         "throughput_median": s.median, "throughput_ci_low": s.ci_low,
                         "throughput_ci_high": s.ci_high, "ci_confidence": s.confidence,
                         "repetitions": s.n, "speed_group": group_of[queue],
                         "groups_in_cell": len(groups)})
    return pd.DataFrame(rows)


def cell_resolution(summary: pd.DataFrame, scenario: str, tasks: int, workers: int) -> float:
    """``significance.resolution`` of the throughput samples of one cell."""
    df = summary[(summary["scenario"] == scenario) & (summary["tasks"] == tasks)
                 & (summary["producers"] == workers)]
    samples = _samples(df, "throughput_ops_s")
    return significance.resolution(samples) if samples else math.nan


def _short(count: int) -> str:
    """A task count for a narrow table cell: 600, 2k, 10k, 1M."""
    for unit, suffix in ((1_000_000, "M"), (1_000, "k")):
        if count >= unit and count % unit == 0:
            return f"{count // unit}{suffix}"
    return f"{count:,}"


# -- the candidates of a context ------------------------------------------------------


def _fits(ctx: Context, queue: str) -> bool:
    spec = QUEUES.get(queue)
    return not (ctx.sync_only and spec is not None and not spec.has_sync_face)


def _idle(idle: pd.DataFrame | None, scenario: str) -> pd.Series:
    """Idle burn (cores) per queue in ``scenario``: the largest consumer count measured."""
    if idle is None or idle.empty:
        return pd.Series(dtype=float)
    part = idle[idle["scenario"].astype(str) == scenario]
    if part.empty:
        return pd.Series(dtype=float)
    top = part[part["consumers"] == part["consumers"].max()]
    return top.groupby(top["queue"].astype(str))["idle_cores"].median()


def _worst(df: pd.DataFrame, column: str, how: str) -> pd.Series:
    """Per queue: the worst cell's median of ``column`` (``how``: 'min' or 'max')."""
    if column not in df.columns:
        return pd.Series(dtype=float)
    stats = analysis.cell_stats(df, column)
    return stats.groupby(stats["queue"].astype(str))["median"].agg(how)


def _needs_met(ctx: Context, features: pd.DataFrame | None, queue: str) -> list[str]:
    if features is None or features.empty or queue not in set(features["queue"]):
        return []
    row = features[features["queue"] == queue].iloc[0]
    return [f for f in ctx.needs if f in row and bool(row[f])]


def candidates(summary: pd.DataFrame, ctx: Context, *, idle: pd.DataFrame | None = None,
               features: pd.DataFrame | None = None,
               reference: tuple[int, int] = (config.REFERENCE_TASKS, config.REFERENCE_WORKERS)
               ) -> pd.DataFrame:
    """One row per queue that ran the context's scenario: every number the rule reads.

    Speed columns are at the reference cell (the measured cell nearest
    ``reference``); ``worst_*`` columns over every measured cell; ``set_aside``
    says why a queue cannot be chosen ("" when it can).
    """
    df = summary[summary["scenario"] == ctx.scenario]
    df = df[[_fits(ctx, str(q)) for q in df["queue"]]]
    if df.empty:
        return pd.DataFrame()
    tasks, workers = analysis.reference_cell(df, ctx.scenario, *reference)
    speed = speed_table(df, ctx.scenario)
    at_ref = speed[(speed["tasks"] == tasks) & (speed["workers"] == workers)].set_index("queue")
    groups = speed.assign(cell=[f"{_short(t)}×{w}" for t, w in zip(speed["tasks"],
                                                                   speed["workers"],
                                                                   strict=True)])
    by_cell = groups.groupby("queue")[["cell", "speed_group"]].apply(
        lambda g: " ".join(f"{c}:{s}" for c, s in zip(g["cell"], g["speed_group"], strict=True)))
    checked = summary[summary["scenario"].isin([ctx.scenario, CORRECTNESS_SCENARIO])]
    counts = checked.groupby(checked["queue"].astype(str))[
        ["violations", "lost", "duplicated", "errors"]].sum()
    runs_checked = checked.groupby(checked["queue"].astype(str)).size()
    cell = df[(df["tasks"] == tasks) & (df["producers"] == workers)]
    g = cell.groupby(cell["queue"].astype(str))
    table = pd.DataFrame({
        "enqueue_mean_us": g["enqueue_mean_us"].median(),
        "dequeue_mean_us": g["dequeue_mean_us"].median(),
        "enqueue_p99_us": g["enqueue_p99_us"].median(),
        "dequeue_p99_us": (g["dequeue_p99_us"].median() if "dequeue_p99_us" in cell
                           else math.nan),
        "bytes_per_task": g["bytes_per_task"].median(),
    })
    table = at_ref[["throughput_median", "throughput_ci_low", "throughput_ci_high",
                    "ci_confidence", "repetitions", "speed_group", "groups_in_cell"]].join(table)
    df_q = df.assign(queue=df["queue"].astype(str))
    table["groups_by_cell"] = by_cell
    table["worst_throughput"] = _worst(df_q, "throughput_ops_s", "min")
    table["cpu_us_per_task"] = _worst(df_q, "cpu_us_per_task", "max")
    table["idle_cores"] = _idle(idle, ctx.scenario)
    table = table.join(counts).join(runs_checked.rename("runs_checked"))
    table.index.name = "queue"
    table = table.reset_index()
    table.insert(0, "context", ctx.name)
    table.insert(2, "tasks", tasks)
    table.insert(3, "workers", workers)
    for col in ("cpu_us_per_task", "idle_cores"):
        table[col] = table[col].astype(float)
    table["needs_met"] = [_needs_met(ctx, features, q) for q in table["queue"]]
    table["features"] = table["needs_met"].map(len)
    return _judge(table, ctx)


# -- the rule --------------------------------------------------------------------------


def costs_at(rate_per_s: float, cpu_us_per_task: float, throughput_ops_s: float
             ) -> tuple[float, float]:
    """(share of one core, added latency in µs) of a queue serving ``rate_per_s`` requests.

    The CPU share is the rate times the CPU a task costs; the added latency is
    the queue's time per task at its measured throughput (one put and one get).
    """
    cpu_share = rate_per_s * cpu_us_per_task / 1e6
    added_us = 2e6 / throughput_ops_s if throughput_ops_s > 0 else math.inf
    return cpu_share, added_us


def _set_aside(row: pd.Series, ctx: Context) -> str:
    problems = [f"{int(row[c])} {c}" for c in ("violations", "lost", "duplicated", "errors")
                if row[c] > 0]
    if problems:
        return "incorrect: " + ", ".join(problems)
    if ctx.workers_wait and row["idle_cores"] > IDLE_LIMIT_CORES:
        return (f"its waiting consumers burn {row['idle_cores']:.2f} of a core, over the "
                f"limit of {IDLE_LIMIT_CORES:g}")
    top = SERVICE_RATES_PER_S[-1]
    cpu, added = costs_at(top, row["cpu_us_per_task"], row["worst_throughput"])
    if cpu > MATERIAL_SHARE:
        return f"would spend {cpu:.0%} of a core at {top:,} requests a second"
    if added / 1e3 > MATERIAL_SHARE * SERVICE_TIME_MS:
        return (f"would add {added:,.0f} µs to a {SERVICE_TIME_MS:g} ms service at its "
                "slowest cell")
    return ""


def _judge(table: pd.DataFrame, ctx: Context) -> pd.DataFrame:
    """Set-aside reasons, the rule's order and the choice."""
    table["set_aside"] = [_set_aside(r, ctx) for _, r in table.iterrows()]
    registry = {q: i for i, q in enumerate(QUEUES)}
    table["registry_order"] = table["queue"].map(lambda q: registry.get(q, len(registry)))
    eligible = table["set_aside"] == ""
    most = table.loc[eligible, "features"].max() if eligible.any() else -1
    top = eligible & (table["features"] == most)
    least = table.loc[top, "bytes_per_task"].min() if top.any() else math.nan
    lean = top & ~(table["bytes_per_task"] > MEMORY_FACTOR * least)
    table["tier"] = np.select([lean, top, eligible], [1, 2, 3], default=4)
    table = table.sort_values(["tier", "features", "registry_order"],
                              ascending=[True, False, True], ignore_index=True)
    table["chosen"] = False
    if (table["tier"] == 1).any():
        table.loc[0, "chosen"] = True
    return table


def decide(summary: pd.DataFrame, *, idle: pd.DataFrame | None = None,
           features: pd.DataFrame | None = None,
           reference: tuple[int, int] = (config.REFERENCE_TASKS, config.REFERENCE_WORKERS)
           ) -> list[Decision]:
    """Per context: the table the rule reads and the queue it chooses (see ``RULE``)."""
    decisions = []
    for ctx in CONTEXTS:
        table = candidates(summary, ctx, idle=idle, features=features, reference=reference)
        if table.empty:
            decisions.append(Decision(ctx, None, table))
            continue
        chosen = table[table["chosen"]]
        choice = str(chosen.iloc[0]["queue"]) if not chosen.empty else None
        tie = tuple(str(q) for q in table.loc[table["tier"] == 1, "queue"])
        first = table.iloc[0]
        notes = []
        if table["idle_cores"].isna().all() and ctx.workers_wait:
            notes.append("idle burn was not measured in this run")
        if table["cpu_us_per_task"].isna().all():
            notes.append("CPU time was not measured in this run")
        decisions.append(Decision(
            ctx, choice, table, tie_group=tie,
            resolution=cell_resolution(summary, ctx.scenario, int(first["tasks"]),
                                       int(first["workers"])),
            notes=tuple(notes)))
    return decisions


def decision_table(decisions: list[Decision]) -> pd.DataFrame:
    """Every context's candidates in one frame."""
    tables = [d.table for d in decisions if not d.table.empty]
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


def runner_up(d: Decision) -> tuple[str | None, str]:
    """The queue next to the choice and what separates them, in the rule's own terms: a tie
    says so and names the step that broke it (never a measured win)."""
    if d.choice is None or len(d.table) < 2:
        return None, ""
    chosen, other = d.table.iloc[0], d.table.iloc[1]
    if other["queue"] in d.tie_group:
        return str(other["queue"]), ("a tie: both pass every gate with the same features and "
                                     f"memory within {MEMORY_FACTOR:g}x; registry order broke "
                                     "it, not a measurement")
    if other["set_aside"]:
        return str(other["queue"]), f"set aside: {other['set_aside']}"
    missing = [FEATURE_TITLES[f] for f in chosen["needs_met"] if f not in other["needs_met"]]
    if missing:
        return str(other["queue"]), "it lacks " + ", ".join(missing)
    return str(other["queue"]), (f"{other['bytes_per_task']:.1f} against "
                                 f"{chosen['bytes_per_task']:.1f} bytes per queued task, over "
                                 f"the {MEMORY_FACTOR:g}x the rule allows")


def needs_text(ctx: Context) -> str:
    return ", ".join(FEATURE_TITLES[f] for f in ctx.needs) or "nothing beyond put and get"


# -- what a decision states, for comparing two runs --------------------------------------


def _kind(reason: str) -> str:
    """A set-aside reason without its numbers: what kind of gate the queue failed."""
    if reason.startswith("incorrect"):
        return "incorrect"
    if "burn" in reason:
        return "burns a core while waiting"
    return "too slow for the service" if reason else ""


def statements(decisions: list[Decision]) -> dict[str, str]:
    """Every claim the decision makes, as ``{subject: claim}``, without measured numbers.

    Two runs of the same code on the same machine should agree on each claim
    whose measurements are far from the rule's thresholds; ``"decision"``
    entries are the ones that must agree.
    """
    out: dict[str, str] = {}
    for d in decisions:
        name = d.context.name
        if d.table.empty:
            out[f"{name}: decision"] = "not measured"
            continue
        out[f"{name}: decision"] = d.choice or "none"
        out[f"{name}: tie group"] = ", ".join(sorted(d.tie_group)) or "none"
        for _, r in d.table.iterrows():
            q = r["queue"]
            out[f"{name}: {q} set aside"] = _kind(r["set_aside"]) or "no"
            out[f"{name}: {q} needed features"] = ", ".join(r["needs_met"]) or "none"
        ref = d.table.sort_values(["speed_group", "queue"])
        groups = ref.groupby("speed_group")["queue"].apply(lambda s: ", ".join(sorted(s)))
        out[f"{name}: speed groups at the reference cell"] = " > ".join(
            f"{{{g}}}" for g in groups)
    return out


def cost_frame(decisions: list[Decision]) -> pd.DataFrame:
    """Per context and queue: CPU µs per task and idle burn (the ``cpu-cost`` figure's input)."""
    table = decision_table(decisions)
    if table.empty:
        return pd.DataFrame(columns=["context", "queue", "cpu_us_per_task", "idle_cores"])
    return table[["context", "queue", "cpu_us_per_task", "idle_cores"]].copy()
