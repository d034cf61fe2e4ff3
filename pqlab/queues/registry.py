"""The queue registry: name -> factory and capabilities, plus thin adapters.

A queue object offers one or two *faces*:

- a sync face: ``put(task)`` and ``get()``. ``get()`` either blocks until a
  task is there, or raises ``queue.Empty`` / ``IndexError`` when the queue is
  empty (a non-blocking queue); the scenarios retry in that case.
- an async face: coroutine ``put(task)`` and ``get()``; ``get()`` waits.

``api="sync"`` and ``api="async"`` objects are their own face; an
``api="bridge"`` object exposes ``sync_q`` and ``async_q`` (the janus shape).
Adapters add no work beyond the underlying calls: where a method would only
forward, the adapter binds the underlying function instead.

A queue is made by its spec's ``factory`` (``create_queue(name, **options)``
calls it). A queue class is constructed plainly: what a class is made with
is what it is. Where a bucket queue has a twin for an active
``QueuePolicy`` (``ThreadSafeBucketQueue`` and ``PolicyThreadSafeBucketQueue``,
say), its factory is a ``PolicyFactory``, which picks the twin when the
``policy=`` it is given is active.

``QUEUES`` keeps registration order: pqlab's own queues first, in the order
``pqlab.queues.catalog.BUILTIN_QUEUES`` declares (the order the reports list
them and the decision's last tie-break), then any registered later.
"""

from __future__ import annotations

import heapq
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from pqlab.queues.policy import is_active

APIS = ("sync", "async", "bridge")


@dataclass(frozen=True)
class QueueSpec:
    """A registered queue: how to make one and what it is safe for."""

    name: str
    factory: Callable[..., Any]
    thread_safe: bool
    async_safe: bool
    api: str = "sync"
    process_safe: bool = False
    description: str = ""

    @property
    def takes_policy(self) -> bool:
        """Whether the factory takes ``policy=`` in process (a ``PolicyFactory``)."""
        return isinstance(self.factory, PolicyFactory)

    @property
    def has_sync_face(self) -> bool:
        return self.api in ("sync", "bridge")

    @property
    def has_async_face(self) -> bool:
        return self.api in ("async", "bridge")


class PolicyFactory:
    """A queue's factory that picks its class by the policy: ``plain``, or ``policed``.

    ``factory(*args, policy=p, **options)`` is ``policed(*args, policy=p,
    **options)`` when ``p`` is active (``pqlab.queues.policy.is_active``: a
    limit or a timeout), else ``plain(*args, policy=p, **options)``, so a
    queue made with no policy or the default one keeps the unpoliced put and
    get and costs what it did. Both classes take the same arguments.
    """

    __slots__ = ("plain", "policed")

    def __init__(self, plain: type, policed: type) -> None:
        self.plain = plain
        self.policed = policed

    def __call__(self, *args: Any, policy: Any = None, **options: Any) -> Any:
        cls = self.policed if is_active(policy) else self.plain
        return cls(*args, policy=policy, **options)

    def __repr__(self) -> str:
        return f"PolicyFactory({self.plain.__name__}, {self.policed.__name__})"


def sync_face(spec: QueueSpec, obj: Any) -> Any:
    """Return the object offering ``put``/``get`` for ``obj`` made by ``spec``."""
    return obj.sync_q if spec.api == "bridge" else obj


def async_face(spec: QueueSpec, obj: Any) -> Any:
    """Return the object offering coroutine ``put``/``get`` for ``obj`` made by ``spec``."""
    return obj.async_q if spec.api == "bridge" else obj


class HeapqQueue:
    """A bare ``heapq`` list; ``put``/``get`` are ``heappush``/``heappop`` bound to it.

    Not thread-safe. ``get()`` raises ``IndexError`` when empty.
    """

    __slots__ = ("heap", "put", "get")

    def __init__(self) -> None:
        self.heap: list[Any] = []
        # partial() of a builtin runs in C: no Python frame between the
        # scenario's call and heappush/heappop.
        self.put = partial(heapq.heappush, self.heap)
        self.get = partial(heapq.heappop, self.heap)

    def qsize(self) -> int:
        return len(self.heap)


class ThreadSafeHeapQueue:
    """A heap guarded by one ``threading.Lock`` (the POC's custom queue).

    ``get()`` never blocks: it raises ``queue.Empty`` when the heap is empty.
    """

    __slots__ = ("_heap", "_lock")

    def __init__(self) -> None:
        self._heap: list[Any] = []
        self._lock = threading.Lock()

    def put(self, item: Any) -> None:
        with self._lock:
            heapq.heappush(self._heap, item)

    def get(self) -> Any:
        with self._lock:
            if self._heap:
                return heapq.heappop(self._heap)
        raise queue.Empty

    def qsize(self) -> int:
        return len(self._heap)


QUEUES: dict[str, QueueSpec] = {}


def register_queue(
    name: str,
    factory: Callable[[], Any],
    *,
    thread_safe: bool,
    async_safe: bool,
    api: str | None = None,
    process_safe: bool = False,
    description: str = "",
    replace: bool = False,
) -> QueueSpec:
    """Register a queue implementation so every scenario, check and report can use it.

    ``factory()`` returns a fresh, empty queue. By default its API is ``"async"``
    when it is async-safe and not thread-safe, else ``"sync"``; pass ``api`` to
    say otherwise (``"bridge"`` for objects with ``sync_q`` and ``async_q``).
    Raises ``ValueError`` if the name is taken (unless ``replace``) or ``api`` is unknown.
    """
    if not name or not isinstance(name, str):
        raise ValueError(f"queue name must be a non-empty string, got {name!r}")
    if not callable(factory):
        raise ValueError(f"factory for queue {name!r} must be callable, got {factory!r}")
    if api is None:
        api = "async" if async_safe and not thread_safe else "sync"
    if api not in APIS:
        raise ValueError(f"api for queue {name!r} must be one of {', '.join(APIS)}, got {api!r}")
    if name in QUEUES and not replace:
        raise ValueError(f"queue {name!r} is already registered (pass replace=True to replace it)")
    spec = QueueSpec(name, factory, bool(thread_safe), bool(async_safe), api,
                     bool(process_safe), description)
    QUEUES[name] = spec
    return spec


def unregister_queue(name: str) -> None:
    """Remove a registered queue; raises ``KeyError`` naming the registered ones if absent."""
    if name not in QUEUES:
        raise KeyError(f"unknown queue {name!r}; registered: {', '.join(QUEUES)}")
    del QUEUES[name]


def create_queue(name: str, *args: Any, **options: Any) -> Any:
    """A fresh queue of the one registered as ``name``: its factory called with the arguments.

    ``create_queue("ThreadSafeBucketQueue", policy=QueuePolicy(...))`` gives a
    ``PolicyThreadSafeBucketQueue`` when the policy is active (``PolicyFactory``).
    ``KeyError`` names the registered queues if ``name`` is not one.
    """
    return get_spec(name).factory(*args, **options)


def get_spec(name: str) -> QueueSpec:
    """Return the spec registered under ``name``; ``KeyError`` names the allowed ones."""
    try:
        return QUEUES[name]
    except KeyError:
        raise KeyError(f"unknown queue {name!r}; allowed: {', '.join(QUEUES)}") from None
