"""pqlab's thread-safe queues: one base class owns locking, blocking and shutdown.

``SyncQueue`` has the public methods of ``queue.Queue`` (Python 3.13, with
``shutdown``) written once; a storage (``pqlab.queues.storage``) supplies
the four hooks. ``ThreadSafeBucketQueue`` is bucket storage in it.
``BucketQueue`` is bucket storage alone, with no lock: the single-thread
baseline beside ``heapq``. ``PolicyThreadSafeBucketQueue`` is
``ThreadSafeBucketQueue`` with the storage an active ``QueuePolicy``
(``pqlab.queues.policy``) needs; ``create_queue("ThreadSafeBucketQueue",
policy=...)`` picks between the two (``registry.PolicyFactory``).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable
from time import monotonic
from typing import Any

from pqlab.queues.policy import refuse_request_timeout
from pqlab.queues.policystorage import PolicyBucketStorage, report_expired
from pqlab.queues.storage import AgingBucketStorage, BucketStorage
from pqlab.queues.waiters import Waiters

if hasattr(queue, "ShutDown"):  # Python 3.13
    ShutDown = queue.ShutDown
else:

    class ShutDown(Exception):  # noqa: N818 - the name queue.ShutDown has since 3.13
        """Raised by ``put``/``get`` on a queue that was shut down (``queue.ShutDown``)."""


Empty = queue.Empty
Full = queue.Full


def deadline_of(block: bool, timeout: float | None) -> float | None:
    """The monotonic deadline of a blocking call (None: no deadline); checks ``timeout``."""
    if not block or timeout is None:
        return None
    if timeout < 0:
        raise ValueError(f"'timeout' must be a non-negative number, got {timeout!r}")
    return monotonic() + timeout


class SyncQueue:
    """A thread-safe queue; the storage comes from the hook mixin listed before it.

    ``maxsize`` <= 0 means unbounded. ``storage_options`` go to the storage's
    ``_init`` (``levels=`` for buckets). Every public method takes ``mutex``;
    the storage hooks run with it held.

    Two measured choices (this 2-core box, under load from other jobs):

    - The hot path is ``mutex.acquire()`` / ``try`` / ``finally: mutex.release()``
      rather than ``with mutex``: 220 ns against 310 ns per put (``with`` looks
      up and calls ``__enter__``/``__exit__``).
    - A put wakes a waiting getter only if no woken getter is already on its
      way; the woken one wakes the next if items remain (``Waiters.pass_on``).
      In ``threads`` 5/5 at 10,000 tasks: 4,200 waits and 233 ms, against
      9,300 waits and 373 ms when every put wakes a getter (medians of 7).
    """

    def __init__(self, maxsize: int = 0, **storage_options: Any) -> None:
        self.maxsize = maxsize
        self._init(**storage_options)
        self.unfinished_tasks = 0
        self.is_shutdown = False
        self.mutex = threading.Lock()
        # Notified when an item is put while getters wait and none is already
        # woken; a woken getter wakes the next if items remain (Waiters.pass_on).
        self.not_empty = Waiters(self.mutex)
        # Notified likewise when an item is taken while putters wait for room.
        self.not_full = Waiters(self.mutex)
        # Notified (all) when unfinished tasks drop to zero, and at an immediate shutdown.
        self.all_tasks_done = Waiters(self.mutex)

    # -- putting ---------------------------------------------------------------

    def put(self, item: Any, block: bool = True, timeout: float | None = None, *,
            request_timeout_s: float | None = None) -> None:
        """Put ``item`` into the queue.

        Blocks only in a bounded queue that is full: for ever if ``timeout`` is
        None, else at most ``timeout`` seconds, then raises ``queue.Full``
        (at once if ``block`` is false). Raises ``ShutDown`` after ``shutdown()``,
        ``ValueError`` for a negative timeout or an item the storage refuses.
        ``request_timeout_s`` (the request's own timeout) needs an active
        policy that allows it: here it raises ``PolicyError``.
        """
        if request_timeout_s is not None:
            refuse_request_timeout(item, request_timeout_s)
        self.mutex.acquire()
        try:
            if self.is_shutdown:
                raise ShutDown
            if self.maxsize > 0 and self._qsize() >= self.maxsize:
                self._put_when_room(item, block, timeout)
            else:
                self._put(item)
            self.unfinished_tasks += 1
            not_empty = self.not_empty
            # Nobody to wake in the common case: two attribute tests, no call.
            if not_empty.waiting and not not_empty.woken:
                not_empty.notify()
        finally:
            self.mutex.release()

    def put_nowait(self, item: Any, *, request_timeout_s: float | None = None) -> None:
        """Put ``item`` without blocking; ``queue.Full`` if there is no room."""
        self.put(item, False, request_timeout_s=request_timeout_s)

    def _put_when_room(self, item: Any, block: bool, timeout: float | None) -> None:
        """With ``mutex`` held and the queue full: wait for room and put ``item``, or raise."""
        if not block:
            raise Full
        deadline = deadline_of(block, timeout)
        not_full = self.not_full
        try:
            while self._qsize() >= self.maxsize:
                remaining = None if deadline is None else deadline - monotonic()
                if remaining is not None and remaining <= 0:
                    raise Full
                not_full.wait(remaining)
                if self.is_shutdown:
                    raise ShutDown
            self._put(item)
        finally:
            not_full.pass_on(self._qsize() < self.maxsize)

    # -- getting ---------------------------------------------------------------

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """Remove and return the next item (lowest priority value, FIFO within one).

        When empty: blocks for ever if ``timeout`` is None, else at most
        ``timeout`` seconds, then raises ``queue.Empty`` (at once if ``block``
        is false). After ``shutdown()`` the remaining items are still served,
        then ``ShutDown`` is raised. ``ValueError`` for a negative timeout.
        """
        self.mutex.acquire()
        try:
            try:
                item = self._get()
            except IndexError:
                item = self._get_when_there(block, timeout)
            not_full = self.not_full
            if not_full.waiting and not not_full.woken:
                not_full.notify()
            return item
        finally:
            self.mutex.release()

    def get_nowait(self) -> Any:
        """Remove and return the next item without blocking; ``queue.Empty`` if none."""
        return self.get(False)

    def _get_when_there(self, block: bool, timeout: float | None) -> Any:
        """With ``mutex`` held and the queue empty: wait for an item and take it, or raise."""
        if self.is_shutdown:
            raise ShutDown
        if not block:
            raise Empty
        deadline = deadline_of(block, timeout)
        not_empty = self.not_empty
        try:
            while True:
                remaining = None if deadline is None else deadline - monotonic()
                if remaining is not None and remaining <= 0:
                    raise Empty
                not_empty.wait(remaining)
                try:
                    return self._get()
                except IndexError:
                    if self.is_shutdown:
                        raise ShutDown from None
        finally:
            not_empty.pass_on(self._qsize() > 0)

    # -- tasks, size, shutdown ---------------------------------------------------

    def task_done(self) -> None:
        """Mark one formerly gotten item as processed; ``ValueError`` if called too often."""
        with self.mutex:
            if self.unfinished_tasks <= 0:
                raise ValueError("task_done() called too many times")
            self.unfinished_tasks -= 1
            if not self.unfinished_tasks:
                self.all_tasks_done.notify_all()

    def join(self) -> None:
        """Block until every item put has been gotten and marked done (``task_done``)."""
        with self.mutex:
            while self.unfinished_tasks:
                self.all_tasks_done.wait()

    def qsize(self) -> int:
        """The number of items held (a snapshot: other threads may change it at once)."""
        with self.mutex:
            return self._qsize()

    def empty(self) -> bool:
        """Whether the queue holds no item (a snapshot, like ``qsize``)."""
        return not self.qsize()

    def full(self) -> bool:
        """Whether a bounded queue is at its ``maxsize`` (a snapshot)."""
        with self.mutex:
            return 0 < self.maxsize <= self._qsize()

    def shutdown(self, immediate: bool = False) -> None:
        """Shut the queue down: later puts raise ``ShutDown``; gets drain, then raise it.

        With ``immediate`` the held items are dropped (each counted done, so
        ``join`` returns) and gets raise at once. Every blocked getter and
        putter, in any thread, is woken and raises ``ShutDown``.
        """
        with self.mutex:
            self.is_shutdown = True
            if immediate:
                self._drop_all()
                self.all_tasks_done.notify_all()
            self.not_empty.notify_all()
            self.not_full.notify_all()

    def _drop_all(self) -> None:
        """With ``mutex`` held: drop every held item, each counted done (immediate shutdown)."""
        while self._qsize():
            self._get()
            self.unfinished_tasks = max(0, self.unfinished_tasks - 1)

    def _forget(self, count: int) -> None:
        """With ``mutex`` held: ``count`` items left without a get (expired, cancelled).

        They count as done, so ``join`` does not wait for them.
        """
        self.unfinished_tasks = max(0, self.unfinished_tasks - count)
        if not self.unfinished_tasks:
            self.all_tasks_done.notify_all()

    def _room_made(self) -> None:
        """With ``mutex`` held: items left other than by a get; wake a putter waiting for room."""
        not_full = self.not_full
        if not_full.waiting and not not_full.woken:
            not_full.notify()


class BucketMethods:
    """A locked bucket queue's ``cancel``, ``counts``, ``depths``, ``drain_expired``.

    Each takes ``mutex`` and calls its storage hook (``BucketStorage`` or
    ``PolicyBucketStorage``); none blocks beyond the lock.
    """

    def cancel(self, item: Any) -> bool:
        """Remove ``item`` (the very object put) if still queued: True, else False.

        O(depth of its level) under the lock. A cancelled item counts as done
        (``join``) and as ``cancelled`` in ``counts()``.
        """
        with self.mutex:
            cancelled = self._cancel(item)
            if cancelled:
                self._room_made()
        return cancelled

    def counts(self) -> dict[int, dict[str, int]]:
        """Per level, how many puts ended in each of ``policy.OUTCOMES`` so far.

        ``PolicyError`` without an active policy (the default path counts nothing).
        """
        with self.mutex:
            return self._counts()

    def depths(self) -> dict[int, int]:
        """Per level, how many items are queued now (delayed ones included)."""
        with self.mutex:
            return self._depths()

    def drain_expired(self) -> list:
        """The items expired under ``REJECT`` and not drained yet, oldest first.

        Scans every ``REJECT`` level with timeouts first (O(depth)), so an
        expired item not yet at its level's head is found too. Keeps at most
        the newest ``keep_expired`` (10,000 by default), and none when the
        queue has ``on_expired``, which was given each already. Always empty
        without an active policy.
        """
        with self.mutex:
            expired = self._drain_expired()
            if expired:
                self._room_made()
        return expired


class PolicySyncMethods:
    """``put``/``get`` of a locked bucket queue under an active policy.

    ``put`` takes a request's own timeout (``request_timeout_s``, checked
    before the lock: ``PolicyError``, nothing queued); every call that may
    find expired items calls ``on_expired`` for them once the lock is let go.
    """

    def put(self, item: Any, block: bool = True, timeout: float | None = None, *,
            request_timeout_s: float | None = None) -> None:
        """``SyncQueue.put``, plus ``Rejected`` at once when the item's level is full.

        A put refused with ``queue.Full`` (``maxsize``) counts as ``rejected`` too.
        """
        if request_timeout_s is not None:
            item = self._timed(item, request_timeout_s)
        try:
            SyncQueue.put(self, item, block, timeout)
        except Full:
            with self.mutex:
                self._refused_full(item)
            raise
        finally:
            if self._unreported:
                self._report_expired()

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """``SyncQueue.get``; an item expired under ``REJECT`` is never returned."""
        try:
            return SyncQueue.get(self, block, timeout)
        finally:
            if self._unreported:
                self._report_expired()

    def drain_expired(self) -> list:
        try:
            return super().drain_expired()
        finally:
            if self._unreported:
                self._report_expired()

    drain_expired.__doc__ = BucketMethods.drain_expired.__doc__

    def _report_expired(self) -> None:
        # Tested unlocked by the callers: whoever adds to the list reports after its call.
        with self.mutex:
            taken = self._take_unreported()
        report_expired(self.on_expired, taken)


class ThreadSafeBucketQueue(BucketMethods, BucketStorage, SyncQueue):
    """Bucket storage (one deque per priority level) behind ``SyncQueue``'s lock.

    Thread-safe; ``get(timeout=)`` blocks. Priorities outside ``levels``
    (default CRITICAL…LOW) raise ``ValueError``.

    Policy: ``policy=QueuePolicy(...)`` gives each level Triton's queue policy
    (a full level raises ``Rejected`` at once, timeouts with ``REJECT`` or
    ``DELAY``, ``put(request_timeout_s=)``), ``on_expired`` is called with each
    item expired under ``REJECT``, outside the lock, and ``clock=`` (monotonic
    seconds) replaces ``time.monotonic``. This class takes ``policy=None`` or
    a default policy (put and get are the unpoliced ones and cost what they
    did); an active one needs ``PolicyThreadSafeBucketQueue``, which
    ``create_queue("ThreadSafeBucketQueue", policy=...)`` picks by itself
    (else ``PolicyError`` names it). ``cancel``, ``depths`` and
    ``drain_expired`` work either way; ``counts`` needs a policy.
    """


class PolicyThreadSafeBucketQueue(PolicySyncMethods, PolicyBucketStorage, ThreadSafeBucketQueue):
    """``ThreadSafeBucketQueue`` under an active policy (see its docstring); ``PolicyError``
    for no policy or a default one."""


class ThreadSafeAgingQueue(AgingBucketStorage, SyncQueue):
    """Bucket storage with aging (``age_s=``: seconds per level gained), ``queue.Queue``'s API.

    Not registered in ``QUEUES`` on purpose: it serves an aged task before a
    fresher one of better priority, which the ordering check counts as a
    violation, so it would fail every correctness judgement by design.
    """


class BucketQueue(BucketStorage):
    """Bucket storage alone, no lock: the single-thread baseline beside ``heapq``.

    Not thread-safe. ``get()`` never blocks: it raises ``queue.Empty`` when empty.
    ``put`` is the storage's ``_put`` itself, so a put costs one call.
    """

    def __init__(self, **storage_options: Iterable[int]) -> None:
        self._init(**storage_options)
        self.put = self.put_nowait = self._put

    def get(self) -> Any:
        """Remove and return the next item; ``queue.Empty`` if there is none."""
        try:
            return self._get()
        except IndexError:
            raise Empty from None

    get_nowait = get

    def qsize(self) -> int:
        return self._qsize()

    def empty(self) -> bool:
        return not self._qsize()
