"""The decision record's own sections: the answer, the gates, Python 3.13, risks, revisiting.

``pqlab.record.adr`` assembles the record from these and from the claims of
``endtoend``, ``loadwait`` and ``saturation``; the detailed tables live in
``pqlab.decide.appendix``. Every number is read from the decisions or the
run's frames. What is reasoning rather than measurement (Python 3.13, a
stdlib wrapper) is labelled so where it is said.
"""

from __future__ import annotations

import math

import pandas as pd

from pqlab.decide import decision, loadwait
from pqlab.decide.decision import MODELMORA, MODELMORA_WHY, Decision
from pqlab.harness import features
from pqlab.measure import levels
from pqlab.queues import QUEUES

# Queues whose class is the standard library's: Python 3.13 adds shutdown() to both
# (queue.Queue.shutdown, asyncio.Queue.shutdown; CPython gh-96471).
STDLIB_313_SHUTDOWN = ("queue.PriorityQueue", "asyncio.PriorityQueue")


def primary(decisions: list[Decision]) -> Decision:
    """ModelMora's context's decision."""
    return next(d for d in decisions if d.context.name == MODELMORA)


def _choice_text(d: Decision) -> str:
    if d.table.empty:
        return f"not measured in this run (scenario `{d.context.scenario}`)"
    if d.choice is None:
        return "no measured queue passes every gate"
    other, why = decision.runner_up(d)
    if other and other in d.tie_group:
        return f"`{d.choice}` (a tie with `{other}`, broken by registry order)"
    return f"`{d.choice}`" + (f" (runner-up `{other}`: {why})" if other else "")


def answer(decisions: list[Decision], policy_label: str | None, policy_text: str,
           processes_line: str) -> list[str]:
    """The first screen: ModelMora's context and why, the queue and policy, the runner-up,
    one line per other context."""
    d = primary(decisions)
    lines = ["## Decision", "", f"ModelMora's context is the **{d.context.name}**: "
             f"{MODELMORA_WHY}.", ""]
    if d.choice is None:
        lines += [f"**No queue to use**: {_choice_text(d)} in this context.", ""]
    else:
        policy = (f" with the policy `{policy_label}`: {policy_text}; a full level answers "
                  "503 at once and an expired request 504" if policy_label
                  else " (no policy was sized in this run: notebook 08 did not run)")
        other, why = decision.runner_up(d)
        lines += [f"**Use `{d.choice}`{policy}.**", ""]
        if other:
            lines += [f"Runner-up: `{other}`; {why}." + (
                " It would be the pick if workers became threads (its sync face)."
                if other in QUEUES and QUEUES[other].api == "bridge" else ""), ""]
    lines += ["Other contexts:", ""]
    lines += [f"- {o.context.name}: {_choice_text(o)}." for o in decisions if o is not d]
    if processes_line:
        lines.append(f"- beyond one process: {processes_line}")
    return lines + [""]


def _feature_cell(row: pd.Series | None, feature: str) -> str:
    if row is None or feature not in row or row[feature] is None or (
            isinstance(row[feature], float) and math.isnan(row[feature])):
        return "n/a"
    return "yes" if bool(row[feature]) else "**no**"


def gates_table(d: Decision, feats: pd.DataFrame) -> list[str]:
    """The context's candidates against every gate: rows are the needed features, then
    the measured gates; the rule reads exactly these."""
    if d.table.empty:
        return []
    queues = list(d.table["queue"])
    by_queue = feats.set_index("queue") if not feats.empty else pd.DataFrame()
    rows = {q: by_queue.loc[q] if q in by_queue.index else None for q in queues}
    top = decision.SERVICE_RATES_PER_S[-1]
    marks = [f"`{q}`" + (" (chosen)" if q == d.choice else "") for q in queues]
    lines = [_row(["gate", *marks]), _row(["---"] * (len(queues) + 1))]
    for f in d.context.needs:
        lines.append(_row([features.FEATURE_TITLES[f], *[_feature_cell(rows[q], f)
                                                          for q in queues]]))
    table = d.table.set_index("queue")
    cpu = [decision.costs_at(top, table.loc[q, "cpu_us_per_task"],
                             table.loc[q, "worst_throughput"])[0] for q in queues]
    lines.append(_row([f"CPU at {top:,}/s, worst cell (gate {decision.MATERIAL_SHARE:.0%} "
                       "of a core)", *[_pct(c) for c in cpu]]))
    if d.context.workers_wait:
        lines.append(_row([f"idle burn, cores (gate {decision.IDLE_LIMIT_CORES:g})",
                           *[_num(table.loc[q, "idle_cores"], ".3f") for q in queues]]))
    lines.append(_row(["violations + lost + duplicated + errors, runs",
                       *[f"{_problems(table.loc[q])}, {int(table.loc[q, 'runs_checked'])}"
                         for q in queues]]))
    lines.append(_row([f"bytes per queued task (within {decision.MEMORY_FACTOR:g}x)",
                       *[_num(table.loc[q, "bytes_per_task"], ".1f") for q in queues]]))
    if "dequeue_p99_us" in table:
        first = d.table.iloc[0]
        lines.append(_row([f"p99 dequeue µs at {int(first['tasks']):,} tasks × "
                           f"{int(first['workers'])} (not a gate)",
                           *[_num(table.loc[q, "dequeue_p99_us"], ".1f") for q in queues]]))
    return lines


def dequeue_tail(d: Decision) -> list[str]:
    """The choice's dequeue p99 where it is the context's worst: said, with its scale."""
    if d.choice is None or "dequeue_p99_us" not in d.table:
        return []
    table = d.table.set_index("queue")["dequeue_p99_us"].dropna()
    if table.empty or table.idxmax() != d.choice:
        return []
    best = table.idxmin()
    reps = int(d.table.iloc[0]["repetitions"])
    return [f"- Not a gate: `{d.choice}` has this context's highest p99 dequeue latency, "
            f"{table[d.choice]:.0f} µs against `{best}`'s {table[best]:.0f} µs (median of "
            f"{reps} runs; a get's wait for work included), "
            f"{table[d.choice] / (10 * decision.SERVICE_TIME_MS):.1f}% of a "
            f"{decision.SERVICE_TIME_MS:g} ms inference."]


def _problems(r: pd.Series) -> int:
    return int(r["violations"] + r["lost"] + r["duplicated"] + r["errors"])


def _pct(x: float) -> str:
    return "n/a" if x != x else f"{x:.2%}"


def _num(x: float, fmt: str) -> str:
    return "n/a" if x is None or x != x else format(x, fmt)


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def gates_text(decisions: list[Decision]) -> list[str]:
    """What the gates do and do not separate, in ModelMora's context."""
    d = primary(decisions)
    if d.table.empty:
        return []
    top = decision.SERVICE_RATES_PER_S[-1]
    eligible = d.table[d.table["set_aside"] == ""]
    worst = max((decision.costs_at(top, r["cpu_us_per_task"], r["worst_throughput"])[0]
                 for _, r in eligible.iterrows()), default=math.nan)
    lines = []
    lacking = [(r["queue"], [features.FEATURE_TITLES[f] for f in d.context.needs
                             if f not in r["needs_met"]]) for _, r in d.table.iterrows()]
    lacking = [(q, m) for q, m in lacking if m]
    if lacking:
        lines.append("- Only pqlab's bucket queues have what a serving queue needs: "
                      + "; ".join(f"`{q}` lacks {', '.join(m)}" for q, m in lacking) + ".")
    lines += dequeue_tail(d)
    peak = decision.SERVICE_RATES_PER_S[-2]
    lines.append(f"- Speed does not separate them: at {top:,} requests a second, "
                 f"{top / peak:g} times the seed's peak of {peak:,}, every eligible queue here "
                 f"spends at most {_pct(worst)} of one core in its worst cell.")
    problems = sum(_problems(r) for d_ in decisions for _, r in d_.table.iterrows())
    runs = sum(int(r["runs_checked"]) for d_ in decisions for _, r in d_.table.iterrows())
    lines.append(f"- Correctness: {problems} violations, lost or duplicated tasks or errors "
                 f"over {runs:,} candidate runs (each context's scenario and `ordering`).")
    lines.append("- The rule, in order: set aside an incorrect queue, one whose idle workers "
                 "burn a core, one too slow for the service; then the most needed features, "
                 f"memory within {decision.MEMORY_FACTOR:g}x, registry order (in full in the "
                 "appendix).")
    return lines


def python_313(decisions: list[Decision], python_version: str) -> list[str]:
    """What Python 3.13 would change: reasoning from the CPython changelog, not measured."""
    d = primary(decisions)
    lines = ["## On Python 3.13 and later", "",
             f"*Reasoning from the CPython changelog, not a measurement: this run used Python "
             f"{python_version}.* Python 3.13 adds `shutdown()` to `queue.Queue` and "
             "`asyncio.Queue` (gh-96471) and fixes the lost wake-up of a cancelled "
             "`asyncio.Condition` waiter that janus meets (gh-112202)."]
    needs = len(d.context.needs)
    stdlib = [r for _, r in d.table.iterrows() if r["queue"] in STDLIB_313_SHUTDOWN]
    for r in stdlib:
        has = r["features"] + (0 if "shutdown" in r["needs_met"] else 1)
        lines[-1] += (f" `{r['queue']}` would then have {has} of the {needs} needed "
                      f"features, still lacking "
                      + ", ".join(features.FEATURE_TITLES[f] for f in features.SERVING
                                  if f in d.context.needs and f not in r["needs_met"])
                      + ", so the rule would still not pick it.")
    lines[-1] += (" A standard-library queue gets those features only from a wrapper: a "
                  "limit per level checked at `put`, a deadline checked at `get`, removal "
                  "from the heap on cancel (O(n) and a `heapify`, as in vLLM) and counters. "
                  "pqlab's bucket queues build that in; no such wrapper was measured here.")
    return lines + [""]


def risks(decisions: list[Decision], redis_summary: pd.DataFrame, drills: pd.DataFrame,
          machine: dict, endtoend_measured: bool) -> list[str]:
    """What is known broken or unproven, named and linked."""
    d = primary(decisions)
    out = ["## Risks and revisit conditions", ""]
    if d.choice is not None and d.choice in QUEUES and not QUEUES[d.choice].thread_safe:
        out.append(f"- `{d.choice}` is not thread-safe: a worker thread that touches it "
                   "breaks it silently. Threads that take requests need the bridge (the "
                   "last context above).")
    candidates = {q for d_ in decisions for q in d_.table.get("queue", [])}
    if "janus.PriorityQueue" in candidates:
        out.append("- janus on Python < 3.13 loses a wake-up when an async getter is "
                   "cancelled as it is woken (`tests/queues/test_registry_safety.py`, an "
                   "expected failure), "
                   "although the cancel-safe probe, a different race, passes.")
    if not redis_summary.empty and "redelivered" in redis_summary:
        runs = levels.runs(redis_summary)  # the frame has a row per run and priority
        times = int(runs["redelivered"].fillna(0).sum())
        out.append(f"- Across processes the Redis queue delivers at least once: a request "
                   f"whose lease lapses runs again ({times} redeliveries in "
                   f"{len(runs)} runs here; see README, Processes and Redis).")
    if not drills.empty:
        wide = drills.pivot_table(index=["scenario", "min_replicas", "run"], columns="metric",
                                  values="value", observed=True).reset_index()
        for m, part in wide.groupby("min_replicas"):
            if "lost" in part:
                drills_text = "1 drill" if len(part) == 1 else f"{len(part)} drills"
                out.append(f"- Losing the Redis primary with `min_replicas={int(m)}`: "
                           f"{int(part['lost'].sum()):,} acknowledged puts lost in "
                           f"{drills_text} (notebook 06).")
    elif not redis_summary.empty:
        out.append("- A Redis failover was not drilled in this run: acknowledged puts may be "
                   "lost with the primary unless writes wait for a replica (`min_replicas=1`).")
    if not endtoend_measured:
        out.append("- The end-to-end study is missing from this run: no claim rests on the "
                   "service itself.")
    out.append(f"- Every number comes from one machine ({machine.get('machine')}) and one "
               f"Python ({machine.get('python_version')}).")
    return out + [""]


def revisit(decisions: list[Decision], load: pd.DataFrame) -> list[str]:
    """Measurable conditions under which the decision should be made again."""
    top = decision.SERVICE_RATES_PER_S[-1]
    out = ["Revisit the decision when any of these holds:", "",
           f"- the request rate passes {top:,}/s, the top rate the gates were judged at;",
           f"- inference gets shorter than {decision.SERVICE_TIME_MS:g} ms, the service time "
           "the gates compare the queue's cost with;"]
    if not load.empty:
        crit = load[load["priority"].astype(str) == "CRITICAL"].sort_values("rho").iloc[-1]
        out.append(f"- production's utilisation passes ρ {crit['rho_measured']:.2f}, the "
                   "highest measured below saturation, or CRITICAL's p99 wait "
                   f"(`pqlab_queue_wait_seconds`) passes {loadwait.LOAD_TARGET_MS:g} ms;")
    out += ["- the service runs on Python 3.13 or later, or a free-threaded build (rerun "
            "`make run` there and compare with `python -m pqlab adr --compare`);",
            "- workers become threads (then the bridge context applies) or the queue must "
            "span processes or nodes (then Redis, with `min_replicas=1`)."]
    return out + [""]


def prose_words(markdown: str) -> int:
    """Words outside tables, code blocks and figure lines: the record's length budget."""
    words, in_code = 0, False
    for line in markdown.splitlines():
        if line.startswith("```"):
            in_code = not in_code
            continue
        if in_code or line.startswith("|") or line.startswith("!["):
            continue
        words += len(line.split())
    return words
