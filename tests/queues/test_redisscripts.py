"""The Redis queue's layout: no Lua in the client, a header on every script, keys by name."""

import ast
import pathlib

import pytest
from redis_helpers import private_server

from pqlab.queues import redisqueue, redisscripts
from pqlab.queues.rediskeys import (
    LUA_QUEUE_NAMES,
    POLICY_KEY_NAMES,
    QUEUE_KEY_NAMES,
    PolicyKeys,
    QueueKeys,
    lua_keys,
)
from pqlab.queues.redisqueue import RedisPriorityQueue
from pqlab.queues.redisscripts import SCRIPTS, Script

LUA_MARKS = ("redis.call", "local function", "KEYS[", "ARGV[", "cmsgpack", "return once(")


def test_the_client_module_holds_no_lua():
    source = pathlib.Path(redisqueue.__file__).read_text()
    assert [mark for mark in LUA_MARKS if mark in source] == []


def test_every_script_is_listed_and_named_as_its_constant():
    tree = ast.parse(pathlib.Path(redisscripts.__file__).read_text())
    constants = {node.targets[0].id for node in tree.body if isinstance(node, ast.Assign)
                 and isinstance(node.value, ast.Call)
                 and getattr(node.value.func, "id", None) == "script"}
    assert constants == {s.name for s in SCRIPTS} and len(SCRIPTS) == len(constants)
    assert all(getattr(redisscripts, s.name) is s for s in SCRIPTS)
    assert all(isinstance(v, Script) is (v in SCRIPTS) for v in vars(redisscripts).values()
               if isinstance(v, Script))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda s: s.name)
def test_every_script_opens_with_its_keys_argv_and_returns_header(script):
    header = script.header
    assert header[0].startswith(f"-- {script.name}: ")
    for field in ("KEYS", "ARGV", "Returns"):
        assert sum(line.startswith(f"-- {field}: ") for line in header) == 1, field
    assert script.source.startswith("\n".join(header) + "\n" + lua_keys(script.policy_keys))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda s: s.name)
def test_no_script_numbers_a_key_past_the_declarations(script):
    body = script.source.split(lua_keys(script.policy_keys), 1)[1]
    assert "KEYS[" not in body


def test_the_lua_names_follow_the_declared_order():
    assert QueueKeys._fields == QUEUE_KEY_NAMES
    assert LUA_QUEUE_NAMES == tuple(name.upper() for name in QueueKeys._fields)
    assert PolicyKeys._fields == tuple(k.replace(":", "_") for k in POLICY_KEY_NAMES)


@pytest.mark.redis
def test_each_lua_name_is_the_key_the_client_passes():
    server = private_server()
    try:
        q = RedisPriorityQueue(server.url)
        names = [*LUA_QUEUE_NAMES, "RECORD", "POLICY", "COUNTS", "EXPIRED",
                 *(f"DEADLINES[{level}]" for level in range(1, 5))]
        probe = lua_keys(True) + "return {" + ", ".join(names) + "}"
        record = q._client().record_key
        keys = (*q.keys, record, *q.policy_keys)
        got = [k.decode() for k in q.command("EVAL", probe, len(keys), *keys)]
        assert got == [*q.keys, record, q.policy_keys.policy, q.policy_keys.counts,
                       q.policy_keys.expired, *(q.policy_keys.deadlines(lv) for lv in range(1, 5))]
        q.delete()
    finally:
        server.stop()
