"""A replicated Redis that pqlab starts and stops: a primary, replicas, Sentinels.

``Deployment``: a primary, two replicas and three Sentinels (``redis-server
--sentinel``: no other package than ``redis-server``) on loopback ports, each
in its own temporary directory, every server durable as the private one
(``pqlab.queues.redisserver``). ``shared_deployment()`` starts one on first
use and stops it at exit; ``replicated()`` gives the block the deployment of
``PQLAB_REDIS_SENTINELS``, else a fresh one.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import redis

from pqlab.queues.redissentinel import (
    DEFAULT_SERVICE,
    Discovery,
    RedisUnavailable,
    env_sentinel_url,
    sentinel_url,
)
from pqlab.queues.redisserver import INSTALL_HINT, RedisServer, free_port

REPLICAS = 2
SENTINELS = 3
QUORUM = 2  # Sentinels that must agree the primary is down: a majority of three
# A primary silent this long is down. Redis's default is 30 s; 1 s keeps a failover
# short, and no shorter: a busy 2-core machine must not fail over by mistake.
DOWN_AFTER_MS = 1_000
# Longest a failover may take before the Sentinels try another replica (and half the
# wait before a new attempt on the same primary): 5 s is 5x the time to notice.
FAILOVER_TIMEOUT_MS = 5_000
PARALLEL_SYNCS = 1  # replicas re-syncing with a new primary at once: one keeps one serving
READY_TIMEOUT_S = 15.0  # Sentinels find each other by hello messages every 2 s


class Sentinel:
    """A ``redis-server --sentinel`` child process watching one service, in its own directory."""

    def __init__(self, primary_port: int, service: str = DEFAULT_SERVICE) -> None:
        self.primary_port, self.service = primary_port, service
        self.data_dir = Path(tempfile.mkdtemp(prefix="pqlab-sentinel-"))
        self.port: int | None = None
        self.process: subprocess.Popen | None = None
        self.owner_pid = os.getpid()

    def start(self) -> Sentinel:
        path = shutil.which("redis-server")
        if path is None:
            raise RedisUnavailable(f"redis-server not found on PATH; {INSTALL_HINT}")
        self.port = free_port()
        config = self.data_dir / "sentinel.conf"  # Sentinel rewrites it: it must be a file
        config.write_text("\n".join([
            f"port {self.port}", "bind 127.0.0.1", f"dir {self.data_dir}",
            f"logfile {self.data_dir / 'sentinel.log'}",
            f"sentinel monitor {self.service} 127.0.0.1 {self.primary_port} {QUORUM}",
            f"sentinel down-after-milliseconds {self.service} {DOWN_AFTER_MS}",
            f"sentinel failover-timeout {self.service} {FAILOVER_TIMEOUT_MS}",
            f"sentinel parallel-syncs {self.service} {PARALLEL_SYNCS}", ""]))
        self.process = subprocess.Popen([path, str(config), "--sentinel"],
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.STDOUT)
        return self

    def stop(self) -> None:
        if os.getpid() != self.owner_pid:
            return  # a forked child: the Sentinel is its parent's
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5.0)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.data_dir, ignore_errors=True)


class Deployment:
    """A primary, ``REPLICAS`` replicas and ``SENTINELS`` Sentinels on 127.0.0.1.

    ``start()`` returns once every Sentinel sees the primary, every replica
    and the other Sentinels (a failover needs them to agree), within
    ``READY_TIMEOUT_S``, else stops what it started and raises
    ``RedisUnavailable`` (one line). ``stop()`` shuts everything down and
    removes the directories; use it as a context manager (it also runs at
    exit, in the process that started it). ``servers[0]`` is
    the first primary; after a failover ``primary_server()`` says which
    server is. ``kill``, ``pause`` and ``resume`` (SIGKILL, SIGSTOP, SIGCONT)
    take one of ``servers`` for failure drills.
    """

    def __init__(self, service: str = DEFAULT_SERVICE, replicas: int = REPLICAS,
                 sentinels: int = SENTINELS) -> None:
        self.service, self.replica_count, self.sentinel_count = service, replicas, sentinels
        self.servers: list[RedisServer] = []
        self.sentinels: list[Sentinel] = []

    @property
    def url(self) -> str:
        return sentinel_url([("127.0.0.1", s.port) for s in self.sentinels], self.service)

    def start(self) -> Deployment:
        atexit.register(self.stop)  # whatever happens to the caller, nothing outlives us
        try:
            primary = RedisServer().start()
            self.servers.append(primary)
            for _ in range(self.replica_count):
                self.servers.append(RedisServer(extra_args=(
                    "--replicaof", "127.0.0.1", str(primary.port))).start())
            for _ in range(self.sentinel_count):
                self.sentinels.append(Sentinel(primary.port, self.service))
                self.sentinels[-1].start()
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        clients = self.sentinel_clients()
        problem = "no Sentinel answered"
        try:
            while time.monotonic() < deadline:
                problem = self._not_ready(clients)
                if problem is None:
                    return
                for sentinel in self.sentinels:
                    if sentinel.process.poll() is not None:
                        raise RedisUnavailable(f"a Sentinel exited at start (see "
                                               f"{sentinel.data_dir / 'sentinel.log'})")
                time.sleep(0.05)
        finally:
            for client in clients:
                client.close()
        raise RedisUnavailable(f"the Redis deployment was not ready within "
                               f"{READY_TIMEOUT_S:g} s: {problem}")

    def _not_ready(self, clients: list[redis.Redis]) -> str | None:
        """What is not ready yet (one line), or None."""
        for client in clients:
            try:
                replicas = client.sentinel_slaves(self.service)
                peers = client.sentinel_sentinels(self.service)
            except redis.RedisError as exc:
                return f"a Sentinel does not answer: {exc}"
            up = [r for r in replicas if not r["is_sdown"] and r.get("master-link-status") == "ok"]
            if len(up) < self.replica_count:
                return f"a Sentinel sees {len(up)} of {self.replica_count} replicas in sync"
            if len(peers) < self.sentinel_count - 1:
                return f"a Sentinel knows {len(peers)} of {self.sentinel_count - 1} other Sentinels"
        return None

    def sentinel_clients(self) -> list[redis.Redis]:
        """A client of each Sentinel (close them after use)."""
        return [redis.Redis(port=s.port, socket_timeout=1.0) for s in self.sentinels]

    def primary_server(self) -> RedisServer:
        """The server the Sentinels name as primary now."""
        host, port = Discovery(self.url).primary()
        return next(s for s in self.servers if s.port == port)

    def replica_servers(self) -> list[RedisServer]:
        primary = self.primary_server()
        return [s for s in self.servers if s is not primary]

    def kill(self, server: RedisServer) -> None:
        server.kill()

    def pause(self, server: RedisServer) -> None:
        server.process.send_signal(signal.SIGSTOP)

    def resume(self, server: RedisServer) -> None:
        if server.process is not None and server.process.poll() is None:
            server.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        atexit.unregister(self.stop)
        for server in self.servers:
            if server.process is not None:
                self.resume(server)  # a stopped process cannot act on SIGTERM
        for sentinel in self.sentinels:
            sentinel.stop()
        for server in self.servers:
            server.stop()

    def __enter__(self) -> Deployment:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


_SHARED: Deployment | None = None


def shared_deployment() -> Deployment:
    """This process's private deployment, started on first call and stopped at exit."""
    global _SHARED
    if _SHARED is None:
        _SHARED = Deployment().start()
    return _SHARED


@contextlib.contextmanager
def replicated(url: str | None = None) -> Iterator[str]:
    """A replicated Redis for the ``with`` block: ``url``, the environment's, or a fresh one.

    A private deployment started here is stopped, with its data, when the
    block ends. The primary must be discoverable: else ``RedisUnavailable``.
    """
    given = url or env_sentinel_url()
    deployment = None if given else Deployment().start()
    try:
        url = given or deployment.url
        discovery = Discovery(url)
        try:
            discovery.primary()
        finally:
            discovery.close()
        yield url
    finally:
        if deployment is not None:
            deployment.stop()
