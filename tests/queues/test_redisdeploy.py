"""The replicated deployment: a primary, two replicas and three Sentinels, all redis-server."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.redis


def test_sentinels_are_redis_server_in_sentinel_mode(deployment):
    for sentinel in deployment.sentinels:
        assert sentinel.process.args[0].endswith("redis-server")
        assert "--sentinel" in sentinel.process.args
