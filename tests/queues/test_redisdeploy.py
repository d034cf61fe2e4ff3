"""The replicated deployment: a primary, two replicas and three Sentinels, all redis-server."""

from __future__ import annotations

import pytest
import redis

from pqlab.queues.redisdeploy import replicated
from pqlab.queues.redissentinel import connected_replicas, primary_url
from pqlab.queues.redisserver import RedisUnavailable

pytestmark = pytest.mark.redis


def test_sentinels_are_redis_server_in_sentinel_mode(deployment):
    for sentinel in deployment.sentinels:
        assert sentinel.process.args[0].endswith("redis-server")
        assert "--sentinel" in sentinel.process.args


def test_the_primary_is_the_one_the_sentinels_name_and_both_replicas_follow_it(deployment):
    primary = deployment.primary_server()
    replicas = deployment.replica_servers()
    assert primary_url(deployment.url) == f"redis://127.0.0.1:{primary.port}/0"
    assert len(replicas) == 2 and primary not in replicas
    assert {primary, *replicas} == set(deployment.servers)
    assert connected_replicas("127.0.0.1", primary.port) == 2
    for replica in replicas:
        info = redis.Redis(port=replica.port).info("replication")
        assert info["role"] == "slave" and info["master_port"] == primary.port


def test_replicated_hands_over_a_given_url_and_refuses_one_without_a_primary(deployment):
    with replicated(deployment.url) as url:
        assert url == deployment.url
    assert deployment.primary_server().running  # a given deployment is not stopped
    unknown = deployment.url.rsplit("/", 1)[0] + "/no-such-service"
    with pytest.raises(RedisUnavailable, match="no-such-service"), replicated(unknown):
        pass
