"""Bucket storage under an active ``QueuePolicy``: limits, timeouts, cancel and outcome counts.

``PolicyBucketStorage`` has the four hooks of ``pqlab.queues.storage`` plus the
policy's (``_cancel``, ``_counts``, ``_depths``, ``_drain_expired``,
``_drop_all``), all run with the queue's lock held (on an asyncio-only queue:
on its event loop). It is used only when a policy is active: each bucket
queue class has a policed twin with this storage (``ThreadSafeBucketQueue``
and ``PolicyThreadSafeBucketQueue``, say), which the registry's
``PolicyFactory`` picks for an active policy; the plain class keeps
``BucketStorage``, so the default costs nothing.

Per level it keeps Triton's ``PolicyQueue`` shape: a deque of live requests
and, where the level has timeouts, a parallel deque of their deadlines
(monotonic seconds), a deque of delayed requests (``DELAY``), and five
counters. Expiry is found lazily at the heads: a get looks at the head of
the first non-empty level only, and calls the clock only if that level has
timeouts, so a get costs no scan. A request with a shorter timeout behind a
longer one is found once it reaches the head, before any getter can take
it; a put to a full ``REJECT`` level drops every expired request of that
level first (the Redis queue's rule too), and ``drain_expired`` scans every
``REJECT`` level (Triton's ``RejectTimeoutRequests``).

Retention: an item expired under ``REJECT`` goes to ``on_expired`` once (when
given) and is kept for ``drain_expired`` only if there is no ``on_expired``,
and then at most the newest ``keep_expired`` (``KEEP_EXPIRED``) of them: a
queue nobody drains holds a bounded list, never every expiry since it was
made. ``counts()`` counts every expiry either way.

The queue class supplies ``_forget(n)``: n items left without a get, so
``join`` does not wait for them, and ``_room_made()``: wake a putter waiting
for room, which an expiry found by a get or a put makes.
"""

from __future__ import annotations

import math
import sys
import time
import types
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from pqlab.core.task import PRIORITY_LEVELS
from pqlab.queues.policy import (
    OUTCOMES,
    PolicyError,
    QueuePolicy,
    Rejected,
    TimeoutAction,
    check_policy,
    check_request_timeout,
    is_active,
)

NO_DEADLINE = math.inf
# Expired items kept for drain_expired (without on_expired): 10,000 Task references are
# ~80 KB of list plus the tasks; a caller that wants them all drains more often than that.
KEEP_EXPIRED = 10_000


class Timed:
    """An item with its own timeout, as a policy face's put hands it to ``_put``."""

    __slots__ = ("item", "timeout_s")

    def __init__(self, item: Any, timeout_s: float) -> None:
        self.item = item
        self.timeout_s = timeout_s


class LevelState:
    """One level's requests and counters under its ``LevelPolicy``."""

    __slots__ = ("level", "policy", "live", "deadlines", "delayed", "timed", "rejects",
                 "max_size", "timeout_s", "ordered", "admitted", "rejected", "expired",
                 "cancelled", "served")

    def __init__(self, level: int, policy: Any) -> None:
        self.level = level
        self.policy = policy
        self.live: deque = deque()
        self.deadlines: deque[float] = deque()  # kept only where ``timed``
        self.delayed: deque = deque()
        self.timed = policy.has_timeouts
        self.rejects = policy.timeout_action is TimeoutAction.REJECT
        self.max_size = policy.max_queue_size
        self.timeout_s = policy.default_timeout_s
        # Deadlines non-decreasing along ``live``: the expired ones are the heads. Only a
        # request's own shorter timeout behind a longer one breaks it.
        self.ordered = True
        self.admitted = self.rejected = self.expired = self.cancelled = self.served = 0

    def depth(self) -> int:
        return len(self.live) + len(self.delayed)


def report_expired(callback: Callable[[Any], Any], tasks: list) -> None:
    """Call ``callback`` for each task; an exception goes to ``sys.unraisablehook``.

    The call that found the expiry still completes (a get still returns its
    item), as with a weakref callback.
    """
    for task in tasks:
        try:
            callback(task)
        except Exception as exc:  # noqa: BLE001 - reported, never lost
            sys.unraisablehook(types.SimpleNamespace(
                exc_type=type(exc), exc_value=exc, exc_traceback=exc.__traceback__,
                err_msg="Exception in a queue's on_expired callback", object=callback))


class PolicyBucketStorage:
    """Bucket storage with a ``QueuePolicy``: per-level limits, timeouts, cancel and counts.

    ``_put`` raises ``Rejected`` when the item's level is full (after dropping
    expired heads under ``REJECT``) and ``ValueError`` for a priority outside
    ``levels``, in both cases before changing anything. ``clock`` (seconds,
    monotonic) is injectable for tests.
    """

    def _init(self, levels: Iterable[int] = PRIORITY_LEVELS, policy: QueuePolicy | None = None,
              on_expired: Callable[[Any], Any] | None = None,
              clock: Callable[[], float] | None = None,
              keep_expired: int = KEEP_EXPIRED) -> None:
        self.levels: tuple[int, ...] = tuple(sorted(set(levels)))
        if not self.levels:
            raise ValueError("a bucket queue needs at least one priority level")
        check_policy(policy, self.levels)
        if not is_active(policy):
            raise PolicyError("policy storage needs an active policy (a limit or a timeout)")
        self.policy = policy
        self.on_expired = on_expired
        self._clock = clock or time.monotonic
        self._states = {level: LevelState(level, policy.for_level(level))
                        for level in self.levels}
        self._order = tuple(self._states.values())  # best level first
        if isinstance(keep_expired, bool) or not isinstance(keep_expired, int) \
                or keep_expired < 0:
            raise ValueError(f"keep_expired must be a whole number >= 0, got {keep_expired!r}")
        # Expired under REJECT, not yet drained: the newest keep_expired, none with on_expired.
        self._expired: deque = deque(maxlen=0 if on_expired is not None else keep_expired)
        self._unreported: list = []  # expired, for on_expired once the lock is let go

    def _state(self, priority: Any) -> LevelState:
        try:
            return self._states[priority]
        except KeyError:
            raise ValueError(f"priority {priority!r} is not one of this queue's levels "
                             f"{', '.join(map(str, self.levels))}") from None

    def _timed(self, item: Any, request_timeout_s: Any) -> Timed:
        """The item with its own timeout, checked (``PolicyError``), for ``_put``."""
        state = self._state(item.priority)
        return Timed(item, check_request_timeout(request_timeout_s, state.level, state.policy))

    # -- the four storage hooks -----------------------------------------------

    def _qsize(self) -> int:
        return sum(state.depth() for state in self._order)

    # _put and _get are written out, no helper call on the common path: that took a
    # policed put+get from 3.6x to 2.4x an unpoliced one (ThreadSafeBucketQueue, 10,000
    # tasks, medians of 21 passes). Of the rest, timeouts cost two clock reads (70 ns each).

    def _put(self, item: Any) -> None:
        timeout_s = 0.0
        if type(item) is Timed:
            item, timeout_s = item.item, item.timeout_s
        state = self._states.get(item.priority)
        if state is None:
            self._state(item.priority)  # raises ValueError naming the levels
        live = state.live
        if state.max_size and len(live) + len(state.delayed) >= state.max_size:
            self._make_room(state)
        live.append(item)
        if state.timed:
            timeout_s = timeout_s or state.timeout_s
            deadline = self._clock() + timeout_s if timeout_s else NO_DEADLINE
            deadlines = state.deadlines
            if deadlines and deadline < deadlines[-1]:
                state.ordered = False
            deadlines.append(deadline)
        state.admitted += 1

    def _get(self) -> Any:
        for state in self._order:
            live = state.live
            # One clock call, at the head of the first level with requests: no scan.
            if live and state.timed and state.deadlines[0] < self._clock():
                self._expire_heads(state)
            if live:
                if state.timed:
                    state.deadlines.popleft()
                state.served += 1
                return live.popleft()
            if state.delayed:
                state.served += 1
                return state.delayed.popleft()
        raise IndexError("get from an empty queue")

    # -- expiry ----------------------------------------------------------------

    def _make_room(self, state: LevelState) -> None:
        """The level is full: drop every expired request of it (``REJECT``), else ``Rejected``.

        The rule the Redis queue follows too. While the level's deadlines are
        in order (no request's own timeout shorter than one before it) the
        expired requests are its heads: O(expired). Otherwise a scan of the
        level, O(depth), until a scan finds them in order again.
        """
        if state.timed and state.rejects and state.live:
            if state.ordered:
                self._expire_heads(state)
            else:
                self._reject(state, self._sweep(state, self._clock()))
        if state.depth() >= state.max_size:
            state.rejected += 1
            raise Rejected(state.level, state.depth(), state.max_size)

    def _expire_heads(self, state: LevelState) -> None:
        """Move the expired requests at the head of ``state.live`` out: expired or delayed."""
        live, deadlines, now = state.live, state.deadlines, self._clock()
        expired = []
        while live and deadlines[0] < now:  # Triton: expired once now > deadline
            deadlines.popleft()
            expired.append(live.popleft())
        if state.rejects:
            self._reject(state, expired)
        else:
            state.delayed.extend(expired)

    def _reject(self, state: LevelState, expired: list) -> None:
        if not expired:
            return
        state.expired += len(expired)
        self._expired.extend(expired)  # bounded: see "Retention" in the module doc
        if self.on_expired is not None:
            self._unreported.extend(expired)
        self._forget(len(expired))
        self._room_made()  # a putter waiting on maxsize may now fit

    def _drain_expired(self) -> list:
        """Scan every ``REJECT`` level for expired requests; return every one not yet drained."""
        now = self._clock()
        for state in self._order:
            if state.timed and state.rejects and state.live:
                self._reject(state, self._sweep(state, now))
        drained = list(self._expired)
        self._expired.clear()
        return drained

    @staticmethod
    def _sweep(state: LevelState, now: float) -> list:
        """Remove and return the expired requests anywhere in ``state.live``.

        Notes whether the deadlines left are in order (``LevelState.ordered``).
        """
        kept = [(d, item) for d, item in zip(state.deadlines, state.live, strict=True)
                if not d < now]
        state.ordered = all(a[0] <= b[0] for a, b in zip(kept, kept[1:], strict=False))
        if len(kept) == len(state.live):
            return []
        expired = [item for d, item in zip(state.deadlines, state.live, strict=True) if d < now]
        # In place: a put holds ``state.live`` across the call (``_put``).
        state.deadlines.clear()
        state.deadlines.extend(d for d, _ in kept)
        state.live.clear()
        state.live.extend(item for _, item in kept)
        return expired

    def _refused_full(self, item: Any) -> None:
        """A put of ``item`` refused for want of room in the whole queue (``maxsize``)."""
        state = self._states.get((item.item if type(item) is Timed else item).priority)
        if state is not None:
            state.rejected += 1

    def _take_unreported(self) -> list:
        taken, self._unreported = self._unreported, []
        return taken

    # -- cancel, counts, depths ------------------------------------------------

    def _cancel(self, item: Any) -> bool:
        """Remove ``item`` (the object itself, not an equal one) if still queued."""
        state = self._states.get(getattr(item, "priority", None))
        if state is None:
            return False
        for i, queued in enumerate(state.live):
            if queued is item:
                del state.live[i]
                if state.timed:
                    del state.deadlines[i]
                break
        else:
            for i, queued in enumerate(state.delayed):
                if queued is item:
                    del state.delayed[i]
                    break
            else:
                return False
        state.cancelled += 1
        self._forget(1)
        return True

    def _drop_all(self) -> None:
        """An immediate shutdown: every queued request counts as cancelled."""
        dropped = 0
        for state in self._order:
            depth = state.depth()
            state.cancelled += depth
            dropped += depth
            state.live.clear()
            state.deadlines.clear()
            state.delayed.clear()
        self._forget(dropped)

    def _counts(self) -> dict[int, dict[str, int]]:
        return {s.level: {name: getattr(s, name) for name in OUTCOMES} for s in self._order}

    def _depths(self) -> dict[int, int]:
        return {s.level: s.depth() for s in self._order}

