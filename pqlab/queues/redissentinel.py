"""Redis beyond one server: a primary, replicas and Sentinels, and finding the primary.

A queue on ``redis+sentinel://HOST:PORT,HOST:PORT/SERVICE`` asks the Sentinels
at those addresses where the primary of ``SERVICE`` is (``Discovery``), and
asks again whenever it loses the connection: after a failover the Sentinels
name the promoted replica. Which deployment a replicated run uses, first match
wins: the URL passed in; ``PQLAB_REDIS_SENTINELS=host:port,...`` with
``PQLAB_REDIS_SERVICE=name`` (default ``pqlab``); else a private deployment
that pqlab starts on first use and stops at exit (``Deployment``): a primary,
two replicas and three Sentinels (``redis-server --sentinel``: no other
package than ``redis-server``) on loopback ports, each in its own temporary
directory, every server durable as the private one (``redisserver``).
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
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from pqlab.queues.redisserver import (
    CHECK_TIMEOUT_S,
    INSTALL_HINT,
    RedisServer,
    RedisUnavailable,
    free_port,
)

ENV_SENTINELS = "PQLAB_REDIS_SENTINELS"
ENV_SERVICE = "PQLAB_REDIS_SERVICE"
SCHEME = "redis+sentinel://"
DEFAULT_SERVICE = "pqlab"
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


def is_sentinel_url(url: str) -> bool:
    return url.startswith(SCHEME)


def sentinel_url(sentinels: list[tuple[str, int]], service: str = DEFAULT_SERVICE) -> str:
    """The URL a queue takes for the primary of ``service`` behind ``sentinels``."""
    return SCHEME + ",".join(f"{host}:{port}" for host, port in sentinels) + f"/{service}"


def parse_sentinels(text: str) -> list[tuple[str, int]]:
    """``host:port,host:port`` as a list; ``RedisUnavailable`` naming a bad entry."""
    found = []
    for entry in filter(None, (part.strip() for part in text.split(","))):
        host, _, port = entry.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise RedisUnavailable(f"bad Sentinel address {entry!r}: expected host:port "
                                   "(port 1-65535), several separated by commas")
        found.append((host, int(port)))
    if not found:
        raise RedisUnavailable(f"no Sentinel address in {text!r}: expected host:port,host:port")
    return found


def parse_sentinel_url(url: str) -> tuple[list[tuple[str, int]], str]:
    """(Sentinel addresses, service) of a ``redis+sentinel://`` URL."""
    if not is_sentinel_url(url):
        raise RedisUnavailable(f"not a Sentinel URL: {url!r} (expected "
                               f"{SCHEME}host:port,host:port/service)")
    addresses, _, service = url[len(SCHEME):].partition("/")
    return parse_sentinels(addresses), service or DEFAULT_SERVICE


def env_sentinel_url() -> str | None:
    """The URL of ``$PQLAB_REDIS_SENTINELS`` and ``$PQLAB_REDIS_SERVICE``, None if unset."""
    text = os.environ.get(ENV_SENTINELS)
    if not text:
        return None
    return sentinel_url(parse_sentinels(text), os.environ.get(ENV_SERVICE) or DEFAULT_SERVICE)


class Discovery:
    """Asks the Sentinels where the primary of a service is, now.

    ``primary()`` returns (host, port) of the primary that a Sentinel reports
    up, asking every Sentinel: the one most of them name (a Sentinel that
    missed a failover names the old primary, which may be back as a
    primary until they convert it); else ``RedisUnavailable``, one line
    saying which: no Sentinel answers, they know no such service (and which
    they know), or they see its primary down (a failover is under way).
    """

    def __init__(self, url: str, timeout_s: float = CHECK_TIMEOUT_S) -> None:
        self.url = url
        self.sentinels, self.service = parse_sentinel_url(url)
        # No retries of redis-py's own (3 by default, 2.8 s against a closed port): the
        # caller's reconnect loop waits and asks again.
        self._clients = [redis.Redis(host=host, port=port, socket_connect_timeout=timeout_s,
                                     socket_timeout=timeout_s, retry=Retry(NoBackoff(), 0))
                         for host, port in self.sentinels]

    def primary(self) -> tuple[str, int]:
        silent, known, votes = [], set(), Counter()
        for (host, port), client in zip(self.sentinels, self._clients, strict=True):
            try:
                masters = client.sentinel_masters()
            except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
                silent.append(f"{host}:{port}")  # not up, or not a Sentinel
                continue
            known.update(masters)
            state = masters.get(self.service)
            if state and state["is_master"] and not (state["is_sdown"] or state["is_odown"]):
                votes[state["ip"], int(state["port"])] += 1
        if votes:  # right after a failover a Sentinel not yet told may name the old one
            return votes.most_common(1)[0][0]
        addresses = ", ".join(f"{h}:{p}" for h, p in self.sentinels)
        if len(silent) == len(self.sentinels):
            raise RedisUnavailable(f"no Sentinel answers at {addresses}")
        if self.service not in known:
            raise RedisUnavailable(
                f"the Sentinels at {addresses} know no service {self.service!r}; they know: "
                f"{', '.join(sorted(known)) or 'none'} (set ${ENV_SERVICE})")
        raise RedisUnavailable(f"the Sentinels at {addresses} see the primary of "
                               f"{self.service!r} down (a failover is under way)")

    def close(self) -> None:
        for client in self._clients:
            client.close()


def primary_url(url: str) -> str:
    """``redis://HOST:PORT/0`` of the primary the Sentinels of ``url`` name now."""
    discovery = Discovery(url)
    try:
        host, port = discovery.primary()
    finally:
        discovery.close()
    return f"redis://{host}:{port}/0"


def connected_replicas(host: str, port: int, timeout_s: float = CHECK_TIMEOUT_S) -> int:
    """How many replicas the Redis at host:port has connected now (``INFO replication``)."""
    client = redis.Redis(host=host, port=port, socket_connect_timeout=timeout_s,
                         socket_timeout=timeout_s)
    try:
        return int(client.info("replication").get("connected_slaves", 0))
    except redis.RedisError as exc:
        raise RedisUnavailable(f"cannot reach Redis at {host}:{port}: {exc}") from None
    finally:
        client.close()


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
    removes the directories; use it as a context manager. ``servers[0]`` is
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
        try:
            primary = RedisServer().start()
            self.servers.append(primary)
            for _ in range(self.replica_count):
                self.servers.append(RedisServer(extra_args=(
                    "--replicaof", "127.0.0.1", str(primary.port))).start())
            self.sentinels = [Sentinel(primary.port, self.service).start()
                              for _ in range(self.sentinel_count)]
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
        deployment = Deployment().start()
        atexit.register(deployment.stop)
        _SHARED = deployment
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
