"""pqlab.queues.prometheus: every scraped number against the queue's own, over real HTTP."""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import queue
import socket
import threading
import time
import urllib.request

import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from redis_helpers import private_server

from pqlab.cli import main as cli
from pqlab.core.task import Priority, Task, make_workload, next_seq
from pqlab.queues import QUEUES, create_queue
from pqlab.queues.bridge import BridgeBucketQueue
from pqlab.queues.policy import LevelPolicy, QueuePolicy, Rejected
from pqlab.queues.prometheus import (
    WAIT_BUCKETS_S,
    InstrumentedAsyncQueue,
    InstrumentedBridge,
    InstrumentedSyncQueue,
    MetricsPortError,
    export_counts,
    histogram_quantiles,
    instrument,
    instrumenting,
    serve_metrics,
)
from pqlab.queues.redisqueue import RedisPriorityQueue
from pqlab.queues.registry import HeapqQueue
from pqlab.queues.syncqueue import ThreadSafeBucketQueue

DEADLINE_S = 30.0


def task(priority: int) -> Task:
    return Task(priority, next_seq(), 0.0, "t", "m")


def scrape(url: str) -> dict:
    """``{(name, labels as a sorted tuple): value}`` from the text format at ``url``."""
    text = urllib.request.urlopen(url, timeout=DEADLINE_S).read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def depth(samples: dict, queue: str, level: int) -> float:
    return samples[("pqlab_queue_depth", (("priority", Priority(level).name), ("queue", queue)))]


def requests(samples: dict, queue: str, level: int, outcome: str) -> float:
    labels = (("outcome", outcome), ("priority", Priority(level).name), ("queue", queue))
    return samples[("pqlab_queue_requests_total", labels)]


def waits(samples: dict, queue: str, level: int, suffix: str, le: str | None = None) -> float:
    labels = {"priority": Priority(level).name, "queue": queue}
    if le is not None:
        labels["le"] = le
    return samples[(f"pqlab_queue_wait_seconds{suffix}", tuple(sorted(labels.items())))]


class Clock:
    """A monotonic clock the test moves by hand (the queue's ``clock=``)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def registry():
    return CollectorRegistry()


@pytest.fixture
def endpoint(registry):
    with serve_metrics(0, registry) as server:
        yield server


# -- a queue that counts itself: an active policy ------------------------------------


def test_a_policy_queue_scrapes_as_its_own_counts_and_depths(registry, endpoint):
    clock = Clock()
    policy = QueuePolicy(levels={Priority.HIGH: LevelPolicy(default_timeout_s=5.0),
                                 Priority.LOW: LevelPolicy(max_queue_size=3)})
    q = instrument(create_queue("ThreadSafeBucketQueue", policy=policy, clock=clock),
                   name="policed", registry=registry)
    assert isinstance(q, InstrumentedSyncQueue)
    puts = {Priority.CRITICAL: 3, Priority.HIGH: 2, Priority.NORMAL: 4, Priority.LOW: 3}
    items = {level: [task(level) for _ in range(n)] for level, n in puts.items()}
    for level_items in items.values():
        for item in level_items:
            q.put(item)
    with pytest.raises(Rejected):
        q.put(task(Priority.LOW))  # LOW is full: rejected, never queued
    assert [q.get().priority for _ in range(4)] == [1, 1, 1, 2]  # one HIGH served in time
    assert q.cancel(items[Priority.NORMAL][-1]) and not q.cancel(items[Priority.NORMAL][-1])
    clock.now += 10  # the other HIGH request expires
    assert q.drain_expired() == [items[Priority.HIGH][1]]

    samples = scrape(endpoint.url)
    counts, depths = q.queue.counts(), q.queue.depths()
    for level in Priority:
        assert depth(samples, "policed", level) == depths[level]
        for outcome, value in counts[level].items():
            assert requests(samples, "policed", level, outcome) == value
        assert waits(samples, "policed", level, "_count") == counts[level]["served"]
        assert waits(samples, "policed", level, "_bucket", "+Inf") == counts[level]["served"]
    # ... and they are the workload's
    assert counts[Priority.LOW] == {"admitted": 3, "rejected": 1, "expired": 0, "cancelled": 0,
                                    "served": 0}
    assert counts[Priority.HIGH] == {"admitted": 2, "rejected": 0, "expired": 1, "cancelled": 0,
                                     "served": 1}
    assert counts[Priority.NORMAL]["cancelled"] == 1
    assert depths == {1: 0, 2: 0, 3: 3, 4: 3}
    # one stamp per queued request: the rejected, served, cancelled and expired left none
    assert q.tracked() == sum(depths.values()) == 6


# -- a queue that counts nothing: the wrapper counts ------------------------------------


def test_without_a_policy_the_wrapper_counts_and_the_queue_gives_the_depth(registry, endpoint):
    q = instrument(ThreadSafeBucketQueue(maxsize=5), name="plain", registry=registry)
    items = [task(level) for level in (1, 2, 3, 3, 4)]
    for item in items:
        q.put(item)
    with pytest.raises(queue.Full):
        q.put_nowait(task(1))  # maxsize reached: counted rejected
    assert q.get() is items[0] and q.get_nowait() is items[1]
    assert q.cancel(items[3])
    samples = scrape(endpoint.url)
    expected = {1: (1, 1, 0, 1), 2: (1, 0, 0, 1), 3: (2, 0, 1, 0), 4: (1, 0, 0, 0)}
    for level, (admitted, rejected, cancelled, served) in expected.items():
        assert requests(samples, "plain", level, "admitted") == admitted
        assert requests(samples, "plain", level, "rejected") == rejected
        assert requests(samples, "plain", level, "cancelled") == cancelled
        assert requests(samples, "plain", level, "served") == served
        assert requests(samples, "plain", level, "expired") == 0
        assert depth(samples, "plain", level) == q.queue.depths()[level]
        assert waits(samples, "plain", level, "_count") == served
    assert q.tracked() == q.qsize() == 2


def test_a_queue_without_depths_gets_its_depth_from_the_wrappers_counts(registry, endpoint):
    q = instrument(HeapqQueue(), name="heap", registry=registry)
    for level in (4, 4, 2, 7):  # level 7 is no named priority: labelled "7"
        q.put(task(level))
    assert q.get().priority == 2
    samples = scrape(endpoint.url)
    assert depth(samples, "heap", Priority.LOW) == 2 and depth(samples, "heap", 2) == 0
    assert samples[("pqlab_queue_depth", (("priority", "7"), ("queue", "heap")))] == 1


def test_an_immediate_shutdown_counts_the_dropped_as_cancelled_and_keeps_no_stamp(registry):
    q = instrument(ThreadSafeBucketQueue(), name="shut", registry=registry)
    for level in (1, 3, 3):
        q.put(task(level))
    q.shutdown(immediate=True)
    reading = q.read()
    assert reading.counts[3]["cancelled"] == 2 and reading.counts[1]["cancelled"] == 1
    assert reading.depths == {1: 0, 2: 0, 3: 0, 4: 0} and q.tracked() == 0


# -- the waits ------------------------------------------------------------------------


def test_a_wait_lands_in_the_buckets_at_or_above_how_long_it_waited(registry, endpoint):
    q = instrument(ThreadSafeBucketQueue(), name="slow", registry=registry)
    q.put(task(Priority.NORMAL))
    waited_from = time.perf_counter()
    while time.perf_counter() - waited_from < 0.003:  # at least 3 ms in the queue
        time.sleep(0.001)
    q.get()
    samples = scrape(endpoint.url)
    assert waits(samples, "slow", Priority.NORMAL, "_bucket", "0.0025") == 0
    assert waits(samples, "slow", Priority.NORMAL, "_bucket", "10.0") == 1
    assert 0.003 <= waits(samples, "slow", Priority.NORMAL, "_sum") < DEADLINE_S
    les = [le for (name, labels) in samples if name.endswith("_bucket")
           for key, le in labels if key == "le" and ("queue", "slow") in labels
           and ("priority", "NORMAL") in labels]
    assert les == [*map(str, WAIT_BUCKETS_S), "+Inf"]


def test_threads_conserve_every_request_and_observe_every_wait(registry, endpoint):
    q = instrument(ThreadSafeBucketQueue(), name="busy", registry=registry)
    workload = make_workload(4000, 3)
    chunks = [workload[i::4] for i in range(4)]
    taken: list[int] = []

    def consume(n: int) -> None:
        taken.extend(q.get(timeout=DEADLINE_S).priority for _ in range(n))

    threads = [threading.Thread(target=lambda c=c: [q.put(t) for t in c]) for c in chunks]
    threads += [threading.Thread(target=consume, args=(len(c),)) for c in chunks]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE_S)
    assert len(taken) == len(workload)
    samples = scrape(endpoint.url)
    for level in Priority:
        n = sum(1 for t in workload if t.priority == level)
        assert requests(samples, "busy", level, "admitted") == n
        assert requests(samples, "busy", level, "served") == n
        assert waits(samples, "busy", level, "_count") == n
        assert depth(samples, "busy", level) == 0
    assert q.tracked() == 0


# -- the async face, the bridge ---------------------------------------------------------


def test_an_async_queue_with_a_policy_scrapes_as_its_counts(registry, endpoint):
    clock = Clock()
    policy = QueuePolicy(LevelPolicy(max_queue_size=2, default_timeout_s=1.0))
    q = instrument(create_queue("AsyncBucketQueue", policy=policy, clock=clock), name="aio",
                   registry=registry)
    assert isinstance(q, InstrumentedAsyncQueue)
    kept = task(Priority.HIGH)

    async def drive() -> None:
        await q.put(task(Priority.CRITICAL))
        q.put_nowait(kept)
        await q.put(task(Priority.HIGH))
        with pytest.raises(Rejected):
            await q.put(task(Priority.HIGH))
        assert (await q.get()).priority == Priority.CRITICAL
        assert q.get_nowait() is kept
        clock.now += 5
        assert len(q.drain_expired()) == 1

    asyncio.run(drive())
    samples = scrape(endpoint.url)
    counts = q.queue.counts()
    assert counts[Priority.HIGH] == {"admitted": 2, "rejected": 1, "expired": 1,
                                     "cancelled": 0, "served": 1}
    for level in Priority:
        for outcome, value in counts[level].items():
            assert requests(samples, "aio", level, outcome) == value
        assert waits(samples, "aio", level, "_count") == counts[level]["served"]
    assert q.tracked() == 0


def test_both_faces_of_a_bridge_record_into_one_set_of_series(registry, endpoint):
    q = instrument(BridgeBucketQueue(), name="bridge", registry=registry)
    assert isinstance(q, InstrumentedBridge)

    async def from_the_loop() -> None:
        await q.async_q.put(task(Priority.LOW))
        assert (await q.async_q.get()).priority == Priority.CRITICAL

    q.sync_q.put(task(Priority.CRITICAL))
    asyncio.run(from_the_loop())
    assert q.sync_q.get().priority == Priority.LOW
    samples = scrape(endpoint.url)
    for level in (Priority.CRITICAL, Priority.LOW):
        assert requests(samples, "bridge", level, "admitted") == 1
        assert requests(samples, "bridge", level, "served") == 1
        assert waits(samples, "bridge", level, "_count") == 1


# -- exporting ----------------------------------------------------------------------------


def test_a_name_is_exported_once_per_registry_unless_replaced(registry, endpoint):
    first = instrument(ThreadSafeBucketQueue(), name="q", registry=registry)
    with pytest.raises(ValueError, match="'q' is already exported"):
        instrument(ThreadSafeBucketQueue(), name="q", registry=registry)
    second = instrument(ThreadSafeBucketQueue(), name="q", registry=registry, replace=True)
    second.put(task(Priority.HIGH))
    first.unexport()  # replaced already: no effect on the second
    assert depth(scrape(endpoint.url), "q", Priority.HIGH) == 1
    second.unexport()
    assert not [key for key in scrape(endpoint.url) if ("queue", "q") in key[1]]
    with pytest.raises(ValueError, match="non-empty string"):
        instrument(ThreadSafeBucketQueue(), name="", registry=registry)
    with pytest.raises(ValueError, match="put"):
        instrument(object(), name="x", registry=registry)


class FakeSharedQueue:
    """What a RedisPriorityQueue offers to a collector: shared counts and depths."""

    def __init__(self, counts: dict, depths: dict) -> None:
        self._counts, self._depths = counts, depths

    def counts(self) -> dict[int, dict[str, int]]:
        return {level: dict(outcomes) for level, outcomes in self._counts.items()}

    def depths(self) -> dict[int, int]:
        return dict(self._depths)


SHARED_COUNTS = {level: {"admitted": 10 * level, "rejected": level, "expired": 0,
                         "cancelled": 1, "served": 5 * level, "dead_lettered": 2,
                         "redelivered": 3} for level in Priority}
SHARED_DEPTHS = {level: 5 * level - 1 for level in Priority}


def test_export_counts_reads_any_object_with_counts_and_depths(registry, endpoint):
    export_counts(FakeSharedQueue(SHARED_COUNTS, SHARED_DEPTHS), name="shared",
                  registry=registry)
    samples = scrape(endpoint.url)
    for level in Priority:
        assert depth(samples, "shared", level) == SHARED_DEPTHS[level]
        for outcome, value in SHARED_COUNTS[level].items():
            assert requests(samples, "shared", level, outcome) == value
    with pytest.raises(ValueError, match="has no depths"):
        export_counts(type("OnlyCounts", (), {"counts": lambda self: {}})(), name="x",
                      registry=registry)


def serve_shared(counts, depths, ports, stop) -> None:
    """A child process: export the shared counters and serve them until ``stop`` is set."""
    registry = CollectorRegistry()
    export_counts(FakeSharedQueue(counts, depths), name="shared", registry=registry)
    with serve_metrics(0, registry) as server:
        ports.put(server.port)
        stop.wait(DEADLINE_S)


def test_two_processes_report_the_same_shared_totals():
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        counts = manager.dict({level: dict(SHARED_COUNTS[level]) for level in Priority})
        depths = manager.dict(SHARED_DEPTHS)
        ports, stop = ctx.Queue(), ctx.Event()
        children = [ctx.Process(target=serve_shared, args=(counts, depths, ports, stop))
                    for _ in range(2)]
        for child in children:
            child.start()
        try:
            urls = [f"http://127.0.0.1:{ports.get(timeout=DEADLINE_S)}/metrics"
                    for _ in children]
            counts[Priority.LOW] = {**SHARED_COUNTS[Priority.LOW], "served": 99}
            first, second = (scrape(url) for url in urls)
            assert first == second
            assert requests(first, "shared", Priority.LOW, "served") == 99
            assert requests(first, "shared", Priority.HIGH, "dead_lettered") == 2
        finally:
            stop.set()
            for child in children:
                child.join(DEADLINE_S)
    assert [child.exitcode for child in children] == [0, 0]


# -- the endpoint ---------------------------------------------------------------------------


def test_a_port_in_use_is_one_clear_error_and_starts_nothing(registry):
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        threads = threading.active_count()
        with pytest.raises(MetricsPortError, match=f"metrics port {port} on 127.0.0.1 is in "
                                                   "use: choose a free port"):
            serve_metrics(port, registry)
        assert threading.active_count() == threads
    with pytest.raises(MetricsPortError, match="0-65535"):
        serve_metrics(70000, registry)


def test_closing_the_endpoint_frees_its_port(registry):
    server = serve_metrics(0, registry)
    port = server.port
    server.close()
    serve_metrics(port, registry).close()


def test_run_with_a_port_in_use_exits_2_with_one_line_and_runs_nothing(capsys):
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        code = cli.main(["run", "--queues", "heapq", "--scenarios", "single", "--tasks", "10",
                         "--metrics-port", str(port)])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and f"--metrics-port: metrics port {port}" in err
    assert cli.main(["run", "--metrics-port", "http"]) == 2
    assert "must be a port number 0-65535" in capsys.readouterr().err


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_run_serves_the_queues_metrics_while_it_lasts(capsys):
    port = free_port()
    argv = ["run", "--queues", "ThreadSafeBucketQueue", "--scenarios", "load", "--rate", "1000",
            "--tasks", "2000", "--workers", "2", "--service", "const:1ms", "--producers", "1",
            "--seed", "1", "--metrics-port", str(port)]
    codes = []
    runner = threading.Thread(target=lambda: codes.append(cli.main(argv)))
    runner.start()
    url, served, deadline = f"http://127.0.0.1:{port}/metrics", 0.0, time.monotonic() + 60
    while not served and time.monotonic() < deadline and runner.is_alive():
        try:
            samples = scrape(url)
        except OSError:  # not up yet
            time.sleep(0.05)
            continue
        served = sum(value for (name, labels), value in samples.items()
                     if name == "pqlab_queue_requests_total"
                     and ("queue", "ThreadSafeBucketQueue") in labels
                     and ("outcome", "served") in labels)
    runner.join(120)
    assert served > 0 and codes == [0]
    assert f"metrics of ThreadSafeBucketQueue at {url}" in capsys.readouterr().err
    assert QUEUES["ThreadSafeBucketQueue"].factory.plain is ThreadSafeBucketQueue  # restored
    with pytest.raises(OSError):
        urllib.request.urlopen(url, timeout=5)  # the endpoint ended with the run


def test_instrumenting_leaves_process_backed_queues_and_restores_the_registry():
    with instrumenting(["ThreadSafeBucketQueue", "multiprocessing"]) as names:
        assert names == ["ThreadSafeBucketQueue"]
        made = QUEUES["ThreadSafeBucketQueue"].factory()
        assert isinstance(made, InstrumentedSyncQueue)
        made.unexport()
    assert QUEUES["ThreadSafeBucketQueue"].factory.plain is ThreadSafeBucketQueue


# -- histogram_quantiles ----------------------------------------------------------------------


def test_histogram_quantiles_interpolates_as_promql():
    inf = math.inf
    assert histogram_quantiles([0.1, 0.2, inf], [10, 20, 20], [0.5, 0.75, 1.0]) == \
        pytest.approx([0.1, 0.15, 0.2])
    # in the +Inf bucket: the highest finite bound; the lowest bucket starts at 0
    assert histogram_quantiles([0.1, 0.2, inf], [10, 20, 30], [0.9, 0.25]) == \
        pytest.approx([0.2, 0.075])
    assert math.isnan(histogram_quantiles([0.1, inf], [0, 0], [0.5])[0])


def test_histogram_quantiles_of_even_spread_data_match_its_percentiles():
    values = np.random.default_rng(1).uniform(0, 1, 20_000)
    bounds = [*np.round(np.arange(0.1, 1.01, 0.1), 1), math.inf]
    counts = [int((values <= b).sum()) for b in bounds]
    qs = [0.5, 0.9, 0.99]
    assert histogram_quantiles(bounds, counts, qs) == \
        pytest.approx(np.quantile(values, qs), abs=0.01)


@pytest.mark.parametrize("buckets, counts, q, message", [
    ([0.1, 0.2], [1, 2], [0.5], "end with inf"),
    ([0.2, 0.1, math.inf], [1, 2, 3], [0.5], "increase"),
    ([0.1, math.inf], [3, 2], [0.5], "cumulative"),
    ([0.1, math.inf], [1], [0.5], "same length"),
    ([0.1, math.inf], [1, 2], [1.5], "from 0 to 1"),
])
def test_histogram_quantiles_refuses_bad_input(buckets, counts, q, message):
    with pytest.raises(ValueError, match=message):
        histogram_quantiles(buckets, counts, q)


# -- Redis: every process reads the same counters from the server ------------------------------

REDIS_POLICY = QueuePolicy(LevelPolicy(max_queue_size=3),
                           levels={Priority.HIGH: LevelPolicy(max_queue_size=3,
                                                              default_timeout_s=0.2)})


def serve_redis(url: str, name: str, ports, stop) -> None:
    """A child process: export a Redis queue's shared counters and serve them until ``stop``."""
    registry = CollectorRegistry()
    export_counts(RedisPriorityQueue(url, name, policy=REDIS_POLICY), name="redis",
                  registry=registry)
    with serve_metrics(0, registry) as server:
        ports.put(server.port)
        stop.wait(DEADLINE_S)


def claim_and_hang(url: str, name: str, claimed) -> None:
    """A child consumer that claims one task under a short lease and never acknowledges."""
    RedisPriorityQueue(url, name, policy=REDIS_POLICY).claim(count=1, lease_s=0.3)
    claimed.set()
    time.sleep(DEADLINE_S)


def wait_for(condition, what: str) -> None:
    give_up = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < give_up, f"{what} never happened"
        time.sleep(0.01)


@pytest.mark.redis
@pytest.mark.slow
def test_redis_metrics_from_two_processes_match_the_queues_own_counts():
    server = private_server()
    ctx = multiprocessing.get_context("spawn")
    stop, ports = ctx.Event(), ctx.Queue()
    children = []
    try:
        q = RedisPriorityQueue(server.url, policy=REDIS_POLICY)
        url, name = server.url, q.name
        ids = {level: [q.put(task(level)) for _ in range(3)] for level in Priority}
        with pytest.raises(Rejected):  # LOW holds its limit of 3
            q.put(task(Priority.LOW))
        # A consumer SIGKILLed after its claim: the most urgent task comes back, redelivered.
        hung = ctx.Event()
        consumer = ctx.Process(target=claim_and_hang, args=(url, name, hung))
        consumer.start()
        assert hung.wait(DEADLINE_S)
        consumer.kill()
        consumer.join(DEADLINE_S)
        wait_for(lambda: q.reap() == (1, 0) or q.counts()[Priority.CRITICAL]["redelivered"],
                 "the killed consumer's lease running out")  # reaped by this call, or an earlier
        served = q.claim(count=2)  # both CRITICAL, the redelivered one first
        assert [c.task.priority for c in served] == [Priority.CRITICAL] * 2
        assert q.ack(*served) == 2
        in_flight = q.claim(count=1)  # the last CRITICAL: claimed, not acknowledged
        assert q.cancel(ids[Priority.NORMAL][1]) and not q.cancel(ids[Priority.NORMAL][1])
        # HIGH times out after 0.2 s under REJECT: all three expire, none is ever claimed.
        expired: list[Task] = []
        wait_for(lambda: expired.extend(q.drain_expired()) or len(expired) == 3,
                 "the three HIGH requests expiring")
        children = [ctx.Process(target=serve_redis, args=(url, name, ports, stop))
                    for _ in range(2)]
        for child in children:
            child.start()
        urls = [f"http://127.0.0.1:{ports.get(timeout=DEADLINE_S)}/metrics" for _ in children]
        first, second = (scrape(u) for u in urls)
        counts, depths = q.counts(), q.depths()
        assert first == second
        for level in Priority:
            for outcome, value in counts[level].items():
                assert requests(first, "redis", level, outcome) == value, (level, outcome)
            assert depth(first, "redis", level) == depths[level]
            row = counts[level]
            inflight = len(in_flight) if level == Priority.CRITICAL else 0
            assert row["admitted"] == (row["served"] + row["expired"] + row["cancelled"]
                                       + row["dead_lettered"] + depths[level] + inflight)
        # The workload, as driven: every number above is the one the test caused.
        critical, high, normal, low = (counts[p] for p in Priority)
        assert critical["served"] == 2 and critical["redelivered"] == 1
        assert high["expired"] == 3 and depths[Priority.HIGH] == 0
        assert normal["cancelled"] == 1 and depths[Priority.NORMAL] == 2
        assert low["rejected"] == 1 and low["admitted"] == 3
        q.delete()
    finally:
        stop.set()
        for child in children:
            child.join(DEADLINE_S)
        server.stop()
    assert [child.exitcode for child in children] == [0, 0]


# -- what a careful review found missing (issue 19, item 8) ---------------------------------


def test_a_bridges_own_put_and_get_are_recorded_like_its_faces(registry, endpoint):
    q = instrument(BridgeBucketQueue(), name="bridge-own", registry=registry)
    q.put(task(Priority.HIGH))  # the bridge's own put, not a face's
    assert q.sync_q.get().priority == Priority.HIGH

    async def from_the_loop() -> None:
        await q.async_put(task(Priority.LOW))
        assert (await q.async_get()).priority == Priority.LOW

    asyncio.run(from_the_loop())
    samples = scrape(endpoint.url)
    for level in (Priority.HIGH, Priority.LOW):
        assert requests(samples, "bridge-own", level, "admitted") == 1
        assert requests(samples, "bridge-own", level, "served") == 1
        assert waits(samples, "bridge-own", level, "_count") == 1


@pytest.mark.parametrize("kind", ["thread", "asyncio", "bridge-async"])
def test_a_put_refused_by_maxsize_under_a_policy_counts_as_rejected(registry, endpoint, kind):
    policy = QueuePolicy(LevelPolicy(max_queue_size=10))
    raw = create_queue({"thread": "ThreadSafeBucketQueue", "asyncio": "AsyncBucketQueue",
                        "bridge-async": "BridgeBucketQueue"}[kind], 1, policy=policy)
    q = instrument(raw, name=f"full-{kind}", registry=registry)
    face = q.async_q if kind == "bridge-async" else q
    face.put_nowait(task(Priority.NORMAL))
    with pytest.raises((queue.Full, asyncio.QueueFull)):
        face.put_nowait(task(Priority.NORMAL))
    assert raw.counts()[Priority.NORMAL]["rejected"] == 1
    samples = scrape(endpoint.url)
    assert requests(samples, f"full-{kind}", Priority.NORMAL, "admitted") == 1
    assert requests(samples, f"full-{kind}", Priority.NORMAL, "rejected") == 1


@pytest.mark.redis
def test_a_wrapped_redis_queue_returns_its_id_and_cancels_by_id_without_raising(registry):
    server = private_server()
    try:
        q = instrument(RedisPriorityQueue(server.url, owner=True), name="redis-ids",
                       registry=registry)
        first = q.put(task(Priority.NORMAL))
        second = q.put(task(Priority.NORMAL))
        assert isinstance(first, int) and second == first + 1
        assert q.cancel(first) is True and q.cancel(first) is False
        assert q.qsize() == 1
    finally:
        server.stop()


@pytest.mark.parametrize("addr", ["0.0.0.0", "::", "192.0.2.1", "example.org"])
def test_serving_metrics_beyond_loopback_needs_an_explicit_opt_in(registry, addr):
    with pytest.raises(MetricsPortError, match="not loopback.*allow_remote=True"):
        serve_metrics(0, registry, addr=addr)


def test_metrics_on_any_address_when_asked(registry):
    with serve_metrics(0, registry, addr="0.0.0.0", allow_remote=True) as server:
        assert server.port > 0
    with serve_metrics(0, registry, addr="localhost") as server:
        assert scrape(server.url) is not None
