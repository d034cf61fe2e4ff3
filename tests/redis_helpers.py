"""Shared by the Redis tests: a private redis-server, never skipped on CI.

Off CI a machine without ``redis-server`` skips the Redis tests; on CI
(``CI`` set, as ``.ci/run`` does) a missing server fails them, so they
cannot silently stop running.
"""

from __future__ import annotations

import os
import shutil

import pytest

from pqlab.queues.redisserver import RedisServer, free_port


def require_redis_server() -> None:
    """Skip (off CI) or fail (on CI) when ``redis-server`` is not installed."""
    if shutil.which("redis-server") is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed on CI: .ci/run must install it")
        pytest.skip("redis-server is not installed (apt-get install redis-server)")


def private_server():
    """A started private server, for a fixture to yield and stop."""
    require_redis_server()
    return RedisServer().start()


def dead_url() -> str:
    """A Redis URL where nothing listens."""
    return f"redis://127.0.0.1:{free_port()}/0"
