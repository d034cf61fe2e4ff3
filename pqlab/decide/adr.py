"""The decision record ``docs/adr/0001-request-queue.md``, generated from a named run.

The rule lives in ``pqlab.decide.decision`` (stated in the record itself, one
sentence); this module turns its tables into Markdown. Every number is read
from the run's frames (``summary``, ``idle``, ``load``) or measured by a
probe (``pqlab.harness.features``); nothing is typed in: change the data and the
text changes.

A run measured on a busy machine (``pqlab.measure.quiet``) is not decided from
unless the caller says so (``allow_busy``); the record then says which cells
were busy.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pqlab.decide import analysis, decision, endtoend, plots, saturation
from pqlab.decide.decision import CONTEXTS, Context, Decision, decide, decision_table  # noqa: F401
from pqlab.harness import features
from pqlab.measure import quiet, significance
from pqlab.queues import QUEUES
from pqlab.study import config, store
from pqlab.study.loadframes import crossing_rho

DEFAULT_REFERENCE_TASKS = config.REFERENCE_TASKS
DEFAULT_REFERENCE_WORKERS = config.REFERENCE_WORKERS
CORRECTNESS_SCENARIO = decision.CORRECTNESS_SCENARIO
PROCESS_SCENARIO = analysis.PROCESS_SCENARIO  # beyond one process: a consequence, not a context
FEATURES_FILE = "features.parquet"


class BusyRunError(store.StoreError):
    """The run was measured on a busy machine and no override was given."""


def run_features(run: store.Run) -> pd.DataFrame:
    """The features probed for ``run`` (stored beside it on first use, so a later rewrite
    of the ADR reads what the run's code had)."""
    path = run.dir / FEATURES_FILE
    if path.is_file():
        return pd.read_parquet(path)
    frame = features.features_frame()
    store.write_parquet(path, frame)
    return frame


def decide_run(run: store.Run, reference: tuple[int, int] = (DEFAULT_REFERENCE_TASKS,
                                                             DEFAULT_REFERENCE_WORKERS)
               ) -> list[Decision]:
    """``decision.decide`` on a stored run's frames."""
    summary = run.summary()
    if summary.empty:
        raise store.StoreError(f"run {run.run_id!r} has no measurements")
    return decide(summary, idle=run.idle(), features=run_features(run), reference=reference)


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
    criterion = (f"{analysis.MIN_THROUGHPUT_OPS_S / best:.0f}x below the POC's throughput "
                 "criterion at best" if best <= analysis.MIN_THROUGHPUT_OPS_S
                 else "above the POC's throughput criterion")
    problems, runs = int(table["problems"].sum()), int(table["runs"].sum())
    return [f"- Across processes (scenario `{PROCESS_SCENARIO}`, notebook 06; "
            f"{first['tasks']:,} tasks, {first['workers']} producer and {first['workers']} "
            f"consumer processes): {rates} (median), {criterion}; {problems} violations, "
            f"lost or duplicated tasks or errors in {runs} runs. Every operation there is a "
            "round trip to another process."]


# -- text ----------------------------------------------------------------------------


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _num(x: float, fmt: str) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)


def _ci(r: pd.Series) -> str:
    """Median and its interval, with the interval's coverage when it is not 99%."""
    cover = r["ci_confidence"]
    label = "" if cover >= significance.CONFIDENCE else f", {cover:.0%}"
    return (f"{r['throughput_median']:,.0f} ({r['throughput_ci_low']:,.0f}-"
            f"{r['throughput_ci_high']:,.0f}{label})")


def _yes(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return "yes" if bool(value) else "no"


def options_table(queues: list[str], feats: pd.DataFrame, summary: pd.DataFrame) -> list[str]:
    """The options: capabilities, probed features and measured bytes per queued task."""
    head = ["queue", "thread-safe", "async-safe", "API",
            *[features.FEATURE_TITLES[f] for f in features.FEATURES],
            "bytes per queued task", "description"]
    by_queue = feats.set_index("queue") if not feats.empty else pd.DataFrame()
    memory = summary.groupby(summary["queue"].astype(str))["bytes_per_task"].median()
    lines = [_row(head), _row(["---"] * len(head))]
    for q in queues:
        spec = QUEUES[q]
        probed = [_yes(by_queue.loc[q, f]) if q in by_queue.index else "n/a"
                  for f in features.FEATURES]
        lines.append(_row([f"`{q}`", _yes(spec.thread_safe), _yes(spec.async_safe), spec.api,
                           *probed, _num(memory.get(q, math.nan), ".1f"), spec.description]))
    return lines


def measured_table(d: Decision) -> list[str]:
    """One context's candidates, in the rule's order."""
    head = ["queue", "throughput ops/s, median (99% CI)", "speed group", "groups per cell",
            "worst cell ops/s", "CPU µs per task", "idle burn, cores", "mean enqueue µs",
            "p99 enqueue µs", "violations / lost / duplicated / errors", "needed features",
            "set aside"]
    lines = [_row(head), _row(["---"] * len(head))]
    for _, r in d.table.iterrows():
        mark = " (chosen)" if r["chosen"] else ""
        lines.append(_row([
            f"`{r['queue']}`{mark}", _ci(r), str(int(r["speed_group"])), r["groups_by_cell"],
            f"{r['worst_throughput']:,.0f}", _num(r["cpu_us_per_task"], ".2f"),
            _num(r["idle_cores"], ".3f"), f"{r['enqueue_mean_us']:.2f}",
            f"{r['enqueue_p99_us']:.2f}",
            f"{r['violations']} / {r['lost']} / {r['duplicated']} / {r['errors']}",
            f"{r['features']} of {len(d.context.needs)}", r["set_aside"] or "no"]))
    return lines


def _context_block(d: Decision) -> list[str]:
    c = d.context
    if d.table.empty:
        return [f"### {c.name}", "", f"Not measured in this run (scenario `{c.scenario}`).", ""]
    first = d.table.iloc[0]
    reps = d.table["repetitions"]
    resolves = (f"differences of about {d.resolution - 1:.0%} or more in throughput"
                if d.resolution == d.resolution and d.resolution < math.inf
                else "no difference (too few repetitions)")
    lines = [f"### {c.name}", "",
             f"Scenario `{c.scenario}`; reference cell {int(first['tasks']):,} tasks, "
             f"{int(first['workers'])} worker(s), {int(reps.min())}-{int(reps.max())} "
             f"repetitions per queue. At that cell this run resolves {resolves} "
             f"(Mann-Whitney U at p < {significance.P_THRESHOLD:g} and at least "
             f"{significance.MIN_FACTOR - 1:.0%}, else non-overlapping intervals). Needs: "
             f"{decision.needs_text(c)}.", "", *measured_table(d), ""]
    lines += [f"- Note: {n}." for n in d.notes]
    return lines + ([""] if d.notes else [])


def costs_table(decisions: list[Decision]) -> list[str]:
    """What each eligible queue costs at the service's rates, from its worst measured cell."""
    rates = decision.SERVICE_RATES_PER_S
    head = ["context", "queue", *[f"CPU at {r:,}/s, % of a core" for r in rates],
            "added latency µs", f"% of a {decision.SERVICE_TIME_MS:g} ms service"]
    lines = [_row(head), _row(["---"] * len(head))]
    for d in decisions:
        for _, r in d.table.iterrows():
            if r["set_aside"] and "slow" not in decision._kind(r["set_aside"]):
                continue
            shares = [decision.costs_at(rate, r["cpu_us_per_task"], r["worst_throughput"])
                      for rate in rates]
            added = shares[-1][1]
            lines.append(_row([d.context.name, f"`{r['queue']}`",
                               *[_num(100 * s[0], ".3f") for s in shares], f"{added:,.1f}",
                               f"{100 * added / (decision.SERVICE_TIME_MS * 1e3):.2f}"]))
    return lines


def _verdict_line(d: Decision) -> str:
    name = d.context.name
    if d.table.empty:
        return f"- **{name}**: not measured in this run (scenario `{d.context.scenario}`)."
    if d.choice is None:
        return (f"- **{name}**: no measured queue passes every gate: "
                + "; ".join(f"`{r['queue']}` {r['set_aside']}" for _, r in d.table.iterrows())
                + ".")
    r = d.table[d.table["queue"] == d.choice].iloc[0]
    met = ", ".join(features.FEATURE_TITLES[f] for f in r["needs_met"]) or "none of them"
    tied = [q for q in d.tie_group if q != d.choice]
    tie = (f" Tied with {', '.join(f'`{q}`' for q in tied)} on every step before registry "
           "order." if tied else "")
    aside = [f"`{x['queue']}` ({x['set_aside']})" for _, x in d.table.iterrows()
             if x["set_aside"]]
    aside_text = f" Set aside: {'; '.join(aside)}." if aside else ""
    needs = (f"{r['features']} of {len(d.context.needs)} needed features ({met})"
             if d.context.needs else "needs no feature beyond put and get")
    idle = (f"; idle burn {_num(r['idle_cores'], '.3f')} cores" if d.context.workers_wait
            else "")
    return (f"- **{name}**: use `{d.choice}`: {needs}; {_ci(r)} ops/s at the reference cell, "
            f"speed group {int(r['speed_group'])}; {_num(r['cpu_us_per_task'], '.2f')} CPU µs "
            f"per task{idle}.{tie}{aside_text}")


def _headline(primary: Decision) -> str:
    """The one recommendation: the queue for the first context (the API server)."""
    if primary.choice is not None:
        return (f"**Use `{primary.choice}` as the request queue** of the scheduler "
                f"({primary.context.name}). Per context:")
    if primary.table.empty:
        return (f"**No recommendation**: scenario `{primary.context.scenario}` "
                f"({primary.context.name}) was not measured in this run. Per context:")
    return (f"**No measured queue passes every gate for the {primary.context.name}**; the "
            "request queue needs another candidate. Per context:")


def _spread(table: pd.DataFrame) -> tuple[float, str, str]:
    """Fastest / slowest median throughput of a candidates table, and the two queues."""
    ordered = table.sort_values("throughput_median", ascending=False)
    fast, slow = ordered.iloc[0], ordered.iloc[-1]
    return fast["throughput_median"] / slow["throughput_median"], fast["queue"], slow["queue"]


def loop_cost_finding(decisions: list[Decision]) -> list[str]:
    """How much the queue matters on an event loop: spread in `async` against `single`."""
    tables = {d.context.scenario: d.table for d in decisions}
    async_table, single_table = tables.get("async"), tables.get("single")
    if async_table is None or len(async_table) < 2 or single_table is None \
            or single_table.empty:
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
    group = dict(zip(async_table["queue"], async_table["speed_group"], strict=True))
    separated = ("speed groups " + f"{int(group[fast])} and {int(group[slow])}"
                 if group[fast] != group[slow] else "a tie the repetitions cannot separate")
    return [f"- On the event loop the async-safe queues span {in_async:.2f}x in median "
            f"throughput (`{fast}` to `{slow}` in `async`, {separated}), against "
            f"{in_single:.2f}x for the same queues in `single` (`{fast_single}` to "
            f"`{slow_single}`): {verdict}."]


def _service_line(decisions: list[Decision]) -> list[str]:
    """How far every eligible queue is from mattering at the service's rates."""
    worst = [(d.context.name, r) for d in decisions for _, r in d.table.iterrows()
             if not r["set_aside"]]
    if not worst:
        return []
    top = decision.SERVICE_RATES_PER_S[-1]
    cpu = max(decision.costs_at(top, r["cpu_us_per_task"], r["worst_throughput"])[0]
              for _, r in worst)
    added = max(decision.costs_at(top, r["cpu_us_per_task"], r["worst_throughput"])[1]
                for _, r in worst)
    if cpu != cpu:
        cpu_text = "CPU time was not measured"
    else:
        cpu_text = f"at most {cpu:.2%} of one core"
    return [f"- At {top:,} requests a second (ten times today's peak) every eligible queue "
            f"costs {cpu_text} and adds at most {added:,.0f} µs "
            f"({added / (decision.SERVICE_TIME_MS * 10):.2f}% of a "
            f"{decision.SERVICE_TIME_MS:g} ms inference): speed does not separate them at the "
            "service's rates, so the needed features decide."]


def _consequences(decisions: list[Decision], machine: dict,
                  processes: pd.DataFrame | None = None) -> list[str]:
    lines = _service_line(decisions)
    for d in decisions:
        if d.choice is not None:
            spec = QUEUES.get(d.choice)
            safe = ("thread-safe" if spec and spec.thread_safe else "not thread-safe") + \
                ", " + ("async-safe" if spec and spec.async_safe else "not async-safe")
            lines.append(f"- {d.context.name}: `{d.choice}` ({safe}).")
        elif not d.table.empty:
            lines.append(f"- {d.context.name}: no queue passed every gate on this machine.")
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
                 "`make run` and compare the decisions with `python -m pqlab adr --compare`, "
                 "and machines with notebook 05 (ratios to a baseline queue).")
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




# -- the quiet-machine check ---------------------------------------------------------------


def busy_cells(summary: pd.DataFrame) -> pd.DataFrame | None:
    """The units measured on a busy machine (``measure.quiet``); None if the run lacks the check."""
    if "busy" not in summary.columns:
        return None
    return quiet.busy_cells(summary)


def gated_scenarios() -> set[str]:
    """The scenarios the decision rule reads: each context's, and the ordering check."""
    return {c.scenario for c in CONTEXTS} | {CORRECTNESS_SCENARIO}


def decisive_busy(busy: pd.DataFrame) -> pd.DataFrame:
    """The busy units in a scenario the rule reads: the ones that could change a decision."""
    return busy[busy["scenario"].isin(gated_scenarios())]


def _unit_text(r: pd.Series) -> str:
    return (f"{r['queue']} [{r['scenario']}] {int(r['tasks']):,} tasks, "
            f"{int(r['producers'])} workers, rep {int(r['repetition'])}")


def check_quiet(summary: pd.DataFrame, run_id: str, allow_busy: bool) -> pd.DataFrame | None:
    """Refuse a run with a busy unit that could change a decision, unless ``allow_busy``.

    A sweep measures a busy unit again before it gives up (``study.sweep``),
    so a unit still busy here stayed busy. One in a scenario no gate reads
    (``gated_scenarios``) cannot change a decision: the record is written
    and names it. Returns the busy units (None: the run predates the check).
    """
    busy = busy_cells(summary)
    if busy is None or busy.empty or allow_busy:
        return busy
    decisive = decisive_busy(busy)
    if not decisive.empty:
        contexts = sorted({c.name for c in CONTEXTS if c.scenario in set(decisive["scenario"])})
        named = "; ".join(_unit_text(r) for _, r in decisive.head(3).iterrows())
        more = f" and {len(decisive) - 3} more" if len(decisive) > 3 else ""
        units = "1 unit" if len(decisive) == 1 else f"{len(decisive)} units"
        raise BusyRunError(
            f"run {run_id!r}: {units} stayed busy after being measured again and could change "
            f"the decision for {', '.join(contexts) or 'the ordering check'}: {named}{more} "
            f"({decisive.iloc[0]['why']}); rerun on a quiet machine or pass --allow-busy")
    return busy


def _quiet_lines(busy: pd.DataFrame | None, units: int, allow_busy: bool) -> list[str]:
    if busy is None:
        return ["Quiet-machine check: not recorded by this run (it predates the check)."]
    if busy.empty:
        return [f"Quiet-machine check: all {units:,} units ran on a quiet machine "
                f"({quiet.RULE_TEXT})."]
    cells = "; ".join(f"`{r['queue']}` [{r['scenario']}] {int(r['tasks']):,}×"
                      f"{int(r['producers'])} rep {int(r['repetition'])}: {r['why']}"
                      for _, r in busy.head(20).iterrows())
    more = f" (and {len(busy) - 20} more)" if len(busy) > 20 else ""
    if not allow_busy:  # check_quiet let it through: none can change a decision
        return [f"Quiet-machine check: {len(busy)} of {units:,} units stayed busy after being "
                f"measured again ({quiet.RULE_TEXT}), none in a scenario the rule reads "
                f"({', '.join(sorted(gated_scenarios()))}), so none can change a decision: "
                f"{cells}{more}."]
    return [f"**Warning: decided with `--allow-busy`.** {len(busy)} of {units:,} units were "
            f"measured on a busy machine ({quiet.RULE_TEXT}): {cells}{more}."]


def render(run: store.Run, decisions: list[Decision], figure_links: list[tuple[str, str]],
           reference: tuple[int, int], processes: pd.DataFrame | None = None,
           busy: pd.DataFrame | None = None, allow_busy: bool = False) -> str:
    """The ADR's Markdown text; ``processes``: ``across_processes`` of the run, if any."""
    machine, manifest, summary = run.machine(), run.manifest(), run.summary()
    table = decision_table(decisions)
    queues = sorted(set(table["queue"]) if not table.empty else set(),
                    key=lambda q: list(QUEUES).index(q) if q in QUEUES else len(QUEUES))
    dirty = " (uncommitted changes)" if machine.get("git_dirty") else ""
    rates = decision.SERVICE_RATES_PER_S
    command = f"python -m pqlab adr --run {run.run_id}" + (" --allow-busy" if allow_busy else "")
    out = [
        "# ADR 0001: The request queue of the model-serving scheduler",
        "",
        f"Status: proposed. Generated by `{command}` from run `{run.run_id}`; every number "
        "below is read from that run's frames or probed on the queues themselves.",
        "",
        "## Context",
        "",
        "The scheduler holds incoming inference requests in one priority queue: CRITICAL=1, "
        "HIGH=2, NORMAL=3, LOW=4, first in first out within a priority. The service runs "
        f"{rates[0]}-{rates[1]} requests a second today ({rates[2]:,} with growth), each "
        f"taking {decision.SERVICE_TIME_MS:g} ms to 1 s of inference. The queue must never "
        "serve a task out of order, lose it or serve it twice; its workers must sleep while "
        "they wait; it should offer what a scheduler needs (a timeout on a blocking get, "
        "shutdown, a get that survives a client's cancellation, bounded capacity). The POC's "
        f"criteria (more than {analysis.MIN_THROUGHPUT_OPS_S:,} operations per second, less "
        f"than {analysis.MAX_LATENCY_US:g} µs per operation) are shown for reference; they are "
        "thousands of times what the service needs.",
        "",
        "Contexts judged:",
        "",
        *[f"- **{c.name}** (scenario `{c.scenario}`): {c.description}. Needs: "
          f"{decision.needs_text(c)}." for c in CONTEXTS],
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
        *_quiet_lines(busy, len(summary), allow_busy),
        "",
        "## Options compared",
        "",
        "Features are probed on each queue (`pqlab.harness.features`): a get with a timeout that "
        "raises `Empty`, a `shutdown()` that wakes a blocked getter, an async get cancelled "
        "just after a put woke it that leaves the task queued, one object with both faces, "
        "and `maxsize=1` refusing a second put. Bytes per queued task: tracemalloc, median "
        "over the run.",
        "",
        *options_table(queues, run_features(run), summary),
        "",
        "## Measurements",
        "",
        f"Per context, at the reference cell (the measured task count nearest {reference[0]:,} "
        f"and worker count nearest {reference[1]}, producers = consumers): throughput median "
        "over repetitions with a distribution-free confidence interval of the median (its "
        "coverage in brackets when too few repetitions reach 99%). The speed group ranks the "
        "queues with a significance test: group 1 is the fastest queue and every queue the "
        f"test cannot separate from it (Mann-Whitney U, p < {significance.P_THRESHOLD:g}, and "
        f"a difference of at least {significance.MIN_FACTOR - 1:.0%}), group 2 the next, and "
        "so on; *groups per cell* gives the group in every measured cell (tasks×workers). "
        "*Worst cell* is the lowest median throughput over every measured cell, *CPU µs per "
        "task* the highest median (process CPU time over the untimed pass), *idle burn* the "
        "cores used by the context's consumers waiting 1 s on an empty queue. Correctness "
        "counts are summed over every run of the scenario and of `ordering`.",
        "",
        *[line for d in decisions for line in _context_block(d)],
        "## What the queue costs at the service's rates",
        "",
        "From each eligible queue's worst measured cell: CPU share of one core at each rate "
        "(rate × CPU µs per task) and the latency it adds to a request (its time per task at "
        "its measured throughput, one put and one get).",
        "",
        *costs_table(decisions),
        "",
        *load_findings(run.frame("load"), aging=run.frame("load-aging")),
        *saturation.findings(run.frame("overload")),
        *saturation.multi_node(run.frame("overload-redis"), run.frame("failover")),
        *endtoend.findings(run.frame(endtoend.FRAME)),
        "## Figures",
        "",
        *[f"![{title}]({link})" if i == 0 else f"- [{title}]({link})"
          for i, (title, link) in enumerate(figure_links)],
        "",
        "## Decision",
        "",
        f"The rule: {decision.RULE} Every measured cell counts: the gates read each queue's "
        "worst cell.",
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


def cost_frame(decisions: list[Decision]) -> pd.DataFrame:
    """Per context and queue: CPU µs per task and idle burn (the ``cpu-cost`` figure's input)."""
    table = decision_table(decisions)
    if table.empty:
        return pd.DataFrame(columns=["context", "queue", "cpu_us_per_task", "idle_cores"])
    return table[["context", "queue", "cpu_us_per_task", "idle_cores"]].copy()


def write_adr(run_id: str | None = None, paths: config.Paths | None = None, *,
              publish: bool = False, reference_tasks: int = DEFAULT_REFERENCE_TASKS,
              reference_workers: int = DEFAULT_REFERENCE_WORKERS,
              allow_busy: bool = False) -> Path:
    """Write the ADR for ``run_id`` (default: the latest run) into its run folder.

    The run's copy is ``data/<run-id>/adr.md``; with ``publish`` the record is
    also written to ``docs/adr/0001-request-queue.md``, the committed one. Each
    copy links the figures relative to its own folder. Returns the published
    file if ``publish``, else the run's copy. Also draws the decision overview
    and CPU cost figures into ``figures/<run-id>/``. Raises ``store.StoreError``
    for a run that is missing or holds no measurements, and ``BusyRunError``
    when the run was measured on a busy machine and ``allow_busy`` is false.
    """
    paths = paths or config.paths()
    run_id = run_id or store.latest_run(paths.data)
    run = store.Run.open(paths.data, run_id)
    summary = run.summary()
    if summary.empty:
        raise store.StoreError(f"run {run_id!r} has no measurements")
    busy = check_quiet(summary, run_id, allow_busy)
    reference = (reference_tasks, reference_workers)
    decisions = decide_run(run, reference)
    figures_dir = paths.figures_dir(run_id)
    plots.decision_overview(decision_table(decisions), out_dir=figures_dir)
    plots.cpu_cost(cost_frame(decisions), out_dir=figures_dir)
    processes = across_processes(summary, reference_tasks, reference_workers)
    destinations = [paths.run_adr_file(run_id)] + ([paths.adr_file] if publish else [])
    for path in destinations:
        text = render(run, decisions, figure_links(figures_dir, path.parent), reference,
                      processes, busy, allow_busy)
        store.write_text(path, text)
    return destinations[-1]


# -- comparing the decisions of two runs -------------------------------------------------


def find_run(where: str, paths: config.Paths | None = None) -> store.Run:
    """A run named by a run folder, an output folder holding one ``data/`` (its latest run),
    or a run id under the repository's ``data/``; ``StoreError`` says which was tried."""
    path = Path(where).expanduser()
    if (path / store.RUN_FILE).is_file():
        return store.Run.open(path.parent, path.name)
    if (path / "data").is_dir():
        return store.Run.open(path / "data", store.latest_run(path / "data"))
    data = (paths or config.paths()).data
    if path.is_dir():
        raise store.StoreError(f"{where} is neither a run folder nor an output folder with a "
                               "data/ folder of runs")
    if os.sep in where or where.startswith("."):
        raise store.StoreError(f"no run at {where}: give a run folder, a batch output folder "
                               f"or a run id in {data}")
    return store.Run.open(data, where)


@dataclass(frozen=True)
class DecisionDiff:
    """Two runs' decisions side by side: per context, and every statement that differs."""

    run_a: str
    run_b: str
    contexts: list[tuple[str, str, str, bool]]  # (context, decision A, decision B, agree)
    differing: list[tuple[str, str, str]]  # (subject, claim in A, claim in B)

    @property
    def same(self) -> bool:
        return all(agree for *_, agree in self.contexts)

    def lines(self) -> list[str]:
        out = [f"pqlab adr --compare: {self.run_a} vs {self.run_b}"]
        for name, a, b, agree in self.contexts:
            out.append(f"  {'same' if agree else 'DIFFERS'}: {name}: "
                       + (a if a == b else f"{a} vs {b}"))
        if self.differing:
            out.append(f"  {len(self.differing)} statement(s) differ:")
            out += [f"    {subject}: {a!r} vs {b!r}" for subject, a, b in self.differing]
        else:
            out.append("  every statement agrees")
        out.append("same decision in every context" if self.same
                   else "the decisions differ")
        return out


def _decision_text(d: Decision) -> str:
    if d.table.empty:
        return "not measured"
    tie = sorted(d.tie_group)
    return f"{d.choice or 'none'}" + (f" (tie group: {', '.join(tie)})" if len(tie) > 1 else "")


def compare_decisions(a: list[Decision], b: list[Decision], run_a: str = "A",
                      run_b: str = "B") -> DecisionDiff:
    """Whether two lists of decisions agree per context: the same queue, or the same tie group
    (the queues the rule cannot separate before registry order)."""
    contexts = []
    for da, db in zip(a, b, strict=True):
        agree = (da.choice == db.choice) or (
            bool(da.tie_group) and set(da.tie_group) == set(db.tie_group))
        contexts.append((da.context.name, _decision_text(da), _decision_text(db), agree))
    sa, sb = decision.statements(a), decision.statements(b)
    differing = [(k, sa.get(k, "absent"), sb.get(k, "absent"))
                 for k in dict.fromkeys([*sa, *sb]) if sa.get(k) != sb.get(k)]
    return DecisionDiff(run_a, run_b, contexts, differing)


def compare_runs(where_a: str, where_b: str, paths: config.Paths | None = None,
                 reference: tuple[int, int] = (DEFAULT_REFERENCE_TASKS,
                                               DEFAULT_REFERENCE_WORKERS)) -> DecisionDiff:
    """Decide from two stored runs and compare; ``StoreError`` when a run is missing or
    measured none of the contexts."""
    runs = [find_run(w, paths) for w in (where_a, where_b)]
    decided = []
    for run in runs:
        summary = run.summary()
        scenarios = set(summary["scenario"].astype(str)) if not summary.empty else set()
        if not scenarios & {c.scenario for c in CONTEXTS}:
            raise store.StoreError(
                f"run {run.run_id!r} measured none of the contexts' scenarios ("
                + ", ".join(c.scenario for c in CONTEXTS) + ")")
        decided.append(decide_run(run, reference))
    return compare_decisions(*decided, run_a=runs[0].run_id, run_b=runs[1].run_id)
