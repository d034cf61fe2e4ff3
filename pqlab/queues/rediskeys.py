"""The key layout of a Redis queue: every key's name, what it holds, where the scripts find it.

All keys of queue NAME are under one hash tag, ``{pqlab:NAME}``, so that a
Redis Cluster keeps a queue, and so every script, on one slot. A script is
called with the keys in one order (``KEYS[1]`` ...): the queue's nine
(``QUEUE_KEY_NAMES``), the calling client thread's reply record, then, for
the scripts that read the policy (``redisscripts.Script.policy_keys``), the
policy's seven (``POLICY_KEY_NAMES``). A script names them, never numbers
them: ``lua_keys()`` declares one Lua local per key, in that order, from the
names here, so the order is written down once.

The queue's keys:

- ``seq`` (``SEQ``): ``INCR`` counter: arrival order, and lease tokens;
- ``ready`` (``READY``): sorted set, id -> score (below). Lower scores
  first; within a priority, by arrival;
- ``inflight`` (``INFLIGHT``): sorted set, id -> lease deadline (ms, server
  clock);
- ``body`` (id -> task, ``redisqueue.encode_task``), ``lease`` (id ->
  token), ``origin`` (id -> ready score, for the way back), ``deliveries``
  (id -> claims so far): hashes (``BODY``, ``LEASE``, ``ORIGIN``,
  ``DELIVERIES``);
- ``dead`` (``DEAD``): sorted set, id -> time it was dead-lettered (the
  newest ``retain`` are kept);
- ``wake`` (``WAKE``): the marker a blocked consumer waits on with
  ``BZPOPMIN``. An enqueue sets it; a claim that leaves tasks behind sets it
  again, so the wake-up passes on to the next blocked consumer. It is state,
  not a signal: set before a consumer blocks, it still wakes that consumer.

``reply:<client>`` (``RECORD``): one client thread's last request number and
its reply (msgpack), written by the script that made the change it records;
a caller that passes no record (``redis-benchmark``, ``redis-cli``) leaves
``RECORD`` nil, and the script just runs.

Under a policy: ``policy`` (``POLICY``, hash: ``max:<level>``,
``timeout:<level>`` in µs, ``override:<level>``, ``action:<level>``, and
``json``, the policy as given), ``counts`` (``COUNTS``, hash,
``<level>:<name>``), ``expired`` (``EXPIRED``, sorted set, id -> when it
expired, µs; the newest ``retain`` are kept) and ``deadlines:<level>``
(``DEADLINES[level]``, sorted set, id -> deadline in µs, server clock; only
queued requests with a timeout).

Scores of ``ready``: a task of priority ``p`` arrives at ``p * BAND + id``
(``BAND`` = ``PRIORITY_SHIFT`` = 2**48). Scores are exact doubles below
2**53, so priorities 0-``MAX_PRIORITY`` (31) and 2**48 (2.8e14) enqueues per
queue; equal scores never occur. On a policed queue a request timed out
under ``DELAY`` moves to ``p * BAND + DELAYED + id`` (``DELAYED`` = 2**47,
so ids stay below it there): behind every request of its level that has not
timed out, before the next level. Stop sentinels of a policed queue are in
the band of ``STOP_LEVEL``, after every level.
"""

from __future__ import annotations

from typing import NamedTuple

from pqlab.core.task import PRIORITY_LEVELS

PRIORITY_SHIFT = 2**48  # a priority's band of ready scores (BAND in the scripts)
DELAYED = 2**47  # where a timed-out DELAY request moves within its band
MAX_PRIORITY = 31  # (31 * 2**48 + seq) < 2**53 keeps every score an exact double
STOP_LEVEL = max(PRIORITY_LEVELS) + 1  # a policed queue's stop sentinels: after every level

QUEUE_KEY_NAMES = ("seq", "ready", "inflight", "body", "lease", "origin", "deliveries", "dead",
                   "wake")
POLICY_KEY_NAMES = ("policy", "counts", "expired",
                    *(f"deadlines:{level}" for level in PRIORITY_LEVELS))
KEY_NAMES = QUEUE_KEY_NAMES  # the name it had before the layout had its own module


class QueueKeys(NamedTuple):
    """A queue's nine keys, in the order the scripts take them (``KEYS[1]`` to ``KEYS[9]``)."""

    seq: str
    ready: str
    inflight: str
    body: str
    lease: str
    origin: str
    deliveries: str
    dead: str
    wake: str


class PolicyKeys(NamedTuple):
    """A policed queue's seven keys, after the record (``KEYS[11]`` to ``KEYS[17]``)."""

    policy: str
    counts: str
    expired: str
    deadlines_1: str
    deadlines_2: str
    deadlines_3: str
    deadlines_4: str

    def deadlines(self, level: int) -> str:
        """The deadlines set of ``level`` (1-4)."""
        return self[POLICY_KEY_NAMES.index(f"deadlines:{level}")]


def hash_tag(name: str) -> str:
    """The prefix of every key of queue ``name``: one hash tag, so one Cluster slot."""
    return f"{{pqlab:{name}}}"


def queue_keys(name: str) -> QueueKeys:
    """The queue's keys of queue ``name``."""
    return QueueKeys(*(f"{hash_tag(name)}:{k}" for k in QUEUE_KEY_NAMES))


def policy_keys(name: str) -> PolicyKeys:
    """The policy's keys of queue ``name``."""
    return PolicyKeys(*(f"{hash_tag(name)}:{k}" for k in POLICY_KEY_NAMES))


def record_key(name: str, client: str) -> str:
    """The reply record of one client thread (``client``: a fresh random id) of queue ``name``."""
    return f"{hash_tag(name)}:reply:{client}"


# -- the same layout, as the scripts see it ----------------------------------------------

LUA_QUEUE_NAMES = tuple(k.upper() for k in QUEUE_KEY_NAMES)  # SEQ, READY, ...
RECORD_POSITION = len(QUEUE_KEY_NAMES) + 1  # KEYS[10]
POLICY_POSITION = RECORD_POSITION + 1  # KEYS[11]: the first policy key


def lua_keys(policed: bool) -> str:
    """Lua declaring one local per key the script is called with, and the score constants.

    Every script starts with it: ``SEQ`` ... ``WAKE``, ``RECORD`` (nil when
    the caller passes none), then, if ``policed``, ``POLICY``, ``COUNTS``,
    ``EXPIRED`` and ``DEADLINES`` (a table: level -> its deadlines key);
    ``BAND``, ``DELAYED`` and ``STOPS`` as in the module doc.
    """
    numbered = ", ".join(f"KEYS[{i}]" for i in range(1, RECORD_POSITION))
    lines = [f"local {', '.join(LUA_QUEUE_NAMES)} = {numbered}",
             f"local RECORD = KEYS[{RECORD_POSITION}]  -- nil: a caller without a reply record"]
    if policed:
        first = POLICY_POSITION
        lines += [f"local POLICY, COUNTS, EXPIRED = KEYS[{first}], KEYS[{first + 1}], "
                  f"KEYS[{first + 2}]",
                  "local DEADLINES = {" + ", ".join(
                      f"[{level}] = KEYS[{first + 3 + i}]"
                      for i, level in enumerate(PRIORITY_LEVELS)) + "}"]
    lines += [f"local BAND = {PRIORITY_SHIFT}  -- 2**48: a priority's band of ready scores",
              f"local DELAYED = {DELAYED}  -- 2**47: ids stay below it on a policed queue",
              f"local STOPS = {STOP_LEVEL}  -- the stop sentinels' band on a policed queue"]
    return "\n".join(lines) + "\n"
