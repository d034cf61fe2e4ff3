"""Redis beyond one server: the replicated deployment, following the primary, WAIT, failover."""

from __future__ import annotations

import pickle
import time

import pytest
import redis
from redis_helpers import require_redis_server

from pqlab.cli.redisbench import format_replica_cost, replica_costs
from pqlab.core.task import Task
from pqlab.queues.redisdeploy import Deployment
from pqlab.queues.redisqueue import RedisPriorityQueue, ReplicationTimeout, make_queue
from pqlab.queues.redissentinel import (
    Discovery,
    parse_sentinel_url,
    parse_sentinels,
    sentinel_url,
)
from pqlab.queues.redisserver import RedisUnavailable, free_port
from pqlab.scenarios.failover import run_failover

pytestmark = pytest.mark.redis

FAILOVER_BOUND_S = 30.0  # Sentinels fail over in ~2-3 s here (1 s to notice, then a vote)


@pytest.fixture(scope="module")
def deployment():
    require_redis_server()
    d = Deployment().start()
    yield d
    d.stop()


def task(n: int) -> Task:
    return Task(1, n, 0.0, n, 0, f"payload {n}")


def stored_keys(d: Deployment) -> int:
    client = redis.Redis(port=d.primary_server().port)
    try:
        return client.dbsize()
    finally:
        client.close()


def test_sentinel_addresses_and_urls_parse_or_say_what_is_wrong():
    addresses = [("127.0.0.1", 26379), ("db.example", 26380)]
    assert parse_sentinel_url(sentinel_url(addresses, "jobs")) == (addresses, "jobs")
    assert parse_sentinels(" a:1 ,b:2") == [("a", 1), ("b", 2)]
    for bad in ("a", "a:0", "a:b", ":1"):
        with pytest.raises(RedisUnavailable, match="bad Sentinel address"):
            parse_sentinels(bad)


def test_sentinels_are_redis_server_in_sentinel_mode(deployment):
    for sentinel in deployment.sentinels:
        assert sentinel.process.args[0].endswith("redis-server")
        assert "--sentinel" in sentinel.process.args


def test_bad_inputs_are_one_line_and_write_nothing(deployment):
    before = stored_keys(deployment)
    silent = sentinel_url([("127.0.0.1", free_port())])
    unknown = deployment.url.rsplit("/", 1)[0] + "/no-such-service"
    cases = [(silent, {}, RedisUnavailable, "no Sentinel answers at 127.0.0.1:"),
             (unknown, {}, RedisUnavailable, "know no service 'no-such-service'; they know: pqlab"),
             (deployment.url, {"min_replicas": 3}, ValueError,
              r"min_replicas=3 but the primary at .* has 2 replica\(s\) connected: allowed 0-2")]
    for url, options, error, message in cases:
        with pytest.raises(error, match=message) as caught:
            RedisPriorityQueue(url, "bad-input", **options).put(task(1))
        assert "\n" not in str(caught.value)
    assert stored_keys(deployment) == before


def test_a_put_the_replicas_did_not_confirm_raises_and_its_retry_does_not_enqueue_twice(
        deployment):
    q = RedisPriorityQueue(deployment.url, min_replicas=1, replica_timeout_ms=100, owner=True)
    assert pickle.loads(pickle.dumps(q)).min_replicas == 1
    first = q.put(task(1))
    replicas = deployment.replica_servers()
    try:
        for replica in replicas:
            deployment.pause(replica)
        with pytest.raises(ReplicationTimeout, match="is on the primary .* 0 of the 1 "
                                                     "replica") as caught:
            q.put(task(2))
    finally:
        for replica in replicas:
            deployment.resume(replica)
    assert caught.value.reply == first + 1 and q.qsize() == 2  # it stands on the primary
    deadline = time.monotonic() + 10.0
    while True:  # the replicas, continued, confirm the retry
        try:
            assert q.put(task(2)) == first + 1
            break
        except ReplicationTimeout:
            assert time.monotonic() < deadline, "the replicas never confirmed after SIGCONT"
    assert q.qsize() == 2
    assert q.put(task(2)) == first + 2  # a new call, not a retry


def test_the_environment_points_pqlab_at_its_sentinels(deployment, monkeypatch):
    sentinels, service = parse_sentinel_url(deployment.url)
    monkeypatch.delenv("PQLAB_REDIS_URL", raising=False)
    monkeypatch.setenv("PQLAB_REDIS_SENTINELS", ",".join(f"{h}:{p}" for h, p in sentinels))
    monkeypatch.setenv("PQLAB_REDIS_SERVICE", service)
    q = make_queue()
    assert q.url == deployment.url and q.put(task(1)) == 1
    monkeypatch.setenv("PQLAB_REDIS_SERVICE", "elsewhere")
    with pytest.raises(RedisUnavailable, match="know no service 'elsewhere'"):
        make_queue()


def test_a_readonly_reply_sends_the_queue_to_the_primary(deployment):
    q = RedisPriorityQueue(deployment.url, owner=True)
    conn = q._client().conn
    conn.disconnect()
    conn.port = deployment.replica_servers()[0].port  # as if the primary had been demoted
    conn.connect()
    assert q.put(task(1)) == 1 and q.qsize() == 1
    assert conn.port == deployment.primary_server().port


def test_the_bench_measures_put_and_ack_with_and_without_replica_acknowledgement(deployment):
    costs = replica_costs(deployment.url, calls=20, repeats=1)
    assert [c.operation for c in costs] == ["put", "ack"]
    assert all(c.plain_us[0] > 0 and c.confirmed_us[0] > 0 and c.ratio > 0 for c in costs)
    assert "x" in format_replica_cost(costs[0])


def test_acknowledged_puts_survive_killing_the_primary(deployment, record_property):
    # Last in the module: it leaves the old primary a replica of a new one.
    run = run_failover(deployment, min_replicas=1, duration_s=4.0, rate_per_s=50)
    print(f"\nfailover {run.failover_s:.2f} s, no service {run.no_service_s:.2f} s; {run}")
    record_property("failover_s", run.failover_s)
    record_property("no_service_s", run.no_service_s)
    assert run.acknowledged > 0
    assert run.lost == 0 and run.duplicated == 0
    assert run.served == run.acknowledged
    assert 0 < run.failover_s < FAILOVER_BOUND_S
    assert run.no_service_s < FAILOVER_BOUND_S
    new_primary = Discovery(deployment.url).primary()
    assert new_primary[1] != deployment.servers[0].port
