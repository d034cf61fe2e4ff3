"""Open-loop HTTP load, free of coordinated omission, reported per priority.

``LoadPlan`` fixes every request before the run from the seed: when it is
due (Poisson or constant gaps at ``rate_per_s``), its priority (the mix) and
its client's patience. ``run_load`` sends each one at its scheduled time
whatever the server does: every request is its own task on one event loop,
over keep-alive connections with no cap on their number (a capped pool
would make requests wait for a free connection: a closed loop past
saturation). Latency counts from the *scheduled* send time (as wrk2 and oha
do), so a stall anywhere, server or client, shows in it; how late each
request actually left is recorded too (``lateness``). A client whose
patience runs out closes its request (``disconnect``); the server sees it
leave.

The client is aiohttp: its connector has no connection cap with
``limit=0``, and it costs about a third of httpx's CPU per request (httpx
keeps a pool of 100 by default and adds its own per-request machinery),
which matters on a 2-core box shared with the server.
"""

from __future__ import annotations

import asyncio
import gc
import json
import math
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import numpy as np
import uvloop

from pqlab.core.checks import LEVEL_NAMES, priority_weights
from pqlab.core.task import PRIORITY_LEVELS
from pqlab.scenarios.loadparams import ARRIVALS, ServiceTime

LEAD_IN_S = 0.2  # the first request is due this long after the session opens
DRAIN_S = 30.0  # the longest the run waits for replies after the last send
DISCONNECT = 0  # status code of a request its client gave up on
ERROR = -1  # status code of a request that failed in the network (refused, reset)
UNFINISHED = -2  # no reply within DRAIN_S of the last send
QUANTILES = (50.0, 99.0, 99.9)
SPLIT_KEYS = ("queued_ms", "service_ms", "server_ms")  # the server's split of a 200


@dataclass(frozen=True)
class LoadPlan:
    """What ``http-load`` sends; ``ValueError`` names a bad field and what is allowed."""

    url: str
    rate_per_s: float
    duration_s: float
    mix: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0)
    arrivals: str = "poisson"
    patience: ServiceTime | None = None
    seed: int | None = None
    timeout_ms: float | None = None  # sent in every body, if given
    drain_s: float = DRAIN_S

    def __post_init__(self) -> None:
        if not isinstance(self.url, str) or not self.url.startswith(("http://", "https://")):
            raise ValueError(f"url must start with http:// or https://, got {self.url!r}")
        for name in ("rate_per_s", "duration_s", "drain_s"):
            value = getattr(self, name)
            if (isinstance(value, bool) or not isinstance(value, (int, float))
                    or not 0 < value < math.inf):
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        if self.arrivals not in ARRIVALS:
            raise ValueError(f"arrivals {self.arrivals!r} unknown; allowed: {', '.join(ARRIVALS)}")
        object.__setattr__(self, "mix", tuple(priority_weights(self.mix, "mix")))
        if self.timeout_ms is not None and not 0 < self.timeout_ms < math.inf:
            raise ValueError(f"timeout_ms must be a positive number, got {self.timeout_ms!r}")

    def schedule(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Due times (s after the start), priorities and patience (s, 0: none) per request.

        Each from a seeded stream of its own (as ``make_load_workload``), so
        changing one distribution leaves the others alone.
        """
        n = max(1, round(self.rate_per_s * self.duration_s))
        gaps_rng, mix_rng, patience_rng = (np.random.default_rng([stream, self.seed or 0])
                                           for stream in (1, 2, 3))
        if self.arrivals == "poisson":
            due = np.cumsum(gaps_rng.exponential(1.0 / self.rate_per_s, n))
        else:
            due = np.arange(n) / self.rate_per_s
        weights = np.array(self.mix) / sum(self.mix)
        priorities = mix_rng.choice(np.array(PRIORITY_LEVELS), size=n, p=weights)
        patience = (self.patience.draw(patience_rng, n) if self.patience is not None
                    else np.zeros(n))
        return due, priorities, patience


@dataclass
class LoadResult:
    """Per request (send order): due time, priority, how late it left, status, latency, split.

    ``status`` is the HTTP status, or ``DISCONNECT``, ``ERROR``, ``UNFINISHED``;
    ``latency_s`` runs from the scheduled send time to the reply's last byte
    (NaN without a reply); ``split_ms`` holds the server's ``queued_ms``,
    ``service_ms``, ``server_ms`` of each 200 (NaN otherwise).
    """

    plan: LoadPlan
    due_s: np.ndarray
    priority: np.ndarray
    lateness_s: np.ndarray
    status: np.ndarray
    latency_s: np.ndarray
    split_ms: np.ndarray  # shape (n, 3)
    sent_span_s: float = 0.0  # first send to last send
    errors: list[str] = field(default_factory=list)  # the first few network errors, as text

    def per_priority(self) -> dict[str, dict[str, Any]]:
        """Per level name, then ``all``: offered, statuses, disconnects, errors, the 200s'
        latencies and their server-side split."""
        table = {name: self._row(self.priority == level)
                 for level, name in zip(PRIORITY_LEVELS, LEVEL_NAMES, strict=True)}
        table["all"] = self._row(np.ones(len(self.priority), dtype=bool))
        return table

    def _row(self, mine: np.ndarray) -> dict[str, Any]:
        status = self.status[mine]
        ok = mine & (self.status == 200)
        row: dict[str, Any] = {"offered": int(mine.sum())}
        for code in (200, 503, 504):
            row[str(code)] = int((status == code).sum())
        row["other"] = int(((status > 0) & ~np.isin(status, (200, 503, 504))).sum())
        row["disconnect"] = int((status == DISCONNECT).sum())
        row["error"] = int((status == ERROR).sum())
        row["unfinished"] = int((status == UNFINISHED).sum())
        row["latency_ms"] = quantiles_ms(self.latency_s[ok])
        row["split_ms"] = {key: quantiles_ms(self.split_ms[ok, k] / 1e3)
                           for k, key in enumerate(SPLIT_KEYS)}
        return row

    def schedule_summary(self) -> dict[str, Any]:
        """How far behind schedule the sends fell, and the rate they achieved."""
        n = len(self.due_s)
        late = self.lateness_s[np.isfinite(self.lateness_s)]
        achieved = (n - 1) / self.sent_span_s if n > 1 and self.sent_span_s > 0 else math.nan
        span = self.due_s[-1] - self.due_s[0] if n > 1 else 0.0
        return {"offered": n, "target_rate_per_s": self.plan.rate_per_s,
                "scheduled_rate_per_s": (n - 1) / span if span > 0 else math.nan,
                "achieved_rate_per_s": achieved,
                "lateness_ms": {"p50": _q(late, 50) * 1e3, "p99": _q(late, 99) * 1e3,
                                "max": float(late.max()) * 1e3 if len(late) else math.nan}}

    def to_dict(self, requests: bool = True) -> dict[str, Any]:
        """Plain values for JSON: the plan, the schedule, per priority, and each request."""
        plan = self.plan
        out: dict[str, Any] = {
            "plan": {"url": plan.url, "rate_per_s": plan.rate_per_s,
                     "duration_s": plan.duration_s, "mix": list(plan.mix),
                     "arrivals": plan.arrivals, "seed": plan.seed,
                     "patience": None if plan.patience is None else str(plan.patience),
                     "timeout_ms": plan.timeout_ms},
            "schedule": self.schedule_summary(), "per_priority": self.per_priority(),
            "errors": self.errors}
        if requests:
            out["requests"] = {
                "due_s": self.due_s.tolist(), "priority": self.priority.tolist(),
                "lateness_ms": (self.lateness_s * 1e3).tolist(), "status": self.status.tolist(),
                "latency_ms": (self.latency_s * 1e3).tolist(),
                "queued_ms": self.split_ms[:, 0].tolist(),
                "service_ms": self.split_ms[:, 1].tolist(),
                "server_ms": self.split_ms[:, 2].tolist()}
        return _finite(out)


def _q(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else math.nan


def quantiles_ms(values_s: np.ndarray) -> dict[str, float | int]:
    """p50, p99, p99.9 in ms, and ``n``, the count they come from (NaN when n is 0)."""
    values = values_s[np.isfinite(values_s)]
    out: dict[str, float | int] = {f"p{q:g}": _q(values, q) * 1e3 for q in QUANTILES}
    out["n"] = int(len(values))
    return out


def _finite(value: Any) -> Any:
    """NaN as None, for strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


class Sender:
    """One run's requests on one session: each sent at its time, its outcome stored by index."""

    def __init__(self, plan: LoadPlan, session: aiohttp.ClientSession, n: int) -> None:
        self.plan = plan
        self.session = session
        self.lateness_s = np.full(n, math.nan)
        self.status = np.full(n, UNFINISHED, dtype=np.int64)
        self.latency_s = np.full(n, math.nan)
        self.split_ms = np.full((n, 3), math.nan)
        self.errors: list[str] = []

    async def send(self, i: int, due: float, priority: int, patience_s: float) -> None:
        """Send request ``i`` now (it was due at ``due``, perf_counter seconds)."""
        pc = time.perf_counter
        self.lateness_s[i] = pc() - due
        body: dict[str, Any] = {"priority": priority}
        if self.plan.timeout_ms is not None:
            body["timeout_ms"] = self.plan.timeout_ms
        try:
            if patience_s > 0:
                await asyncio.wait_for(self._post(i, due, body), due + patience_s - pc())
            else:
                await self._post(i, due, body)
        except TimeoutError:
            self.status[i] = DISCONNECT  # wait_for cancelled the request: its connection closed
        except (aiohttp.ClientError, OSError) as exc:
            self.status[i] = ERROR
            if len(self.errors) < 5:
                self.errors.append(f"{type(exc).__name__}: {exc}")

    async def _post(self, i: int, due: float, body: dict[str, Any]) -> None:
        async with self.session.post(self.plan.url, json=body) as response:
            data = await response.read()
            self.latency_s[i] = time.perf_counter() - due
            self.status[i] = response.status
        if response.status == 200:
            try:
                reply = json.loads(data)
            except ValueError:
                return
            # The no-op endpoint's reply has server_ms only.
            self.split_ms[i] = [reply.get(key, math.nan) for key in SPLIT_KEYS]


async def run_load(plan: LoadPlan) -> LoadResult:
    """Send ``plan``'s requests on schedule and wait for their replies (at most ``drain_s``).

    Blocks for about the plan's duration plus the slowest reply. Network
    errors are counted per request (``ERROR``), never raised.
    """
    due_s, priorities, patience = plan.schedule()
    n = len(due_s)
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, keepalive_timeout=60)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        sender = Sender(plan, session, n)
        pc = time.perf_counter
        start = pc() + LEAD_IN_S
        tasks = []
        first = last = start
        for i, (offset, priority, wait_s) in enumerate(zip(due_s.tolist(), priorities.tolist(),
                                                           patience.tolist(), strict=True)):
            due = start + offset
            while (delay := due - pc()) > 0:  # uvloop's ms timers can fire early: never send early
                await asyncio.sleep(delay)
            last = pc()
            if i == 0:
                first = last
            tasks.append(asyncio.create_task(sender.send(i, due, priority, wait_s)))
        _, pending = await asyncio.wait(tasks, timeout=plan.drain_s) if tasks else ((), ())
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
    return LoadResult(plan, due_s, priorities, sender.lateness_s, sender.status,
                      sender.latency_s, sender.split_ms, last - first, sender.errors)


def run(plan: LoadPlan) -> LoadResult:
    """``run_load`` on a fresh uvloop event loop, with the objects made so far frozen out of
    the garbage collector's way (fewer long collections mid-run). Blocks for the run."""
    gc.collect()
    gc.freeze()
    try:
        return uvloop.run(run_load(plan))
    finally:
        gc.unfreeze()
