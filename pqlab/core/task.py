"""The Task model, its priorities and the seeded workloads that feed every scenario."""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from pqlab.core.checks import positive_int, priority_weights


class Priority(IntEnum):
    """Request priority: lower value is served first."""

    CRITICAL = 1  # SLA-bound, real-time
    HIGH = 2  # user-facing, interactive
    NORMAL = 3  # batch processing
    LOW = 4  # background tasks


PRIORITY_LEVELS: tuple[int, ...] = tuple(int(p) for p in Priority)

# Process-wide creation order: FIFO within a priority is decided by this
# counter, never by wall-clock timestamps (time.time() ties for hundreds of
# tasks created in one tick, and then "FIFO" is undefined).
_seq_counter = itertools.count()


def next_seq() -> int:
    """Return the next value of the process-wide monotonic task sequence."""
    return next(_seq_counter)


@dataclass(order=True, slots=True)
class Task:
    """One request. Ordered by ``(priority, seq)`` only; payloads are never compared."""

    priority: int
    seq: int
    timestamp: float = field(compare=False)
    task_id: str = field(compare=False)
    model_id: str = field(compare=False)
    payload: Any = field(compare=False, default=None)

    def __post_init__(self) -> None:
        # Every queue files a task by its priority: 1.5 or True would land on a level
        # (True == 1) or break a score. Any integer type (numpy's too), never a bool.
        p = self.priority
        if type(p) is bool or not hasattr(type(p), "__index__"):
            raise ValueError(f"priority must be an integer (CRITICAL=1 .. LOW=4, or another "
                             f"level of the queue), got {p!r}")

    @property
    def key(self) -> tuple[int, int]:
        """The ordering key, ``(priority, seq)``."""
        return (self.priority, self.seq)


MODEL_POOL: tuple[str, ...] = tuple(f"model-{i}" for i in range(5))


class Stop:
    """The payload of a stop sentinel: one object, kept identical across processes.

    It pickles by reference to ``pqlab.core.task.STOP``, so a sentinel that went
    through a manager process or a child process is still ``is STOP``.
    """

    __slots__ = ()

    def __reduce__(self) -> str:
        return "STOP"

    def __repr__(self) -> str:
        return "STOP"


STOP = Stop()  # payload of a stop sentinel


def stop_sentinels(count: int) -> list[Task]:
    """``count`` stop sentinels: priority LOW, newest sequence numbers, so a correct
    queue serves them after every real task."""
    level = max(PRIORITY_LEVELS)
    return [Task(level, next_seq(), 0.0, "stop", "", STOP) for _ in range(count)]


def make_task(priority: int, rng: random.Random, index: int,
              timestamp: float | None = None) -> Task:
    """Create one task with the next sequence number and a small payload."""
    return Task(
        priority=priority,
        seq=next_seq(),
        timestamp=time.time() if timestamp is None else timestamp,
        task_id=f"task-{index}",
        model_id=rng.choice(MODEL_POOL),
        payload={"input_size": rng.randint(1, 1024)},
    )


def make_workload(
    n: int, seed: int | None = None, weights: Sequence[float] | None = None
) -> list[Task]:
    """Create ``n`` tasks with a seeded priority mix (uniform unless ``weights`` is given).

    ``weights`` are relative frequencies of CRITICAL, HIGH, NORMAL, LOW. Tasks are
    created in order, so their ``seq`` values are consecutive.
    """
    positive_int("tasks", n)
    rng = random.Random(seed)
    mix = priority_weights(weights, "priority weights")
    priorities = rng.choices(PRIORITY_LEVELS, weights=mix, k=n)
    return [make_task(p, rng, i) for i, p in enumerate(priorities)]


def make_ordering_workload(n: int, seed: int | None = None) -> list[Task]:
    """Create ``n`` tasks built to expose ordering bugs.

    Runs of one priority arrive as one batch stamped with one wall-clock
    reading (they tie on timestamp, so only ``seq`` keeps them FIFO), and
    bursts of CRITICAL arrive right behind runs of LOW, so a queue that orders
    by arrival or by timestamp serves them late or compares payloads.
    """
    positive_int("tasks", n)
    rng = random.Random(seed)
    runs: list[tuple[int, int]] = []
    while sum(length for _, length in runs) < n:
        runs += [(int(Priority.LOW), rng.randint(8, 64)),
                 (int(Priority.CRITICAL), rng.randint(1, 16)),
                 (rng.choice(PRIORITY_LEVELS), rng.randint(8, 64))]
    tasks: list[Task] = []
    for priority, length in runs:
        stamp = time.time()
        tasks += [make_task(priority, rng, len(tasks) + i, stamp) for i in range(length)]
    return tasks[:n]
