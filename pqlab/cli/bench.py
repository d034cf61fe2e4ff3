"""``python -m pqlab bench``: claims shown as ratios measured side by side in one run.

Each comparison measures a subject and its peer on the same workload, in
interleaved repetitions (subject, peer, subject, peer, …) so that drift of
the machine hits both alike. Both sides return a cost where lower is better
(elapsed time, bytes per queued task, event-loop lag); the ratio is peer
cost / subject cost (above 1: the subject is better), reported as the
median with the median's confidence interval (``significance.summarize``).
A target of 1 reads "no more than the peer's".
A comparison without a target is a reference measured beside the claims:
the ceiling of `threads` 5/5 runs ``queue.SimpleQueue`` (C, FIFO, no
priorities: the least work a thread-safe queue can do) through the scenario,
so the output shows the best ratio any queue could reach there against the
same peer; the cost of an active queue policy is another (``policy`` group:
what limits and timeouts on every level add per put+get, beside the claim
that a default policy adds nothing), and so is what Prometheus instrumentation
(``pqlab.queues.prometheus``) adds per put+get to each queue it wraps (``metrics``).
A claim may name such a reference as its ``ceiling``: its target is then
capped at ``CEILING_SHARE`` of the ceiling's ratio measured in the same run,
so that no claim fails because the machine made it unreachable.
Whether the repetitions separate subject and peer is decided by
``significance.compare`` on their costs; a claim to be ``target`` times
better (target > 1) is met when the median ratio reaches the (capped) target
and the test finds the subject better; a claim to be no worse than
``target`` times the peer (target <= 1) is met unless the test finds the
subject worse than that, so a difference the repetitions cannot resolve
is "not significant" and never fails it.
Time comes from the scenarios' untimed passes and loop lag from their timed
pass, so bench measures what ``run`` reports.
"""

from __future__ import annotations

import gc
import heapq
import queue as stdlib_queue
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from pqlab.core.task import Task, make_workload
from pqlab.harness.runner import measure_queue_memory
from pqlab.measure import significance
from pqlab.measure.records import UntimedPass
from pqlab.queues import QUEUES, QueueSpec, create_queue
from pqlab.queues.policy import LevelPolicy, QueuePolicy
from pqlab.queues.prometheus import instrument
from pqlab.scenarios import SCENARIOS, Workers, single_async_pass, untimed_of

# Odd, so the median is one measured value; 9 make the median's CI a 99% one (99.6%;
# 7 reach 98.4%) and let the U test reach p < 0.01 without complete separation
# (its smallest p is 0.00004; with 5 it is 0.0079). `python -m pqlab bench` took
# 65 s on the 2-core VM beside other jobs (load average 2.9).
DEFAULT_REPEATS = 9
# The fewest repetitions a side with which the U test can reach P_THRESHOLD at all.
MIN_REPEATS = next(n for n in range(2, 100)
                   if significance.min_p(n, n) < significance.P_THRESHOLD)
# A claim with a ceiling keeps the share of it that its target was set at: 3x where
# the ceiling is 4x or more (ceiling 2.9x: target 2.175x).
CEILING_SHARE = 0.75
# ... but never below this: a capped claim of "faster" still needs the subject faster.
MIN_CAPPED = 1.05


@dataclass(frozen=True)
class Comparison:
    """A subject against its peer; each callable runs once and returns its cost in ``unit``."""

    group: str
    label: str
    subject: Callable[[list[Task]], float]
    peer: Callable[[list[Task]], float]
    target: float | None  # minimal acceptable median ratio (peer / subject); None: reference
    unit: str = "ns"  # of the costs: "ns" elapsed, "ns/op" per put+get, "B/task", "µs" lag
    ceiling: str | None = None  # label of the reference that caps the target, measured first
    note: str = "reference: the ceiling of any queue here"  # what a reference line shows


@dataclass(frozen=True)
class Ratio:
    """The repetitions of one comparison, with the reference that caps its target if any."""

    comparison: Comparison
    ratios: list[float]
    subject_costs: list[float] = field(default_factory=list)
    peer_costs: list[float] = field(default_factory=list)
    ceiling: Ratio | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.ratios)

    @property
    def interval(self) -> significance.Summary:
        """The median ratio's distribution-free confidence interval."""
        return significance.summarize(self.ratios)

    @property
    def verdict(self) -> significance.Verdict:
        """Peer costs against subject costs: ``ratio`` above 1 means the subject is better."""
        return significance.compare(self.peer_costs, self.subject_costs)

    @property
    def target(self) -> float | None:
        """The target in effect: the claim's, capped at ``CEILING_SHARE`` of the ceiling.

        A claim that the subject is faster (target above 1) stays one: where a busy
        machine drags the ceiling itself down near 1, the cap stops at ``MIN_CAPPED``
        and the subject must still be significantly better than its peer.
        """
        target = self.comparison.target
        if target is None or self.ceiling is None:
            return target
        capped = min(target, CEILING_SHARE * self.ceiling.median)
        return max(capped, MIN_CAPPED) if target > 1 else capped

    @property
    def met(self) -> bool:
        """The claim holds (see the module's docstring); a reference never fails."""
        target = self.target
        if target is None:
            return True
        if target > 1:
            verdict = self.verdict
            return self.median >= target and verdict.different and verdict.ratio > 1
        # the peer's costs scaled to the target's: is the subject significantly costlier?
        short = significance.compare([p / target for p in self.peer_costs], self.subject_costs)
        return not (short.different and short.ratio < 1)


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


def _checked(queue: str, scenario: str, result: UntimedPass) -> int:
    if result.errors:
        raise RuntimeError(f"{queue} in {scenario}: {result.errors[0]}")
    return result.wall_ns


def untimed_ns(queue: str | QueueSpec, scenario: str, workers: Workers | None = None):
    """A runner for the scenario's untimed pass (the one pqlab's throughput comes from).

    ``queue`` is a registered name or a ``QueueSpec`` (``SIMPLE_QUEUE``, unregistered).
    """
    spec = queue if isinstance(queue, QueueSpec) else QUEUES[queue]

    def once(tasks: list[Task]) -> int:
        result = SCENARIOS[scenario].untimed(spec, tasks, workers or Workers())
        return _checked(spec.name, scenario, result)

    return once


# Not registered: it is FIFO, so it fails every ordering judgement; it only
# measures what a scenario costs when the queue itself costs almost nothing.
SIMPLE_QUEUE = QueueSpec("queue.SimpleQueue", stdlib_queue.SimpleQueue, thread_safe=True,
                         async_safe=False, description="C, FIFO, no priorities")


def async_face_single_ns(queue: str):
    """``single``'s untimed pass through the async face (``single`` drives a bridge's sync face)."""
    untimed = untimed_of(single_async_pass)

    def once(tasks: list[Task]) -> int:
        return _checked(queue, "single (async face)",
                        untimed(QUEUES[queue], tasks, Workers(1, 1)))

    return once


def _timed_records(queue: str, scenario: str, tasks: list[Task], workers: Workers):
    records = SCENARIOS[scenario].timed(QUEUES[queue], tasks, workers)
    errors = [e for r in records for e in r.errors]
    if errors:
        raise RuntimeError(f"{queue} in {scenario}: {errors[0]}")
    return records


# One `mixed` pass of 10,000 tasks lasts 30-100 ms: 30-100 lag samples, whose p99
# is about their maximum, and fewer for the faster queue. Pooling passes up to a
# fixed count of samples compares like with like (here the p99 ratio of one-pass
# runs spread 0.2-3.7x between repetitions).
LAG_SAMPLES = 300
LAG_MAX_PASSES = 12


def loop_lag_us(queue: str, scenario: str, percentile: float,
                workers: Workers | None = None):
    """A runner for a percentile of the event-loop lag (µs) in the scenario's timed passes.

    Pools ``series["loop_lag_ns"]`` of as many timed passes as it takes to have
    ``LAG_SAMPLES`` samples (at most ``LAG_MAX_PASSES``).
    """

    def once(tasks: list[Task]) -> float:
        lags: list[np.ndarray] = []
        for _ in range(LAG_MAX_PASSES):
            records = _timed_records(queue, scenario, tasks, workers or Workers())
            lags.append(records[-1].series["loop_lag_ns"])
            if sum(map(len, lags)) >= LAG_SAMPLES:
                break
        return float(np.percentile(np.concatenate(lags), percentile)) / 1e3

    return once


def bytes_per_task(queue: str):
    """A runner for the bytes a queue allocates per queued task (tracemalloc, as ``run``)."""

    def once(tasks: list[Task]) -> float:
        return measure_queue_memory(QUEUES[queue], tasks).bytes_per_task

    return once


def _versus(group: str, subject: str, peer: str, how: str, cost, target: float,
            unit: str = "ns") -> Comparison:
    return Comparison(group, f"{subject} vs {peer} {how}", cost(subject), cost(peer), target,
                      unit)


W55 = Workers(5, 5)
# Producers that never yield: then the time is the queue's, not the yield's
# (each yield hands the GIL to another thread: a context switch per put).
W55_NO_YIELD = Workers(5, 5, producer_yield=False)


def _in(scenario: str, workers: Workers | None = None):
    return lambda queue: untimed_ns(queue, scenario, workers)


def per_operation(cost: Callable[[list[Task]], float]) -> Callable[[list[Task]], float]:
    """A runner's cost per task: for a pass that puts and gets each task once, per put+get."""
    return lambda tasks: cost(tasks) / len(tasks)


def policy_queue(name: str, policy: QueuePolicy) -> QueueSpec:
    """An unregistered ``ThreadSafeBucketQueue`` made with ``policy`` (through the registry)."""
    return QueueSpec(name, lambda: create_queue("ThreadSafeBucketQueue", policy=policy),
                     thread_safe=True,
                     async_safe=False, description=f"ThreadSafeBucketQueue(policy={policy!r})")


# Limits and timeouts on every level that a bench pass never reaches (no task is
# rejected or expires: `single` would count that as an error), so the line measures
# the bookkeeping alone: the per-level checks, the deadline and the counters.
ACTIVE_POLICY = QueuePolicy(LevelPolicy(max_queue_size=10**9, default_timeout_s=3600.0))
DEFAULT_POLICY_QUEUE = policy_queue("ThreadSafeBucketQueue(policy=QueuePolicy())", QueuePolicy())
ACTIVE_POLICY_QUEUE = policy_queue("ThreadSafeBucketQueue(policy=limits and timeouts)",
                                   ACTIVE_POLICY)

def instrumented(queue: str | QueueSpec) -> QueueSpec:
    """An unregistered spec of ``queue`` whose every queue is instrumented for Prometheus.

    Each queue is exported into a registry of its own, which nothing serves and
    which goes with the queue: the line measures the recording alone.
    """
    spec = queue if isinstance(queue, QueueSpec) else QUEUES[queue]

    def factory():
        # Imported when first measured: prometheus_client adds 45 ms to an import of this
        # module, which every command pays (main builds bench's parser).
        from prometheus_client import CollectorRegistry


        return instrument(spec.factory(), name=spec.name, registry=CollectorRegistry())

    return replace(spec, name=f"{spec.name} (instrumented)", factory=factory)


def instrumentation_cost(queue: str | QueueSpec, scenario: str, label: str,
                         workers: Workers | None = None) -> Comparison:
    """A reference line: ``queue`` instrumented against bare, per put+get, in ``scenario``."""
    return Comparison("metrics", label,
                      per_operation(untimed_ns(instrumented(queue), scenario, workers)),
                      per_operation(untimed_ns(queue, scenario, workers)), None, "ns/op",
                      note="reference: what instrumentation adds per put+get")


# In `threads` 5/5 every producer yields after each put, and each yield is a thread
# switch that no queue removes: the C FIFO measures what is left for a queue to win.
THREADS_CEILING = "queue.SimpleQueue (C, FIFO) vs queue.PriorityQueue in `threads` 5/5"


COMPARISONS: list[Comparison] = [
    Comparison("adapter", "heapq through pqlab `single` vs a bare heappush/heappop loop",
               untimed_ns("heapq", "single"), bare_heapq_ns, 0.8),
    _versus("bucket", "BucketQueue", "heapq", "in `single`", _in("single"), 1.0),
    _versus("bucket", "ThreadSafeBucketQueue", "queue.PriorityQueue", "in `single`",
            _in("single"), 5.0),
    Comparison("bucket", THREADS_CEILING, untimed_ns(SIMPLE_QUEUE, "threads", W55),
               _in("threads", W55)("queue.PriorityQueue"), None),
    replace(_versus("bucket", "ThreadSafeBucketQueue", "queue.PriorityQueue", "in `threads` 5/5",
                    _in("threads", W55), 3.0), ceiling=THREADS_CEILING),
    _versus("bucket", "ThreadSafeBucketQueue", "queue.PriorityQueue",
            "in `threads` --no-yield", _in("threads", W55_NO_YIELD), 3.0),
    Comparison("policy", "ThreadSafeBucketQueue with a default policy vs without, `single`",
               per_operation(untimed_ns(DEFAULT_POLICY_QUEUE, "single")),
               per_operation(untimed_ns("ThreadSafeBucketQueue", "single")), 1.0, "ns/op"),
    Comparison("policy", "ThreadSafeBucketQueue with limits and timeouts vs without, `single`",
               per_operation(untimed_ns(ACTIVE_POLICY_QUEUE, "single")),
               per_operation(untimed_ns("ThreadSafeBucketQueue", "single")), None, "ns/op",
               note="reference: what an active policy costs per put+get"),
    _versus("async", "AsyncBucketQueue", "asyncio.PriorityQueue", "in `single`",
            _in("single"), 4.0),
    _versus("async", "AsyncBucketQueue", "asyncio.PriorityQueue", "in `async` 5/5",
            _in("async", W55), 1.0),
    _versus("bridge", "BridgeBucketQueue", "janus.PriorityQueue", "sync face alone",
            _in("single"), 2.0),
    _versus("bridge", "BridgeBucketQueue", "janus.PriorityQueue", "async face alone",
            async_face_single_ns, 2.0),
    _versus("bridge", "BridgeBucketQueue", "janus.PriorityQueue", "in `mixed` 5/5",
            _in("mixed", W55), 1.5),
    _versus("bridge", "BridgeBucketQueue", "janus.PriorityQueue", "loop lag p99, `mixed`",
            lambda q: loop_lag_us(q, "mixed", 99, W55), 1.0, "µs"),
    _versus("bridge", "BridgeBucketQueue", "janus.PriorityQueue", "loop lag p50, `mixed`",
            lambda q: loop_lag_us(q, "mixed", 50, W55), 1.0, "µs"),
    instrumentation_cost("ThreadSafeBucketQueue", "single",
                         "ThreadSafeBucketQueue instrumented vs bare, `single`"),
    instrumentation_cost(ACTIVE_POLICY_QUEUE, "single",
                         "ThreadSafeBucketQueue with a policy, instrumented vs bare, `single`"),
    instrumentation_cost("ThreadSafeBucketQueue", "threads",
                         "ThreadSafeBucketQueue instrumented vs bare, `threads` --no-yield",
                         W55_NO_YIELD),
    instrumentation_cost("AsyncBucketQueue", "single",
                         "AsyncBucketQueue instrumented vs bare, `single`"),
    instrumentation_cost("queue.PriorityQueue", "single",
                         "queue.PriorityQueue instrumented vs bare, `single`"),
    _versus("memory", "BucketQueue", "heapq", "bytes per queued task", bytes_per_task, 1.0,
            "B/task"),
    _versus("memory", "ThreadSafeBucketQueue", "queue.PriorityQueue", "bytes per queued task",
            bytes_per_task, 1.0, "B/task"),
    _versus("memory", "AsyncBucketQueue", "asyncio.PriorityQueue", "bytes per queued task",
            bytes_per_task, 1.0, "B/task"),
    _versus("memory", "BridgeBucketQueue", "janus.PriorityQueue", "bytes per queued task",
            bytes_per_task, 1.0, "B/task"),
]


def measure(comparison: Comparison, tasks: list[Task], repeats: int,
            ceiling: Ratio | None = None) -> Ratio:
    """Interleave subject and peer ``repeats`` times; ratios of peer cost to subject cost.

    ``ceiling`` is the measured reference the comparison names, if it names one.
    """
    comparison.subject(tasks)  # warm-up: first-call costs hit neither side
    comparison.peer(tasks)
    subject_costs, peer_costs = [], []
    for _ in range(repeats):
        gc.collect()
        subject_costs.append(comparison.subject(tasks))
        gc.collect()
        peer_costs.append(comparison.peer(tasks))
    ratios = [p / s for s, p in zip(subject_costs, peer_costs, strict=True)]
    return Ratio(comparison, ratios, subject_costs, peer_costs, ceiling)


def format_cost(value: float, unit: str) -> str:
    """One cost for the eye: ns as ms, bytes and µs as they are."""
    if unit == "ns":
        return f"{value / 1e6:.1f} ms"
    return f"{value:.1f} {unit}"


def format_significance(verdict: significance.Verdict) -> str:
    """What the test says, as pyperf says it: "not significant" where it cannot separate."""
    if verdict.method == "too few":
        return "too few repetitions"
    if verdict.different:
        return f"p={verdict.p:.2g}" if verdict.method == "mann-whitney" else "CIs apart"
    if verdict.p < significance.P_THRESHOLD:
        return f"within {significance.MIN_FACTOR - 1:.0%}"
    return "not significant"


def format_target(r: Ratio) -> str:
    """The target in effect, with the ceiling that set it, and met or NOT met."""
    if r.target is None:
        return r.comparison.note
    ceiling = f"ceiling {r.ceiling.median:.2f}x, " if r.ceiling is not None else ""
    return f"{ceiling}target >= {r.target:.4g}x  {'met' if r.met else 'NOT met'}"


def format_ratio(r: Ratio) -> str:
    """One line: the median ratio, its CI, the test's verdict, the target and the costs."""
    unit = r.comparison.unit
    costs = (f"  [{format_cost(statistics.median(r.subject_costs), unit)} vs "
             f"{format_cost(statistics.median(r.peer_costs), unit)}]" if r.subject_costs else "")
    ci = r.interval
    return (f"  {r.comparison.label:<68} {r.median:6.2f}x ({ci.ci_low:.2f}-{ci.ci_high:.2f})  "
            f"{format_significance(r.verdict)}  {format_target(r)}{costs}")


def run_bench(tasks: int, repeats: int, seed: int, groups: list[str] | None = None,
              out: Callable[[str], None] = print) -> list[Ratio]:
    """Measure every comparison (or those of ``groups``), printing one line each.

    A comparison's ceiling is measured before it (same group, earlier in ``COMPARISONS``).
    """
    workload = make_workload(tasks, seed)
    coverage = significance.summarize(range(repeats)).confidence  # set by the count alone
    out(f"pqlab bench: {tasks:,} tasks, seed {seed}, {repeats} interleaved repetitions; "
        "ratio = peer cost / subject cost (time, bytes or lag: above 1 the subject is "
        f"better), median ({coverage:.1%} CI); subject and peer differ where the "
        f"Mann-Whitney U test on their costs gives p < {significance.P_THRESHOLD:g} and "
        f"their medians are more than {significance.MIN_FACTOR - 1:.0%} apart")
    results: dict[str, Ratio] = {}
    group = None
    for comparison in COMPARISONS:
        if groups and comparison.group not in groups:
            continue
        if comparison.group != group:
            group = comparison.group
            out(f"\n{group}")
        ceiling = results[comparison.ceiling] if comparison.ceiling else None
        results[comparison.label] = measure(comparison, workload, repeats, ceiling)
        out(format_ratio(results[comparison.label]))
    return list(results.values())
