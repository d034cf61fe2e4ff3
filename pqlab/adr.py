"""The decision record ``docs/adr/0001-request-queue.md``, generated from a named run.

For each context (an async API server, thread workers, single-threaded code)
the candidates are the queues that ran its scenario. Each is judged at a
reference cell (the task and worker counts closest to the ones asked for)
against the success criteria of DESIGN.md: median throughput above 100,000
ops/s, average latency below 10 µs, and no violation, lost or duplicated
task and no error in any run of that scenario or of ``ordering``. Among the
queues that pass, the highest median throughput is recommended. Nothing in
the decision is typed in: change the data and the text changes.

"Average latency" is the mean enqueue latency (what a request handler pays to
submit work); where a scenario has no concurrent workers the mean dequeue
latency is held to the same bound, since there a get never waits for work.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pqlab import analysis, config, plots, store
from pqlab.queues import QUEUES
from pqlab.scenarios import SCENARIOS

DEFAULT_REFERENCE_TASKS = config.REFERENCE_TASKS
DEFAULT_REFERENCE_WORKERS = config.REFERENCE_WORKERS
CORRECTNESS_SCENARIO = "ordering"
PROCESS_SCENARIO = "processes"  # beyond one process: a consequence line, not a context


@dataclass(frozen=True)
class Context:
    """Where the request queue would live, and the scenario that models it."""

    name: str
    scenario: str
    description: str


CONTEXTS = (
    Context("async API server", "async",
            "request handlers are coroutines on one event loop (FastAPI, gRPC async); "
            "workers are coroutines too"),
    Context("thread workers", "threads",
            "handlers put requests from threads; a pool of worker threads takes them"),
    Context("single-threaded code", "single",
            "one thread puts and takes (a scheduler loop that owns the queue)"),
    Context("async handlers feeding worker threads", "mixed",
            "handlers are coroutines that put; a pool of worker threads takes (one queue "
            "with an async face and a sync face)"),
)


@dataclass(frozen=True)
class Decision:
    context: Context
    choice: str | None  # None: no candidate meets every criterion
    table: pd.DataFrame  # this context's candidates, best first


def _failures(row: pd.Series, judge_dequeue: bool) -> list[str]:
    out = []
    if not row["throughput_median"] > analysis.MIN_THROUGHPUT_OPS_S:
        out.append(f"throughput {row['throughput_median']:,.0f} ops/s is not above "
                   f"{analysis.MIN_THROUGHPUT_OPS_S:,}")
    if not row["enqueue_mean_us"] < analysis.MAX_LATENCY_US:
        out.append(f"mean enqueue {row['enqueue_mean_us']:.2f} µs is not below "
                   f"{analysis.MAX_LATENCY_US:g}")
    if judge_dequeue and not row["dequeue_mean_us"] < analysis.MAX_LATENCY_US:
        out.append(f"mean dequeue {row['dequeue_mean_us']:.2f} µs is not below "
                   f"{analysis.MAX_LATENCY_US:g}")
    for col in ("violations", "lost", "duplicated", "errors"):
        if row[col] > (analysis.MAX_VIOLATIONS if col == "violations" else 0):
            out.append(f"{row[col]} {col}")
    return out


def candidates(summary: pd.DataFrame, context: Context, reference_tasks: int,
               reference_workers: int) -> pd.DataFrame:
    """One row per queue that ran the context's scenario, judged at the reference cell."""
    df = summary[summary["scenario"] == context.scenario]
    if df.empty:
        return pd.DataFrame()
    tasks, workers = analysis.reference_cell(summary, context.scenario, reference_tasks,
                                             reference_workers)
    cell = df[(df["tasks"] == tasks) & (df["producers"] == workers)]
    checked = summary[summary["scenario"].isin([context.scenario, CORRECTNESS_SCENARIO])]
    counts = checked.groupby("queue", observed=True)[
        ["violations", "lost", "duplicated", "errors"]].sum()
    runs_checked = checked.groupby("queue", observed=True).size()
    g = cell.groupby("queue", observed=True)
    table = pd.DataFrame({
        "throughput_median": g["throughput_ops_s"].median(),
        "throughput_low": g["throughput_ops_s"].min(),
        "throughput_high": g["throughput_ops_s"].max(),
        "enqueue_mean_us": g["enqueue_mean_us"].median(),
        "dequeue_mean_us": g["dequeue_mean_us"].median(),
        "enqueue_p99_us": g["enqueue_p99_us"].median(),
        "repetitions": g.size(),
    }).join(counts).join(runs_checked.rename("runs_checked")).reset_index()
    table.insert(0, "context", context.name)
    table.insert(2, "tasks", tasks)
    table.insert(3, "workers", workers)
    judge_dequeue = not SCENARIOS[context.scenario].uses_workers
    table["failures"] = [_failures(row, judge_dequeue) for _, row in table.iterrows()]
    table["meets"] = table["failures"].map(lambda f: not f)
    table["queue"] = table["queue"].astype(str)
    return table.sort_values(["meets", "throughput_median"], ascending=[False, False],
                             ignore_index=True)


def decide(summary: pd.DataFrame, reference_tasks: int = DEFAULT_REFERENCE_TASKS,
           reference_workers: int = DEFAULT_REFERENCE_WORKERS) -> list[Decision]:
    """Per context: the queue that meets every criterion with the highest throughput."""
    decisions = []
    for context in CONTEXTS:
        table = candidates(summary, context, reference_tasks, reference_workers)
        passing = table[table["meets"]] if not table.empty else table
        choice = str(passing.iloc[0]["queue"]) if not passing.empty else None
        decisions.append(Decision(context, choice, table))
    return decisions


def across_processes(summary: pd.DataFrame, reference_tasks: int = DEFAULT_REFERENCE_TASKS,
                     reference_workers: int = DEFAULT_REFERENCE_WORKERS) -> pd.DataFrame:
    """Scenario ``processes`` (notebook 06) at its reference cell, one row per queue: median
    throughput there, and violations + lost + duplicated + errors summed over all its runs."""
    df = summary[summary["scenario"] == PROCESS_SCENARIO]
    if df.empty:
        return pd.DataFrame()
    tasks, workers = analysis.reference_cell(summary, PROCESS_SCENARIO, reference_tasks,
                                             reference_workers)
    cell = df[(df["tasks"] == tasks) & (df["producers"] == workers)]
    problems = df.groupby("queue", observed=True)[
        ["violations", "lost", "duplicated", "errors"]].sum().sum(axis=1)
    table = pd.DataFrame({
        "throughput_median": cell.groupby("queue", observed=True)["throughput_ops_s"].median(),
        "problems": problems, "runs": df.groupby("queue", observed=True).size(),
    }).dropna(subset=["throughput_median"]).reset_index()
    table.insert(1, "tasks", tasks)
    table.insert(2, "workers", workers)
    table["queue"] = table["queue"].astype(str)
    return table.sort_values("throughput_median", ascending=False, ignore_index=True)


def _processes_line(table: pd.DataFrame) -> list[str]:
    """The consequence for work that crosses processes, if the run measured it."""
    if table.empty:
        return []
    first = table.iloc[0]
    rates = ", ".join(f"`{r['queue']}` {r['throughput_median']:,.0f} ops/s"
                      for _, r in table.iterrows())
    best = first["throughput_median"]
    criterion = (f"{analysis.MIN_THROUGHPUT_OPS_S / best:.0f}x below the throughput "
                 "criterion at best" if best <= analysis.MIN_THROUGHPUT_OPS_S
                 else "above the throughput criterion")
    problems, runs = int(table["problems"].sum()), int(table["runs"].sum())
    return [f"- Across processes (scenario `{PROCESS_SCENARIO}`, notebook 06; "
            f"{first['tasks']:,} tasks, {first['workers']} producer and {first['workers']} "
            f"consumer processes): {rates} (median), {criterion}; {problems} violations, "
            f"lost or duplicated tasks or errors in {runs} runs. Every operation there is a "
            "round trip to another process."]


def decision_table(decisions: list[Decision]) -> pd.DataFrame:
    """Every context's candidates in one frame (the ADR's measured table)."""
    tables = [d.table for d in decisions if not d.table.empty]
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


# -- text ----------------------------------------------------------------------------


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _measured_table(table: pd.DataFrame) -> list[str]:
    head = ["context", "queue", "tasks", "workers", "throughput ops/s, median (min-max)",
            "mean enqueue µs", "mean dequeue µs", "p99 enqueue µs", "violations", "lost",
            "duplicated", "errors", "meets criteria"]
    lines = [_row(head), _row(["---"] * len(head))]
    for _, r in table.iterrows():
        lines.append(_row([
            r["context"], f"`{r['queue']}`", f"{r['tasks']:,}", str(r["workers"]),
            f"{r['throughput_median']:,.0f} ({r['throughput_low']:,.0f}-"
            f"{r['throughput_high']:,.0f})",
            f"{r['enqueue_mean_us']:.2f}", f"{r['dequeue_mean_us']:.2f}",
            f"{r['enqueue_p99_us']:.2f}", str(r["violations"]), str(r["lost"]),
            str(r["duplicated"]), str(r["errors"]), "yes" if r["meets"] else "no"]))
    return lines


def _verdict_line(d: Decision) -> str:
    name = d.context.name
    if d.table.empty:
        return f"- **{name}**: not measured in this run (scenario `{d.context.scenario}`)."
    if d.choice is None:
        best = d.table.iloc[0]
        return (f"- **{name}**: no measured queue meets every criterion. Closest: "
                f"`{best['queue']}` ({'; '.join(best['failures'])}).")
    r = d.table[d.table["queue"] == d.choice].iloc[0]
    others = [str(q) for q in d.table[d.table["meets"]]["queue"] if q != d.choice]
    also = f" Also meeting the criteria: {', '.join(f'`{q}`' for q in others)}." if others \
        else ""
    return (f"- **{name}**: use `{d.choice}`: {r['throughput_median']:,.0f} ops/s "
            f"({analysis.throughput_verdict(r['throughput_median'])}), mean enqueue "
            f"{r['enqueue_mean_us']:.2f} µs "
            f"({analysis.latency_verdict(r['enqueue_mean_us'])}), 0 violations in "
            f"{r['runs_checked']} runs.{also}")


def _headline(primary: Decision) -> str:
    """The one recommendation: the queue for the first context (the API server)."""
    if primary.choice is not None:
        return (f"**Use `{primary.choice}` as the request queue** of the scheduler "
                f"({primary.context.name}). Per context:")
    if primary.table.empty:
        return (f"**No recommendation**: scenario `{primary.context.scenario}` "
                f"({primary.context.name}) was not measured in this run. Per context:")
    return (f"**No measured queue meets every criterion for the {primary.context.name}**; "
            "the request queue needs another candidate or relaxed criteria. Per context:")


def _spread(table: pd.DataFrame) -> tuple[float, str, str]:
    """Fastest / slowest median throughput of a candidates table, and the two queues."""
    ordered = table.sort_values("throughput_median", ascending=False)
    fast, slow = ordered.iloc[0], ordered.iloc[-1]
    return fast["throughput_median"] / slow["throughput_median"], fast["queue"], slow["queue"]


def loop_cost_finding(decisions: list[Decision]) -> list[str]:
    """How much the queue matters on an event loop: spread in `async` against `single`."""
    tables = {d.context.scenario: d.table for d in decisions}
    async_table, single_table = tables.get("async"), tables.get("single")
    if async_table is None or len(async_table) < 2 or single_table is None:
        return []
    single_table = single_table[single_table["queue"].isin(async_table["queue"])]
    if len(single_table) < 2:
        return []
    in_async, fast, slow = _spread(async_table)
    in_single, fast_single, slow_single = _spread(single_table)
    verdict = ("the event loop's own cost (a task switch per operation, producers returning "
               "to the loop after each put) dominates, and the queue matters little there"
               if in_async < (1 + in_single) / 2 else
               "the queue's own cost still shows through the event loop's")
    return [f"- On the event loop the async-safe queues span {in_async:.2f}x in throughput "
            f"(`{fast}` to `{slow}` in `async`), against {in_single:.2f}x for the same queues "
            f"in `single` (`{fast_single}` to `{slow_single}`): {verdict}."]


def _consequences(decisions: list[Decision], machine: dict,
                  processes: pd.DataFrame | None = None) -> list[str]:
    lines = []
    for d in decisions:
        if d.choice is not None:
            spec = QUEUES.get(d.choice)
            r = d.table[d.table["queue"] == d.choice].iloc[0]
            headroom = r["throughput_median"] / analysis.MIN_THROUGHPUT_OPS_S
            safe = ("thread-safe" if spec and spec.thread_safe else "not thread-safe") + \
                ", " + ("async-safe" if spec and spec.async_safe else "not async-safe")
            lines.append(f"- {d.context.name}: `{d.choice}` ({safe}) runs at "
                         f"{headroom:.1f}x the throughput criterion at "
                         f"{r['tasks']:,} tasks and {r['workers']} worker(s).")
        elif not d.table.empty:
            lines.append(f"- {d.context.name}: no queue met every criterion on this machine; "
                         "the request queue should not be handed between threads here "
                         "unless the criteria are relaxed or a faster candidate is added.")
    broken = [(d.context.name, str(r["queue"]))
              for d in decisions if not d.table.empty
              for _, r in d.table.iterrows()
              if r["violations"] + r["lost"] + r["duplicated"] + r["errors"] > 0]
    if broken:
        lines.append("- Correctness problems were measured for: "
                     + ", ".join(f"`{q}` ({c})" for c, q in broken) + ".")
    else:
        lines.append("- No candidate lost, duplicated or misordered a task in any run checked.")
    lines += loop_cost_finding(decisions)
    lines += _processes_line(processes if processes is not None else pd.DataFrame())
    lines.append(f"- The numbers hold for {machine.get('machine')}; on other hardware rerun "
                 "`make run` and compare machines with notebook 05 (ratios to a baseline "
                 "queue, since absolute times differ).")
    return lines


# -- open-loop load (notebook 07) ------------------------------------------------------

LOAD_TARGET_MS = 50.0  # the service's target for CRITICAL's queueing wait (p99)
LOAD_RATES = (10.0, 100.0)  # the service's request rate today (req/s)
LOAD_GROWTH_RATE = 1_000.0  # and the growth it must allow
THEORY_TOLERANCE = 0.15  # measured means within 15% of Cobham at ρ ≤ 0.8
THEORY_MAX_RHO = 0.8
# Below this mean wait a worker's wake-up (a fraction of a ms) is most of the
# measured wait and a relative difference says nothing about the queue.
THEORY_MIN_MS = 1.0


def _fmt_ms(x: float) -> str:
    return "n/a" if pd.isna(x) else f"{x:.2f}" if abs(x) >= 0.1 else f"{x:.4f}"


def _fmt_diff(x: float) -> str:
    return "n/a" if pd.isna(x) else f"{x:+.1%}"


def aging_finding(frame: pd.DataFrame, aging: pd.DataFrame) -> list[str]:
    """One line on the aging runs: CRITICAL's mean wait and LOW's p99, strict against aging."""
    if frame.empty or aging.empty:
        return []
    keys = ["rho", "priority"]
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
                     f"{crit['queue_wait_mean_ms_aging']:.2f} ms and LOW's p99 from "
                     f"{low['queue_wait_p99_ms_strict']:.2f} to "
                     f"{low['queue_wait_p99_ms_aging']:.2f} ms")
    if not parts:
        return []
    return [f"- Aging (`load-aging.parquet`: a level gained per "
            f"{float(aging['aging_ms'].iloc[0]):g} ms waited, same arrivals): "
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


def load_findings(frame: pd.DataFrame, target_ms: float = LOAD_TARGET_MS,
                  aging: pd.DataFrame | None = None) -> list[str]:
    """The ADR's open-loop paragraph, every number read from the run's ``load`` frame.

    A table of measured mean wait against Cobham's (at each run's measured ρ)
    per priority, the ρ where CRITICAL's p99 reaches ``target_ms`` and what it
    means for the service's request rates. Empty when the run has no load data.
    """
    from pqlab.loadframes import crossing_rho

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
        "each task's intended arrival. Mean wait per priority in ms, measured against "
        "Cobham's formula at the run's measured ρ (relative difference in brackets):",
        "",
        _row(["ρ target", "ρ measured", *priorities]),
        _row(["---"] * (2 + len(priorities))),
    ]
    for rho, part in frame.groupby("rho", sort=True):
        by = part.set_index("priority")
        cells = [f"{_fmt_ms(by.loc[p, 'queue_wait_mean_ms'])} vs "
                 f"{_fmt_ms(by.loc[p, 'theory_wait_mean_ms'])} "
                 f"({_fmt_diff(by.loc[p, 'wait_mean_rel_diff'])})" for p in priorities]
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
        lines.append(f"- CRITICAL's p99 wait stays below {target_ms:g} ms up to the largest "
                     f"measured ρ = {top:g} (about {top * capacity:,.0f} requests a second "
                     "with these workers); the crossing lies beyond the measured range.")
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


def render(run: store.Run, decisions: list[Decision], figure_links: list[tuple[str, str]],
           reference: tuple[int, int], processes: pd.DataFrame | None = None) -> str:
    """The ADR's Markdown text; ``processes``: ``across_processes`` of the run, if any."""
    machine, manifest = run.machine(), run.manifest()
    table = decision_table(decisions)
    queues = sorted(set(table["queue"]) if not table.empty else set(),
                    key=lambda q: list(QUEUES).index(q) if q in QUEUES else len(QUEUES))
    dirty = " (uncommitted changes)" if machine.get("git_dirty") else ""
    out = [
        "# ADR 0001: The request queue of the model-serving scheduler",
        "",
        f"Status: proposed. Generated by `python -m pqlab adr --run {run.run_id}` from run "
        f"`{run.run_id}`; every number below is read from that run's `summary` frame.",
        "",
        "## Context",
        "",
        "The scheduler holds incoming inference requests in one priority queue: CRITICAL=1, "
        "HIGH=2, NORMAL=3, LOW=4, first in first out within a priority. The queue must "
        f"sustain more than {analysis.MIN_THROUGHPUT_OPS_S:,} operations per second, add "
        f"less than {analysis.MAX_LATENCY_US:g} µs on average per operation, and never "
        "serve a task out of order, lose it or serve it twice.",
        "",
        "Contexts judged:",
        "",
        *[f"- **{c.name}** (scenario `{c.scenario}`): {c.description}." for c in CONTEXTS],
        "",
        f"Measured on {machine.get('machine')}, "
        f"{machine.get('os_distribution') or machine.get('os')}, kernel "
        f"{machine.get('kernel')}, Python {machine.get('python_version')} "
        f"({machine.get('python_implementation')}, GIL "
        f"{'on' if machine.get('gil_enabled') else 'off'}), pqlab "
        f"{machine.get('packages', {}).get('pqlab')}, commit "
        f"`{(machine.get('git_commit') or 'unknown')[:12]}`{dirty}, started "
        f"{manifest.get('created_utc')}.",
        "",
        "## Options compared",
        "",
        _row(["queue", "thread-safe", "async-safe", "API", "description"]),
        _row(["---"] * 5),
        *[_row([f"`{q}`", "yes" if QUEUES[q].thread_safe else "no",
                "yes" if QUEUES[q].async_safe else "no", QUEUES[q].api,
                QUEUES[q].description]) for q in queues if q in QUEUES],
        "",
        "## Measurements",
        "",
        f"Reference cell per context: the task count nearest {reference[0]:,} and the worker "
        f"count nearest {reference[1]} among those measured (producers = consumers). "
        "Throughput is the median over repetitions (min-max in brackets), from the untimed "
        "pass; latencies are medians over repetitions of each run's mean or p99. "
        "Violations, lost, duplicated and errors are summed over every run of the scenario "
        f"and of `{CORRECTNESS_SCENARIO}`. A blocking get's dequeue latency includes its wait "
        "for work, so it is judged only where no worker waits (single-threaded code).",
        "",
        *_measured_table(table),
        "",
        *load_findings(run.load(), aging=run.load_aging()),
        "## Figures",
        "",
        *[f"![{title}]({link})" if i == 0 else f"- [{title}]({link})"
          for i, (title, link) in enumerate(figure_links)],
        "",
        "## Decision",
        "",
        _headline(decisions[0]),
        "",
        *[_verdict_line(d) for d in decisions],
        "",
        "## Consequences",
        "",
        *_consequences(decisions, machine, processes),
        "",
    ]
    return "\n".join(out)


def figure_links(figures_dir: Path, adr_dir: Path) -> list[tuple[str, str]]:
    """(title, link relative to ``adr_dir``, the ADR's folder) of the run's SVG figures,
    the decision overview first."""
    svgs = sorted(Path(figures_dir).glob("*.svg"),
                  key=lambda p: (p.stem != "decision-overview", p.stem))
    return [(p.stem.replace("-", " "), os.path.relpath(p, adr_dir).replace(os.sep, "/"))
            for p in svgs]


def write_adr(run_id: str | None = None, paths: config.Paths | None = None, *,
              publish: bool = False, reference_tasks: int = DEFAULT_REFERENCE_TASKS,
              reference_workers: int = DEFAULT_REFERENCE_WORKERS) -> Path:
    """Write the ADR for ``run_id`` (default: the latest run) into its run folder.

    The run's copy is ``data/<run-id>/adr.md``; with ``publish`` the record is
    also written to ``docs/adr/0001-request-queue.md``, the committed one. Each
    copy links the figures relative to its own folder. Returns the published
    file if ``publish``, else the run's copy. Also draws the decision overview
    figure into ``figures/<run-id>/``. Raises ``store.StoreError`` for a run
    that is missing or holds no measurements.
    """
    paths = paths or config.paths()
    run_id = run_id or store.latest_run(paths.data)
    run = store.Run.open(paths.data, run_id)
    summary = run.summary()
    if summary.empty:
        raise store.StoreError(f"run {run_id!r} has no measurements")
    decisions = decide(summary, reference_tasks, reference_workers)
    figures_dir = paths.figures_dir(run_id)
    plots.decision_overview(decision_table(decisions), out_dir=figures_dir)
    processes = across_processes(summary, reference_tasks, reference_workers)
    destinations = [paths.run_adr_file(run_id)] + ([paths.adr_file] if publish else [])
    for path in destinations:
        text = render(run, decisions, figure_links(figures_dir, path.parent),
                      (reference_tasks, reference_workers), processes)
        store.write_text(path, text)
    return destinations[-1]
