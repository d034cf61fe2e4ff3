"""``redis``: a reliable priority queue on Redis sorted sets, shared by processes and machines.

The queue's keys are laid out in ``rediskeys``; every step that changes them
is one Lua script of ``redisscripts`` (each with its KEYS/ARGV/returns
header), run atomically by ``EVALSHA``. This module is the client: it packs
the calls, numbers the requests, reconnects, and turns replies into tasks.
The numbers measured for these choices are in the README's "Measured
claims" (the Redis queue), with the command that re-checks each.

Delivery is **at-least-once**. A consumer *claims* a task: it moves from the
ready set to the in-flight set under a lease, and the consumer *acknowledges*
it when done. A consumer that dies between claim and acknowledge never
acknowledges, so when its lease runs out the reaper puts the task back where
it was and another consumer gets it: the task is not lost, but its first
consumer may already have done some or all of the work, so the work may
happen twice. Exactly-once would need the work and the acknowledgement to
commit together, which a queue alone cannot promise, so consumers must be
idempotent (deduplicate on ``task_id``). Claim reaps expired leases first,
so no separate reaper process is needed; ``reap()`` runs the same step on
its own. A task whose lease ran out after ``max_deliveries`` claims goes to
the dead-letter set instead of back.

Retries add no duplicates. A command whose reply is lost (connection
dropped, server restarted) is sent again after reconnecting, and every
script call carries a request number that the script records with its
reply (``redisscripts``' ``once``), so a resent enqueue does not enqueue
twice, a resent claim returns what the first one claimed (same ids, same
lease tokens) and a resent acknowledge says "already acknowledged"
(``ack_each``). A thread sends one request at a time and resends only that
one, so a client's record holds only its last request: one key per client
thread (``rediskeys.record_key``), written by the same script as the change
it records, so both survive a crash or neither does. It expires after
``record_s`` (the longest a resend can take: reply timeout plus
reconnecting plus one connect, and ``RECORD_SLACK_S``), so the memory is
one key per client thread active in that window, whatever the call rate. A
request numbered below the recorded one is a stale copy from an abandoned
connection and is refused, never run. A caller of a script that passes no
record key (``redis-benchmark`` in ``redisbench``, ``redis-cli``) gets a
resend that runs again. Plain commands are resent as they are: reads and
``DEL`` do no harm twice; a resent ``BZPOPMIN`` whose first send took the
wake-up marker waits up to ``block_s`` longer, after which ``get`` claims
anyway.

Reconnecting backs off exponentially with full jitter (``Backoff``): the
n-th wait is uniform in [0, min(``BACKOFF_CAP_S``, ``BACKOFF_BASE_S`` *
2**n)], until ``reconnect_s`` has passed since the first failure, then
``RedisUnavailable``. A ``BUSY`` reply (the server is running another
client's script past its ``busy-reply-threshold``, and did not run the
command) is waited out the same way. Clients that lost the same server
spread their reconnects instead of arriving together.

Replicas. On a ``redis+sentinel://`` URL (``pqlab.queues.redissentinel``)
every connect first asks the Sentinels which server is the primary, so after
a failover the reconnect loop above finds the promoted replica; while they
name none the client waits and asks again, and never reopens a connection
to an address they no longer name (a restarted old primary is a primary
until they demote it). A ``READONLY`` reply (a demoted primary) is a lost
connection. The request record replicates with the change it records, so a
resend to the new primary is answered from it if the change reached it, and
runs if it did not. Replication is asynchronous: a write the primary
acknowledged and no replica got is lost when the primary dies. With
``min_replicas`` put and ack send ``WAIT min_replicas replica_timeout_ms``
after the script, on the same connection (inside a script ``WAIT`` does not
block), and return only when that many replicas have the write; else
``ReplicationTimeout``: the write stands on the primary (a put counts as
admitted), and the same call, next on the same thread, is resent as the same
request, so a retry never enqueues twice. A promoted replica that had the
write keeps it; Redis promotes the replica with the most data, so the loss
of a confirmed write is unlikely, not impossible.

Bounds. One script call does bounded work (``REAP_LIMIT`` leases,
``STEP_LIMIT`` expiries, drained or compared entries), so no call holds the
server past its ``busy-reply-threshold``; ``claim``, ``drain_expired`` and
``cancel`` by ``Task`` call again until done. Memory: the dead letters and
the expired set keep the newest ``retain`` ids each (10,000 by default),
with their body, origin and deliveries; the counts still count every one.
A put to a full ``REJECT`` level drops all of its timed-out requests at
once: at most the level's limit.

Tasks are stored as JSON arrays of their fields (``encode_task``), not
pickles: loading a pickle from a shared server runs whatever code anyone who
can write to that server put there, and JSON is readable with ``redis-cli``
and by workers in any language. Payloads must be JSON values (tuples come
back as lists).

Policy. ``RedisPriorityQueue(..., policy=QueuePolicy(...))`` enforces
Triton's queue policy (``pqlab.queues.policy``) inside the scripts, with the
in-process semantics of ``pqlab.queues.policystorage``, for every process
and client of the queue:

- The policy is stored with the queue (``policy``: its JSON and, per level
  1-4, the fields the scripts read) by the first client that has one, on a
  queue nobody used yet, in one script (``CHECK``; never half-written). It
  is fixed from then on: a client made with another policy gets
  ``PolicyError`` naming both. A client without a policy checks on each
  thread's first command (one round trip per thread, none per call) and
  marks the queue as used (an empty ``seq``), so no policy can be stored
  under it afterwards.
- Stop sentinels (payload ``STOP``) are not requests: they go to a band of
  their own after every level (``STOP_LEVEL``), where no limit refuses
  them, they never expire and nothing counts them, so stopping consumers
  never goes through the policy. ``qsize()`` includes them, ``depths()``
  and ``snapshot()`` do not.
- A full level rejects at once: ``put`` raises ``Rejected`` and stores
  nothing but the count. The limit counts the level's queued requests
  (timed-out ``DELAY`` ones included, in-flight ones not, as Triton's queue);
  a full ``REJECT`` level first drops its timed-out requests. A redelivery is
  never refused: at-least-once wins, so a level may hold up to its limit
  plus the leases that ran out (``snapshot()``'s ``peak`` shows it).
- Each request gets a deadline on the server's clock (``TIME``, µs): its
  level's ``default_timeout_s`` or its own ``put(request_timeout_s=)``,
  checked by the client with the in-process rules and messages
  (``PolicyError``, nothing stored) and again by the script. The timeout
  covers the wait until the first claim: a redelivered task has none.
- Timed-out requests are found as in-process: a claim checks each request
  it pops, a put to a full ``REJECT`` level sweeps that level, and
  ``drain_expired`` sweeps every ``REJECT`` level. ``REJECT``: the request
  is never claimed; it goes to ``expired`` (``expired_tasks()``, and
  ``drain_expired()`` takes them). ``DELAY``: it moves behind every request
  of its level that has not timed out and before the next level
  (``rediskeys``: scores); the delayed keep their arrival order.
- ``cancel(task_or_id)`` removes a queued request (by id, O(log n); by
  ``Task``, a scan of its level, O(depth), as the bucket queues' ``cancel``,
  in calls of at most ``STEP_LIMIT`` entries).
- Counters per level: ``counts()`` (``COUNTED``: admitted, rejected,
  expired, cancelled, served = acknowledged, dead_lettered, redelivered),
  ``depths()``, and ``snapshot()``, all read in one script, on which
  admitted = served + expired + cancelled + dead_lettered + queued + in
  flight holds exactly.

Without a policy (or with a default one) the queue runs the unpoliced
scripts (``ENQUEUE``, ``CLAIM``, ``ACK``, ``REAP``), which count nothing.

Clients: one connection per thread, made on first use in that thread; a
queue object pickles as its URL, name and options, so each process that
unpickles it opens its own connections. A forked child forgets the
connections, reply records, request numbers and buffers it inherited
(``os.register_at_fork``) and makes its own: the parent's and the child's
requests never share a number or a socket. Commands are packed here and go
straight to redis-py's ``Connection`` (send, read the reply), without
redis-py's ``Redis.evalsha`` layers (packing of every argument, pooling,
retry, telemetry); this module does its own reconnecting.
"""

from __future__ import annotations

import enum
import itertools
import json
import math
import numbers
import os
import queue
import random
import threading
import time
import uuid
import weakref
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import redis
from redis.exceptions import NoScriptError

from pqlab.core.task import PRIORITY_LEVELS, STOP, Task
from pqlab.queues.policy import (
    OUTCOMES,
    PolicyError,
    QueuePolicy,
    Rejected,
    TimeoutAction,
    check_policy,
    check_request_timeout,
    is_active,
    refuse_request_timeout,
)
from pqlab.queues.rediskeys import (
    MAX_PRIORITY,
    STOP_LEVEL,
    policy_keys,
    queue_keys,
    record_key,
)
from pqlab.queues.redisscripts import (
    ACK,
    CANCEL,
    CHECK,
    CLAIM,
    DRAIN,
    ENQUEUE,
    POLICED_ACK,
    POLICED_CLAIM,
    POLICED_ENQUEUE,
    POLICED_REAP,
    REAP,
    STATE,
    Script,
)
from pqlab.queues.redissentinel import (
    Discovery,
    connected_replicas,
    is_sentinel_url,
    primary_url,
)
from pqlab.queues.redisserver import RedisUnavailable, check_reachable, redis_url

COUNTED = (*OUTCOMES, "dead_lettered", "redelivered")  # counts() per level
DEFAULT_LEASE_S = 30.0  # a claimed task not acknowledged within this is given to someone else
DEFAULT_MAX_DELIVERIES = 5  # claims before a task that keeps failing is dead-lettered
DEFAULT_BLOCK_S = 1.0  # longest BZPOPMIN; a blocked consumer also reaps this often
REAP_LIMIT = 100  # expired leases returned per script call: bounds the time a script runs
# Expired requests a claim handles, queued entries a cancel by Task compares, and expired
# requests a drain sweeps and takes, per script call: the rest waits for the next call,
# so a call stays far below Redis's 5 s busy-reply-threshold (README: measured claims).
STEP_LIMIT = 1_000
DEFAULT_RETAIN = 10_000  # dead letters kept, and expired requests kept (each): the newest
MIN_LEASE_S = 0.001  # leases are whole milliseconds of the server's clock
RECONNECT_S = 10.0  # keep retrying a lost connection this long (covers a server restart)
SOCKET_TIMEOUT_S = 15.0  # a reply slower than this counts as a lost connection
CONNECT_TIMEOUT_S = 2.0  # longest connect attempt (a host that drops packets never refuses)
BACKOFF_BASE_S = 0.02  # first reconnect wait at most this: a live server takes the retry at once
BACKOFF_CAP_S = 0.25  # no wait longer (a cap of 1.0 s was slower back: README, measured claims)
SCRIPT_LOADS = 3  # NOSCRIPT after this many loads: not a restart, the server forgets scripts
RECORD_SLACK_S = 5.0  # a reply record outlives the client's last possible resend by this
# How long put and ack wait for replicas under min_replicas: a replica on loopback
# confirms in well under a millisecond; 1 s rides out a busy machine.
DEFAULT_REPLICA_TIMEOUT_MS = 1_000
# Longer timeouts are cut to this (142 years): now + timeout stays an exact score (< 2**53 µs).
LONGEST_TIMEOUT_S = 2**52 / 1e6


def _bulk(arg) -> bytes:
    """One RESP bulk string."""
    data = arg if isinstance(arg, bytes) else str(arg).encode()
    return b"$%d\r\n%s\r\n" % (len(data), data)


def pack(*args) -> bytes:
    """A command in RESP, the wire format: an array of bulk strings."""
    return b"*%d\r\n" % len(args) + b"".join(map(_bulk, args))


def encode_task(task: Task) -> str:
    """The task's fields as a compact JSON array (a stop sentinel gets a 7th element)."""
    fields = [task.priority, task.seq, task.timestamp, task.task_id, task.model_id, task.payload]
    if task.payload is STOP:
        fields[5:] = [None, 1]
    return json.dumps(fields, separators=(",", ":"))


def decode_task(raw: bytes | str) -> Task:
    """The inverse of ``encode_task``."""
    f = json.loads(raw)
    return Task(f[0], f[1], f[2], f[3], f[4], STOP if len(f) > 6 else f[5])


@dataclass(frozen=True)
class Backoff:
    """Waits between reconnect attempts: capped exponential backoff with full jitter.

    The wait after the n-th failed attempt (from 0) is uniform in
    [0, min(``cap_s``, ``base_s`` * 2**n)]. ``rng`` (uniform in [0, 1)),
    ``sleep`` and ``clock`` are there for tests to replace; a pickled copy has
    the defaults.
    """

    base_s: float = BACKOFF_BASE_S
    cap_s: float = BACKOFF_CAP_S
    rng: Callable[[], float] = random.random
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic

    def delay_s(self, attempt: int) -> float:
        """The wait after failed attempt number ``attempt`` (0 for the first)."""
        return self.rng() * min(self.cap_s, self.base_s * 2.0 ** min(attempt, 64))

    def __reduce__(self):
        # A copy in another process keeps the base and cap but draws from that
        # process's own generator: a pickled random.random carries its state, so
        # every unpickled copy would jitter in step.
        return (Backoff, (self.base_s, self.cap_s))


class ReplicationTimeout(RuntimeError):
    """A put or ack is done on the primary, but fewer replicas than asked confirmed it in time.

    The write stands (a put counts as admitted) and would be lost if the
    primary failed before a replica got it. Calling the same method with the
    same arguments again, next on the same thread, resends the same request:
    it is answered from the request record, never done twice, and waits for
    the replicas again. ``reply`` is what the call would have returned (the
    task's id for a put), ``confirmed`` how many replicas had it.
    """

    def __init__(self, message: str, reply: object, confirmed: int) -> None:
        super().__init__(message)
        self.reply, self.confirmed = reply, confirmed


class AckStatus(enum.Enum):
    """What acknowledging one claim did."""

    ACKED = "acknowledged"
    # The reply of this very call was lost and its resend found it done.
    ALREADY_ACKED = "already acknowledged"
    # The lease no longer holds the task: it ran out (the task went back to the
    # queue, maybe to another consumer, or was dead-lettered), or an earlier
    # call acknowledged it.
    LEASE_LOST = "lease lost"


@dataclass(frozen=True)
class Claim:
    """A claimed task: acknowledge it with ``ack(claim)`` before its lease runs out."""

    task: Task
    task_id: int
    token: int
    deliveries: int  # 1 on first delivery; more means an earlier lease ran out


class _ThreadClient:
    """One thread's connection, its reply record's key, and its request numbers."""

    def __init__(self, conn, record_key: str, record_ms: int) -> None:
        self.conn, self.record_key, self.record_ms = conn, record_key, record_ms
        self.requests = itertools.count(1)
        self.lost = 0  # connections lost so far: a WAIT counts only on its write's connection
        # (script sha, arguments) and the packed request of the last call whose write
        # the replicas did not confirm: the same call next is sent as that request again
        self.unconfirmed: tuple[tuple, bytes] | None = None
        # script sha -> its packed EVALSHA, sha and keys, and how many items that is
        self.heads: dict[str, tuple[bytes, int]] = {}


def _lease_ms(lease_s: float) -> int:
    """A lease in whole ms, as the scripts take it (never 0: ``MIN_LEASE_S`` is 1 ms)."""
    return max(1, int(lease_s * 1000))


def _micros(seconds: float) -> int:
    """Whole µs, rounded up (a positive timeout never becomes 0: none), at most 2**52."""
    return math.ceil(min(seconds, LONGEST_TIMEOUT_S) * 1e6)


def _policy_json(policy: QueuePolicy | None) -> str:
    """The policy as the queue stores it (canonical JSON), ``""`` for none."""
    if policy is None:
        return ""
    return json.dumps(policy.to_mapping(), sort_keys=True, separators=(",", ":"))


def _policy_fields(policy: QueuePolicy) -> list:
    """The policy hash's per-level fields and values, as the scripts read them."""
    fields: list = []
    for level in PRIORITY_LEVELS:
        p = policy.for_level(level)
        fields += [f"max:{level}", p.max_queue_size, f"timeout:{level}",
                   _micros(p.default_timeout_s), f"override:{level}",
                   int(p.allow_timeout_override), f"action:{level}", p.timeout_action.value]
    return fields


def _delete_keys(url: str, keys: tuple[str, ...], owner_pid: int) -> None:
    """Drop a finished queue's keys (best effort: the server may already be gone).

    Only in the process that made the queue: a forked child inherits the
    finalizer, and its exit must not delete the queue its parent still uses.
    """
    if os.getpid() != owner_pid:
        return
    try:
        client = redis.Redis.from_url(primary_url(url) if is_sentinel_url(url) else url,
                                      socket_connect_timeout=1.0, socket_timeout=1.0)
        client.delete(*keys)
        client.close()
    except (redis.RedisError, OSError, RedisUnavailable):
        pass


def check_count(name: str, value: object) -> int:
    """``value`` if it is an int >= 1, else ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return int(value)


def check_lease_s(name: str, value: object) -> float:
    """``value`` if it is a lease >= ``MIN_LEASE_S``, else ``ValueError`` naming ``name``."""
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
            or not MIN_LEASE_S <= value < math.inf):
        raise ValueError(f"{name} must be a finite number of seconds >= {MIN_LEASE_S:g} "
                         f"(leases are whole milliseconds), got {value!r}")
    return float(value)


def check_positive_s(name: str, value: object) -> float:
    """``value`` if it is a finite number of seconds > 0, else ``ValueError`` naming ``name``."""
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
            or not 0 < value < math.inf):
        raise ValueError(f"{name} must be a finite number of seconds > 0, got {value!r}")
    return float(value)


# Every live queue object of this process, for _after_fork_in_child.
_LIVE_QUEUES: weakref.WeakSet = weakref.WeakSet()


def _after_fork_in_child() -> None:
    """In a forked child: every queue forgets the parent's per-thread clients.

    The child inherited the forking thread's connection (the same socket as
    the parent's), reply record key and request counter, and its buffer of
    claimed tasks: sending on them would interleave with the parent, and the
    parent's and the child's same request number would be answered from one
    record (the second enqueue never stored). The child makes its own on first
    use; the inherited sockets are closed without a shutdown (redis-py's
    ``disconnect`` shuts a socket down only in the process that opened it).
    """
    for queue_ in list(_LIVE_QUEUES):
        queue_._local = threading.local()


os.register_at_fork(after_in_child=_after_fork_in_child)


class RedisPriorityQueue:
    """A priority queue on Redis: ``put``, ``claim``/``ack``, and pqlab's blocking ``get``.

    ``count`` is how many tasks ``get()`` claims per round trip. ``lease_s``
    (at least ``MIN_LEASE_S``), ``max_deliveries`` and ``block_s`` are as in
    the module doc. A lost connection (or a server busy running a long
    script: ``BUSY``) is retried with ``backoff`` for ``reconnect_s``, then
    ``RedisUnavailable`` (one line, naming the URL) is raised. ``retain``: how
    many dead letters, and how many expired requests, the queue keeps (the
    newest; see "Bounds" in the module doc). ``ValueError`` naming the option
    when one is out of range.

    ``url`` ``redis+sentinel://HOST:PORT,.../SERVICE`` follows the primary
    of ``SERVICE`` that those Sentinels name (``pqlab.queues.redissentinel``),
    asking again on every reconnect and on a ``READONLY`` reply (a demoted
    primary). ``RedisUnavailable`` at once, one line, when no Sentinel answers
    or they know no such service.

    ``min_replicas`` (0: off): ``put`` and ``ack`` return only once ``WAIT``
    says that many replicas have the write, within ``replica_timeout_ms``;
    else ``ReplicationTimeout`` (the write stands on the primary). More
    than the primary has connected now: ``ValueError``, nothing written.

    ``policy``: the queue's ``QueuePolicy`` (see "Policy" in the module doc);
    a default one is the same as none. A client with a policy stores it, or
    checks it against the stored one, as it is made (one round trip: it
    raises ``RedisUnavailable`` when there is no server); a client without
    one checks on each thread's first command. ``PolicyError`` when the
    queue's policy differs from the client's, naming both, and when
    ``policy`` is not a ``QueuePolicy`` of levels 1-4.
    """

    def __init__(self, url: str, name: str | None = None, *, count: int = 1,
                 lease_s: float = DEFAULT_LEASE_S,
                 max_deliveries: int = DEFAULT_MAX_DELIVERIES, block_s: float = DEFAULT_BLOCK_S,
                 reconnect_s: float = RECONNECT_S, backoff: Backoff | None = None,
                 owner: bool = False, policy: QueuePolicy | None = None,
                 retain: int = DEFAULT_RETAIN, min_replicas: int = 0,
                 replica_timeout_ms: int = DEFAULT_REPLICA_TIMEOUT_MS) -> None:
        count, max_deliveries = check_count("count", count), check_count("max_deliveries",
                                                                         max_deliveries)
        lease_s, block_s = check_lease_s("lease_s", lease_s), check_positive_s("block_s", block_s)
        reconnect_s, retain = check_positive_s("reconnect_s", reconnect_s), check_count(
            "retain", retain)
        check_policy(policy, PRIORITY_LEVELS)
        if isinstance(min_replicas, bool) or not isinstance(min_replicas, int) or min_replicas < 0:
            raise ValueError(f"min_replicas must be an int >= 0, got {min_replicas!r}")
        self.min_replicas = min_replicas
        self.replica_timeout_ms = check_count("replica_timeout_ms", replica_timeout_ms)
        self.policy = policy if is_active(policy) else None
        self.url = url
        self.name = name or uuid.uuid4().hex[:12]
        self.count, self.lease_s, self.max_deliveries = count, lease_s, max_deliveries
        self.block_s, self.reconnect_s, self.retain = block_s, reconnect_s, retain
        self.backoff = backoff or Backoff()
        self.keys = queue_keys(self.name)  # the keys every script takes first (rediskeys)
        self.policy_keys = policy_keys(self.name)
        policed = self.policy is not None
        self._claim, self._ack, self._reap = (
            (POLICED_CLAIM, POLICED_ACK, POLICED_REAP) if policed else (CLAIM, ACK, REAP))
        reply_timeout_s = max(SOCKET_TIMEOUT_S, block_s + 5)
        connect_timeout_s = min(CONNECT_TIMEOUT_S, reconnect_s)
        self._discovery = Discovery(url) if is_sentinel_url(url) else None
        self._pool = redis.ConnectionPool.from_url(
            self._find_primary(), socket_timeout=reply_timeout_s,
            socket_connect_timeout=connect_timeout_s)
        if min_replicas:
            self._check_replicas()
        # A resend reaches the server at most this long after the first send:
        # the reply timed out, reconnecting gave up, one last connect and send.
        self.record_s = reply_timeout_s + reconnect_s + connect_timeout_s + RECORD_SLACK_S
        self._local = threading.local()
        self._claim_args = (count, _lease_ms(lease_s), max_deliveries, REAP_LIMIT, retain,
                            STEP_LIMIT)
        _LIVE_QUEUES.add(self)
        if policed:
            self._client()  # stores the policy, or checks it against the stored one
        if owner:  # the creating process drops the keys when its queue object goes
            weakref.finalize(self, _delete_keys, url, (*self.keys, *self.policy_keys),
                             os.getpid())

    def __reduce__(self):
        options = {"count": self.count, "lease_s": self.lease_s, "block_s": self.block_s,
                   "max_deliveries": self.max_deliveries, "reconnect_s": self.reconnect_s,
                   "backoff": self.backoff, "policy": self.policy, "retain": self.retain,
                   "min_replicas": self.min_replicas,
                   "replica_timeout_ms": self.replica_timeout_ms}
        return (_attach, (self.url, self.name, options))

    def __repr__(self) -> str:
        return f"RedisPriorityQueue({self.url!r}, {self.name!r}, count={self.count})"

    # -- one round trip ------------------------------------------------------------

    def _find_primary(self) -> str:
        """The URL of the server to talk to: the Sentinels' primary, or ``url`` itself."""
        if self._discovery is None:
            return self.url
        host, port = self._discovery.primary()
        return f"redis://{host}:{port}/0"

    def _check_replicas(self) -> None:
        """``ValueError`` unless the primary has ``min_replicas`` replicas connected now."""
        kwargs = self._pool.connection_kwargs
        there = connected_replicas(kwargs["host"], kwargs["port"])
        if there < self.min_replicas:
            raise ValueError(f"min_replicas={self.min_replicas} but the primary at "
                             f"{kwargs['host']}:{kwargs['port']} has {there} replica(s) "
                             f"connected: allowed 0-{there}")

    def _follow_primary(self, conn) -> str | None:
        """Point ``conn`` at the primary the Sentinels name now; why not (one line), or None.

        Without a primary named (no Sentinel answers, a failover is under way)
        the connection must not be reopened to the old address: the old
        primary may be back there as a primary that the Sentinels have not yet
        made a replica, and a write to it would be lost.
        """
        if self._discovery is None:
            return None
        try:
            conn.host, conn.port = self._discovery.primary()
        except RedisUnavailable as exc:
            return str(exc)
        return None

    def _client(self) -> _ThreadClient:
        # One connection per thread, made outside the pool's count: the pool's
        # make_connection() counts every connection it ever made against
        # max_connections (100), so the 101st thread would fail. A thread's
        # connection closes when the thread ends and its locals are freed.
        client = getattr(self._local, "client", None)
        if client is None:
            pool = self._pool
            client = self._local.client = _ThreadClient(
                pool.connection_class(**pool.connection_kwargs),
                record_key(self.name, uuid.uuid4().hex), int(self.record_s * 1000))
            try:
                self._check_policy()  # through this very client: set before, so no recursion
            except BaseException:
                client.conn.disconnect()
                self._local.client = None  # the next command checks again
                raise
        return client

    def _check_policy(self) -> None:
        """``PolicyError`` unless the queue's stored policy is this client's (see ``CHECK``)."""
        mine = _policy_json(self.policy)
        fields = _policy_fields(self.policy) if self.policy is not None else []
        stored = self._script(CHECK, mine, *fields)[1].decode()
        if stored != mine:
            raise PolicyError(
                f"queue {self.name!r} has {f'policy {stored}' if stored else 'no policy'}, "
                f"this client {f'has policy {mine}' if mine else 'has none'}: a queue's policy is "
                "fixed when it is first used; make every client with the same policy")

    def command(self, *args):
        """Send one command on this thread's connection and return the reply.

        A dropped connection is reopened and the command sent again, as it is,
        until ``reconnect_s`` has passed, then ``RedisUnavailable`` is raised:
        use it for commands that may run twice. A ``BUSY`` reply (the server
        is running another client's long script, and did not run this
        command) is retried the same way, on the same connection.
        """
        return self._send(pack(*args))

    def _send(self, packed: bytes):
        client = self._client()
        conn, attempt, give_up = client.conn, 0, None
        while True:
            # Every connect asks the Sentinels first: the primary may have moved since
            # this queue was made, or since this connection was lost.
            failure = self._follow_primary(conn) if conn._sock is None else None
            try:
                if failure is None:
                    conn.send_packed_command((packed,), check_health=False)
                    return conn.read_response()
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                conn.disconnect()
                client.lost += 1
                failure = f"lost Redis at {self.url}: {exc}"
            except redis.ReadOnlyError as exc:  # a replica now: the command was not run
                conn.disconnect()
                client.lost += 1
                failure = f"Redis at {self.url} stayed read-only: {exc}"
            except redis.ResponseError as exc:
                if not str(exc).startswith("BUSY "):
                    raise
                failure = f"Redis at {self.url} stayed busy: {exc}"
            now = self.backoff.clock()
            if give_up is None:
                give_up = now + self.reconnect_s
            if now >= give_up:
                raise RedisUnavailable(failure) from None
            self.backoff.sleep(min(self.backoff.delay_s(attempt), give_up - now))
            attempt += 1

    def _script(self, script: Script, *args) -> tuple[bool, object]:
        """Run ``script`` once, however often it is sent; (replayed, reply).

        ``replayed`` is True when the reply is the recorded one of an earlier
        send of this call (its reply was lost). Raises what ``_send`` raises, and
        ``NoScriptError`` if the server keeps forgetting the script.
        """
        return self._run(script, self._request(script, args))

    def _write(self, script: Script, *args) -> tuple[bool, object]:
        """``_script`` for put and ack: under ``min_replicas``, confirmed (``_confirmed``)."""
        if self.min_replicas:
            return self._confirmed(script, args)
        return self._script(script, *args)

    def _request(self, script: Script, args: tuple) -> bytes:
        """The packed call of ``script`` with ``args``, under this thread's next request number."""
        # EVALSHA, the script and the keys never change: packed once per thread, the
        # call packs only its own arguments (redis-py's pack_command took a quarter
        # of the time of a whole enqueue, fsync off).
        client = self._client()
        head = client.heads.get(script.sha)
        if head is None:
            keys = (*self.keys, client.record_key, *(self.policy_keys * script.policy_keys))
            head = client.heads[script.sha] = (b"".join(
                map(_bulk, ("EVALSHA", script.sha, len(keys), *keys))), 3 + len(keys))
        tail = (*args, next(client.requests), client.record_ms)
        return b"*%d\r\n" % (head[1] + len(tail)) + head[0] + b"".join(map(_bulk, tail))

    def _run(self, script: Script, packed: bytes) -> tuple[bool, object]:
        """Send a packed call; load the script when the server does not know it."""
        for loads in itertools.count():
            try:
                replayed, reply = self._send(packed)
                return replayed == 1, reply
            except NoScriptError:  # first use on this server, or it restarted and lost its
                if loads == SCRIPT_LOADS:  # cache (again, maybe, before a resend)
                    raise
                self.command("SCRIPT", "LOAD", script.source)

    def _confirmed(self, script: Script, args: tuple) -> tuple[bool, object]:
        """Run a write, then ``WAIT`` until ``min_replicas`` replicas have it.

        ``WAIT`` follows the connection's own writes, so it goes on the
        connection that ran the script: if that connection is lost first, the
        call is resent (answered from its record) and waited for again. A
        reply from the record wrote nothing on this connection: the record's
        expiry is renewed (a write) for the ``WAIT`` to follow. Too few in
        ``replica_timeout_ms``: ``ReplicationTimeout``, and the same call next
        on this thread is sent as the same request.
        """
        client, call = self._client(), (script.sha, args)
        pending, client.unconfirmed = client.unconfirmed, None
        packed = pending[1] if pending is not None and pending[0] == call else \
            self._request(script, args)
        while True:
            replayed, reply = self._run(script, packed)
            lost = client.lost
            if replayed:
                self.command("PEXPIRE", client.record_key, client.record_ms)
            confirmed = self.command("WAIT", self.min_replicas, self.replica_timeout_ms)
            if client.lost == lost:
                break
        if confirmed < self.min_replicas:
            client.unconfirmed = (call, packed)
            where = f"{client.conn.host}:{client.conn.port}"
            raise ReplicationTimeout(
                f"the write is on the primary at {where} but {confirmed} of the "
                f"{self.min_replicas} replica(s) asked confirmed it within "
                f"{self.replica_timeout_ms} ms; calling again with the same arguments "
                "resends it (never done twice)", reply, confirmed)
        return replayed, reply

    # -- the reliable-queue API ----------------------------------------------------

    def put(self, task: Task, *, request_timeout_s: float | None = None) -> int:
        """Enqueue ``task``; returns its id. Never blocks (beyond one round trip).

        Under a policy: ``Rejected`` at once when the task's level is full,
        ``ValueError`` for a priority outside levels 1-4, and
        ``request_timeout_s`` (the task's own timeout) as ``check_request_timeout``
        allows, else ``PolicyError``; in every case nothing is stored. Without a
        policy ``request_timeout_s`` raises ``PolicyError``.

        A stop sentinel (payload ``STOP``) is not a request: no limit refuses it,
        it never expires and nothing counts it (``_put_stop``).
        """
        if task.payload is STOP:
            return self._put_stop(task, request_timeout_s)
        if self.policy is not None:
            return self._policed_put(task, request_timeout_s)
        if request_timeout_s is not None:
            refuse_request_timeout(task, request_timeout_s)
        if not 0 <= task.priority <= MAX_PRIORITY:
            raise ValueError(f"priority must be 0-{MAX_PRIORITY} for exact scores, "
                             f"got {task.priority!r}")
        return self._write(ENQUEUE, int(task.priority), encode_task(task))[1]

    def _put_stop(self, task: Task, request_timeout_s: float | None) -> int:
        """Enqueue a stop sentinel: never refused, never expired, never counted.

        Under a policy it goes to the band of ``STOP_LEVEL``, after every level,
        where the policed scripts neither limit, time out nor count it; without
        one, at its priority as any task. ``PolicyError`` for a
        ``request_timeout_s`` (a sentinel has no deadline).
        """
        if request_timeout_s is not None:
            raise PolicyError(f"a stop sentinel takes no request_timeout_s (it never expires), "
                              f"got {request_timeout_s!r}")
        band = STOP_LEVEL if self.policy is not None else int(task.priority)
        if not 0 <= band <= MAX_PRIORITY:
            raise ValueError(f"priority must be 0-{MAX_PRIORITY} for exact scores, "
                             f"got {task.priority!r}")
        return self._write(ENQUEUE, band, encode_task(task))[1]

    def _policed_put(self, task: Task, request_timeout_s: float | None) -> int:
        level = task.priority
        if level not in PRIORITY_LEVELS:
            raise ValueError(f"priority {level!r} is not one of this queue's levels "
                             f"{', '.join(map(str, PRIORITY_LEVELS))}")
        own_us = 0
        if request_timeout_s is not None:
            own_us = _micros(check_request_timeout(request_timeout_s, level,
                                                   self.policy.for_level(level)))
        reply = self._write(POLICED_ENQUEUE, int(level), encode_task(task), own_us,
                            self.retain)[1]
        if isinstance(reply, list):
            raise Rejected(level, *reply)
        return reply

    def claim(self, count: int | None = None, lease_s: float | None = None) -> list[Claim]:
        """Claim up to ``count`` of the most urgent tasks under a lease; ``[]`` if none is ready.

        Does not block. Expired leases are reaped first. ``count`` (>= 1) and
        ``lease_s`` (>= ``MIN_LEASE_S``) default to the queue's; out of range:
        ``ValueError`` naming the argument. Under a policy one script call
        handles at most ``STEP_LIMIT`` timed-out requests; when it meets more
        before a live one, the next call goes on (other clients' commands run
        in between).
        """
        args = self._claim_args
        if count is not None or lease_s is not None:
            args = (self.count if count is None else check_count("count", count),
                    self._claim_args[1] if lease_s is None
                    else _lease_ms(check_lease_s("lease_s", lease_s)), *args[2:])
        reply = self._script(self._claim, *args)[1]
        while reply == [0]:  # the call stopped at STEP_LIMIT timed-out requests
            reply = self._script(self._claim, *args)[1]
        if not reply:
            return []
        token = reply[0]
        return [Claim(decode_task(reply[i + 2]), int(reply[i]), token, reply[i + 1])
                for i in range(1, len(reply), 3)]

    def ack(self, *claims: Claim) -> int:
        """Acknowledge claimed tasks: each is removed if its lease token still matches.

        Returns how many this call removed (``ack_each`` says which, and whether
        a resend found them removed by its lost first send); fewer than given
        means a lease ran out and the task was reaped (and maybe given to
        another consumer).
        """
        return sum(status is not AckStatus.LEASE_LOST for status in self.ack_each(*claims))

    def ack_each(self, *claims: Claim) -> list[AckStatus]:
        """Acknowledge claimed tasks; what became of each, in the order given."""
        args = [a for c in claims for a in (c.task_id, c.token)]
        if not args:
            return []
        replayed, removed = self._write(self._ack, *args)
        done = AckStatus.ALREADY_ACKED if replayed else AckStatus.ACKED
        return [done if r else AckStatus.LEASE_LOST for r in removed]

    def wait(self, timeout_s: float) -> bool:
        """Block until the ready marker is set or ``timeout_s`` passed; True if it was set."""
        return self.command("BZPOPMIN", self.keys.wake, timeout_s) is not None

    def reap(self, limit: int = REAP_LIMIT) -> tuple[int, int]:
        """Return at most ``limit`` expired leases to the ready set; (requeued, dead-lettered)."""
        requeued, dead = self._script(self._reap, check_count("limit", limit),
                                      self.max_deliveries, self.retain)[1]
        return requeued, dead

    # -- pqlab's queue face --------------------------------------------------------

    def get(self) -> Task:
        """Take the most urgent task: claim then acknowledge. Blocks until one is there.

        pqlab's consumers do no work after taking a task, so they acknowledge at
        once; with ``count`` > 1 a whole batch is claimed and acknowledged in two
        round trips and handed out from this thread's buffer (``_hand_out``).
        """
        buffered = getattr(self._local, "buffer", None)
        if buffered:
            return buffered.popleft()
        while True:
            claims = self.claim()
            if claims:
                self.ack(*claims)
                return self._hand_out([c.task for c in claims])
            self.wait(self.block_s)

    def _hand_out(self, tasks: list[Task]) -> Task:
        """What ``get`` returns of a batch it acknowledged; the rest goes to this thread's buffer.

        Tasks come before the stop sentinels of the batch (a consumer that
        stops leaves no task in its buffer); a stop sentinel is never
        buffered: each is meant for another consumer, so the ones beyond the
        first are put back (``_put_stop``: no policy refuses or counts them).
        If putting one back fails, the task to return stays first in the
        buffer for the next ``get``, and the error is raised.
        """
        real = [t for t in tasks if t.payload is not STOP]
        stops = [t for t in tasks if t.payload is STOP]
        first, surplus = (real[0], stops) if real else (stops[0], stops[1:])
        buffer = self._local.buffer = deque(real[1:])
        try:
            for sentinel in surplus:
                self._put_stop(sentinel, None)
        except BaseException:
            buffer.appendleft(first)
            raise
        return first

    def get_nowait(self) -> Task:
        """Like ``get`` but raises ``queue.Empty`` instead of blocking."""
        buffered = getattr(self._local, "buffer", None)
        if buffered:
            return buffered.popleft()
        claims = self.claim(count=1)
        if not claims:
            raise queue.Empty
        self.ack(*claims)
        return claims[0].task

    def qsize(self) -> int:
        """Tasks ready to be claimed (not counting in-flight or dead-lettered ones)."""
        return self.command("ZCARD", self.keys.ready)

    def inflight(self) -> int:
        """Tasks claimed and not yet acknowledged or reaped."""
        return self.command("ZCARD", self.keys.inflight)

    def dead_letters(self) -> list[Task]:
        """The dead-lettered tasks (the newest ``retain`` of them), oldest death first."""
        ids = self.command("ZRANGE", self.keys.dead, 0, -1)
        if not ids:
            return []
        return [decode_task(raw) for raw in self.command("HMGET", self.keys.body, *ids)]

    def stored_bytes(self) -> int:
        """Bytes the server holds for this queue's keys (``MEMORY USAGE``, exact).

        The clients' reply records are left out: one per client thread, not per task.
        """
        keys = (*self.keys, *self.policy_keys) if self.policy is not None else self.keys
        return sum(self.command("MEMORY", "USAGE", key, "SAMPLES", 0) or 0 for key in keys)

    # -- the policy's reports and cancel ------------------------------------------

    def cancel(self, task_or_id: Task | int) -> bool:
        """Remove a queued request: True if it was still queued (not claimed, not gone).

        An ``int`` is the id ``put`` returned (O(log n)). A ``Task`` is matched
        by its fields, the first such task queued at its level: a scan of the
        level inside the server, O(depth of its level), as the bucket queues'
        ``cancel``; prefer the id. Counts as ``cancelled`` under a policy.
        """
        if isinstance(task_or_id, Task):
            return self._cancel_task(task_or_id)
        if isinstance(task_or_id, int) and not isinstance(task_or_id, bool):
            return self._script(CANCEL, "id", task_or_id)[1] == 1
        raise TypeError(f"cancel takes a Task or the int id put() returned, "
                        f"got {task_or_id!r}")

    def _cancel_task(self, task: Task) -> bool:
        """Cancel by ``Task``: its level scanned ``STEP_LIMIT`` entries per script call.

        Each call after the first goes on after the last score the previous one
        compared (a request queued behind that point meanwhile is not seen).
        """
        stop = task.payload is STOP and self.policy is not None
        band, body, cursor = STOP_LEVEL if stop else int(task.priority), encode_task(task), ""
        while True:
            reply = self._script(CANCEL, "task", band, body, cursor, STEP_LIMIT)[1]
            if not isinstance(reply, list):
                return reply == 1
            cursor = reply[0]

    def snapshot(self) -> dict[int, dict[str, int]]:
        """Per level 1-4, read at one instant: ``COUNTED``, ``queued``, ``inflight``, ``peak``.

        ``peak`` is the most ever queued at the level (a redelivery can take it
        past the limit). On one snapshot, per level: admitted = served +
        expired + cancelled + dead_lettered + queued + inflight (``expired``:
        under ``REJECT``; a timed-out ``DELAY`` request is still queued).
        ``PolicyError`` without a policy (nothing is counted then).
        """
        if self.policy is None:
            raise PolicyError("counts need a policy (a limit or a timeout): without one the "
                              "queue keeps its unpoliced scripts, which count nothing")
        queued, counters = self._state(PRIORITY_LEVELS)
        return {level: {**{name: counters.get(f"{level}:{name}", 0)
                           for name in (*COUNTED, "inflight", "peak")}, "queued": n}
                for level, n in zip(PRIORITY_LEVELS, queued, strict=True)}

    def counts(self) -> dict[int, dict[str, int]]:
        """Per level 1-4, how many requests had each outcome of ``COUNTED`` so far.

        A redelivery (a lease ran out, the task went back) counts as
        ``redelivered``, not as a new admission. ``PolicyError`` without a policy.
        """
        return {level: {name: row[name] for name in COUNTED}
                for level, row in self.snapshot().items()}

    def depths(self) -> dict[int, int]:
        """Per level, how many requests are queued now (timed-out ``DELAY`` ones included).

        Levels 1-4 always; without a policy also any other level holding tasks.
        """
        if self.policy is not None:
            return dict(zip(PRIORITY_LEVELS, self._state(PRIORITY_LEVELS)[0], strict=True))
        levels = range(MAX_PRIORITY + 1)
        return {level: n for level, n in zip(levels, self._state(levels)[0], strict=True)
                if n or level in PRIORITY_LEVELS}

    def _state(self, levels: Iterable[int]) -> tuple[list[int], dict[str, int]]:
        """Queued per level and the counters, from one script call."""
        *queued, flat = self._script(STATE, *levels)[1]
        return queued, {k.decode(): int(v) for k, v in zip(flat[::2], flat[1::2], strict=True)}

    def expired_tasks(self) -> list[Task]:
        """The requests expired under ``REJECT`` and not drained yet, oldest expiry first.

        Only those already found: a claim finds them as it reaches them, a put
        to a full level finds its level's, ``drain_expired`` finds all. Only the
        newest ``retain`` are kept.
        """
        ids = self.command("ZRANGE", self.policy_keys.expired, 0, -1)
        if not ids:
            return []
        return [decode_task(raw) for raw in self.command("HMGET", self.keys.body, *ids)
                if raw is not None]  # drained between the two commands

    def drain_expired(self) -> list[Task]:
        """Find every request expired under ``REJECT``, and take them all; oldest first.

        Sweeps every ``REJECT`` level's deadlines (O(log n + found)), as
        Triton's ``RejectTimeoutRequests``, in script calls of at most
        ``STEP_LIMIT`` swept and ``STEP_LIMIT`` taken each, until one finds
        nothing more. Only the newest ``retain`` expired requests are kept
        until drained: older ones are counted (``counts()``) but not returned.
        Always empty without a policy.
        """
        if self.policy is None:
            return []
        rejecting = [level for level in PRIORITY_LEVELS if self.policy.for_level(level)
                     .timeout_action is TimeoutAction.REJECT]
        drained: list[Task] = []
        more = True
        while more:
            more, *bodies = self._script(DRAIN, STEP_LIMIT, self.retain, *rejecting)[1]
            drained += map(decode_task, bodies)
        return drained

    def ping(self) -> None:
        """Fail fast: ``RedisUnavailable`` naming the URL unless the server answers now."""
        check_reachable(self._find_primary())

    def delete(self) -> None:
        """Remove every key of this queue (other clients' reply records expire on their own)."""
        self.command("DEL", *self.keys, *self.policy_keys, self._client().record_key)

    def close(self) -> None:
        """Close this thread's connection."""
        client = getattr(self._local, "client", None)
        if client is not None:
            client.conn.disconnect()
            self._local.client = None


def _attach(url: str, name: str, options: dict) -> RedisPriorityQueue:
    """Unpickle: the same queue, with this process's own connections (and no key cleanup)."""
    return RedisPriorityQueue(url, name, **options)


def make_queue(count: int = 1, url: str | None = None, **options) -> RedisPriorityQueue:
    """A fresh, empty queue on ``url``, else the configured server (``pqlab.queues.redisserver``).

    Starts the private server on first use. Raises ``RedisUnavailable`` at once
    when there is no server to use.
    """
    q = RedisPriorityQueue(redis_url(url), count=count, owner=True, **options)
    q.ping()
    return q
