"""``python -m pqlab bench``: speed claims shown as ratios measured side by side in one run.

Each comparison times a subject and its peer on the same workload, in
interleaved repetitions (subject, peer, subject, peer, …) so that drift of
the machine hits both alike; the ratio is peer time / subject time (above 1:
the subject is faster), reported as the median with its min–max spread.
"""

from __future__ import annotations

import gc
import heapq
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from pqlab.queues import QUEUES
from pqlab.scenarios import SCENARIOS, Workers
from pqlab.task import Task, make_workload

DEFAULT_REPEATS = 7  # odd, so the median is one measured value; about 1 s at 10,000 tasks


@dataclass(frozen=True)
class Comparison:
    """A subject against its peer; each callable runs once and returns elapsed ns."""

    group: str
    label: str
    subject: Callable[[list[Task]], int]
    peer: Callable[[list[Task]], int]
    target: float  # minimal acceptable median ratio


@dataclass(frozen=True)
class Ratio:
    comparison: Comparison
    ratios: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.ratios)

    @property
    def met(self) -> bool:
        return self.median >= self.comparison.target


def bare_heapq_ns(tasks: list[Task]) -> int:
    """A bare heappush/heappop loop over the tasks: the floor for any heap adapter."""
    heap: list[Task] = []
    push, pop, n = heapq.heappush, heapq.heappop, len(tasks)
    start = time.perf_counter_ns()
    for task in tasks:
        push(heap, task)
    for _ in range(n):
        pop(heap)
    return time.perf_counter_ns() - start


def untimed_ns(queue: str, scenario: str, workers: Workers | None = None):
    """A runner for the scenario's untimed pass (the one pqlab's throughput comes from)."""

    def once(tasks: list[Task]) -> int:
        result = SCENARIOS[scenario].untimed(QUEUES[queue], tasks, workers or Workers())
        if result.errors:
            raise RuntimeError(f"{queue} in {scenario}: {result.errors[0]}")
        return result.wall_ns

    return once


COMPARISONS: list[Comparison] = [
    Comparison("adapter", "heapq through pqlab `single` vs a bare heappush/heappop loop",
               untimed_ns("heapq", "single"), bare_heapq_ns, 0.8),
]


def measure(comparison: Comparison, tasks: list[Task], repeats: int) -> Ratio:
    """Interleave subject and peer ``repeats`` times; ratios of peer time to subject time."""
    comparison.subject(tasks)  # warm-up: first-call costs hit neither side
    comparison.peer(tasks)
    ratios = []
    for _ in range(repeats):
        gc.collect()
        subject_ns = comparison.subject(tasks)
        gc.collect()
        peer_ns = comparison.peer(tasks)
        ratios.append(peer_ns / subject_ns)
    return Ratio(comparison, ratios)


def format_ratio(r: Ratio) -> str:
    verdict = "met" if r.met else "NOT met"
    return (f"  {r.comparison.label:<68} {r.median:6.2f}x ({min(r.ratios):.2f}-"
            f"{max(r.ratios):.2f})  target >= {r.comparison.target:g}x  {verdict}")


def run_bench(tasks: int, repeats: int, seed: int, groups: list[str] | None = None,
              out: Callable[[str], None] = print) -> list[Ratio]:
    """Measure every comparison (or those of ``groups``), printing one line each."""
    workload = make_workload(tasks, seed)
    out(f"pqlab bench: {tasks:,} tasks, seed {seed}, {repeats} interleaved repetitions; "
        "ratio = peer time / subject time, median (min-max)")
    results, group = [], None
    for comparison in COMPARISONS:
        if groups and comparison.group not in groups:
            continue
        if comparison.group != group:
            group = comparison.group
            out(f"\n{group}")
        results.append(measure(comparison, workload, repeats))
        out(format_ratio(results[-1]))
    return results
