"""Shared by the Redis tests: a private redis-server, never skipped on CI, and a lossy proxy.

Off CI a machine without ``redis-server`` skips the Redis tests; on CI
(``CI`` set, as ``.ci/run`` does) a missing server fails them, so they
cannot silently stop running.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import threading
from collections.abc import Callable

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


def read_resp(stream) -> tuple[object, bytes]:
    """One RESP2 or RESP3 value from a binary stream, and its raw bytes.

    Aggregates (array, set, push, map as a flat list) come back as lists, a null
    as None, every other value as its bytes. Raises ``EOFError`` when the
    stream ends first.
    """
    line = stream.readline()
    if not line.endswith(b"\r\n"):
        raise EOFError("the connection closed")
    kind, rest = line[:1], line[1:-2]
    if kind in b"+-:#,(":
        return rest, line
    if kind == b"_" or int(rest) < 0:
        return None, line
    if kind in b"$=!":  # bulk string, verbatim string, bulk error
        data = stream.read(int(rest) + 2)
        if len(data) < int(rest) + 2:
            raise EOFError("the connection closed")
        return data[:-2], line + data
    items, raw = [], line
    for _ in range(int(rest) * (2 if kind == b"%" else 1)):
        item, item_raw = read_resp(stream)
        items.append(item)
        raw += item_raw
    return items, raw


def evalsha_of(sha: str) -> Callable[[list[bytes]], bool]:
    """Matches a call of the script ``sha`` (a command as ``ReplyDropper`` sees it)."""
    return lambda command: command[:2] == [b"EVALSHA", sha.encode()]


class ReplyDropper:
    """A TCP proxy in front of Redis that loses a reply after Redis applied the command.

    Every command goes to Redis and its reply back to the client, except one
    that a ``drop_next`` matcher picks and Redis did not refuse (NOSCRIPT, say):
    its reply is read whole from Redis (so Redis has run the command), kept in
    ``swallowed``, ``on_drop`` runs (to kill the server, say), and both
    connections are closed. A client that connects while Redis is down is
    disconnected at once. ``commands`` lists every command seen, resends
    included.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.commands: list[list[bytes]] = []
        self.swallowed: list[object] = []
        self._lock = threading.Lock()
        self._drops: list[tuple[Callable[[list[bytes]], bool], Callable[[], None]]] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def drop_next(self, match: Callable[[list[bytes]], bool],
                  on_drop: Callable[[], None] = lambda: None) -> None:
        """Lose the reply of the next command ``match`` accepts."""
        with self._lock:
            self._drops.append((match, on_drop))

    def sent(self, match: Callable[[list[bytes]], bool]) -> int:
        """How many commands ``match`` accepts came through, resends included."""
        with self._lock:
            return sum(map(match, self.commands))

    def close(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # closed
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _take_drop(self, command: list[bytes], reply: bytes) -> Callable[[], None] | None:
        with self._lock:
            self.commands.append(command)
            if reply[:1] in (b"-", b"!"):  # not applied (NOSCRIPT, say): passed on
                return None
            for i, (match, on_drop) in enumerate(self._drops):
                if match(command):
                    del self._drops[i]
                    return on_drop
        return None

    def _serve(self, client: socket.socket) -> None:
        upstream = None
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            from_client, from_redis = client.makefile("rb"), upstream.makefile("rb")
            while True:
                command, raw = read_resp(from_client)
                upstream.sendall(raw)
                reply, raw = read_resp(from_redis)
                on_drop = self._take_drop(command, raw)
                if on_drop is not None:
                    with self._lock:
                        self.swallowed.append(reply)
                    on_drop()
                    return
                client.sendall(raw)
        except (EOFError, OSError):
            pass
        finally:
            for sock in (client, upstream):
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
                    sock.close()
