"""A bridge queue: one queue with a thread face and an asyncio face (the janus shape).

``BridgeQueue`` is ``SyncQueue`` (its lock, its storage hooks, its waiters)
plus coroutine methods over the same state: ``.sync_q`` offers
``queue.Queue``'s methods to threads, ``.async_q`` ``asyncio.Queue``'s to
coroutines, so async request handlers can feed worker threads and the
reverse. A coroutine never holds the lock across an ``await``: it takes it
for a few bytecodes (a put or get is about 0.3 µs), so the event loop never
waits on it for long. A thread waiting for an item blocks on its own lock;
a coroutine waiting for one awaits a future that the notifying thread
resolves through ``call_soon_threadsafe`` (directly when on the loop).
When coroutines out-produce the getter threads, the loop hands a woken
thread the GIL every ``HANDOFF_PUTS`` puts rather than let a backlog build
that the thread would drain holding the GIL for milliseconds.
``PolicyBridgeBucketQueue`` is ``BridgeBucketQueue`` with the storage an
active ``QueuePolicy`` needs; ``create_queue("BridgeBucketQueue",
policy=...)`` picks between the two (``registry.PolicyFactory``).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from pqlab.queues.asyncqueue import QueueShutDown
from pqlab.queues.policy import refuse_request_timeout
from pqlab.queues.policystorage import PolicyBucketStorage
from pqlab.queues.storage import BucketStorage
from pqlab.queues.syncqueue import (
    BucketMethods,
    Empty,
    Full,
    PolicySyncMethods,
    ShutDown,
    SyncQueue,
)
from pqlab.queues.waiters import FutureWaiter, Waiters

_running_loop = asyncio._get_running_loop  # C; None outside a running loop
LockType = type(threading.Lock())

# The loop hands the GIL to a woken getter thread that has not run after this
# many puts. Without it the loop keeps the GIL (it lets go only for a moment,
# in each epoll_wait(0)) until the thread forces a switch after the 5 ms switch
# interval, and then the thread drains the backlog holding the GIL: in `mixed`
# 5/5 one thread took 7,123 tasks during one 4.6 ms loop stall. Measured here
# under load (12 interleaved passes each, lags pooled): p99 loop lag 1.3 ms
# (max 2.1) without the hand-off, 0.29-0.48 ms handing off every 64 puts
# (wall 51 ms), 0.40 ms every 128 (44 ms), 0.40-0.49 ms every 256 (36-38 ms);
# janus 0.47 ms (108-111 ms).
HANDOFF_PUTS = 128
HANDOFF_WAIT_S = 0.001  # the longest the loop waits for that thread to run


class LoopWaiter(FutureWaiter):
    """A coroutine's waiter that any thread can release: it hops to the future's own loop."""

    def release(self) -> bool:
        loop = self.get_loop()
        if _running_loop() is loop:
            super().release()
            return True
        try:
            loop.call_soon_threadsafe(super().release)
        except RuntimeError:  # its loop is closed: nobody to wake (Waiters.notify skips it)
            return False
        return True


class GetterWaiters(Waiters):
    """The bridge's getters: also counts woken threads, and calls ``arrived`` when one is back."""

    __slots__ = ("threads_woken", "arrived")

    def __init__(self, mutex: Any, arrived: Callable[[], None]) -> None:
        super().__init__(mutex)
        self.threads_woken = 0
        self.arrived = arrived

    def notify(self) -> None:
        waiting = self.waiting
        while waiting:
            waiter = waiting.popleft()
            if waiter.release() is not False:
                self.woken += 1
                if type(waiter) is LockType:
                    self.threads_woken += 1
                return

    def settle(self, waiter: Any, released: bool = False) -> bool:
        notified = super().settle(waiter, released)
        if notified and type(waiter) is LockType:
            self.threads_woken -= 1
            self.arrived()
        return notified


class BridgeQueue(SyncQueue):
    """A ``SyncQueue`` with an asyncio face; the storage comes from the hook mixin before it.

    ``sync_q`` and ``async_q`` hold this queue's bound methods, so a call through
    a face costs nothing extra. Coroutines of any number of event loops and
    any number of threads may use it at once.
    """

    SYNC_METHODS = ("put", "get", "put_nowait", "get_nowait", "task_done", "join",
                    "qsize", "empty", "full", "shutdown")
    BOTH_FACES: tuple[str, ...] = ()  # methods offered under the same name on both faces

    def __init__(self, maxsize: int = 0, **storage_options: Any) -> None:
        super().__init__(maxsize, **storage_options)
        # Notified as SyncQueue's; also tells the loop when a woken thread runs.
        self.not_empty = GetterWaiters(self.mutex, self._thread_arrived)
        self._puts_unserved = 0  # puts since a getter thread was woken and did not run
        self._gate: Any = None  # a lock the loop waits on in _hand_over
        both = {name: name for name in self.BOTH_FACES}
        self.sync_q = Face(self, {name: name for name in self.SYNC_METHODS} | both)
        self.async_q = Face(self, {
            "put": "async_put", "get": "async_get", "put_nowait": "async_put_nowait",
            "get_nowait": "async_get_nowait", "task_done": "task_done",
            "join": "async_join", "qsize": "qsize", "empty": "empty", "full": "full",
            "shutdown": "shutdown"} | both)

    def _hand_over(self) -> None:
        """With ``mutex`` held, on the loop: block until a woken getter thread runs (bounded)."""
        self._gate = gate = threading.Lock()
        gate.acquire()
        self.mutex.release()
        try:
            gate.acquire(True, HANDOFF_WAIT_S)
        finally:
            self.mutex.acquire()
            self._gate = None
            self._puts_unserved = 0

    def _thread_arrived(self) -> None:
        """With ``mutex`` held: a woken getter thread runs; release a loop waiting for it."""
        self._puts_unserved = 0
        if self._gate is not None:
            self._gate.release()
            self._gate = None

    async def _wait(self, waiters: Waiters) -> None:
        """With ``mutex`` held: release it, wait until notified on this loop, take it back."""
        waiter = LoopWaiter()
        waiters.waiting.append(waiter)
        self.mutex.release()
        released = False
        try:
            await waiter
            released = True
        finally:
            self.mutex.acquire()  # held by a thread for a few bytecodes at most
            waiters.settle(waiter, released)

    # -- the async face ----------------------------------------------------------

    async def async_put(self, item: Any, *, request_timeout_s: float | None = None) -> None:
        """Put ``item``; in a full bounded queue, wait for room first (``QueueShutDown``…).

        ``request_timeout_s`` needs an active policy that allows it (``PolicyError``).
        """
        if request_timeout_s is not None:
            refuse_request_timeout(item, request_timeout_s)
        self.mutex.acquire()
        try:
            if self.is_shutdown:
                raise QueueShutDown
            if self.maxsize > 0 and self._qsize() >= self.maxsize:
                await self._async_put_when_room(item)
            else:
                self._put(item)
            self.unfinished_tasks += 1
            not_empty = self.not_empty
            if not_empty.waiting and not not_empty.woken:
                not_empty.notify()
            if not_empty.threads_woken:
                self._puts_unserved += 1
                if self._puts_unserved >= HANDOFF_PUTS:
                    self._hand_over()
        finally:
            self.mutex.release()

    async def _async_put_when_room(self, item: Any) -> None:
        not_full = self.not_full
        try:
            while self._qsize() >= self.maxsize:
                await self._wait(not_full)
                if self.is_shutdown:
                    raise QueueShutDown
            self._put(item)
        finally:
            not_full.pass_on(self._qsize() < self.maxsize)

    async def async_get(self) -> Any:
        """Remove and return the next item; if empty, wait until one is put.

        A cancelled get takes no item. After ``shutdown()`` the remaining items
        are served, then ``QueueShutDown`` is raised.
        """
        self.mutex.acquire()
        try:
            try:
                item = self._get()
            except IndexError:
                item = await self._async_get_when_there()
            not_full = self.not_full
            if not_full.waiting and not not_full.woken:
                not_full.notify()
            return item
        finally:
            self.mutex.release()

    async def _async_get_when_there(self) -> Any:
        not_empty = self.not_empty
        try:
            while True:
                if self.is_shutdown:
                    raise QueueShutDown
                await self._wait(not_empty)
                try:
                    return self._get()
                except IndexError:
                    pass
        finally:
            not_empty.pass_on(self._qsize() > 0)

    def async_put_nowait(self, item: Any, *, request_timeout_s: float | None = None) -> None:
        """Put without waiting; ``asyncio.QueueFull`` if there is no room."""
        try:
            self.put(item, False, request_timeout_s=request_timeout_s)
        except Full:
            raise asyncio.QueueFull from None
        except ShutDown:
            raise QueueShutDown from None

    def async_get_nowait(self) -> Any:
        """Remove and return the next item; ``asyncio.QueueEmpty`` if there is none."""
        try:
            return self.get(False)
        except Empty:
            raise asyncio.QueueEmpty from None
        except ShutDown:
            raise QueueShutDown from None

    async def async_join(self) -> None:
        """Wait until every item put has been gotten and marked done (from either face)."""
        self.mutex.acquire()
        try:
            while self.unfinished_tasks:
                await self._wait(self.all_tasks_done)
        finally:
            self.mutex.release()


class Face:
    """One face of a bridge: attributes bound to the bridge's methods, under the face's names."""

    def __init__(self, bridge: BridgeQueue, names: dict[str, str]) -> None:
        self.bridge = bridge
        for face_name, method in names.items():
            setattr(self, face_name, getattr(bridge, method))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self.bridge!r}>"


class BridgeBucketQueue(BucketMethods, BucketStorage, BridgeQueue):
    """Bucket storage behind a bridge: threads on ``sync_q``, coroutines on ``async_q``.

    Priorities outside ``levels`` (default CRITICAL…LOW) raise ``ValueError``.

    Policy: as ``ThreadSafeBucketQueue``'s, on both faces (``policy=``,
    ``on_expired=``, ``clock=``, ``put(request_timeout_s=)`` on ``sync_q`` and
    ``async_q``, ``Rejected`` at once from a full level); ``cancel``,
    ``counts``, ``depths`` and ``drain_expired`` are the same plain methods
    on both faces (they take the lock for a moment and never wait). An active
    policy needs ``PolicyBridgeBucketQueue`` (``create_queue("BridgeBucketQueue",
    policy=...)`` picks it); this class takes none or a default one, and its
    put and get cost what they did. ``on_expired`` runs in the thread or on
    the loop whose call found the expiry, with the lock let go.
    """

    BOTH_FACES = ("cancel", "counts", "depths", "drain_expired")


class PolicyBridgeBucketQueue(PolicySyncMethods, PolicyBucketStorage, BridgeBucketQueue):
    """``BridgeBucketQueue`` under an active policy (see its docstring)."""

    async def async_put(self, item: Any, *, request_timeout_s: float | None = None) -> None:
        """``BridgeQueue.async_put``, plus ``Rejected`` at once when the item's level is full."""
        if request_timeout_s is not None:
            item = self._timed(item, request_timeout_s)
        try:
            await super().async_put(item)
        finally:
            if self._unreported:
                self._report_expired()

    async def async_get(self) -> Any:
        """``BridgeQueue.async_get``; an item expired under ``REJECT`` is never returned."""
        try:
            return await super().async_get()
        finally:
            if self._unreported:
                self._report_expired()

