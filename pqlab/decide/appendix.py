"""The decision record's appendix (``appendix.md`` beside the record): every detailed table.

The record (``pqlab.record.adr``) states the answer and the claims; this file
holds what they rest on, per context and per cell: the options and their
probed features, the measured candidates, the cost at the service's rates,
the open-loop, past-saturation, multi-node and end-to-end sections, and every
figure of the run. Every number is read from the run's frames.
"""

from __future__ import annotations

import math

import pandas as pd

from pqlab.decide import analysis, decision
from pqlab.decide.decision import Decision
from pqlab.harness import features
from pqlab.measure import significance
from pqlab.queues import QUEUES
from pqlab.study import config, store

DEFAULT_REFERENCE_TASKS = config.REFERENCE_TASKS
DEFAULT_REFERENCE_WORKERS = config.REFERENCE_WORKERS
PROCESS_SCENARIO = analysis.PROCESS_SCENARIO  # beyond one process: a consequence, not a context
APPENDIX_FILE = "appendix.md"


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
        "cell_runs": cell.groupby("queue", observed=True).size(),
        "problems": problems, "runs": df.groupby("queue", observed=True).size(),
    }).dropna(subset=["throughput_median"]).reset_index()
    table.insert(1, "tasks", tasks)
    table.insert(2, "workers", workers)
    table["queue"] = table["queue"].astype(str)
    return table.sort_values("throughput_median", ascending=False, ignore_index=True)


def processes_line(table: pd.DataFrame) -> list[str]:
    """The consequence for work that crosses processes, if the run measured it."""
    if table.empty:
        return []
    first = table.iloc[0]
    rates = ", ".join(f"`{r['queue']}` {r['throughput_median']:,.0f} ops/s "
                      f"({median_of(int(r['cell_runs']))})" for _, r in table.iterrows())
    best = first["throughput_median"]
    criterion = (f"{analysis.MIN_THROUGHPUT_OPS_S / best:.0f}x below the POC's throughput "
                 "criterion at best" if best <= analysis.MIN_THROUGHPUT_OPS_S
                 else "above the POC's throughput criterion")
    problems, runs = int(table["problems"].sum()), int(table["runs"].sum())
    return [f"- Across processes (scenario `{PROCESS_SCENARIO}`, notebook 06; "
            f"{first['tasks']:,} tasks, {first['workers']} producer and {first['workers']} "
            f"consumer processes): {rates}, {criterion}; {problems} violations, "
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
            "p99 enqueue µs", "p99 dequeue µs", "violations / lost / duplicated / errors",
            "needed features", "set aside"]
    lines = [_row(head), _row(["---"] * len(head))]
    for _, r in d.table.iterrows():
        mark = " (chosen)" if r["chosen"] else ""
        lines.append(_row([
            f"`{r['queue']}`{mark}", _ci(r), str(int(r["speed_group"])), r["groups_by_cell"],
            f"{r['worst_throughput']:,.0f}", _num(r["cpu_us_per_task"], ".2f"),
            _num(r["idle_cores"], ".3f"), f"{r['enqueue_mean_us']:.2f}",
            f"{r['enqueue_p99_us']:.2f}", _num(r.get("dequeue_p99_us", math.nan), ".2f"),
            f"{r['violations']} / {r['lost']} / {r['duplicated']} / {r['errors']}",
            f"{r['features']} of {len(d.context.needs)}", r["set_aside"] or "no"]))
    return lines


def median_of(n: int) -> str:
    """What a centre over ``n`` runs is: "one run" or "median of n runs"."""
    return "one run" if n == 1 else f"median of {n} runs"


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def _reps(reps: pd.Series) -> str:
    """Repetitions per queue: "5 repetitions", "3-5 repetitions", "one run"."""
    low, high = int(reps.min()), int(reps.max())
    if high == 1:
        return "one run"
    return f"{low}-{high} repetitions" if low != high else f"{low} repetitions"


def context_block(d: Decision) -> list[str]:
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
             f"{_count(int(first['workers']), 'worker')}, {_reps(reps)} per queue. At that "
             f"cell this run resolves {resolves} "
             f"(Mann-Whitney U at p < {significance.P_THRESHOLD:g} and at least "
             f"{significance.MIN_FACTOR - 1:.0%}, else non-overlapping intervals). Needs: "
             f"{decision.needs_text(c)}.", "", *measured_table(d), ""]
    lines += [f"- Note: {n}." for n in d.notes]
    return lines + ([""] if d.notes else [])


def costs_table(decisions: list[Decision]) -> list[str]:
    """What each eligible queue costs at the service's rates, from its worst measured cell."""
    rates = decision.SERVICE_RATES_PER_S
    head = ["context", "queue", *[f"CPU at {r:,}/s, % of a core" for r in rates],
            "2 / throughput, µs (computed, not a measured latency)",
            f"% of a {decision.SERVICE_TIME_MS:g} ms service"]
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




def _figure_list(links: list[tuple[str, str]]) -> list[str]:
    return ["## Every figure of the run", "",
            *[f"- [{title}]({link})" for title, link in links], ""]


def render(run: store.Run, decisions: list[Decision], figure_links: list[tuple[str, str]],
           reference: tuple[int, int], feats: pd.DataFrame,
           processes: pd.DataFrame | None = None, findings: list[str] | None = None) -> str:
    """The appendix's Markdown: the detailed tables the record links to; ``findings``: the
    studies' own detailed findings (``pqlab.record.adr.appendix_findings``)."""
    summary = run.summary()
    table = decision.decision_table(decisions)
    queues = sorted(set(table["queue"]) if not table.empty else set(),
                    key=lambda q: list(QUEUES).index(q) if q in QUEUES else len(QUEUES))
    out = [
        f"# Appendix to ADR 0001: every table of run `{run.run_id}`",
        "",
        "## Options compared",
        "",
        "Features are probed on each queue (`pqlab.harness.features`): a get with a timeout that "
        "raises `Empty`, a `shutdown()` that wakes a blocked getter, an async get cancelled "
        "just after a put woke it that leaves the task queued, one object with both faces, "
        "`maxsize=1` refusing a second put, a limit on one level refusing at once while "
        "another level admits, a request past its timeout skipped by get and reported, "
        "`cancel()` removing a queued request, and `counts()` per level. Bytes per queued "
        "task: tracemalloc, median over the run.",
        "",
        *options_table(queues, feats, summary),
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
        *[line for d in decisions for line in context_block(d)],
        "## What the queue costs at the service's rates",
        "",
        "From each eligible queue's worst measured cell: CPU share of one core at each rate "
        "(rate × CPU µs per task) and its time per task at its measured throughput (2 / "
        "throughput: one put and one get, computed, not a measured latency).",
        "",
        *costs_table(decisions),
        "",
        *loop_cost_finding(decisions),
        *processes_line(processes if processes is not None else pd.DataFrame()),
        "",
        *(findings or []),
        "## The rule",
        "",
        decision.RULE,
        "",
        *_figure_list(figure_links),
    ]
    return "\n".join(out)
