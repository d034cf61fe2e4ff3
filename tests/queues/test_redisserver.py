"""The private redis-server: its handle across fork, a missing binary, skipping redis."""

from __future__ import annotations

import multiprocessing
import re

import pytest
from redis_helpers import private_server

from pqlab.core.task import make_workload
from pqlab.queues import redisserver
from pqlab.queues.redisqueue import RedisPriorityQueue
from pqlab.queues.redisserver import INSTALL_HINT, RedisServer, RedisUnavailable, prepare_queues

pytestmark = [pytest.mark.redis, pytest.mark.slow]


@pytest.fixture
def server():
    srv = private_server()
    yield srv
    srv.stop()


def _stop_as_a_forked_childs_exit_would(server: RedisServer) -> None:
    server.stop()  # a forked child's exit runs the parent's atexit handlers: shared_server's
    server.kill()


def test_a_forked_child_cannot_stop_its_parents_server_or_delete_its_data(server):
    """A forked child's copy of the server's handle saw no child process (its poll said
    "exited") and deleted the data directory of the server its parent still runs."""
    q = RedisPriorityQueue(server.url)
    q.put(make_workload(1, seed=1)[0])
    child = multiprocessing.get_context("fork").Process(
        target=_stop_as_a_forked_childs_exit_would, args=(server,))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    assert server.running and (server.data_dir / "redis.log").exists()
    assert q.qsize() == 1
    q.delete()


def test_missing_binary_says_how_to_install():
    with pytest.raises(RedisUnavailable, match=re.escape(INSTALL_HINT)):
        RedisServer(binary="pqlab-no-such-redis-server").start()


def test_without_any_server_redis_is_skipped_only_when_not_asked_for(monkeypatch):
    def missing():
        raise RedisUnavailable(f"redis-server not found on PATH; {INSTALL_HINT}")

    monkeypatch.delenv("PQLAB_REDIS_URL", raising=False)
    monkeypatch.setattr(redisserver, "shared_server", missing)
    notes = []
    chosen = prepare_queues(None, None, notes.append)
    assert "redis" not in chosen and "multiprocessing" in chosen
    assert "skipping queue 'redis'" in notes[0] and INSTALL_HINT in notes[0]
    with pytest.raises(RedisUnavailable):
        prepare_queues(["redis"], None)
    assert prepare_queues(["heapq"], None) == ["heapq"]
