"""Prometheus metrics of pqlab's queues: depth, wait and outcomes per priority level.

``instrument(queue, name=...)`` wraps any pqlab queue, sync, async or bridge
(its ``sync_q`` and ``async_q`` both recorded), and exports three families,
labelled ``queue`` and ``priority`` (the level's name, ``CRITICAL`` .. ``LOW``):

- ``pqlab_queue_depth`` (gauge): requests queued now (Triton's
  ``nv_inference_pending_request_count``, vLLM's ``vllm:num_requests_waiting``);
- ``pqlab_queue_wait_seconds`` (histogram, ``WAIT_BUCKETS_S``): from the start
  of a put to the return of the get that took it (vLLM's
  ``vllm:request_queue_time_seconds``);
- ``pqlab_queue_requests_total`` (counter, label ``outcome``: ``admitted``,
  ``rejected``, ``expired``, ``cancelled``, ``served``, as Triton's
  ``nv_inference_request_failure{reason=...}``).

A queue that counts its own outcomes (a bucket queue under an active
``QueuePolicy``, or anything whose ``counts()`` answers) is read at scrape
time, ``counts()`` and ``depths()``, so the metrics never disagree with it;
otherwise the wrapper counts: a put that returns is ``admitted``, one refused
with ``queue.Full``/``asyncio.QueueFull`` is ``rejected`` (any other error is
no request), a get is ``served``, a ``cancel()`` that removed the item and an
immediate ``shutdown`` are ``cancelled``. The depth is the queue's own
``depths()`` where it has one. The waits are always the wrapper's.

``export_counts(source, name=...)`` exports the depth and counters of any
object with ``counts()`` and ``depths()``, such as a queue shared by several
processes (Redis), whose counters live in the shared store: every process
then reports the same totals. ``serve_metrics(port)`` serves a registry on
loopback HTTP; ``histogram_quantiles`` is PromQL's ``histogram_quantile``.
"""

from __future__ import annotations

import asyncio
import errno
import inspect
import ipaddress
import math
import queue as stdlib_queue
import threading
import weakref
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from itertools import pairwise
from time import perf_counter_ns
from typing import Any, Protocol

from prometheus_client import REGISTRY, CollectorRegistry, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from pqlab.core.task import PRIORITY_LEVELS, Priority
from pqlab.queues.policy import OUTCOMES, PolicyError, Rejected
from pqlab.queues.registry import QUEUES, QueueSpec

DEPTH = "pqlab_queue_depth"
WAIT = "pqlab_queue_wait_seconds"
REQUESTS = "pqlab_queue_requests_total"

# 0.1 ms to 10 s, three bounds a decade (1, 2.5, 5: neighbours at most 2.5x apart, so an
# interpolated quantile is off by less than one bucket's width). Measured here (`run
# --scenarios load --rate 200 --workers 4 --service exp:16ms`, rho 0.76, ThreadSafeBucketQueue):
# waits p50 0.7-2.3 ms, p99 19-227 ms, max 272 ms per level; a request taken at once waits
# what a put+get costs, microseconds, so 0.1 ms separates "no wait" from "waited". Past
# saturation waits grow until a timeout: 10 s is beyond any a serving scheduler sets.
WAIT_BUCKETS_S = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                  0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
WAIT_BOUNDS_NS = tuple(round(b * 1e9) for b in WAIT_BUCKETS_S)
_LE = tuple(floatToGoString(b) for b in WAIT_BUCKETS_S) + ("+Inf",)

# A put refused for want of room: the wrapper's own "rejected".
FULL_ERRORS = (stdlib_queue.Full, asyncio.QueueFull, Rejected)


def priority_label(level: int) -> str:
    """The ``priority`` label of a level: its name (``CRITICAL``), else the number."""
    try:
        return Priority(level).name
    except ValueError:
        return str(level)


@dataclass(frozen=True)
class QueueReading:
    """What one scrape reads of one queue: per level, depth, outcome counts and waits.

    ``waits`` maps a level to (observations per bucket of ``WAIT_BUCKETS_S`` plus
    one above the last, not cumulative; the sum of the waits in ns); it is empty
    for a source that records no waits.
    """

    depths: Mapping[int, int]
    counts: Mapping[int, Mapping[str, int]]
    waits: Mapping[int, tuple[Sequence[int], int]]


class Source(Protocol):
    """What a registry's ``QueueCollector`` reads at each scrape."""

    def read(self) -> QueueReading: ...


class LevelBook:
    """One level's waits (per bucket, and their sum) and the wrapper's own outcome counts."""

    __slots__ = ("buckets", "wait_ns", *OUTCOMES)

    def __init__(self) -> None:
        self.buckets = [0] * (len(WAIT_BOUNDS_NS) + 1)
        self.wait_ns = 0
        self.admitted = self.rejected = self.expired = self.cancelled = self.served = 0

    def queued(self) -> int:
        return self.admitted - self.served - self.cancelled - self.expired


class Book:
    """An instrumented queue's records: a put stamp per queued request, levels' books.

    ``stamps`` maps ``id(item)`` to ``perf_counter_ns()`` at the start of its put;
    the entry leaves when the item does (get, cancel, drain of the expired,
    immediate shutdown), so it holds one entry per request the queue holds. A
    stamp is set or popped in one dict operation (atomic under the GIL); the
    level books change with ``lock`` held. ``counts_outcomes``: the queue counts
    nothing itself, so the wrapper counts.
    """

    def __init__(self, levels: Iterable[int], counts_outcomes: bool) -> None:
        self.lock = threading.Lock()
        self.stamps: dict[int, int] = {}
        self.levels: dict[int, LevelBook] = {level: LevelBook() for level in levels}
        self.counts_outcomes = counts_outcomes

    def level(self, priority: int) -> LevelBook:
        """With ``lock`` held: the level's book, made on first sight of a new level."""
        book = self.levels.get(priority)
        if book is None:
            book = self.levels[priority] = LevelBook()
        return book

    def admitted(self, priority: int) -> None:
        """A put of a request at ``priority`` returned (the lock as SyncQueue takes its own)."""
        lock = self.lock
        lock.acquire()
        try:
            (self.levels.get(priority) or self.level(priority)).admitted += 1
        finally:
            lock.release()

    def refused(self, item: Any, error: BaseException) -> None:
        """A put raised: forget its stamp; a refusal for want of room is ``rejected``."""
        self.stamps.pop(id(item), None)
        if self.counts_outcomes and isinstance(error, FULL_ERRORS):
            with self.lock:
                self.level(item.priority).rejected += 1

    def left(self, items: Iterable[Any], outcome: str) -> None:
        """``items`` left the queue without a get (``cancelled``, ``expired``)."""
        for item in items:
            self.stamps.pop(id(item), None)
            if self.counts_outcomes:
                with self.lock:
                    book = self.level(item.priority)
                    setattr(book, outcome, getattr(book, outcome) + 1)

    def dropped_all(self) -> None:
        """An immediate shutdown dropped every queued request: each is ``cancelled``."""
        self.stamps.clear()
        if self.counts_outcomes:
            with self.lock:
                for book in self.levels.values():
                    book.cancelled += max(0, book.queued())

    def read(self) -> tuple[dict[int, int], dict[int, dict[str, int]], dict[int, tuple]]:
        """Depths, outcome counts and waits per level, as one consistent snapshot."""
        with self.lock:
            books = list(self.levels.items())
            # A get can be counted before the put of its item is (the putter counts once
            # its put returns, and a consumer may take the item in between): a level can
            # read one below its depth for that moment, never below zero.
            depths = {level: max(0, b.queued()) for level, b in books}
            counts = {level: {name: getattr(b, name) for name in OUTCOMES} for level, b in books}
            waits = {level: (list(b.buckets), b.wait_ns) for level, b in books}
        return depths, counts, waits


class QueueCollector(Collector):
    """Every source exported into one registry, as one family per metric name.

    A registry holds one of these (``collector_for``): two collectors that both
    yield ``pqlab_queue_depth`` would make the exposition repeat the family.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sources: dict[str, Source] = {}

    def add(self, name: str, source: Source, replace: bool) -> None:
        """Export ``source`` as ``queue=name``; ``ValueError`` if the name is taken."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"a queue's metrics name must be a non-empty string, got {name!r}")
        with self._lock:
            if name in self._sources and not replace:
                raise ValueError(f"queue name {name!r} is already exported in this registry "
                                 "(pass replace=True to replace it, or unexport() the other)")
            self._sources[name] = source

    def remove(self, name: str, source: Source) -> None:
        """Stop exporting ``source`` (nothing if another source took its name since)."""
        with self._lock:
            if self._sources.get(name) is source:
                del self._sources[name]

    def collect(self) -> Iterator[Any]:
        depth = GaugeMetricFamily(DEPTH, "Requests queued now, per priority level.",
                                  labels=["queue", "priority"])
        requests = CounterMetricFamily(
            REQUESTS, "Requests per priority level and outcome (admitted, rejected, expired, "
            "cancelled, served; a shared queue adds its own, e.g. dead_lettered).",
            labels=["queue", "priority", "outcome"])
        wait = HistogramMetricFamily(WAIT, "Seconds from the start of a put to the return of "
                                     "the get that took the request, per priority level.",
                                     labels=["queue", "priority"])
        with self._lock:
            sources = sorted(self._sources.items())
        for name, source in sources:
            reading = source.read()
            for level, value in sorted(reading.depths.items()):
                depth.add_metric([name, priority_label(level)], value)
            for level, outcomes in sorted(reading.counts.items()):
                for outcome, value in outcomes.items():
                    requests.add_metric([name, priority_label(level), outcome], value)
            for level, (buckets, wait_ns) in sorted(reading.waits.items()):
                cumulative, total = [], 0
                for le, count in zip(_LE, buckets, strict=True):
                    total += count
                    cumulative.append((le, total))
                wait.add_metric([name, priority_label(level)], cumulative, wait_ns / 1e9)
        yield depth
        yield requests
        yield wait


_COLLECTORS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_COLLECTORS_LOCK = threading.Lock()


def collector_for(registry: CollectorRegistry | None = None) -> QueueCollector:
    """The registry's queue collector (``REGISTRY`` by default), registered on first use."""
    registry = REGISTRY if registry is None else registry
    with _COLLECTORS_LOCK:
        collector = _COLLECTORS.get(registry)
        if collector is None:
            collector = _COLLECTORS[registry] = QueueCollector()
            registry.register(collector)
    return collector


class Exported:
    """A source exported into a registry under ``queue=name`` until ``unexport()``."""

    def _export(self, name: str, registry: CollectorRegistry | None, replace: bool) -> None:
        self.name = name
        self._collector = collector_for(registry)
        self._collector.add(name, self, replace)

    def unexport(self) -> None:
        """Stop exporting (the queue itself is untouched)."""
        self._collector.remove(self.name, self)


class ExportedCounts(Exported):
    """The depth and counters of an object with ``counts()`` and ``depths()``, read per scrape."""

    def __init__(self, source: Any, name: str, registry: CollectorRegistry | None,
                 replace: bool) -> None:
        for method in ("counts", "depths"):
            if not callable(getattr(source, method, None)):
                raise ValueError(f"export_counts needs an object with counts() and depths(); "
                                 f"{type(source).__name__} has no {method}()")
        self.source = source
        self._export(name, registry, replace)

    def read(self) -> QueueReading:
        return QueueReading(self.source.depths(), self.source.counts(), {})


def export_counts(source: Any, *, name: str, registry: CollectorRegistry | None = None,
                  replace: bool = False) -> ExportedCounts:
    """Export ``source.depths()`` and ``source.counts()`` (read at each scrape) as ``queue=name``.

    For a queue whose counters are shared (a ``RedisPriorityQueue``: every
    process reads the same totals from Redis): ``counts()`` maps a level to
    ``{outcome: count}`` with any outcomes (OUTCOMES, ``dead_lettered``,
    ``redelivered``), ``depths()`` a level to its queued count. Raises
    ``ValueError`` if ``source`` lacks either method or ``name`` is empty or
    already exported in the registry (unless ``replace``).
    """
    return ExportedCounts(source, name, registry, replace)


# -- the wrappers ------------------------------------------------------------------


class Recorded:
    """What every wrapper shares: the wrapped object, its ``Book``, everything else passed on.

    Attributes the wrapper does not define are the wrapped object's own.
    """

    def __init__(self, target: Any, book: Book) -> None:
        self._target = target
        self._book = book

    def __getattr__(self, attr: str) -> Any:
        if attr == "_target":  # not set yet (a copy being made): no recursion
            raise AttributeError(attr)
        return getattr(self._target, attr)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self._target!r}>"

    def cancel(self, item: Any) -> bool:
        """The queue's ``cancel(item)``; a removed item is ``cancelled`` and its stamp dropped.

        A cancel by id (the Redis queue's ``int``) names no level: on a queue
        that counts nothing itself it is not counted (give it a policy, whose
        counts the queue keeps), and the item's stamp stays until a get.
        """
        cancelled = self._target.cancel(item)
        if cancelled and hasattr(item, "priority"):
            self._book.left((item,), "cancelled")
        return cancelled

    def drain_expired(self) -> list:
        """The queue's ``drain_expired()``; the drained items' stamps are dropped.

        An expired request's stamp lives as long as the queue keeps the request
        (until this call), so the wrapper never holds more than the queue does.
        """
        expired = self._target.drain_expired()
        self._book.left(expired, "expired")
        return expired

    def shutdown(self, immediate: bool = False) -> None:
        """The queue's ``shutdown``; an immediate one drops every stamp (``cancelled``)."""
        self._target.shutdown(immediate)
        if immediate:
            self._book.dropped_all()


# Where the cost goes (ThreadSafeBucketQueue, `single`, 10,000 tasks, medians of 9 on this
# 2-core box under load; bare put+get 0.44 µs): a wrapper that only passes the calls on
# adds 0.25 µs, the put stamps 0.35 µs more (a dict holding 10,000 ids), the levels'
# books the rest (`bench --group metrics`). The books take the lock as SyncQueue takes its
# own (acquire, try, finally release); appending each event to a deque folded in batches
# under the lock instead measured the same (0.48 µs per get recorded, both).


def _recorded_put(book: Book, put: Callable[..., Any], item: Any, args: tuple,
                  kwargs: dict) -> Any:
    """``put(item, ...)`` with the item's stamp set first: a getter may take it at once.

    Returns what ``put`` returned (the Redis queue's id).
    """
    book.stamps[id(item)] = perf_counter_ns()
    try:
        returned = put(item, *args, **kwargs)
    except BaseException as error:
        book.refused(item, error)
        raise
    if book.counts_outcomes:
        book.admitted(item.priority)
    return returned


def _recorded_get(book: Book, item: Any) -> Any:
    """Record that a get returned ``item`` (its wait, if the wrapper stamped its put)."""
    start = book.stamps.pop(id(item), None)
    now = perf_counter_ns()
    priority = item.priority
    lock = book.lock
    lock.acquire()
    try:
        level = book.levels.get(priority) or book.level(priority)
        if start is not None:
            wait = now - start
            level.buckets[bisect_left(WAIT_BOUNDS_NS, wait)] += 1
            level.wait_ns += wait
        if book.counts_outcomes:
            level.served += 1
    finally:
        lock.release()
    return item


class SyncFace(Recorded):
    """A sync face (``put``/``get`` that return values) with every request recorded."""

    def __init__(self, target: Any, book: Book) -> None:
        super().__init__(target, book)
        self._put, self._get = target.put, target.get

    def put(self, item: Any, *args: Any, **kwargs: Any) -> Any:
        """The queue's ``put``: blocks, raises and returns as it does."""
        return _recorded_put(self._book, self._put, item, args, kwargs)

    def put_nowait(self, item: Any, **kwargs: Any) -> Any:
        """The queue's ``put_nowait``: raises and returns as it does."""
        return _recorded_put(self._book, self._target.put_nowait, item, (), kwargs)

    def get(self, *args: Any, **kwargs: Any) -> Any:
        """The queue's ``get``: blocks and raises as it does (a get that raises takes nothing)."""
        return _recorded_get(self._book, self._get(*args, **kwargs))

    def get_nowait(self) -> Any:
        """The queue's ``get_nowait``: raises as it does."""
        return _recorded_get(self._book, self._target.get_nowait())


class AsyncFace(Recorded):
    """An async face (coroutine ``put``/``get``) with every request recorded."""

    def __init__(self, target: Any, book: Book) -> None:
        super().__init__(target, book)
        self._put, self._get = target.put, target.get

    async def put(self, item: Any, **kwargs: Any) -> Any:
        """The queue's ``put``: waits and raises as it does (a cancelled put is no request)."""
        book = self._book
        book.stamps[id(item)] = perf_counter_ns()
        try:
            returned = await self._put(item, **kwargs)
        except BaseException as error:
            book.refused(item, error)
            raise
        if book.counts_outcomes:
            book.admitted(item.priority)
        return returned

    def put_nowait(self, item: Any, **kwargs: Any) -> Any:
        """The queue's ``put_nowait``: raises and returns as it does."""
        return _recorded_put(self._book, self._target.put_nowait, item, (), kwargs)

    async def get(self) -> Any:
        """The queue's ``get``: waits as it does; a cancelled get takes nothing."""
        return _recorded_get(self._book, await self._get())

    def get_nowait(self) -> Any:
        """The queue's ``get_nowait``: raises as it does."""
        return _recorded_get(self._book, self._target.get_nowait())


class InstrumentedQueue(Exported, Recorded):
    """A queue exported for Prometheus (made by ``instrument``); see the module docstring.

    ``queue`` is the wrapped queue, ``name`` its ``queue`` label. ``tracked()``
    is how many put stamps it holds (one per request the queue holds).
    """

    def _start(self, queue: Any, name: str, registry: CollectorRegistry | None,
               replace: bool) -> None:
        self.queue = queue
        self._depths = getattr(queue, "depths", None)
        self._export(name, registry, replace)

    def tracked(self) -> int:
        """How many put stamps are held: requests put through the wrapper and still queued."""
        return len(self._book.stamps)

    def read(self) -> QueueReading:
        """The waits, the queue's own counts and depths where it keeps them, else the wrapper's.

        Called from the scrape's thread: for an asyncio-only queue it reads
        deque lengths and counters only, which no coroutine can leave half-changed.
        """
        depths, counts, waits = self._book.read()
        if not self._book.counts_outcomes:
            counts = self.queue.counts()
        if callable(self._depths):
            depths = self._depths()
        return QueueReading(depths, counts, waits)


class InstrumentedSyncQueue(SyncFace, InstrumentedQueue):
    """A sync queue exported for Prometheus (see ``InstrumentedQueue``)."""


class InstrumentedAsyncQueue(AsyncFace, InstrumentedQueue):
    """An async queue exported for Prometheus (see ``InstrumentedQueue``)."""


def _no_own(queue: Any, name: str) -> Callable[..., Any]:
    """A stand-in for a bridge's missing ``name``: raises ``AttributeError`` saying where to go."""

    def missing(*args: Any, **kwargs: Any) -> Any:
        raise AttributeError(f"{type(queue).__name__} has no {name}() of its own: use "
                             f"sync_q.{name}() or async_q.{name}()")

    return missing


class InstrumentedBridge(SyncFace, InstrumentedQueue):
    """A bridge exported for Prometheus: ``sync_q``, ``async_q`` and the bridge's own
    ``put``/``get`` (its sync face) and ``async_*`` share one ``Book``."""

    def __init__(self, queue: Any, book: Book) -> None:
        Recorded.__init__(self, queue, book)
        # A bridge with put/get of its own (pqlab's) has them recorded; janus and
        # culsans have only their faces.
        self._put = getattr(queue, "put", None) or _no_own(queue, "put")
        self._get = getattr(queue, "get", None) or _no_own(queue, "get")
        self.sync_q = SyncFace(queue.sync_q, book)
        self.async_q = AsyncFace(queue.async_q, book)

    async def async_put(self, item: Any, **kwargs: Any) -> Any:
        """The bridge's ``async_put`` (``async_q.put``), recorded."""
        return await self.async_q.put(item, **kwargs)

    async def async_get(self) -> Any:
        """The bridge's ``async_get`` (``async_q.get``), recorded."""
        return await self.async_q.get()

    def async_put_nowait(self, item: Any, **kwargs: Any) -> Any:
        """The bridge's ``async_put_nowait``, recorded."""
        return self.async_q.put_nowait(item, **kwargs)

    def async_get_nowait(self) -> Any:
        """The bridge's ``async_get_nowait``, recorded."""
        return self.async_q.get_nowait()


def _counts_itself(queue: Any) -> bool:
    counts = getattr(queue, "counts", None)
    if not callable(counts):
        return False
    try:
        counts()
    except PolicyError:  # a bucket queue without an active policy counts nothing
        return False
    return True


def instrument(queue: Any, *, name: str, registry: CollectorRegistry | None = None,
               replace: bool = False) -> InstrumentedQueue:
    """Wrap ``queue`` so its requests are exported to ``registry`` (``REGISTRY``) as ``queue=name``.

    ``queue`` is any pqlab queue: an object with ``sync_q`` and ``async_q`` (a
    bridge), one whose ``put`` is a coroutine function (async), else sync.
    Items need an integer ``priority``. Use the wrapper in place of the queue
    (its other attributes pass through); requests put into the queue directly
    are not stamped, so their waits are not observed. An item put again while
    still queued (the same object twice) keeps one stamp, the latest.
    Raises ``ValueError`` if ``name`` is empty or already exported in the
    registry (unless ``replace``); ``unexport()`` ends the export.
    """
    if not (hasattr(queue, "sync_q") or callable(getattr(queue, "put", None))):
        raise ValueError(f"instrument needs a queue with put() and get(), or sync_q and "
                         f"async_q; got {type(queue).__name__}")
    # A queue whose counts() answers counts every outcome itself: read it, count nothing.
    book = Book(getattr(queue, "levels", PRIORITY_LEVELS), not _counts_itself(queue))
    if hasattr(queue, "sync_q") and hasattr(queue, "async_q"):
        wrapper: InstrumentedQueue = InstrumentedBridge(queue, book)
    elif inspect.iscoroutinefunction(queue.put):
        wrapper = InstrumentedAsyncQueue(queue, book)
    else:
        wrapper = InstrumentedSyncQueue(queue, book)
    wrapper._start(queue, name, registry, replace)
    return wrapper


def instrumented_spec(spec: QueueSpec, registry: CollectorRegistry | None = None,
                      name: str | None = None) -> QueueSpec:
    """``spec`` whose factory makes instrumented queues, exported as ``queue=spec.name``.

    Each queue made replaces the previous one's export (a scenario makes a
    fresh queue per pass). ``name`` renames the spec (default: unchanged).
    """

    def factory() -> InstrumentedQueue:
        return instrument(spec.factory(), name=spec.name, registry=registry, replace=True)

    return replace(spec, name=name or spec.name, factory=factory,
                   description=f"{spec.description} (instrumented)")


@contextmanager
def instrumenting(names: Iterable[str],
                  registry: CollectorRegistry | None = None) -> Iterator[list[str]]:
    """While inside, the registered in-process queues among ``names`` make instrumented queues.

    Yields the names instrumented: a process-safe queue is left as it is (its
    workers run in other processes; export its shared counts instead). The
    registry (``QUEUES``) is restored on exit. ``KeyError`` for an unknown name.
    """
    originals = {}
    try:
        for name in names:
            spec = QUEUES[name]
            if not spec.process_safe:
                originals[name] = spec
                QUEUES[name] = instrumented_spec(spec, registry)
        yield list(originals)
    finally:
        QUEUES.update(originals)


# -- the endpoint ------------------------------------------------------------------


class MetricsPortError(ValueError):
    """The metrics endpoint cannot listen where asked: the message says why and what to do."""


class MetricsServer:
    """A running metrics endpoint: ``url``; ``close()`` (or leaving a ``with``) stops it."""

    def __init__(self, httpd: Any, thread: threading.Thread) -> None:
        self._httpd = httpd
        self._thread = thread
        self.addr, self.port = httpd.server_address[:2]

    @property
    def url(self) -> str:
        return f"http://{self.addr}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving and release the port; returns once the serving thread has ended."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


def check_port(port: Any) -> int:
    """``port`` if it is an integer 0-65535 (0: any free port), else ``MetricsPortError``."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise MetricsPortError(f"metrics port must be an integer 0-65535 (0: any free port), "
                               f"got {port!r}")
    return port


def check_addr(addr: str, allow_remote: bool) -> str:
    """``addr`` if it is a loopback address, or any address with ``allow_remote``.

    The metrics carry request counts per priority: exposing them beyond this
    machine is a choice made on purpose, never a default. ``MetricsPortError``
    otherwise.
    """
    if allow_remote or addr == "localhost":
        return addr
    try:
        loopback = ipaddress.ip_address(addr).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise MetricsPortError(
            f"metrics address {addr!r} is not loopback (127.0.0.0/8, ::1, localhost): the "
            "metrics carry request counts, so serving them beyond this machine needs "
            "allow_remote=True")
    return addr


def serve_metrics(port: int, registry: CollectorRegistry | None = None,
                  addr: str = "127.0.0.1", *, allow_remote: bool = False) -> MetricsServer:
    """Serve ``registry`` (``REGISTRY``) at ``http://addr:port/metrics`` from a daemon thread.

    ``port`` 0 takes a free one (``MetricsServer.port`` says which). ``addr``
    must be loopback unless ``allow_remote`` is true (``check_addr``). Raises
    ``MetricsPortError`` for a bad port, one in use, an address beyond
    loopback without ``allow_remote`` or one that cannot be bound; then
    nothing was started.
    """
    check_port(port)
    check_addr(addr, allow_remote)
    try:
        httpd, thread = start_http_server(port, addr=addr,
                                          registry=REGISTRY if registry is None else registry)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise MetricsPortError(f"metrics port {port} on {addr} is in use: choose a free "
                                   "port (1-65535), or 0 for any free one") from None
        raise MetricsPortError(f"cannot serve metrics on {addr}:{port}: "
                               f"{exc.strerror or exc}") from None
    return MetricsServer(httpd, thread)


# -- reading a histogram -----------------------------------------------------------


def histogram_quantiles(buckets: Sequence[float], counts: Sequence[float],
                        q: Iterable[float]) -> list[float]:
    """Each quantile in ``q`` of a histogram, interpolated as PromQL's ``histogram_quantile``.

    ``buckets`` are the upper bounds (``le``), increasing, the last ``inf``;
    ``counts`` the cumulative counts (the ``_bucket`` samples, or their
    ``rate``). Within a bucket the observations are taken as spread evenly
    (the lowest bucket from 0); a quantile in the ``+Inf`` bucket is the
    highest finite bound. NaN where there are no observations. Raises
    ``ValueError`` for mismatched lengths, fewer than two buckets, bounds not
    increasing or not ending at ``inf``, decreasing counts, or a ``q`` outside
    0-1 (where Prometheus repairs or returns NaN, bad input here is an error).
    """
    bounds, cumulative = [float(b) for b in buckets], [float(c) for c in counts]
    if len(bounds) != len(cumulative) or len(bounds) < 2:
        raise ValueError(f"buckets and counts must have the same length, at least 2, got "
                         f"{len(bounds)} and {len(cumulative)}")
    if bounds[-1] != math.inf or any(a >= b for a, b in pairwise(bounds)):
        raise ValueError(f"bucket bounds must increase and end with inf, got {bounds}")
    if cumulative[0] < 0 or any(a > b for a, b in pairwise(cumulative)):
        raise ValueError(f"counts must be cumulative (non-negative, never decreasing), "
                         f"got {cumulative}")
    return [_quantile(_check_q(value), bounds, cumulative) for value in q]


def _check_q(q: Any) -> float:
    if isinstance(q, bool) or not isinstance(q, (int, float)) or not 0 <= q <= 1:
        raise ValueError(f"a quantile must be a number from 0 to 1, got {q!r}")
    return float(q)


def _quantile(q: float, bounds: list[float], cumulative: list[float]) -> float:
    observations = cumulative[-1]
    if observations == 0:
        return math.nan
    rank = q * observations
    b = bisect_left(cumulative, rank, 0, len(cumulative) - 1)  # first count >= rank
    if b == len(bounds) - 1:
        return bounds[-2]
    if b == 0 and bounds[0] <= 0:
        return bounds[0]
    start, end, count = 0.0, bounds[b], cumulative[b]
    if b > 0:
        start = bounds[b - 1]
        count -= cumulative[b - 1]
        rank -= cumulative[b - 1]
    if count == 0:  # only at q 0 with an empty lowest bucket: PromQL's 0/0
        return math.nan
    return start + (end - start) * (rank / count)
