"""Library bridge queues in the registry: ``janus.PriorityQueue`` and ``culsans.PriorityQueue``.

Both have a thread face and an asyncio face (``sync_q``, ``async_q``) over a
heap. Each is fed ``(priority, put order, task)`` entries, as their
documentation advises, so ties never compare tasks: the wrapping happens in
their own storage hooks (``_put``/``_get``, called under their lock), so a
put or get through either face costs no call beyond the library's own.

janus 2.x binds its event loop on first async use (on Python >= 3.10), so
these queues can be made in a plain thread, like pqlab's bridge.
"""

from __future__ import annotations

import itertools
from heapq import heappop, heappush
from typing import Any

import culsans
import janus


class JanusPriorityQueue(janus.PriorityQueue):
    """``janus.PriorityQueue`` holding ``(priority, put order, task)`` entries."""

    def _init(self, maxsize: int) -> None:
        super()._init(maxsize)
        self._order = itertools.count()

    def _put(self, item: Any) -> None:
        heappush(self._heap_queue, (item.priority, next(self._order), item))

    def _get(self) -> Any:
        return heappop(self._heap_queue)[2]


class CulsansPriorityQueue(culsans.PriorityQueue):
    """``culsans.PriorityQueue`` holding ``(priority, put order, task)`` entries."""

    def _init(self, maxsize: int) -> None:
        self._entries: list[tuple[int, int, Any]] = []
        self._order = itertools.count()

    def _qsize(self) -> int:
        return len(self._entries)

    def _put(self, item: Any) -> None:
        heappush(self._entries, (item.priority, next(self._order), item))

    def _get(self) -> Any:
        return heappop(self._entries)[2]

    def _peek(self) -> Any:
        return self._entries[0][2]

    def _clear(self) -> None:
        self._entries.clear()
