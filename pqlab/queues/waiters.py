"""``Waiters``: a condition of a queue's mutex that accounts for every wake-up.

``threading.Condition`` cannot tell a waiter whose timeout expired as it
was notified that it was notified, so a queue built on it must wake one
waiter per item to be safe. With ``Waiters`` a waiter knows, once back under
the mutex, whether a notify picked it (``settle``). That lets pqlab's queues
wake one waiter at a time and have the woken one pass the baton on (wake the
next) if items remain, instead of waking one per item (see ``SyncQueue``).

A waiter is anything whose ``release()`` wakes it: a locked ``threading.Lock``
for a thread, an asyncio future for a coroutine (``FutureWaiter``; the
bridge's waiters also hop to their own loop, and return False if it closed).
Every method runs with the mutex held (on an asyncio-only queue: on its
event loop).
"""

from __future__ import annotations

import asyncio
from collections import deque
from threading import Lock
from typing import Any, Protocol


class Waiter(Protocol):
    def release(self) -> Any: ...


class FutureWaiter(asyncio.Future):
    """An asyncio future that a notify resolves with ``release()`` (on its own loop)."""

    def release(self) -> None:
        if not self.done():  # a cancelled waiter stays cancelled
            self.set_result(None)


class Waiters:
    """The waiters of one condition, oldest first, and how many woken ones are on their way."""

    __slots__ = ("mutex", "waiting", "woken")

    def __init__(self, mutex: Any = None) -> None:
        self.mutex = mutex
        self.waiting: deque[Waiter] = deque()
        # Notified and not yet back (see settle): while one is on its way, a new
        # item needs no second wake-up.
        self.woken = 0

    def wait(self, timeout: float | None = None) -> bool:
        """Release the mutex, block this thread until notified or ``timeout`` s passed.

        Takes the mutex back before returning whether this thread was notified
        (it may have timed out at the same moment).
        """
        lock = Lock()
        lock.acquire()
        self.waiting.append(lock)
        self.mutex.release()
        released = False
        try:
            released = lock.acquire(True, -1 if timeout is None else timeout)
        finally:
            self.mutex.acquire()
            notified = self.settle(lock, released)
        return notified

    def settle(self, waiter: Waiter, released: bool = False) -> bool:
        """Back after waiting: forget ``waiter``; True if a notify took it off the list.

        ``released``: the waiter saw its release (only a notify releases it).
        """
        if released or waiter not in self.waiting:
            self.woken -= 1
            return True
        self.waiting.remove(waiter)
        return False

    def notify(self) -> None:
        """Wake the longest-waiting waiter; one whose ``release()`` says False is gone, skip it."""
        waiting = self.waiting
        while waiting:
            if waiting.popleft().release() is not False:
                self.woken += 1
                return

    def notify_all(self) -> None:
        """Wake every waiter."""
        while self.waiting:
            self.notify()

    def pass_on(self, more: bool) -> None:
        """Wake one waiter if ``more`` work is there, one waits, and none woken is on its way.

        Every waiter calls this when it leaves (served, timed out, cancelled or
        interrupted), so no wake-up it took is lost.
        """
        if more and self.waiting and not self.woken:
            self.notify()
