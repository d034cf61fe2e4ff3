"""The Task model, its priorities and the seeded workloads that feed every scenario."""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any


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

    @property
    def key(self) -> tuple[int, int]:
        """The ordering key, ``(priority, seq)``."""
        return (self.priority, self.seq)


MODEL_POOL: tuple[str, ...] = tuple(f"model-{i}" for i in range(5))


def _check_count(n: int) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or n <= 0:
        raise ValueError(f"tasks must be a positive integer, got {n!r}")


def _normalise_weights(weights: Sequence[float] | None) -> list[float]:
    if weights is None:
        return [1.0] * len(PRIORITY_LEVELS)
    weights = [float(w) for w in weights]
    if len(weights) != len(PRIORITY_LEVELS) or any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(
            f"priority weights must be {len(PRIORITY_LEVELS)} non-negative numbers "
            f"(CRITICAL, HIGH, NORMAL, LOW) with a positive sum, got {weights!r}"
        )
    return weights


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
    _check_count(n)
    rng = random.Random(seed)
    priorities = rng.choices(PRIORITY_LEVELS, weights=_normalise_weights(weights), k=n)
    return [make_task(p, rng, i) for i, p in enumerate(priorities)]


def make_ordering_workload(n: int, seed: int | None = None) -> list[Task]:
    """Create ``n`` tasks built to expose ordering bugs.

    Runs of one priority arrive as one batch stamped with one wall-clock
    reading (they tie on timestamp, so only ``seq`` keeps them FIFO), and
    bursts of CRITICAL arrive right behind runs of LOW, so a queue that orders
    by arrival or by timestamp serves them late or compares payloads.
    """
    _check_count(n)
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
