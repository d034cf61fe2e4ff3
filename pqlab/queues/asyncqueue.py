"""pqlab's asyncio-native queue: ``asyncio.Queue``'s methods once, storage from hooks.

``AsyncQueue`` has the API of ``asyncio.Queue`` (Python 3.13, with
``shutdown``); ``AsyncBucketQueue`` is bucket storage in it. Like
``asyncio.Queue`` it is not thread-safe: use it from one event loop (the
bridge, ``pqlab.queues.bridge``, serves threads and coroutines together).
``PolicyAsyncBucketQueue`` is ``AsyncBucketQueue`` with the storage an
active ``QueuePolicy`` needs; ``create_queue("AsyncBucketQueue", policy=...)``
picks between the two (``registry.PolicyFactory``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from pqlab.queues.policy import refuse_request_timeout
from pqlab.queues.policystorage import PolicyBucketStorage, report_expired
from pqlab.queues.storage import BucketStorage
from pqlab.queues.waiters import FutureWaiter, Waiters

if hasattr(asyncio, "QueueShutDown"):  # Python 3.13
    QueueShutDown = asyncio.QueueShutDown
else:

    class QueueShutDown(Exception):  # noqa: N818 - the name asyncio has since 3.13
        """Raised by ``put``/``get`` on a queue that was shut down (``asyncio.QueueShutDown``)."""


async def wait_on(waiters: Waiters) -> bool:
    """Wait on the running loop until notified; returns whether this coroutine was notified.

    If cancelled, the wake-up it may have taken is passed on by the caller's
    ``pass_on``; the waiter is never left on the list.
    """
    waiter = FutureWaiter()
    waiters.waiting.append(waiter)
    released = False
    try:
        await waiter
        released = True
    finally:
        notified = waiters.settle(waiter, released)
    return notified


class AsyncQueue:
    """An asyncio queue; the storage comes from the hook mixin listed before it.

    ``maxsize`` <= 0 means unbounded; ``storage_options`` go to the storage's
    ``_init``. A ``get`` cancelled while waiting never takes an item: the item
    stays for the next reader, and the cancelled waiter leaves the list.
    """

    def __init__(self, maxsize: int = 0, **storage_options: Any) -> None:
        self.maxsize = maxsize
        self._init(**storage_options)
        self._unfinished_tasks = 0
        self._finished = asyncio.Event()
        self._finished.set()
        self._is_shutdown = False
        # Resolved when an item is put while getters wait and none is already
        # woken; a woken getter wakes the next if items remain.
        self._getters = Waiters()
        # Resolved likewise when an item is taken while putters wait for room.
        self._putters = Waiters()

    def qsize(self) -> int:
        """Number of items in the queue."""
        return self._qsize()

    def empty(self) -> bool:
        """Whether the queue is empty."""
        return not self._qsize()

    def full(self) -> bool:
        """Whether a bounded queue holds ``maxsize`` items."""
        return 0 < self.maxsize <= self._qsize()

    # -- putting ---------------------------------------------------------------

    async def put(self, item: Any, *, request_timeout_s: float | None = None) -> None:
        """Put ``item`` into the queue; in a full bounded queue, wait for room first.

        Raises ``QueueShutDown`` after ``shutdown()``, ``ValueError`` for an item
        the storage refuses. ``request_timeout_s`` needs an active policy that
        allows it: here it raises ``PolicyError``.
        """
        if request_timeout_s is not None:
            refuse_request_timeout(item, request_timeout_s)
        # put_nowait's steps written out, not called: 35 ns of 230 per put saved here.
        if self._is_shutdown:
            raise QueueShutDown
        if self.maxsize > 0 and self._qsize() >= self.maxsize:
            await self._put_when_room(item)
        else:
            self._put(item)
        if not self._unfinished_tasks:
            self._finished.clear()
        self._unfinished_tasks += 1
        getters = self._getters
        if getters.waiting and not getters.woken:
            getters.notify()

    def put_nowait(self, item: Any, *, request_timeout_s: float | None = None) -> None:
        """Put ``item`` without waiting; ``asyncio.QueueFull`` if there is no room."""
        if request_timeout_s is not None:
            refuse_request_timeout(item, request_timeout_s)
        if self._is_shutdown:
            raise QueueShutDown
        if self.maxsize > 0 and self._qsize() >= self.maxsize:
            raise asyncio.QueueFull
        self._put(item)
        if not self._unfinished_tasks:
            self._finished.clear()
        self._unfinished_tasks += 1
        getters = self._getters
        if getters.waiting and not getters.woken:
            getters.notify()

    async def _put_when_room(self, item: Any) -> None:
        putters = self._putters
        try:
            while self._qsize() >= self.maxsize:
                await wait_on(putters)
                if self._is_shutdown:
                    raise QueueShutDown
            self._put(item)
        finally:
            putters.pass_on(self._qsize() < self.maxsize)

    # -- getting ---------------------------------------------------------------

    async def get(self) -> Any:
        """Remove and return the next item; if empty, wait until one is put.

        After ``shutdown()`` the remaining items are still served, then
        ``QueueShutDown`` is raised.
        """
        try:
            item = self._get()
        except IndexError:
            item = await self._get_when_there()
        putters = self._putters
        if putters.waiting and not putters.woken:
            putters.notify()
        return item

    def get_nowait(self) -> Any:
        """Remove and return the next item; ``asyncio.QueueEmpty`` if there is none."""
        try:
            item = self._get()
        except IndexError:
            if self._is_shutdown:
                raise QueueShutDown from None
            raise asyncio.QueueEmpty from None
        putters = self._putters
        if putters.waiting and not putters.woken:
            putters.notify()
        return item

    async def _get_when_there(self) -> Any:
        getters = self._getters
        try:
            while True:
                if self._is_shutdown:
                    raise QueueShutDown
                await wait_on(getters)
                try:
                    return self._get()
                except IndexError:
                    pass
        finally:
            getters.pass_on(self._qsize() > 0)

    # -- tasks, shutdown ---------------------------------------------------------

    def task_done(self) -> None:
        """Mark one formerly gotten item as processed; ``ValueError`` if called too often."""
        if self._unfinished_tasks <= 0:
            raise ValueError("task_done() called too many times")
        self._unfinished_tasks -= 1
        if not self._unfinished_tasks:
            self._finished.set()

    async def join(self) -> None:
        """Wait until every item put has been gotten and marked done (``task_done``)."""
        if self._unfinished_tasks > 0:
            await self._finished.wait()

    def shutdown(self, immediate: bool = False) -> None:
        """Shut the queue down: later puts raise ``QueueShutDown``; gets drain, then raise it.

        With ``immediate`` the held items are dropped (each counted done, so
        ``join`` returns) and gets raise at once. Every waiting getter and
        putter is woken and raises ``QueueShutDown``.
        """
        self._is_shutdown = True
        if immediate:
            self._drop_all()
            if not self._unfinished_tasks:
                self._finished.set()
        self._getters.notify_all()
        self._putters.notify_all()

    def _drop_all(self) -> None:
        """Drop every held item, each counted done (an immediate shutdown)."""
        while self._qsize():
            self._get()
            self._unfinished_tasks = max(0, self._unfinished_tasks - 1)

    def _forget(self, count: int) -> None:
        """``count`` items left without a get (expired, cancelled): done, for ``join``."""
        self._unfinished_tasks = max(0, self._unfinished_tasks - count)
        if not self._unfinished_tasks:
            self._finished.set()


class AsyncBucketQueue(BucketStorage, AsyncQueue):
    """Bucket storage (one deque per priority level) with ``asyncio.Queue``'s API.

    Coroutine-safe on one event loop, not thread-safe. Priorities outside
    ``levels`` (default CRITICAL…LOW) raise ``ValueError``.

    Policy: as ``ThreadSafeBucketQueue``'s (``policy=``, ``on_expired=``,
    ``clock=``, ``put(request_timeout_s=)``, ``Rejected`` at once from a full
    level) under an active policy, which needs ``PolicyAsyncBucketQueue``
    (``create_queue("AsyncBucketQueue", policy=...)`` picks it); this class
    takes none or a default one, and its put and get cost what they did.
    ``on_expired`` runs on the loop, after the call that found the expiry
    has changed the queue.
    """

    def cancel(self, item: Any) -> bool:
        """Remove ``item`` (the very object put) if still queued: True, else False.

        O(depth of its level). It counts as done (``join``) and as ``cancelled``.
        """
        cancelled = self._cancel(item)
        if cancelled:
            self._room_made()
        return cancelled

    def counts(self) -> dict[int, dict[str, int]]:
        """Per level, how many puts ended in each of ``policy.OUTCOMES``; needs a policy."""
        return self._counts()

    def depths(self) -> dict[int, int]:
        """Per level, how many items are queued now (delayed ones included)."""
        return self._depths()

    def drain_expired(self) -> list:
        """The items expired under ``REJECT`` and not drained yet (scans every such level).

        At most the newest ``keep_expired``; none with ``on_expired`` (given each already).
        """
        expired = self._drain_expired()
        if expired:
            self._room_made()
        return expired

    def _room_made(self) -> None:
        putters = self._putters
        if putters.waiting and not putters.woken:
            putters.notify()


class PolicyAsyncBucketQueue(PolicyBucketStorage, AsyncBucketQueue):
    """``AsyncBucketQueue`` under an active policy (see its docstring)."""

    async def put(self, item: Any, *, request_timeout_s: float | None = None) -> None:
        """``AsyncQueue.put``, plus ``Rejected`` at once when the item's level is full."""
        if request_timeout_s is not None:
            item = self._timed(item, request_timeout_s)
        try:
            await super().put(item)
        finally:
            if self._unreported:
                self._report_expired()

    def put_nowait(self, item: Any, *, request_timeout_s: float | None = None) -> None:
        """``AsyncQueue.put_nowait``, plus ``Rejected`` at once when the level is full.

        A put refused with ``asyncio.QueueFull`` (``maxsize``) counts as ``rejected`` too.
        """
        if request_timeout_s is not None:
            item = self._timed(item, request_timeout_s)
        try:
            super().put_nowait(item)
        except asyncio.QueueFull:
            self._refused_full(item)
            raise
        finally:
            if self._unreported:
                self._report_expired()

    async def get(self) -> Any:
        """``AsyncQueue.get``; an item expired under ``REJECT`` is never returned."""
        try:
            return await super().get()
        finally:
            if self._unreported:
                self._report_expired()

    def get_nowait(self) -> Any:
        """``AsyncQueue.get_nowait``; an item expired under ``REJECT`` is never returned."""
        try:
            return super().get_nowait()
        finally:
            if self._unreported:
                self._report_expired()

    def drain_expired(self) -> list:
        try:
            return super().drain_expired()
        finally:
            if self._unreported:
                self._report_expired()

    drain_expired.__doc__ = AsyncBucketQueue.drain_expired.__doc__

    def _report_expired(self) -> None:
        report_expired(self.on_expired, self._take_unreported())

