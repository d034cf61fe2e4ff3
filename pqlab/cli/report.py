"""Console reports: the POC's layout (``poc``), the ``run`` table, the queue list.

Every number and every recommendation here comes from ``RunResult``s measured
in the same invocation, judged with the verdict bands of docs/design.md. Formatting
functions return lines; the commands print them.
"""

from __future__ import annotations

import csv
import importlib.metadata
import io
import json
import math
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import pandas as pd

from pqlab.cli.errors import UsageError
from pqlab.cli.loadreport import load_lines, load_options
from pqlab.core.task import Priority
from pqlab.decide import analysis, decision
from pqlab.harness import features, idleburn
from pqlab.harness.runner import frozen_heap, resolve, run, supported_pairs
from pqlab.measure import significance
from pqlab.measure.metrics import RunResult, timer_overhead_ns
from pqlab.queues import QUEUES
from pqlab.scenarios import SCENARIOS
from pqlab.scenarios.loadparams import choose_driver, overload_warning
from pqlab.study import frames

RULE = "=" * 78
THIN = "-" * 78
Out = Callable[[str], None]

# The verdict bands live in pqlab.decide.analysis (docs/design.md); the console adds a mark.
MARKS = {"Excellent": "✅", "Good": "✅", "Acceptable": "✅", "Moderate": "⚠️", "PASS": "✅",
         "CAUTION": "⚠️", "FAIL": "❌", "n/a": "?"}
TARGET_THROUGHPUT_OPS_S = analysis.MIN_THROUGHPUT_OPS_S
TARGET_LATENCY_US = analysis.MAX_LATENCY_US


def _marked(verdict: str) -> str:
    return f"{MARKS[verdict]} {verdict}"


def throughput_verdict(ops_s: float) -> str:
    return _marked(analysis.throughput_verdict(ops_s))


def latency_verdict(us: float) -> str:
    return _marked(analysis.latency_verdict(us))


def violations_verdict(violations: int) -> str:
    return _marked(analysis.violations_verdict(violations))


def label(r: RunResult) -> str:
    return f"{r.queue} [{r.scenario}]"


def _num(x: float, fmt: str = ",.0f") -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)


# -- per-run blocks -----------------------------------------------------------------------


def result_lines(r: RunResult) -> list[str]:
    """The POC's block for one finished run."""
    mark = "✅" if r.ok else "❌"
    e, d = r.enqueue_us, r.dequeue_us
    lines = [
        f"{mark} Complete: {label(r)}:",
        f"  Avg enqueue: {e['mean']:.2f}μs (p99: {e['p99']:.2f}μs, p99.9: {e['p99_9']:.2f}μs, "
        f"max: {e['max']:.1f}μs)",
        f"  Avg dequeue: {d['mean']:.2f}μs (p99: {d['p99']:.2f}μs, p99.9: {d['p99_9']:.2f}μs, "
        f"max: {d['max']:.1f}μs)",
        f"  Throughput: {_num(r.throughput_ops_s)} ops/sec (untimed pass, put+get per task)",
        f"  Memory: {_num(r.bytes_per_task, '.1f')} bytes per queued task (tracemalloc); "
        f"process RSS {r.rss_bytes / 2**20:.1f} MB (psutil)",
    ]
    if r.producers > 1 or r.consumers > 1 or r.scenario != "single":
        lines.append(f"  Workers: {r.producers} producers, {r.consumers} consumers; overlap: "
                     f"{r.overlap:.0%} of gets finished while producers were still putting")
    lines += [
        f"  Priority violations: {r.violations}/{r.tasks}"
        + "".join(f" ({k.removeprefix('violations_')}: {v})" for k, v in r.extra.items()
                  if k.startswith("violations_")),
        f"  Lost: {r.lost}  Duplicated: {r.duplicated}",
        f"  Errors: {r.errors}",
    ]
    lines += [f"    ! {m}" for m in r.error_messages]
    return lines


# -- comparison -----------------------------------------------------------------------------


def speed_groups(results: list[RunResult]) -> dict[tuple[str, str], int]:
    """Per (queue, scenario): its speed group within the scenario (1: tied with the fastest),
    by ``significance.tie_groups`` over the repetitions' throughput."""
    by_scenario: dict[str, dict[str, list[float]]] = {}
    for r in results:
        if r.throughput_ops_s == r.throughput_ops_s:
            by_scenario.setdefault(r.scenario, {}).setdefault(r.queue, []).append(
                r.throughput_ops_s)
    return {(q, scen): i for scen, samples in by_scenario.items()
            for i, group in enumerate(significance.tie_groups(samples), 1) for q in group}


def comparison_lines(results: list[RunResult]) -> list[str]:
    """The comparison block; ``results`` holds every repetition (the numbers shown are the
    median ones, the ranking is by speed group: a tie where the repetitions cannot separate)."""
    groups = speed_groups(results)
    reps = representatives(results)
    lines = ["", RULE, "COMPARISON: Priority Queue Implementations", RULE, "",
             "📊 Throughput Ranking per scenario by speed group (ops/sec, median repetition):",
             "   g1 is the fastest queue and every queue its repetitions cannot separate from it",
             "   (pqlab.measure.significance); queues in one group are tied", THIN]
    ranked = sorted(reps, key=lambda r: (r.scenario, groups.get((r.queue, r.scenario), 0),
                                         -r.throughput_ops_s if r.throughput_ops_s
                                         == r.throughput_ops_s else 0))
    for r in ranked:
        group = groups.get((r.queue, r.scenario))
        lines.append(f"{f'g{group}' if group else ' -':>4} {label(r):<46} "
                     f"{_num(r.throughput_ops_s):>12} ops/sec  "
                     f"{throughput_verdict(r.throughput_ops_s)}")
    lines += ["", "⚡ Latency Comparison (μs):", THIN,
              f"{'Queue [scenario]':<46}{'Enqueue':>8}{'Dequeue':>9}{'P99 Enq':>9}{'P99 Deq':>9}",
              THIN]
    for r in sorted(reps, key=lambda r: r.enqueue_us["mean"]):
        lines.append(f"{label(r):<46}{r.enqueue_us['mean']:8.2f}{r.dequeue_us['mean']:9.2f}"
                     f"{r.enqueue_us['p99']:9.2f}{r.dequeue_us['p99']:9.2f}")
    lines += ["", "🎯 Priority Order Correctness:", THIN]
    for r in reps:  # summed over the repetitions
        runs = [x for x in results if (x.queue, x.scenario) == (r.queue, r.scenario)]
        viol, lost, dup = (sum(getattr(x, k) for x in runs)
                           for k in ("violations", "lost", "duplicated"))
        correct = 100.0 * (1 - viol / sum(x.tasks for x in runs))
        lines.append(f"{violations_verdict(viol):<12} {label(r):<46} {correct:6.2f}% "
                     f"({viol} violations, {lost} lost, {dup} duplicated in {len(runs)} runs)")
    return lines


# -- recommendations ------------------------------------------------------------------------


def representatives(results: list[RunResult]) -> list[RunResult]:
    """Per (queue, scenario), the repetition with the median throughput (the lower of two)."""
    groups: dict[tuple[str, str], list[RunResult]] = {}
    for r in results:
        groups.setdefault((r.queue, r.scenario), []).append(r)
    out = []
    for runs in groups.values():
        ranked = sorted(runs, key=lambda r: r.throughput_ops_s
                        if r.throughput_ops_s == r.throughput_ops_s else -math.inf)
        out.append(ranked[(len(ranked) - 1) // 2])
    return out


def decide(results: list[RunResult], idle=None) -> list:
    """``pqlab.decide.decision.decide`` on these results (the same rule as the ADR)."""

    summary = frames.typed_summary(pd.DataFrame([r.to_dict() for r in results]))
    return decision.decide(summary, idle=idle, features=features.features_frame(),
                           reference=(max(r.tasks for r in results),
                                      max(r.producers for r in results)))


def recommendation_lines(decisions: list) -> list[str]:
    """Per context, the queue the decision rule chooses and why, from this run."""
    lines = ["", RULE, "RECOMMENDATIONS (from this run's measurements)", RULE, "",
             f"Rule (as in the ADR): {decision.RULE}"]
    n = 0
    for d in decisions:
        if d.table.empty:
            continue
        n += 1
        lines += ["", f"{n}. {d.context.name} (scenario `{d.context.scenario}`):"]
        if d.choice is None:
            lines.append("   ❌ no queue passes every gate")
        else:
            r = d.table[d.table["queue"] == d.choice].iloc[0]
            tied = [q for q in d.tie_group if q != d.choice]
            lines += [f"   ✅ Use: {d.choice}",
                      f"   Needs {decision.needs_text(d.context)}: has {r['features']} of "
                      f"{len(d.context.needs)}",
                      f"   Throughput: {_num(r['throughput_median'])} ops/sec median of "
                      f"{int(r['repetitions'])} ({_num(r['throughput_ci_low'])}-"
                      f"{_num(r['throughput_ci_high'])}), speed group {int(r['speed_group'])} "
                      f"of {int(r['groups_in_cell'])}"]
            if tied:
                lines.append(f"   Tied on every step but registry order: {', '.join(tied)}")
        for _, x in d.table.iterrows():
            if x["set_aside"]:
                lines.append(f"   Set aside: {x['queue']}: {x['set_aside']}")
    if n == 0:
        lines.append("No context was measured: no recommendation.")
    return lines


@dataclass(frozen=True)
class Criterion:
    text: str
    met: bool
    measured: str


def _pick(results: list[RunResult], queue: str | None) -> RunResult | None:
    """The median-throughput repetition of ``queue`` in ``async``."""
    return next((r for r in representatives(results)
                 if r.queue == queue and r.scenario == "async"), None)


def success_criteria(results: list[RunResult], choice: str | None) -> list[Criterion]:
    """The POC's success criteria, judged on the queue chosen for the async API server."""
    pick = _pick(results, choice)
    concurrent = [r for r in representatives(results) if SCENARIOS[r.scenario].uses_workers
                  and r.scenario not in ("single", "ordering")]
    claimed = [r for r in results if _claims(r)]
    if pick is None:
        return [Criterion("Clear recommendation for the async API server", False,
                          "no async-safe queue ran correctly in `async`")]
    # Queue overhead is judged where no get waits for work: the pick's `single` run.
    # In `async` a get that finds the queue empty counts its wait, which is idle time.
    own = next((r for r in representatives(results)
                if r.queue == pick.queue and r.scenario == "single"), pick)
    worst = max(own.enqueue_us["mean"], own.dequeue_us["mean"])
    return [
        Criterion(f"Throughput > {TARGET_THROUGHPUT_OPS_S:,} ops/sec", pick.throughput_ops_s >
                  TARGET_THROUGHPUT_OPS_S, f"{pick.queue}: {_num(pick.throughput_ops_s)} ops/sec"),
        Criterion(f"Avg latency < {TARGET_LATENCY_US:g}μs (enqueue and dequeue)",
                  worst < TARGET_LATENCY_US,
                  f"{pick.queue} [{own.scenario}]: {own.enqueue_us['mean']:.2f}μs enqueue, "
                  f"{own.dequeue_us['mean']:.2f}μs dequeue (in `async`: "
                  f"{pick.enqueue_us['mean']:.2f}μs / {pick.dequeue_us['mean']:.2f}μs, where a "
                  "get that finds the queue empty counts its wait)"),
        Criterion("100% priority order correctness (0 violations)",
                  all(r.violations == 0 for r in claimed),
                  f"{sum(r.violations for r in claimed)} violations over {len(claimed)} runs "
                  "of queues in scenarios they claim"),
        Criterion("Clear recommendation", True, f"{pick.queue} for the async API server"),
        Criterion("Concurrency safety shown (overlapping workers, nothing lost or duplicated)",
                  bool(concurrent) and all(r.overlap > 0 and r.lost == 0 and r.duplicated == 0
                                           for r in results if r.scenario in
                                           {c.scenario for c in concurrent} and _claims(r)),
                  ", ".join(f"{label(r)} overlap {r.overlap:.0%}" for r in concurrent)
                  or "no concurrent runs"),
    ]


def _claims(r: RunResult) -> bool:
    return r.scenario in SCENARIOS and r.queue in QUEUES and SCENARIOS[r.scenario].supports(
        QUEUES[r.queue])


def decision_lines(results: list[RunResult], choice: str | None) -> list[str]:
    """The POC's decision block for ``choice``, the queue chosen for the async API server."""
    lines = ["", RULE, "ARCHITECTURE DECISION", RULE, ""]
    pick = _pick(results, choice)
    if pick is None:
        return lines + ["No async-safe queue ran correctly: no decision from this run."]
    tasks_s = pick.throughput_ops_s / 2
    lines += ["For the request queue of the async API server (FastAPI):",
              f"  ✅ Use {pick.queue}",
              f"  ✅ Priority levels: {', '.join(p.name for p in Priority)}",
              "  ✅ FIFO within a priority (a monotonic sequence number, not timestamps)",
              "", "Expected performance (this machine, this run):",
              f"  • {_num(tasks_s)} requests/sec through the queue (one put + one get each)",
              f"  • Queue latency: {pick.enqueue_us['mean']:.2f}μs enqueue, "
              f"p99 {pick.enqueue_us['p99']:.2f}μs",
              f"  • {'Well within' if pick.enqueue_us['p99'] < 50_000 else 'Above'} "
              "the <50ms queueing target", "", "Success criteria:"]
    for c in success_criteria(results, choice):
        lines.append(f"  {'✅ met' if c.met else '❌ NOT met'}: {c.text} — {c.measured}")
    return lines


# -- the poc command ------------------------------------------------------------------------


DEPENDENCIES = ("numpy", "pandas", "psutil", "matplotlib", "seaborn", "papermill")


def dependency_lines() -> list[str]:
    lines = ["Dependency Check:"]
    for name in DEPENDENCIES:
        try:
            lines.append(f"  {name}: ✅ {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            lines.append(f"  {name}: ❌ not installed")
    return lines


def poc_pairs() -> list[tuple[str, str]]:
    """In-process queues in the POC's scenarios; process-safe queues have `processes`."""
    return supported_pairs(queues=[q for q, spec in QUEUES.items() if not spec.process_safe],
                           scenarios=[s for s, sc in SCENARIOS.items() if sc.in_poc])


def poc_command(args) -> int:
    """Run every queue through every POC scenario it supports and print the POC report."""
    out: Out = print
    results = []

    out(RULE)
    out("pqlab: Priority Queue Implementation Comparison")
    out(RULE)
    out("")
    for line in dependency_lines():
        out(line)
    out("")
    out("Configuration:")
    out(f"  Test tasks: {args.tasks:,}")
    out(f"  Priority levels: {len(Priority)} ({', '.join(p.name for p in Priority)})")
    out(f"  Workers (concurrent tests): {args.producers} producers, {args.consumers} consumers"
        f"{'' if args.producer_yield else ', producers do not yield'}")
    out(f"  Seed: {args.seed if args.seed is not None else 'random per run (shown below)'}")
    out(f"  Timer overhead: {timer_overhead_ns():.0f} ns per perf_counter_ns pair "
        "(inside every per-op latency; throughput is timed without it)")
    pairs = poc_pairs()
    out(f"  Queues: {', '.join(dict.fromkeys(q for q, _ in pairs))} (process-safe queues: "
        "`run --scenarios processes`)")
    out("")
    out(RULE)
    out("RUNNING BENCHMARKS")
    out(RULE)
    scenario = None
    for n, (queue, scen) in enumerate(pairs, 1):
        if scen != scenario:
            scenario = scen
            out(f"\n🔬 Test: {scen} — {SCENARIOS[scen].description}")
        out(f"\n{RULE}\nTEST {n}: {queue} [{scen}]\n{RULE}")
        out(f"Running {args.tasks:,} tasks, {args.repeat} repetitions (timed pass, untimed "
            "pass, memory pass each)...")
        with frozen_heap():
            mine = [run(queue, scen, tasks=args.tasks, producers=args.producers,
                        consumers=args.consumers, seed=args.seed, repetition=rep,
                        deadline_s=args.deadline, producer_yield=args.producer_yield)
                    for rep in range(args.repeat)]
        results += mine
        for line in result_lines(representatives(mine)[0]):
            out(line)
        if args.repeat > 1:
            rates = sorted(r.throughput_ops_s for r in mine)
            out(f"  Repetitions: {args.repeat}, throughput {_num(rates[0])}-{_num(rates[-1])} "
                "ops/sec (the block above is the median one)")
    out(f"\nIdle burn: {args.consumers} consumers waiting "
        f"{args.idle_seconds:g} s on an empty queue, per queue and context...")
    idle = idleburn.idle_frame(
        dict.fromkeys(q for q, _ in pairs), [s for s in idleburn.CONTEXTS
                                             if any(s == sc for _, sc in pairs)],
        consumers=args.consumers, seconds=args.idle_seconds,
        progress=lambda q, sc, cores: out(f"  {q} [{sc}]: {cores:.3f} cores"))
    decisions = decide(results, idle)
    choice = next((d.choice for d in decisions if d.context.scenario == "async"), None)
    lines = [*comparison_lines(results), *recommendation_lines(decisions),
             *decision_lines(results, choice)]
    for line in lines:
        out(line)
    return 0


# -- the run command ------------------------------------------------------------------------


def _us(x: float) -> str:
    """A latency cell of at most 7 characters, so columns never run together.

    Below 1,000 µs two decimals; then whole µs with thousands separators
    (a load run's dequeue includes the wait: tens of thousands); from a
    second on, seconds.
    """
    if x != x:
        return "n/a"
    if abs(x) < 1_000:
        return f"{x:.2f}"
    if abs(x) < 1_000_000:
        return f"{x:,.0f}"
    return f"{x / 1e6:,.1f}s"


def table_lines(results: Iterable[RunResult]) -> list[str]:
    head = (f"{'queue':<24}{'scenario':<10}{'tasks':>8}{'P/C':>6}{'ops/s':>11}{'enq µs':>8}"
            f"{'p99':>8}{'deq µs':>8}{'p99':>9}{'ovl':>5}{'viol':>6}{'lost':>6}{'dup':>5}"
            f"{'err':>4}")
    lines = [head, "-" * len(head)]
    for r in results:
        lines.append(
            f"{r.queue:<24}{r.scenario:<10}{r.tasks:>8}{f'{r.producers}/{r.consumers}':>6}"
            f"{_num(r.throughput_ops_s):>11}{_us(r.enqueue_us['mean']):>8}"
            f"{_us(r.enqueue_us['p99']):>8}{_us(r.dequeue_us['mean']):>8}"
            f"{_us(r.dequeue_us['p99']):>9}{r.overlap:5.0%}"
            f"{r.violations:6d}{r.lost:6d}{r.duplicated:5d}{r.errors:4d}")
        lines += [f"    ! {m}" for m in r.error_messages]
    return lines


def csv_text(records: list[dict]) -> str:
    fields: list[str] = []
    for rec in records:
        fields += [k for k in rec if k not in fields]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    for rec in records:
        writer.writerow({k: json.dumps(v) if isinstance(v, list | dict) else v
                         for k, v in rec.items()})
    return buf.getvalue()


def _check_selection(args, pairs: list[tuple[str, str]]) -> None:
    """A named queue with no named scenario it can do (or the reverse) is a usage error."""
    for q in args.queues or []:
        if not any(pq == q for pq, _ in pairs):
            scenario = (args.scenarios or list(SCENARIOS))[0]
            try:
                resolve(q, scenario)
            except ValueError as exc:
                raise UsageError(f"pqlab run: {exc}") from None
    for s in args.scenarios or []:
        if not any(ps == s for _, ps in pairs):
            try:
                resolve((args.queues or list(QUEUES))[0], s)
            except ValueError as exc:
                raise UsageError(f"pqlab run: {exc}") from None
    wanted = {(q, s) for q in args.queues or [] for s in args.scenarios or []}
    for q, s in sorted(wanted - set(pairs)):
        print(f"skipping {q} [{s}]: {SCENARIOS[s].requirement} needed", file=sys.stderr)


def _drivable(args, pairs: list[tuple[str, str]], load) -> list[tuple[str, str]]:
    """The pairs without those whose open-loop scenario cannot run on ``load`` (its driver,
    policy and patience: ``choose_driver``).

    A queue named in ``--queues`` that cannot is a usage error; others are
    skipped with a note on stderr.
    """
    kept = []
    for q, s in pairs:
        if SCENARIOS[s].open_loop:
            try:
                choose_driver(QUEUES[q], load.driver, load)
            except ValueError as exc:
                if args.queues:
                    raise UsageError(f"pqlab run: {exc}") from None
                print(f"skipping {q} [{s}]: {exc}", file=sys.stderr)
                continue
        kept.append((q, s))
    return kept


def run_command(args) -> int:
    """``python -m pqlab run``: the chosen pairs, repeated, in the chosen format."""
    queues = args.queues or list(QUEUES)
    scenarios = args.scenarios or [s for s, sc in SCENARIOS.items() if not sc.open_loop]
    pairs = supported_pairs(queues, scenarios)
    _check_selection(args, pairs)
    load, load_tasks = load_options(args)
    pairs = _drivable(args, pairs, load)
    if any(SCENARIOS[s].open_loop for _, s in pairs) and overload_warning(load, args.consumers):
        print(f"pqlab run: warning: {overload_warning(load, args.consumers)}", file=sys.stderr)
    results = []
    total = len(pairs) * args.repeat
    for i, (queue, scen) in enumerate((p for p in pairs for _ in range(args.repeat)), 1):
        tasks = load_tasks if SCENARIOS[scen].open_loop else args.tasks
        print(f"[{i}/{total}] {queue} [{scen}] {tasks:,} tasks", file=sys.stderr, flush=True)
        with frozen_heap():
            results.append(run(queue, scen, tasks=tasks, producers=args.producers,
                               consumers=args.consumers, seed=args.seed,
                               repetition=(i - 1) % args.repeat, deadline_s=args.deadline,
                               producer_yield=args.producer_yield,
                               params=load if SCENARIOS[scen].params_type else None))
    if args.format == "json":
        print(json.dumps([r.to_dict() for r in results], indent=1))
    elif args.format == "csv":
        print(csv_text([r.to_dict() for r in results]), end="")
    else:
        print("\n".join(table_lines(results)))
        for r in (r for r in results if SCENARIOS[r.scenario].open_loop):
            print("\n" + "\n".join(load_lines(r)))
    return 0 if all(r.errors == 0 for r in results) else 1


def queues_lines() -> list[str]:
    """The registry: capabilities and the scenarios each queue can run."""
    lines = [f"{'queue':<26}{'api':<7}{'thread':<8}{'async':<7}{'process':<9}scenarios"]
    for name, spec in QUEUES.items():
        able = [s for s, sc in SCENARIOS.items() if sc.supports(spec)]
        lines.append(f"{name:<26}{spec.api:<7}{'yes' if spec.thread_safe else 'no':<8}"
                     f"{'yes' if spec.async_safe else 'no':<7}"
                     f"{'yes' if spec.process_safe else 'no':<9}{', '.join(able)}")
    return lines
