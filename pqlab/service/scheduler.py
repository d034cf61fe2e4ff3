"""The scheduler behind the endpoints: one queue, its workers, every request's outcome.

``Scheduler.infer`` is what ``POST /v1/infer`` runs: put a ``Job`` into the
queue (a full level raises ``Rejected``: 503 with ``Retry-After``), then wait
for whichever comes first of the job's result, its deadline (504) and its
client leaving (the queue's ``cancel`` removes it, counted ``cancelled``; a
queue without ``cancel`` keeps it and the worker that takes it skips it,
counted ``abandoned``). Timeouts: under an active policy the queue's own
(its ``default_timeout_s``, or ``timeout_ms`` as ``request_timeout_s`` where
the level allows it), found by ``drain_expired`` at the request's deadline;
without a policy the service keeps ``timeout_ms`` itself.

Every request ends in one of ``requests.OUTCOMES`` per level, counted under
``lock`` (workers may be threads). ``shutdown`` stops admitting (503), stops
the workers through the queue (``workers.Workers.stop``) and answers every
request still queued with 503.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from pqlab.core.task import PRIORITY_LEVELS, Priority
from pqlab.queues import QUEUES, async_face, sync_face
from pqlab.queues.policy import PolicyError, QueuePolicy, Rejected, TimeoutAction, is_active
from pqlab.queues.prometheus import instrument, priority_label
from pqlab.scenarios.loadparams import ServiceTime
from pqlab.service import requests as rq
from pqlab.service.requests import Job
from pqlab.service.workers import SHUTDOWN_ERRORS, WORKERS, ServiceError, check_fit

pc = time.perf_counter_ns
EXPIRY_SLACK_S = 0.001  # the handler looks for its expiry this long after its deadline
SWEEP_S = 0.05  # how often expired requests are collected from a policy queue
LAG_PERIOD_S = 0.01  # the loop-lag probe's sleep: 100 samples a second
LAG_SAMPLES = 6_000  # the last minute of lag samples
EWMA_WEIGHT = 0.05  # the measured mean service time follows about the last 20 requests


@dataclass(frozen=True)
class ServiceConfig:
    """What ``python -m pqlab serve`` runs; ``check()`` raises ``ServiceError`` in one line."""

    queue: str
    workers: int = 4
    service: ServiceTime = field(default_factory=lambda: ServiceTime("exp", 0.01))
    mode: str = "async"
    policy: QueuePolicy | None = None
    holds_gil: bool = False
    seed: int | None = None

    def check(self) -> None:
        """``ServiceError`` for an unknown queue, a mode it cannot serve or a policy it refuses."""
        if self.queue not in QUEUES:
            raise ServiceError(f"unknown queue {self.queue!r}; allowed: {', '.join(QUEUES)}")
        check_fit(QUEUES[self.queue], self.mode, self.policy)
        if self.holds_gil and self.mode != "threads":
            raise ServiceError(f"--service-holds-gil is for worker mode threads, not {self.mode}")


Reply = tuple[int, dict[str, Any], dict[str, str]]  # status, JSON body, headers


class Scheduler:
    """One queue and its workers; ``start()`` on the serving loop, then ``infer`` per request."""

    def __init__(self, config: ServiceConfig, registry: CollectorRegistry) -> None:
        config.check()
        self.config = config
        self.spec = QUEUES[config.queue]
        self.registry = registry
        self.policy_active = is_active(config.policy)
        self.lock = threading.Lock()
        self.counts = {level: dict.fromkeys(rq.OUTCOMES, 0) for level in PRIORITY_LEVELS}
        self.service_mean_s: float | None = None  # measured (EWMA), None before the first
        # (loop time, lag) pairs: ``stats(window_s)`` reads the lag of the last seconds only.
        self.lags_s: deque[tuple[float, float]] = deque(maxlen=LAG_SAMPLES)
        self.jobs: dict[int, Job] = {}  # admitted and not yet answered
        self.admitting = False
        self._rng = np.random.default_rng(config.seed)
        self._stopped: asyncio.Event | None = None
        self._background: list[asyncio.Task] = []

    # -- life --------------------------------------------------------------------------

    async def start(self) -> None:
        """Make the queue and start the workers on the running loop; then admit requests.

        Blocks until every worker can take a job (in ``processes`` mode until
        each spawned process has imported pqlab: about a second here).
        """
        if self.config.policy is not None:
            self.raw_queue = self.spec.factory(policy=self.config.policy,
                                               on_expired=self._expired_by_queue)
        else:
            self.raw_queue = self.spec.factory()
        self.queue = instrument(self.raw_queue, name=self.spec.name, registry=self.registry)
        self.async_face = async_face(self.spec, self.queue)
        self.sync_face = sync_face(self.spec, self.queue) if self.spec.has_sync_face else None
        self.can_cancel = callable(getattr(self.raw_queue, "cancel", None))
        self.workers = WORKERS[self.config.mode](self, self.config.workers,
                                                 self.config.holds_gil)
        await self.workers.start()
        self._stopped = asyncio.Event()
        self._background = [asyncio.create_task(self._probe_lag())]
        if self.policy_active:
            self._background.append(asyncio.create_task(self._sweep_expired()))
        self.admitting = True

    async def shutdown(self) -> None:
        """Stop admitting (503), stop the workers through the queue, answer the queued with 503.

        Idempotent: a second call waits for the first. Returns once no request
        is left unanswered.
        """
        if self._stopped is None:
            return
        if not self.admitting:
            await self._stopped.wait()
            return
        self.admitting = False
        for job in list(self.jobs.values()):  # answered now; the workers will skip them
            self._answer_shutdown(job)
        await self.workers.stop()
        for job in list(self.jobs.values()):
            if not self._answer_shutdown(job) and job.state == rq.TAKEN and not job.service_ns:
                self._count(job.priority, "shutdown")  # a worker stopped in mid-service
                job.settle(self._shutdown_reply())
        for task in self._background:
            task.cancel()
        self._stopped.set()

    async def _probe_lag(self) -> None:
        loop, append = asyncio.get_running_loop(), self.lags_s.append
        while True:
            start = loop.time()
            await asyncio.sleep(LAG_PERIOD_S)
            now = loop.time()
            append((now, max(0.0, now - start - LAG_PERIOD_S)))

    async def _sweep_expired(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_S)
            self._collect_expired()

    # -- a request -----------------------------------------------------------------------

    def draw_work_s(self) -> float:
        """One inference time drawn from the configured service distribution."""
        return float(self.config.service.draw(self._rng, 1)[0])

    async def infer(self, priority: int, timeout_s: float | None, work_s: float | None,
                    receive: Callable[[], Awaitable[dict]]) -> Reply | None:
        """Queue one request and wait for its reply; None if its client left first.

        ``receive`` is the request's ASGI receive: its ``http.disconnect`` says
        the client left. Raises nothing for a request's own fate: every
        outcome is a reply (200, 503, 504, 422).
        """
        if not self.admitting:
            return self._shutdown_reply()
        work = self.draw_work_s() if work_s is None else work_s
        job = Job.make(priority, work, self._deadline_s(priority, timeout_s))
        self.jobs[job.seq] = job
        try:
            await self._put(job, timeout_s)
        except Rejected as exc:
            self.jobs.pop(job.seq, None)
            self._count(priority, "rejected")
            return self._full_reply(priority, str(exc))
        except PolicyError as exc:
            self.jobs.pop(job.seq, None)
            return 422, {"detail": [{"loc": ["body", "timeout_ms"], "msg": str(exc)}]}, {}
        except SHUTDOWN_ERRORS:
            self.jobs.pop(job.seq, None)
            return self._shutdown_reply()
        self._count(priority, "admitted")
        try:
            return await self._wait(job, receive)
        finally:
            self.jobs.pop(job.seq, None)

    async def put(self, job: Job) -> None:
        """Put ``job`` through the queue's asyncio face (stop sentinels go this way)."""
        await self.async_face.put(job)

    async def _put(self, job: Job, timeout_s: float | None) -> None:
        if timeout_s is not None and self.policy_active:
            await self.async_face.put(job, request_timeout_s=timeout_s)
        else:
            await self.async_face.put(job)

    def _deadline_s(self, priority: int, timeout_s: float | None) -> float | None:
        """How long the request may wait queued before its handler looks for its expiry."""
        if not self.policy_active:
            return timeout_s
        level = self.config.policy.for_level(priority)
        if level.timeout_action is TimeoutAction.DELAY:
            return None  # delayed, never expired: it waits for its turn
        limits = [t for t in (timeout_s, level.default_timeout_s) if t]
        return min(limits) if limits else None

    async def _wait(self, job: Job, receive: Callable[[], Awaitable[dict]]) -> Reply | None:
        """Await the job's future, which a worker, an expiry, a disconnect or shutdown resolves.

        No ``asyncio.wait`` per request: the disconnect and the deadline are
        callbacks that resolve the same future (None: the client left).
        """
        disconnect = asyncio.ensure_future(receive())
        on_receive = partial(self._received, job)
        disconnect.add_done_callback(on_receive)
        if job.deadline_ns is not None:
            self._arm(job, max(0.0, (job.deadline_ns - pc()) / 1e9) + EXPIRY_SLACK_S)
        try:
            return await job.future
        except asyncio.CancelledError:
            self._client_left(job)
            raise
        finally:
            disconnect.remove_done_callback(on_receive)
            disconnect.cancel()
            if job.timer is not None:
                job.timer.cancel()

    def _arm(self, job: Job, delay_s: float) -> None:
        job.timer = job.loop.call_later(delay_s, self._deadline_passed, job)

    def _deadline_passed(self, job: Job) -> None:
        job.timer = None
        if job.state != rq.QUEUED:
            return
        self._expire(job)
        if job.state == rq.QUEUED:  # not expired by the queue's clock yet: look again soon
            self._arm(job, EXPIRY_SLACK_S)

    def _received(self, job: Job, message: asyncio.Future) -> None:
        """The request's next ASGI message: ``http.disconnect`` means its client left."""
        if message.cancelled() or message.exception() is not None:
            return
        if message.result().get("type") == "http.disconnect" and not job.future.done():
            self._client_left(job)
            job.future.set_result(None)

    # -- how a request ends ------------------------------------------------------------------

    def take(self, job: Job) -> bool:
        """A worker took ``job`` out of the queue: whether to serve it (any thread).

        While shutting down, the job is answered 503 instead; a job whose
        client left (``abandoned``) or that the service expired is skipped.
        """
        if not self.admitting and self._answer_shutdown(job):
            return False
        if job.claim(rq.TAKEN):
            job.taken_ns = pc()
            return True
        if job.state == rq.GONE:
            self._count(job.priority, "abandoned")
        return False

    def served(self, job: Job, service_ns: int) -> None:
        """A worker served ``job`` in ``service_ns``: count it and answer 200 (any thread)."""
        job.service_ns = service_ns
        with self.lock:
            self.counts[job.priority]["served"] += 1
            mean = self.service_mean_s
            self.service_mean_s = service_ns / 1e9 if mean is None else (
                mean + EWMA_WEIGHT * (service_ns / 1e9 - mean))
        job.settle((200, {"id": job.request_id, "priority": Priority(job.priority).name,
                          "queued_ms": (job.taken_ns - job.enqueued_ns) / 1e6,
                          "service_ms": service_ns / 1e6}, {}))

    def failed(self, job: Job, error: BaseException) -> None:
        """The inference of a taken ``job`` raised (a worker process died): answer 500."""
        self._count(job.priority, "failed")
        job.settle((500, {"id": job.request_id, "error": f"inference failed: "
                          f"{type(error).__name__}: {error}"}, {}))

    def _client_left(self, job: Job) -> None:
        if job.state != rq.QUEUED:
            return  # taken (served all the same), expired or answered
        if self.can_cancel:
            if self.queue.cancel(job) and job.claim(rq.CANCELLED):
                self._count(job.priority, "cancelled")
        elif job.claim(rq.GONE):
            pass  # counted abandoned when a worker takes it and skips it

    def _expire(self, job: Job) -> None:
        if self.policy_active:
            self._collect_expired()
        elif self.can_cancel:
            if self.queue.cancel(job):
                self._expired(job)
        elif job.claim(rq.LATE):
            self._count(job.priority, "expired")
            job.settle(self._expired_reply(job))

    def _collect_expired(self) -> None:
        for job in self.queue.drain_expired():
            self._expired(job)

    def _expired_by_queue(self, job: Job) -> None:
        """The queue's ``on_expired`` (on the loop or a worker thread)."""
        self._expired(job)

    def _expired(self, job: Job) -> None:
        if job.claim(rq.EXPIRED):
            self._count(job.priority, "expired")
            job.settle(self._expired_reply(job))

    def _answer_shutdown(self, job: Job) -> bool:
        """Answer a still-queued ``job`` 503 (shutdown); whether it was still queued."""
        if job.claim(rq.SHUT):
            self._count(job.priority, "shutdown")
            job.settle(self._shutdown_reply())
            return True
        if job.claim(rq.SHUT, (rq.GONE,)):
            self._count(job.priority, "abandoned")
        return False

    # -- replies ----------------------------------------------------------------------------

    def _expired_reply(self, job: Job) -> Reply:
        waited_ms = (pc() - job.enqueued_ns) / 1e6
        return 504, {"id": job.request_id, "error": f"expired in the queue after "
                     f"{waited_ms:.1f} ms", "queued_ms": waited_ms}, {}

    def _shutdown_reply(self) -> Reply:
        return 503, {"error": "the service is shutting down"}, {"Retry-After": "1"}

    def _full_reply(self, priority: int, reason: str) -> Reply:
        seconds = self.retry_after_s(priority)
        return 503, {"error": reason, "retry_after_s": seconds}, {"Retry-After": str(seconds)}

    def retry_after_s(self, priority: int) -> int:
        """Whole seconds until the requests queued at ``priority`` and above are served.

        From the depth and the measured service rate (workers / measured mean
        service time); at least 1, and 1 before any request was served.
        """
        mean = self.service_mean_s
        if not mean:
            return 1
        depths = getattr(self.raw_queue, "depths", None)
        if callable(depths):
            ahead = sum(d for level, d in depths().items() if level <= priority)
        else:
            ahead = self.raw_queue.qsize()
        return max(1, math.ceil(ahead * mean / self.config.workers))

    # -- numbers -----------------------------------------------------------------------------

    def _count(self, priority: int, outcome: str) -> None:
        with self.lock:
            self.counts[priority][outcome] += 1

    def stats(self, window_s: float | None = None) -> dict[str, Any]:
        """Counts per level and outcome, the measured service mean and loop lag: ``/v1/stats``.

        The lag is over the last minute, or the last ``window_s`` seconds (a
        measurement's own span, without the start-up before it).
        """
        with self.lock:
            counts = {Priority(level).name: dict(c) for level, c in self.counts.items()}
            mean = self.service_mean_s
        since = -math.inf if window_s is None else asyncio.get_running_loop().time() - window_s
        lags = np.array([lag for at, lag in list(self.lags_s) if at >= since])
        lag = ({"samples": len(lags), "p50_ms": float(np.percentile(lags, 50)) * 1e3,
                "p99_ms": float(np.percentile(lags, 99)) * 1e3, "max_ms": float(lags.max()) * 1e3}
               if len(lags) else {"samples": 0})
        return {"queue": self.spec.name, "mode": self.config.mode,
                "workers": self.config.workers, "service": str(self.config.service),
                "holds_gil": self.config.holds_gil, "policy": self.policy_active,
                "admitting": self.admitting, "queued": len(self.jobs), "counts": counts,
                "service_mean_ms": None if mean is None else mean * 1e3, "loop_lag": lag}


class ServiceCollector(Collector):
    """The service's own families: outcomes per level, measured service mean, loop lag."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler

    def collect(self) -> Iterator[Any]:
        s = self.scheduler
        requests = CounterMetricFamily(
            "pqlab_service_requests", "Requests per priority level and outcome (admitted, "
            "rejected, served, expired, cancelled, abandoned, shutdown, failed).",
            labels=["priority", "outcome"])
        with s.lock:
            rows = [(level, dict(c)) for level, c in s.counts.items()]
            mean = s.service_mean_s
        for level, outcomes in rows:
            for outcome, value in outcomes.items():
                requests.add_metric([priority_label(level), outcome], value)
        yield requests
        if mean is not None:
            yield GaugeMetricFamily("pqlab_service_time_seconds", "Measured mean service time "
                                    "(moving average over about 20 requests).", value=mean)
        if s.lags_s:
            yield GaugeMetricFamily("pqlab_service_loop_lag_seconds", "Largest event-loop lag "
                                    "in the last minute (a 10 ms sleep's overshoot).",
                                    value=max(lag for _, lag in list(s.lags_s)))
