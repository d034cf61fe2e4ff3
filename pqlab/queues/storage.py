"""Storages: the four hooks a queue class calls to hold its items.

A storage is a mixin of four methods, the shape of CPython's ``queue.Queue``
hooks; the queue base class (``syncqueue.SyncQueue``,
``asyncqueue.AsyncQueue``) owns locking and waiting and calls them with its
lock held (or on its event loop):

- ``_init(**options)``: create the empty storage;
- ``_qsize()``: how many items are held;
- ``_put(item)``: add one item; may raise ``ValueError`` for an item the
  storage cannot hold, before changing anything;
- ``_get()``: remove and return the next item; raises ``IndexError`` when
  empty (so a caller can try first and count never: see ``SyncQueue.get``).

Bucket storages also have the hooks behind a bucket queue's ``cancel``,
``counts``, ``depths`` and ``drain_expired`` (``pqlab.queues.policystorage`` holds
the storage used under an active ``QueuePolicy``).

Items are pqlab ``Task`` objects or anything with an integer ``priority``
(lower is served first); within a priority, items leave in the order they
were put. Payloads are never compared. A new storage (aging, say) is one more
mixin with the same four hooks. "Policy" means one thing in pqlab: a
``QueuePolicy`` (``pqlab.queues.policy``), limits and timeouts per level.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Iterable
from heapq import heappop, heappush
from typing import Any

from pqlab.core.task import PRIORITY_LEVELS
from pqlab.queues.policy import PolicyError, QueuePolicy, check_policy, is_active


def active_policy_refused(cls_name: str) -> str:
    """Why ``cls_name`` refuses an active policy, and what takes one."""
    if cls_name in ("ThreadSafeBucketQueue", "AsyncBucketQueue", "BridgeBucketQueue"):
        return (f"{cls_name} takes no active policy (a limit or a timeout): make it with "
                f"pqlab.queues.create_queue({cls_name!r}, policy=...), which picks "
                f"Policy{cls_name}, or construct Policy{cls_name} itself")
    return (f"{cls_name} takes no active policy (a limit or a timeout): use "
            "ThreadSafeBucketQueue, AsyncBucketQueue or BridgeBucketQueue through "
            "pqlab.queues.create_queue(name, policy=...)")


class HeapStorage:
    """A binary heap of ``(priority, put order, item)`` entries: any integer priority.

    The put-order counter breaks ties, so two items are never compared (the
    heapq documentation's recipe): entries compare as two ints, in C.
    """

    def _init(self) -> None:
        self._heap: list[tuple[int, int, Any]] = []
        self._order = itertools.count()

    def _qsize(self) -> int:
        return len(self._heap)

    def _put(self, item: Any) -> None:
        heappush(self._heap, (item.priority, next(self._order), item))

    def _get(self) -> Any:
        return heappop(self._heap)[2]


class BucketStorage:
    """One FIFO ``deque`` per declared priority level: put and get are O(1), no comparisons.

    With four levels, ``_get`` looks at no more than four deques; ``_put`` is one
    dict lookup and one append. A priority outside ``levels`` raises ``ValueError``
    naming the allowed ones.

    ``policy`` may be None or a default ``QueuePolicy`` (unbounded, no
    timeouts: nothing to enforce, so ``on_expired`` is never called); it must
    name only levels the queue has (``PolicyError``). An active policy needs
    ``PolicyBucketStorage``, in the class's policed twin: ``PolicyError``
    names it and the registry's factory, which picks it.
    """

    def _init(self, levels: Iterable[int] = PRIORITY_LEVELS, policy: QueuePolicy | None = None,
              on_expired: Any = None, keep_expired: int = 0) -> None:
        self.levels: tuple[int, ...] = tuple(sorted(set(levels)))
        if not self.levels:
            raise ValueError("a bucket queue needs at least one priority level")
        check_policy(policy, self.levels)
        if is_active(policy):
            raise PolicyError(active_policy_refused(type(self).__name__))
        self.policy = policy
        self._buckets: tuple[deque, ...] = tuple(deque() for _ in self.levels)
        # priority -> that bucket's bound append: one dict lookup per put.
        self._appenders = {level: b.append
                           for level, b in zip(self.levels, self._buckets, strict=True)}

    def _qsize(self) -> int:
        return sum(map(len, self._buckets))

    def _put(self, item: Any) -> None:
        try:
            self._appenders[item.priority](item)
        except KeyError:
            raise ValueError(f"priority {item.priority!r} is not one of this queue's levels "
                             f"{', '.join(map(str, self.levels))}") from None

    def _get(self) -> Any:
        for bucket in self._buckets:
            if bucket:
                return bucket.popleft()
        raise IndexError("get from an empty queue")

    def _cancel(self, item: Any) -> bool:
        """Remove ``item`` (the object itself, not an equal one) if still queued.

        O(depth of its level): a Python scan by identity, since ``Task``'s
        ``==`` would compare every queued task in Python.
        """
        if getattr(item, "priority", None) not in self._appenders:
            return False
        bucket = self._buckets[self.levels.index(item.priority)]
        for i, queued in enumerate(bucket):
            if queued is item:
                del bucket[i]
                self._forget(1)
                return True
        return False

    def _counts(self) -> dict[int, dict[str, int]]:
        raise PolicyError("counts() needs an active policy (a limit or a timeout): without "
                          "one the queue keeps its unpoliced put and get, which count nothing")

    def _depths(self) -> dict[int, int]:
        return {level: len(b) for level, b in zip(self.levels, self._buckets, strict=True)}

    def _drain_expired(self) -> list:
        return []  # no timeouts, so nothing ever expires


class AgingBucketStorage:
    """Bucket storage with aging: a task's effective priority rises as it waits.

    A task put at level ``p`` that has waited ``w`` seconds competes at level
    ``p - floor(w / age_s)`` (never above the best declared level), so a LOW
    task that waited ``3 * age_s`` is served like a CRITICAL one: the
    starvation guard of a strict priority queue. Within a bucket the head is
    the oldest task, hence the most aged, so ``_get`` compares only the heads
    (at most one per level); equal effective levels go to the task put first.
    ``clock`` (seconds, monotonic) is injectable for tests. ``age_s`` must be
    a positive number; a priority outside ``levels`` raises ``ValueError``.
    """

    def _init(self, levels: Iterable[int] = PRIORITY_LEVELS, age_s: float = 0.1,
              clock: Any = None) -> None:
        if not (isinstance(age_s, (int, float)) and 0 < age_s < float("inf")):
            raise ValueError(f"age_s must be a positive number of seconds, got {age_s!r}")
        self.levels = tuple(sorted(set(levels)))
        if not self.levels:
            raise ValueError("a bucket queue needs at least one priority level")
        self.age_s = float(age_s)
        self._clock = clock or time.monotonic
        self._order = itertools.count()
        self._buckets: dict[int, deque] = {level: deque() for level in self.levels}

    def _qsize(self) -> int:
        return sum(map(len, self._buckets.values()))

    def _put(self, item: Any) -> None:
        try:
            bucket = self._buckets[item.priority]
        except KeyError:
            raise ValueError(f"priority {item.priority!r} is not one of this queue's levels "
                             f"{', '.join(map(str, self.levels))}") from None
        bucket.append((self._clock(), next(self._order), item))

    def effective_priority(self, level: int, put_at: float, now: float) -> int:
        """The level a task put at ``put_at`` with priority ``level`` competes at ``now``."""
        return max(self.levels[0], level - int((now - put_at) // self.age_s))

    def _get(self) -> Any:
        now, best, best_key = self._clock(), None, None
        for level, bucket in self._buckets.items():
            if bucket:
                put_at, order, _ = bucket[0]
                key = (self.effective_priority(level, put_at, now), order)
                if best_key is None or key < best_key:
                    best, best_key = bucket, key
        if best is None:
            raise IndexError("get from an empty queue")
        return best.popleft()[2]
