"""``multiprocessing``: a ``queue.PriorityQueue`` served by a manager process.

The single-machine, process-safe baseline. The queue lives in one manager
process; every ``put`` and ``get`` is a round trip to it over a local socket
(the task pickled both ways), so each costs about as much as a Redis round
trip but keeps nothing on disk. The proxy that ``make_queue()`` returns is
picklable: a child process that receives it talks to the same queue. Proxies
open one connection per thread, so one proxy is also thread-safe. ``get()``
blocks in the manager until a task is there.

The manager is started with the "spawn" method (a fresh interpreter, not a
fork of a parent with threads and locks in unknown states) on the first
``make_queue()``, never at import, and shut down at exit.
"""

from __future__ import annotations

import multiprocessing
import queue
from multiprocessing.managers import BaseManager
from typing import Any


class QueueManager(BaseManager):
    """A manager that serves ``queue.PriorityQueue`` objects."""


QueueManager.register("PriorityQueue", queue.PriorityQueue)

_MANAGER: QueueManager | None = None


def manager() -> QueueManager:
    """This process's queue manager, started on first use (it stops when this process exits)."""
    global _MANAGER
    if _MANAGER is None:
        _MANAGER = QueueManager(ctx=multiprocessing.get_context("spawn"))
        _MANAGER.start()
    return _MANAGER


def make_queue() -> Any:
    """A fresh, empty priority queue in the manager process; returns its proxy."""
    return manager().PriorityQueue()
