"""Sentinel addresses and URLs, and finding the primary through the Sentinels (the
session's replicated deployment, tests/conftest.py)."""

from __future__ import annotations

import pytest
import redis

from pqlab.core.task import Task
from pqlab.queues.redisdeploy import Deployment
from pqlab.queues.redisqueue import RedisPriorityQueue, make_queue
from pqlab.queues.redissentinel import parse_sentinel_url, parse_sentinels, sentinel_url
from pqlab.queues.redisserver import RedisUnavailable, free_port

pytestmark = pytest.mark.redis


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
