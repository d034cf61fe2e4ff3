"""``run()``: one queue through one scenario — timed pass, untimed pass, memory, checks."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import random
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any

import psutil

from pqlab.core.checks import positive_int
from pqlab.core.task import Task
from pqlab.measure import levels, metrics
from pqlab.measure.metrics import Memory, RunResult
from pqlab.measure.records import UntimedPass
from pqlab.measure.verify import verify
from pqlab.queues import QUEUES, QueueSpec, async_face, sync_face
from pqlab.scenarios import DEFAULT_DEADLINE_S, SCENARIOS, Scenario, Workers


def resolve(queue: str, scenario: str) -> tuple[QueueSpec, Scenario]:
    """Look up a queue and a scenario; ``ValueError`` names what is allowed."""
    if queue not in QUEUES:
        raise ValueError(f"unknown queue {queue!r}; allowed: {', '.join(QUEUES)}")
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; allowed: {', '.join(SCENARIOS)}")
    spec, sc = QUEUES[queue], SCENARIOS[scenario]
    if not sc.supports(spec):
        able = [name for name, s in QUEUES.items() if sc.supports(s)]
        raise ValueError(f"scenario {scenario!r} needs {sc.requirement}; {queue!r} is not one "
                         f"(queues that can: {', '.join(able)})")
    return spec, sc


def supported_pairs(queues=None, scenarios=None) -> list[tuple[str, str]]:
    """Every (queue, scenario) pair that can run, in registry order."""
    queues = list(QUEUES) if queues is None else queues
    scenarios = list(SCENARIOS) if scenarios is None else scenarios
    return [(q, s) for s in scenarios for q in queues if SCENARIOS[s].supports(QUEUES[q])]


def _traced() -> int:
    return tracemalloc.get_traced_memory()[0]


def _fill_sync(spec: QueueSpec, tasks: list[Task]):
    q = spec.factory()
    put = sync_face(spec, q).put
    before = _traced()
    for task in tasks:
        put(task)
    return _traced() - before, q


async def _fill_async(spec: QueueSpec, tasks: list[Task]):
    q = spec.factory()
    put = async_face(spec, q).put
    before = _traced()
    for task in tasks:
        await put(task)
    return _traced() - before, q


def measure_queue_memory(spec: QueueSpec, tasks: list[Task]) -> Memory:
    """Bytes the queue allocates per queued task, and process RSS with the queue full."""
    if spec.api == "sync":
        return metrics.measure_memory(lambda: _fill_sync(spec, tasks), len(tasks))
    return metrics.measure_memory(lambda: asyncio.run(_fill_async(spec, tasks)), len(tasks))


def measure_stored_memory(spec: QueueSpec, tasks: list[Task]) -> tuple[Memory, str]:
    """Memory of a process-safe queue, and how it was measured.

    Such a queue keeps its tasks in another process (a manager, a server), where
    tracemalloc cannot see them. A queue with ``stored_bytes()`` reports what that
    process holds for it; for any other, bytes per task is NaN, labelled so.
    """
    q = spec.factory()
    face = sync_face(spec, q)
    stored = getattr(face, "stored_bytes", None)
    rss = psutil.Process().memory_info().rss
    if stored is None:
        return Memory(math.nan, rss), "not measured: the tasks live in another process"
    before = stored()
    for task in tasks:
        face.put(task)
    return Memory((stored() - before) / len(tasks), rss), f"{type(face).__name__}.stored_bytes()"


_frozen_depth = 0  # how many frozen_heap blocks are open (sweeps run them in one thread)
_frozen_before = False  # whether the heap was frozen before the outermost block began


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """Move the objects alive now out of the collector's reach for the block.

    A process that has imported pandas and matplotlib (a notebook kernel, the
    CLI) holds so many objects that each of ``run``'s collections took ~35 ms
    here, half of a small run's time; frozen, a collection during the runs costs
    what it costs in a fresh process. Objects made inside the block are
    collected as usual.

    Blocks nest: an in-process sweep opens one around all its units and each
    unit one more. The inner block collects and freezes only what was made
    since the outer froze (the last unit's leftovers), ~1 ms instead of the
    ~45 ms a full collection of a kernel's heap takes; only the outermost block
    gives the objects back to the collector, and not if the heap was frozen
    before it began (a zygote's child, a test session): that freeze is its
    owner's to undo.
    """
    global _frozen_depth, _frozen_before
    if _frozen_depth == 0:
        _frozen_before = gc.get_freeze_count() > 0
    gc.collect()
    gc.freeze()
    _frozen_depth += 1
    try:
        yield
    finally:
        _frozen_depth -= 1
        if _frozen_depth == 0 and not _frozen_before:
            gc.unfreeze()


def run(
    queue: str,
    scenario: str = "single",
    *,
    tasks: int = 10_000,
    producers: int = 5,
    consumers: int = 5,
    seed: int | None = None,
    repetition: int = 0,
    deadline_s: float = DEFAULT_DEADLINE_S,
    memory: bool = True,
    producer_yield: bool = True,
    params: Any = None,
) -> RunResult:
    """Run ``queue`` through ``scenario`` and return every measured number.

    Three passes over the same seeded workload: a timed pass (four stamps per
    task, for latencies and the checks), an untimed pass (for throughput) and,
    unless ``memory`` is false, a tracemalloc pass. Worker counts are ignored
    where the scenario has none. ``producer_yield`` makes producers yield after
    each put (as a request handler returns to its loop), so producing and
    consuming overlap. Raises ``ValueError`` on bad arguments.

    ``params`` are the scenario's parameters, an instance of its
    ``Scenario.params_type`` (``LoadParams`` for ``load``: arrivals, service
    times, the priority mix); None gives its defaults, and a scenario that
    takes none refuses them. An open-loop scenario runs only its timed pass;
    its throughput and wall time come from that pass.

    ``cpu_us_per_task`` and ``cpu_cores`` are the CPU time (user + system) of
    the pass throughput comes from, per task and over its wall time. For
    ``processes`` it is the worker processes' CPU plus that of the queue's
    server if this process started it (the manager; a private redis-server),
    not a shared or remote server's; for ``load`` on worker processes, NaN.
    """
    spec, sc = resolve(queue, scenario)
    positive_int("tasks", tasks)
    params = sc.check_params(params)
    if sc.uses_workers:
        w = Workers(positive_int("producers", producers),
                    positive_int("consumers", consumers), deadline_s, producer_yield, params)
    else:
        w = Workers(1, 1, deadline_s, producer_yield, params)
    seed = random.randrange(2**32) if seed is None else seed
    workload = sc.make_workload(tasks, seed, params)
    gc.collect()
    cpu0 = time.process_time_ns()
    records = sc.timed(spec, workload, w)
    timed_cpu_ns = time.process_time_ns() - cpu0
    gc.collect()
    if sc.open_loop:
        # Its CPU is read around the whole pass (thread start-up: ms against a
        # pass of seconds); worker processes' CPU is not in this clock: NaN.
        cpu_ns = math.nan if records[-1].cpu_elsewhere else timed_cpu_ns
        untimed = UntimedPass(records[-1].wall_ns, len(records[-1].get_task), cpu_ns=cpu_ns)
        memory = False
    else:
        untimed = sc.untimed(spec, workload, w)
    gc.collect()
    verdicts = [verify(r) for r in records]
    main = records[-1]
    extra = {k: v for r in records for k, v in r.extra.items()}
    if not memory:
        mem = Memory(math.nan, 0)
    elif spec.process_safe:
        mem, extra["bytes_per_task_source"] = measure_stored_memory(spec, workload)
    else:
        mem = measure_queue_memory(spec, workload)
    if len(records) > 1:
        extra.update({f"violations_{r.label}": v.violations
                      for r, v in zip(records, verdicts, strict=True)})
    messages = [m for r in records for m in r.errors] + untimed.errors
    return RunResult(
        queue=queue, scenario=scenario, tasks=tasks, producers=w.producers,
        consumers=w.consumers, seed=seed, repetition=repetition,
        throughput_ops_s=metrics.throughput_ops_s(tasks, untimed.wall_ns),
        wall_s=untimed.wall_ns / 1e9,
        cpu_us_per_task=metrics.cpu_us_per_task(untimed.cpu_ns, tasks),
        cpu_cores=metrics.cpu_cores(untimed.cpu_ns, untimed.wall_ns),
        enqueue_us=metrics.latency_stats_us(metrics.enqueue_ns(main)),
        dequeue_us=metrics.latency_stats_us(metrics.dequeue_ns(main)),
        levels=levels.merge(metrics.wait_by_priority_us(main), *(r.levels for r in records)),
        violations=sum(v.violations for v in verdicts),
        lost=max(v.lost for v in verdicts),
        duplicated=max(v.duplicated for v in verdicts),
        errors=len(messages), error_messages=messages,
        overlap=metrics.overlap(main),
        bytes_per_task=mem.bytes_per_task, rss_bytes=mem.rss_bytes,
        timer_overhead_ns=metrics.timer_overhead_ns(),
        extra=extra, records=records,
    )
