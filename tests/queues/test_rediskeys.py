"""pqlab.queues.rediskeys: the Redis queue's key names, their one slot, the scripts' locals."""

from __future__ import annotations

import re

import pytest
from redis.crc import key_slot

from pqlab.core.task import PRIORITY_LEVELS
from pqlab.queues.rediskeys import (
    DELAYED,
    MAX_PRIORITY,
    POLICY_KEY_NAMES,
    PRIORITY_SHIFT,
    QUEUE_KEY_NAMES,
    STOP_LEVEL,
    hash_tag,
    lua_keys,
    policy_keys,
    queue_keys,
    record_key,
)


@pytest.mark.parametrize("name", ["jobs", "a:b", "x" * 40])
def test_every_key_of_a_queue_is_under_its_hash_tag_so_in_one_cluster_slot(name):
    keys = [*queue_keys(name), *policy_keys(name), record_key(name, "c1")]
    assert len(set(keys)) == len(QUEUE_KEY_NAMES) + len(POLICY_KEY_NAMES) + 1
    assert all(k.startswith(hash_tag(name) + ":") for k in keys)
    assert {key_slot(k.encode()) for k in keys} == {key_slot(hash_tag(name).encode())}


def test_two_queues_share_no_key():
    assert not set(queue_keys("a")) & set(queue_keys("b"))
    assert record_key("a", "c") != record_key("b", "c") != record_key("a", "d")


def test_the_named_fields_are_the_keys_in_the_scripts_order():
    keys = queue_keys("q")
    assert keys.seq == "{pqlab:q}:seq" and keys.wake == "{pqlab:q}:wake"
    assert list(keys) == [f"{{pqlab:q}}:{k}" for k in QUEUE_KEY_NAMES]
    policed = policy_keys("q")
    assert policed.policy == "{pqlab:q}:policy" and policed.expired == "{pqlab:q}:expired"
    for level in PRIORITY_LEVELS:
        assert policed.deadlines(level) == f"{{pqlab:q}}:deadlines:{level}"


def test_every_ready_score_is_an_exact_double_and_the_bands_do_not_overlap():
    top = MAX_PRIORITY * PRIORITY_SHIFT + DELAYED + (DELAYED - 1)  # the largest score used
    assert top < 2**53 and float(top) == top and float(top - 1) != float(top)
    assert DELAYED < PRIORITY_SHIFT  # a delayed request stays in its level's band
    assert max(PRIORITY_LEVELS) < STOP_LEVEL <= MAX_PRIORITY


def _locals(lua: str) -> dict[str, str]:
    """Lua name -> what it is bound to, for every ``local A, B = x, y`` line."""
    bound = {}
    for line in lua.splitlines():
        m = re.match(r"local ([\w, ]+?) = (.*?)(?:\s+--.*)?$", line)
        if m and "{" not in m[2]:
            names = [n.strip() for n in m[1].split(",")]
            values = [v.strip() for v in m[2].split(",")]
            assert len(names) == len(values), line
            bound.update(zip(names, values, strict=True))
        elif m:
            bound[m[1]] = m[2]
    return bound


def test_the_lua_locals_number_the_keys_in_the_declared_order():
    plain = _locals(lua_keys(policed=False))
    for i, name in enumerate(QUEUE_KEY_NAMES, start=1):
        assert plain[name.upper()] == f"KEYS[{i}]"
    assert plain["RECORD"] == f"KEYS[{len(QUEUE_KEY_NAMES) + 1}]"
    assert "POLICY" not in plain and "DEADLINES" not in plain
    assert (plain["BAND"], plain["DELAYED"], plain["STOPS"]) == (
        str(PRIORITY_SHIFT), str(DELAYED), str(STOP_LEVEL))
    policed = _locals(lua_keys(policed=True))
    first = len(QUEUE_KEY_NAMES) + 2
    assert [policed[n] for n in ("POLICY", "COUNTS", "EXPIRED")] == [
        f"KEYS[{first + i}]" for i in range(3)]
    assert policed["DEADLINES"] == "{" + ", ".join(
        f"[{level}] = KEYS[{first + 3 + i}]" for i, level in enumerate(PRIORITY_LEVELS)) + "}"
    assert first + 2 + len(PRIORITY_LEVELS) == len(QUEUE_KEY_NAMES) + 1 + len(POLICY_KEY_NAMES)
