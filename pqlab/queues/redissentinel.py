"""Finding the Redis primary: Sentinel URLs, the environment, and asking the Sentinels.

A queue on ``redis+sentinel://HOST:PORT,HOST:PORT/SERVICE`` asks the Sentinels
at those addresses where the primary of ``SERVICE`` is (``Discovery``), and
asks again whenever it connects: after a failover the Sentinels name the
promoted replica. ``PQLAB_REDIS_SENTINELS=host:port,...`` with
``PQLAB_REDIS_SERVICE=name`` (default ``pqlab``) point every Redis run at
such a deployment (``pqlab.queues.redisserver`` reads them after
``PQLAB_REDIS_URL``). ``pqlab.queues.redisdeploy`` starts one of pqlab's own.
"""

from __future__ import annotations

import os
from collections import Counter

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

CHECK_TIMEOUT_S = 2.0  # a reachable server on a LAN answers a PING in well under a second


class RedisUnavailable(RuntimeError):
    """No Redis to run against: the server binary is missing, or the URL does not answer."""


ENV_SENTINELS = "PQLAB_REDIS_SENTINELS"
ENV_SERVICE = "PQLAB_REDIS_SERVICE"
SCHEME = "redis+sentinel://"
DEFAULT_SERVICE = "pqlab"


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
