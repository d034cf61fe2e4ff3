"""``python -m pqlab redis-bench``: what the Redis queue costs against the physical limit.

Enqueue, claim and acknowledge each cost one round trip, so one client is
bound by the round trip (and, with ``appendfsync always``, by the fsync that
Redis does before it replies to a write). Three measurements, one server:

1. **Script-call rate of one client.** pqlab's ``put`` and ``claim`` beside
   ``redis-benchmark -c 1`` sending the very same scripts (``EVALSHA``, same
   keys, same task body) to the same server, interleaved; and plain redis-py
   ``evalsha`` of the enqueue script. Ratio = redis-benchmark's rate / pqlab's;
   target: within ``TARGET_RATIO``. On the private server the comparison is
   made twice: as configured (``appendfsync always``) and with fsync off,
   where only the round trip and the clients' own costs remain.
2. **Throughput against processes:** the ``processes`` scenario's untimed pass
   with k producer and k consumer processes.
3. **Drain rate against claim batch size:** one client empties a full queue
   with ``claim(count)`` + ``ack``: two round trips per ``count`` tasks.
4. **Replica acknowledgement** (``replicas=True``): on a private replicated
   deployment (two replicas, ``appendfsync always`` everywhere), the cost of
   one ``put`` and one ``ack`` with ``min_replicas=1`` (the script, then
   ``WAIT`` on the same connection) against ``min_replicas=0``, interleaved
   rounds; ratio = median µs with / median µs without.

Every function returns data; ``run_redis_bench`` prints it.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from functools import partial

import redis

from pqlab.core.task import make_workload
from pqlab.queues import QUEUES
from pqlab.queues.redisdeploy import replicated
from pqlab.queues.redisqueue import CLAIM, ENQUEUE, RedisPriorityQueue, encode_task, make_queue
from pqlab.queues.redissentinel import env_sentinel_url
from pqlab.queues.redisserver import RedisServer, check_reachable
from pqlab.scenarios import SCENARIOS, Workers

TARGET_RATIO = 2.0  # the target: pqlab within 2x of redis-benchmark's single client
DEFAULT_CALLS = 3_000  # about 1 s per side at fsync-bound rates (~3,000-5,000 calls/s)
DEFAULT_REPEATS = 3
DEFAULT_PROCESSES = (1, 2, 4)
DEFAULT_COUNTS = (1, 4, 16, 64)
LONG_LEASE_S = 3600.0  # claims in the rate test are never acknowledged: keep them in flight


@dataclass(frozen=True)
class CallRate:
    """One script called ``calls`` times by one client: pqlab and its peers, calls/s."""

    operation: str
    fsync: str
    pqlab: list[float]
    redis_benchmark: list[float]
    redis_py: list[float]

    @property
    def ratio(self) -> float:
        """redis-benchmark's median rate / pqlab's (NaN when redis-benchmark is missing)."""
        if not self.redis_benchmark:
            return float("nan")
        return statistics.median(self.redis_benchmark) / statistics.median(self.pqlab)

    @property
    def met(self) -> bool:
        return not self.redis_benchmark or self.ratio <= TARGET_RATIO


def _benchmark_target(url: str) -> list[str]:
    """redis-benchmark's options for the server at ``url``."""
    conn = redis.connection.parse_url(url)
    if "path" in conn:
        where = ["-s", conn["path"]]
    else:
        where = ["-h", conn.get("host", "127.0.0.1"), "-p", str(conn.get("port", 6379))]
    if conn.get("password"):
        where += ["-a", conn["password"]] + (["--user", conn["username"]]
                                             if conn.get("username") else [])
    return where + ["--dbnum", str(conn.get("db", 0))]


def redis_benchmark_rate(url: str, calls: int, args: list[str]) -> float:
    """Requests/s of ``redis-benchmark -c 1 -n calls`` sending ``args`` to the server at ``url``."""
    cmd = ["redis-benchmark", *_benchmark_target(url), "-c", "1", "-n", str(calls), "--csv",
           *args]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=True).stdout
    # The last line: "test","rps", then 6 latency columns. The test name is the
    # command line, unescaped (our JSON body has commas and quotes): split from the right.
    fields = out.strip().splitlines()[-1].rsplit(",", 7)
    return float(fields[1].strip('"'))


def _rate(calls: int, fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return calls / (time.perf_counter() - start)


def _script_args(q: RedisPriorityQueue, sha: str, *args) -> list[str]:
    return ["EVALSHA", sha, str(len(q.keys)), *q.keys, *map(str, args)]


def call_rates(url: str, calls: int, repeats: int, fsync: str) -> list[CallRate]:
    """Enqueue and claim rates of one client: pqlab, redis-benchmark, plain redis-py."""
    task = make_workload(1, seed=1)[0]
    body, have_rb = encode_task(task), shutil.which("redis-benchmark") is not None
    client = redis.Redis.from_url(url)
    put = {"pqlab": [], "rb": [], "py": []}
    claim = {"pqlab": [], "rb": []}
    for _ in range(repeats):
        ours = RedisPriorityQueue(url, lease_s=LONG_LEASE_S)
        peer = RedisPriorityQueue(url, lease_s=LONG_LEASE_S)
        ours.put(task)  # loads the scripts, opens the connection
        ours.claim()
        put["pqlab"].append(_rate(calls, partial(ours.put, task)))
        if have_rb:
            put["rb"].append(redis_benchmark_rate(
                url, calls, _script_args(peer, ENQUEUE.sha, int(task.priority), body)))
        put["py"].append(_rate(calls, partial(client.evalsha, ENQUEUE.sha, len(peer.keys),
                                              *peer.keys, int(task.priority), body)))
        claim["pqlab"].append(_rate(calls, ours.claim))
        if have_rb:
            claim["rb"].append(redis_benchmark_rate(
                url, calls, _script_args(peer, CLAIM.sha, *ours._claim_args)))
        ours.delete()
        peer.delete()
    client.close()
    return [CallRate("enqueue", fsync, put["pqlab"], put["rb"], put["py"]),
            CallRate("claim", fsync, claim["pqlab"], claim["rb"], [])]


def process_throughput(queues: Iterable[str], counts: Iterable[int], tasks: int,
                       url: str | None = None, deadline_s: float = 30.0) -> list[dict]:
    """Throughput (ops/s, untimed pass) of the ``processes`` scenario with k + k processes.

    ``url``: the server for the ``redis`` queue (default: as ``pqlab.queues.redisserver`` says).
    """
    workload = make_workload(tasks, seed=1)
    rows = []
    for name in queues:
        spec = QUEUES[name]
        if name == "redis" and url:
            spec = replace(spec, factory=partial(make_queue, url=url))
        for k in counts:
            result = SCENARIOS["processes"].untimed(spec, workload, Workers(k, k, deadline_s))
            rows.append({"queue": name, "processes": k, "tasks": tasks,
                         "throughput_ops_s": 2 * tasks / (result.wall_ns / 1e9)
                         if result.wall_ns else float("nan"),
                         "errors": "; ".join(result.errors)})
    return rows


def drain_rate(url: str, tasks: int, count: int) -> float:
    """Tasks/s one client takes out of a full queue with ``claim(count)`` and ``ack``."""
    q = RedisPriorityQueue(url, count=count)
    for task in make_workload(tasks, seed=1):
        q.put(task)
    taken, start = 0, time.perf_counter()
    while claims := q.claim():
        q.ack(*claims)
        taken += len(claims)
    elapsed = time.perf_counter() - start
    q.delete()
    return taken / elapsed


@dataclass(frozen=True)
class ReplicaCost:
    """µs per call of ``operation`` per round, without and with ``min_replicas=1``."""

    operation: str
    plain_us: list[float]
    confirmed_us: list[float]

    @property
    def ratio(self) -> float:
        return statistics.median(self.confirmed_us) / statistics.median(self.plain_us)


def _us_per_call(calls: int, fn: Callable[[], object], args: list) -> float:
    start = time.perf_counter()
    for arg in args[:calls]:
        fn(arg)
    return (time.perf_counter() - start) / calls * 1e6


def replica_costs(url: str, calls: int, repeats: int) -> list[ReplicaCost]:
    """Put and ack cost with and without replica acknowledgement, interleaved rounds."""
    task = make_workload(1, seed=1)[0]
    costs = {("put", m): [] for m in (0, 1)} | {("ack", m): [] for m in (0, 1)}
    for _ in range(repeats):
        for m in (0, 1):
            q = RedisPriorityQueue(url, lease_s=LONG_LEASE_S, count=calls, min_replicas=m)
            q.put(task)  # loads the scripts, opens the connection
            q.ack(*q.claim(count=1))
            costs["put", m].append(_us_per_call(calls, q.put, [task] * calls))
            claims = q.claim()
            costs["ack", m].append(_us_per_call(calls, q.ack, claims))
            q.delete()
    return [ReplicaCost(op, costs[op, 0], costs[op, 1]) for op in ("put", "ack")]


def format_replica_cost(c: ReplicaCost) -> str:
    return (f"  {c.operation:<4} {statistics.median(c.plain_us):>11,.0f} µs "
            f"{statistics.median(c.confirmed_us):>11,.0f} µs   {c.ratio:5.2f}x")


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):>9,.0f}" if values else f"{'-':>9}"


def format_call_rate(r: CallRate) -> str:
    verdict = ("met" if r.met else "NOT met") if r.redis_benchmark else "no redis-benchmark"
    ratio = f"{r.ratio:5.2f}x" if r.redis_benchmark else "    -"
    return (f"  {r.operation:<8} fsync {r.fsync:<7} {_median(r.pqlab)} {_median(r.redis_py)} "
            f"{_median(r.redis_benchmark)}   {ratio}  target <= {TARGET_RATIO:g}x  {verdict}")


def _set_fsync(url: str, value: str) -> None:
    client = redis.Redis.from_url(url)
    client.config_set("appendfsync", value)
    client.close()


def run_redis_bench(url: str | None = None, *, calls: int = DEFAULT_CALLS,
                    repeats: int = DEFAULT_REPEATS, tasks: int = 2_000,
                    processes: Iterable[int] = DEFAULT_PROCESSES,
                    counts: Iterable[int] = DEFAULT_COUNTS,
                    out: Callable[[str], None] = print, replicas: bool = False) -> bool:
    """Measure and print all parts (the fourth with ``replicas``); True when every ratio
    meets its target.

    Without ``url`` a private server is started for the run (and its fsync
    setting changed for the second comparison); a given server's settings
    are left alone.
    """
    server = None if url else RedisServer().start()
    url = url or server.url
    try:
        check_reachable(url)
        out(f"pqlab redis-bench: {url} ({'private redis-server' if server else 'given'}), "
            f"one client, {calls:,} calls x {repeats} interleaved repetitions, median calls/s")
        out(f"  {'script':<8} {'':<13} {'pqlab':>9} {'redis-py':>9} {'redis-b.':>9}   ratio "
            "(redis-benchmark / pqlab)")
        rates = []
        fsyncs = ("always", "no") if server else (_config(url, "appendfsync"),)
        for fsync in fsyncs:
            if server:
                _set_fsync(url, fsync)
            for rate in call_rates(url, calls, repeats, fsync):
                rates.append(rate)
                out(format_call_rate(rate))
        if server:
            _set_fsync(url, "always")
        out(f"\nthroughput of the processes scenario, k producer + k consumer processes, "
            f"{tasks:,} tasks (untimed pass)")
        for row in process_throughput(("redis", "multiprocessing"), processes, tasks, url):
            note = f"  error: {row['errors']}" if row["errors"] else ""
            out(f"  {row['queue']:<16} k={row['processes']:<3} "
                f"{row['throughput_ops_s']:>9,.0f} ops/s{note}")
        out(f"\ndrain rate of one client, claim(count) + ack per round trip pair, {tasks:,} tasks")
        for count in counts:
            out(f"  count={count:<4} {drain_rate(url, tasks, count):>9,.0f} tasks/s")
        if replicas:
            run_replica_bench(calls, repeats, out)
        return all(r.met for r in rates)
    finally:
        if server:
            server.stop()


def run_replica_bench(calls: int, repeats: int, out: Callable[[str], None] = print) -> None:
    """Part 4: on ``$PQLAB_REDIS_SENTINELS``'s, else a private deployment started here."""
    with replicated() as url:
        where = ("given" if env_sentinel_url()
                 else "a private primary + 2 replicas, appendfsync always")
        out(f"\nreplica acknowledgement: {url} ({where}), one client, "
            f"{calls:,} calls x {repeats} interleaved rounds, median per call")
        out(f"  {'call':<4} {'min_replicas=0':>14} {'min_replicas=1':>14}   ratio")
        for cost in replica_costs(url, calls, repeats):
            out(format_replica_cost(cost))


def _config(url: str, name: str) -> str:
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        return client.config_get(name).get(name, "?")
    except redis.ResponseError:  # a managed Redis may forbid CONFIG
        return "?"
    finally:
        client.close()
