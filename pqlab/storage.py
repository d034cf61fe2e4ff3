"""Storage policies: the four hooks a queue class calls to hold its items.

A policy is a mixin of four methods, the shape of CPython's ``queue.Queue``
hooks; the queue base class (``syncqueue.SyncQueue``,
``asyncqueue.AsyncQueue``) owns locking and waiting and calls them with its
lock held (or on its event loop):

- ``_init(**options)``: create the empty storage;
- ``_qsize()``: how many items are held;
- ``_put(item)``: add one item; may raise ``ValueError`` for an item the
  policy cannot hold, before changing anything;
- ``_get()``: remove and return the next item; raises ``IndexError`` when
  empty (so a caller can try first and count never: see ``SyncQueue.get``).

Items are pqlab ``Task`` objects or anything with an integer ``priority``
(lower is served first); within a priority, items leave in the order they
were put. Payloads are never compared. A new policy (aging, say) is one more
mixin with the same four hooks.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable
from heapq import heappop, heappush
from typing import Any

from pqlab.task import PRIORITY_LEVELS


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
    """

    def _init(self, levels: Iterable[int] = PRIORITY_LEVELS) -> None:
        self.levels: tuple[int, ...] = tuple(sorted(set(levels)))
        if not self.levels:
            raise ValueError("a bucket queue needs at least one priority level")
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
