"""The failover drill: producers and consumers on a replicated Redis while its primary dies.

``run_failover`` starts 4 producer and 4 consumer processes (spawned) on one
``RedisPriorityQueue`` behind the Sentinels of a ``Deployment``. Producers put
at a steady rate; consumers claim and acknowledge. Half-way the primary is
killed (SIGKILL); once the Sentinels name another primary it is started
again on its own directory, and they re-attach it as a replica. With
``paused=True`` every replica is stopped (SIGSTOP) ``PAUSE_S`` before the
kill, the primary's replication links are closed (``CLIENT KILL TYPE
replica``: stopped, the replicas cannot reconnect), and they are continued
(SIGCONT) right after the kill: the writes of that second stood on the
primary alone, as behind replicas cut off by the network.

Every task carries a key (producer, number). A producer counts a put as
acknowledged when ``put`` returned (under ``min_replicas``, after the
replicas confirmed it: a ``ReplicationTimeout`` is retried as the same
request). A consumer counts a task served when ``ack_each`` says it removed
it. After the producers stop, the run waits until nothing is queued or in
flight (leases of claims lost with the primary run out, and those tasks are
claimed again), then compares: lost = acknowledged and never served;
duplicated = served by two claims; redelivered = claimed more than once.
The time without service is the longest gap between successful claims,
across consumers, while producers were putting. Claim times are
``time.monotonic``: one clock for every process on Linux.
"""

from __future__ import annotations

import multiprocessing
import time
from collections import Counter
from dataclasses import dataclass

import pandas as pd
import redis

from pqlab.core.task import Task
from pqlab.queues.redisdeploy import Deployment
from pqlab.queues.redisqueue import AckStatus, RedisPriorityQueue, ReplicationTimeout
from pqlab.queues.redisserver import RedisUnavailable

CONTEXT = multiprocessing.get_context("spawn")
PRODUCERS = CONSUMERS = 4
RATE_PER_S = 100  # puts per second per producer: 400/s in all, steady
DURATION_S = 6.0  # producers put this long; the primary dies half-way
PAUSE_S = 1.0  # replicas stopped this long before the kill (paused=True)
LEASE_S = 2.0  # a claim lost with the primary comes back after this
REPLICA_TIMEOUT_MS = 500  # a put or ack waits this long for a replica, then is retried
RECONNECT_S = 30.0  # clients keep following the primary this long: a failover takes ~2-3 s
DRAIN_TIMEOUT_S = 30.0  # after the producers: until nothing is queued or in flight
START_TIMEOUT_S = 30.0  # spawned workers ready (each imports pqlab, ~0.3 s on an idle core)
EMPTY_WAIT_S = 0.05  # a consumer with nothing to claim blocks this long on the marker


@dataclass(frozen=True)
class FailoverRun:
    """What one drill measured."""

    min_replicas: int
    paused: bool
    acknowledged: int  # puts that returned to their producer
    served: int  # acknowledged tasks that a consumer's ack removed
    lost: int  # acknowledged, never served
    duplicated: int  # served by two claims
    redelivered: int  # claimed more than once
    unconfirmed: int  # ReplicationTimeout replies, each retried
    failover_s: float  # from the kill until the Sentinels named another primary
    no_service_s: float  # longest gap between successful claims while producing


@dataclass(frozen=True)
class _Drill:
    """What every worker of one drill is told."""

    url: str
    name: str
    min_replicas: int
    duration_s: float
    rate_per_s: float

    def queue(self) -> RedisPriorityQueue:
        return RedisPriorityQueue(self.url, self.name, lease_s=LEASE_S, reconnect_s=RECONNECT_S,
                                  block_s=EMPTY_WAIT_S, min_replicas=self.min_replicas,
                                  replica_timeout_ms=REPLICA_TIMEOUT_MS)


def _retrying(call, *args):
    """``call(*args)``, sent again as the same request after each ``ReplicationTimeout``."""
    unconfirmed = 0
    while True:
        try:
            return call(*args), unconfirmed
        except ReplicationTimeout:
            unconfirmed += 1


def _produce(drill: _Drill, number, ready, go, results) -> None:
    q = drill.queue()
    q.qsize()  # connected before the start
    ready.put(number)
    start = go.wait() and time.monotonic()
    acknowledged, unconfirmed, failed = [], 0, 0
    for i in range(int(drill.duration_s * drill.rate_per_s)):
        time.sleep(max(0.0, start + i / drill.rate_per_s - time.monotonic()))
        key = number * 1_000_000 + i
        try:
            _, retries = _retrying(q.put, Task(1, key, 0.0, key, 0, None))
        except RedisUnavailable:
            failed += 1
            continue
        unconfirmed += retries
        acknowledged.append(key)
    results.put(("producer", acknowledged, unconfirmed, failed))


def _consume(drill: _Drill, number, ready, go, stop, results) -> None:
    q = drill.queue()
    q.qsize()
    ready.put(number)
    go.wait()
    served, claimed_at, redelivered, unconfirmed = [], [], [], 0
    while not stop.is_set():
        try:
            claims = q.claim(count=1)
            if not claims:
                q.wait(EMPTY_WAIT_S)
                continue
            claimed_at.append(time.monotonic())
            claim = claims[0]
            if claim.deliveries > 1:
                redelivered.append(claim.task_id)
            statuses, retries = _retrying(q.ack_each, claim)
        except RedisUnavailable:
            continue
        unconfirmed += retries
        if statuses[0] is not AckStatus.LEASE_LOST:
            served.append(claim.task.task_id)
    results.put(("consumer", served, claimed_at, redelivered, unconfirmed))


def _await_new_primary(deployment: Deployment, old_port: int, timeout_s: float) -> float:
    """Seconds until the Sentinels name a primary other than ``old_port``.

    Then waits, within the same ``timeout_s``, until every Sentinel does:
    the old primary restarts as a primary until they convert it, and a
    Sentinel not yet told of the failover would name it.
    """
    start, clients = time.monotonic(), deployment.sentinel_clients()
    failover_s = None
    try:
        while time.monotonic() - start < timeout_s:
            named = [_named_port(c, deployment.service) for c in clients]
            if failover_s is None and any(p not in (None, old_port) for p in named):
                failover_s = time.monotonic() - start
            if all(p not in (None, old_port) for p in named):
                return failover_s
            time.sleep(0.02)
    finally:
        for client in clients:
            client.close()
    raise RedisUnavailable(f"the Sentinels named no new primary within {timeout_s:g} s of "
                           "killing the old one")


def _named_port(client, service: str) -> int | None:
    """The port of the primary this Sentinel names, None when it does not answer."""
    try:
        address = client.sentinel_get_master_addr_by_name(service)
    except redis.RedisError:
        return None
    return int(address[1]) if address else None


def _drive_failure(deployment: Deployment, kill_at: float, paused: bool) -> float:
    """Kill the primary half-way (pausing the replicas first); the failover time."""
    primary = deployment.primary_server()
    replicas = [s for s in deployment.servers if s is not primary]
    try:
        if paused:
            time.sleep(max(0.0, kill_at - PAUSE_S - time.monotonic()))
            for replica in replicas:
                deployment.pause(replica)
            _cut_replicas(primary.port)
        time.sleep(max(0.0, kill_at - time.monotonic()))
        deployment.kill(primary)
    finally:
        for replica in replicas:
            deployment.resume(replica)
    failover_s = _await_new_primary(deployment, primary.port, DRAIN_TIMEOUT_S)
    primary.start()  # the Sentinels make it a replica of the new primary
    return failover_s


def _cut_replicas(port: int) -> None:
    """Close the primary's replication links (the paused replicas cannot reconnect).

    A stopped replica alone loses nothing on loopback: the stream waits in its
    socket buffer and it reads it when continued, even after the primary died.
    """
    client = redis.Redis(port=port, socket_timeout=1.0)
    try:
        client.client_kill_filter(_type="replica")
    finally:
        client.close()


def _drain(q: RedisPriorityQueue, deadline_s: float) -> None:
    """Wait until nothing is queued or in flight (claims lost in the failover come back)."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if q.qsize() == 0 and q.inflight() == 0:
            return
        time.sleep(0.1)


def _longest_gap(times: list[float], start: float, end: float) -> float:
    inside = sorted(t for t in times if start <= t <= end)
    if len(inside) < 2:
        return end - start
    return max(b - a for a, b in zip([start, *inside], [*inside, end], strict=True))


def run_failover(deployment: Deployment, min_replicas: int = 0, paused: bool = False,
                 duration_s: float = DURATION_S, rate_per_s: float = RATE_PER_S) -> FailoverRun:
    """One drill on ``deployment`` (left running, the old primary restarted as a replica).

    Producers put ``rate_per_s`` each for ``duration_s``; the primary dies half-way.
    """
    q = RedisPriorityQueue(deployment.url, owner=True, reconnect_s=RECONNECT_S)
    drill = _Drill(deployment.url, q.name, min_replicas, duration_s, rate_per_s)
    ready, results = CONTEXT.Queue(), CONTEXT.Queue()
    go, stop = CONTEXT.Event(), CONTEXT.Event()
    workers = [CONTEXT.Process(target=_produce, args=(drill, i, ready, go, results))
               for i in range(PRODUCERS)]
    workers += [CONTEXT.Process(target=_consume, args=(drill, i, ready, go, stop, results))
                for i in range(CONSUMERS)]
    for w in workers:
        w.start()
    try:
        for _ in workers:
            ready.get(timeout=START_TIMEOUT_S)
        start = time.monotonic()
        go.set()
        failover_s = _drive_failure(deployment, start + duration_s / 2, paused)
        produced = [results.get(timeout=duration_s + RECONNECT_S) for _ in range(PRODUCERS)]
        end = time.monotonic()
        _drain(q, DRAIN_TIMEOUT_S)
        stop.set()
        consumed = [results.get(timeout=RECONNECT_S) for _ in range(CONSUMERS)]
    finally:
        stop.set()
        for w in workers:
            w.join(5.0)
            if w.is_alive():
                w.kill()
                w.join()
    return _tally(min_replicas, paused, produced, consumed, failover_s, start, end)


def _tally(min_replicas, paused, produced, consumed, failover_s, start, end) -> FailoverRun:
    acknowledged = {key for p in produced for key in p[1]}
    serves = Counter(key for c in consumed for key in c[1])
    claimed_at = [t for c in consumed for t in c[2]]
    return FailoverRun(
        min_replicas=min_replicas, paused=paused, acknowledged=len(acknowledged),
        served=len(acknowledged & serves.keys()), lost=len(acknowledged - serves.keys()),
        duplicated=sum(n > 1 for n in serves.values()),
        redelivered=len({key for c in consumed for key in c[3]}),
        unconfirmed=sum(p[2] for p in produced) + sum(c[4] for c in consumed),
        failover_s=failover_s, no_service_s=_longest_gap(claimed_at, start, end))



# -- the drill as a tidy frame (notebook 06, the decision record) ---------------------

SCENARIOS = {"plain": False, "paused replica": True}  # name: replicas paused before the kill
METRICS = ("acknowledged", "served", "lost", "duplicated", "redelivered", "unconfirmed",
           "failover_s", "no_service_s")
FRAME_COLUMNS = ("run", "scenario", "min_replicas", "metric", "value", "replicas", "sentinels",
                 "producers", "consumers", "rate_per_s", "duration_s")


def frame_rows(number: int, scenario: str, run: FailoverRun, deployment: Deployment) -> list[dict]:
    """One drill as tidy rows: one per metric, with the drill's and the deployment's shape."""
    shape = {"run": number, "scenario": scenario, "min_replicas": run.min_replicas,
             "replicas": deployment.replica_count, "sentinels": deployment.sentinel_count,
             "producers": PRODUCERS, "consumers": CONSUMERS, "rate_per_s": float(RATE_PER_S),
             "duration_s": float(DURATION_S)}
    return [{**shape, "metric": m, "value": float(getattr(run, m))} for m in METRICS]


def drill_frame(runs: int, scenarios=("plain",), min_replicas=(0, 1),
                progress=None) -> pd.DataFrame:
    """``runs`` drills of each scenario (``SCENARIOS``) and ``min_replicas``, each on a fresh
    ``Deployment`` (stopped after it), interleaved; run × scenario × min_replicas × metric.

    ``progress(scenario, run)`` is called after each drill. ``runs = 0``: an empty frame.
    """
    rows: list[dict] = []
    for number in range(1, runs + 1):
        for scenario in scenarios:
            for m in min_replicas:
                with Deployment() as deployment:
                    run = run_failover(deployment, min_replicas=m, paused=SCENARIOS[scenario])
                    rows += frame_rows(number, scenario, run, deployment)
                if progress is not None:
                    progress(scenario, run)
    return pd.DataFrame(rows, columns=list(FRAME_COLUMNS))
