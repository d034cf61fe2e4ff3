"""A real Redis for pqlab: a private ``redis-server`` on loopback, or a given URL.

Which server a Redis run uses, first match wins: the ``url`` passed in, the
environment variable ``PQLAB_REDIS_URL``, the Sentinels of
``PQLAB_REDIS_SENTINELS`` (``pqlab.queues.redissentinel``), else a private ``redis-server``
that pqlab starts on first use (never at import) and stops at exit. The
private server is durable on purpose: ``appendonly yes`` with ``appendfsync
always`` puts every write on disk before Redis replies, so an acknowledged
enqueue survives a crash of the server (the failure tests kill it with
SIGKILL and restart it on the same directory). ``maxmemory-policy
noeviction`` refuses writes when memory runs out instead of silently dropping
queued tasks.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import redis

from pqlab.queues.redissentinel import (  # noqa: F401 - RedisUnavailable is used from here too
    CHECK_TIMEOUT_S,
    RedisUnavailable,
    env_sentinel_url,
    is_sentinel_url,
    primary_url,
)
from pqlab.queues.registry import QUEUES

ENV_URL = "PQLAB_REDIS_URL"
INSTALL_HINT = "install it with: apt-get install redis-server"
START_TIMEOUT_S = 10.0  # an empty server answers within ~50 ms; AOF replay of a test run < 1 s
PORT_ATTEMPTS = 5  # a free port can be taken between our probe and the server's bind

_SHARED: RedisServer | None = None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A ``redis-server`` child process on 127.0.0.1, its data in a temporary directory.

    ``start()`` returns once the server answers PING; ``stop()`` shuts it down
    cleanly (SIGTERM: Redis fsyncs and exits) and removes the directory;
    ``kill()`` crashes it (SIGKILL) and keeps the directory, so ``start()``
    brings it back on the same port with the same data. Use it as a context
    manager. ``extra_args`` are added to the command line (a replica's
    ``--replicaof``). Raises ``RedisUnavailable`` when the binary is missing or the
    server does not come up within ``START_TIMEOUT_S``. ``stop()`` and
    ``kill()`` do nothing in any other process than the one that started it:
    a forked child (whose exit runs the parent's ``atexit`` handlers) must not
    stop its parent's server or delete its data.
    """

    def __init__(self, binary: str = "redis-server", extra_args: tuple[str, ...] = ()) -> None:
        self.binary = binary
        self.extra_args = tuple(extra_args)  # more options, e.g. ``--replicaof HOST PORT``
        self.port: int | None = None
        self.data_dir: Path | None = None
        self.process: subprocess.Popen | None = None
        self.owner_pid = os.getpid()

    @property
    def url(self) -> str:
        if self.port is None:
            raise RedisUnavailable("the private redis-server has not been started")
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> RedisServer:
        path = shutil.which(self.binary)
        if path is None:
            raise RedisUnavailable(f"{self.binary} not found on PATH; {INSTALL_HINT}")
        self.owner_pid = os.getpid()
        if self.data_dir is None:
            self.data_dir = Path(tempfile.mkdtemp(prefix="pqlab-redis-"))
        for _ in range(PORT_ATTEMPTS if self.port is None else 1):
            port = self.port or free_port()
            self.process = subprocess.Popen(self._command(path, port), stdin=subprocess.DEVNULL,
                                            stdout=subprocess.DEVNULL,
                                            stderr=subprocess.STDOUT)
            if self._wait_ready(port):
                self.port = port
                return self
        raise RedisUnavailable(f"redis-server did not start: {self._last_log_line()}")

    def _command(self, path: str, port: int) -> list[str]:
        return [path, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(self.data_dir),
                "--logfile", str(self.data_dir / "redis.log"), "--daemonize", "no",
                "--appendonly", "yes", "--appendfsync", "always",
                "--maxmemory-policy", "noeviction", "--save", "", *self.extra_args]

    def _wait_ready(self, port: int) -> bool:
        """True once the server answers PING; False if it exited (port taken, bad config)."""
        client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5,
                             socket_timeout=0.5)
        deadline = time.monotonic() + START_TIMEOUT_S
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    return False
                try:
                    if client.ping():  # a server still loading its AOF answers LOADING
                        return True
                except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
                    time.sleep(0.02)
        finally:
            client.close()
        self._terminate(signal.SIGKILL)
        raise RedisUnavailable(f"redis-server on port {port} did not answer within "
                               f"{START_TIMEOUT_S:g} s: {self._last_log_line()}")

    def _last_log_line(self) -> str:
        log = self.data_dir / "redis.log" if self.data_dir else None
        if log is None or not log.exists():
            return "no log"
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
        return lines[-1] if lines else "empty log"

    def _terminate(self, sig: int) -> None:
        if os.getpid() != self.owner_pid:
            return  # a forked child: the server is its parent's
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(5.0)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        """Crash the server (SIGKILL); its data directory stays for the next ``start()``."""
        self._terminate(signal.SIGKILL)

    def stop(self) -> None:
        """Shut the server down and delete its data directory (in the process that started it)."""
        if os.getpid() != self.owner_pid:
            return
        self._terminate(signal.SIGTERM)
        if self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def shared_server() -> RedisServer:
    """The private server of this process, started on first call and stopped at exit."""
    global _SHARED
    if _SHARED is None or not _SHARED.running:
        server = RedisServer().start()
        atexit.register(server.stop)
        _SHARED = server
    return _SHARED


def check_reachable(url: str, timeout_s: float = CHECK_TIMEOUT_S) -> None:
    """Raise ``RedisUnavailable`` naming ``url`` unless a Redis there answers PING in time.

    A ``redis+sentinel://`` URL: the primary its Sentinels name must answer.
    """
    if is_sentinel_url(url):
        url = primary_url(url)
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout_s,
                                      socket_timeout=timeout_s)
    except ValueError as exc:
        raise RedisUnavailable(f"bad Redis URL {url!r}: {exc}") from None
    try:
        client.ping()
    except redis.RedisError as exc:
        raise RedisUnavailable(f"cannot reach Redis at {url}: {exc}") from None
    finally:
        client.close()


def configured_url() -> str | None:
    """``$PQLAB_REDIS_URL``, else the Sentinels of ``$PQLAB_REDIS_SENTINELS``, else None."""
    return os.environ.get(ENV_URL) or env_sentinel_url()


def redis_url(url: str | None = None) -> str:
    """The URL to run against: ``url``, else ``configured_url()``, else the private server."""
    return url or configured_url() or shared_server().url


def use_redis(url: str | None = None) -> str:
    """Settle which Redis this process and its children use; check it answers.

    Exports the URL as ``PQLAB_REDIS_URL`` so that worker processes find the
    same server. Raises ``RedisUnavailable`` (one line) when there is none.
    """
    url = redis_url(url)
    check_reachable(url)
    os.environ[ENV_URL] = url
    return url


@contextlib.contextmanager
def serving(url: str | None = None) -> Iterator[str]:
    """One Redis for this process and the processes it starts, for the ``with`` block.

    ``url``, else ``$PQLAB_REDIS_URL``, else this process's running private
    server is used as is (checked, not stopped). Otherwise a private
    ``redis-server`` starts here and is stopped, with its data, when the block
    ends. Either way the URL is exported as ``PQLAB_REDIS_URL`` during the
    block (and restored after), so fresh worker processes, which would
    otherwise each start a server of their own, all find this one.
    Raises ``RedisUnavailable`` (one line) when there is none.
    """
    given = url or configured_url() or (_SHARED.url if _SHARED is not None
                                        and _SHARED.running else None)
    server = None
    if given:
        check_reachable(given)
    else:
        server = RedisServer().start()
        given = server.url
    saved = os.environ.get(ENV_URL)
    os.environ[ENV_URL] = given
    try:
        yield given
    finally:
        if saved is None:
            os.environ.pop(ENV_URL, None)
        else:
            os.environ[ENV_URL] = saved
        if server is not None:
            server.stop()


def unavailable_reason(url: str | None = None) -> str | None:
    """Why no Redis can be used here (one line), or None when one can.

    Tries what ``serving`` would do: the configured URL must answer, else a
    private ``redis-server`` must start (it is stopped again at once, ~0.1 s).
    """
    try:
        with serving(url):
            pass
    except RedisUnavailable as exc:
        return str(exc)
    return None


def add_redis_url_argument(parser) -> None:
    """The ``--redis-url`` option of every command that can run the ``redis`` queue."""
    parser.add_argument("--redis-url", default=None, metavar="URL",
                        help=f"Redis server for the redis queue (default: ${ENV_URL}, else a "
                             "private redis-server started for this command)")


def prepare_queues(queues: list[str] | None, url: str | None,
                   note=lambda line: None) -> list[str] | None:
    """Settle the Redis server before running ``queues`` (None: every registered queue).

    With the ``redis`` queue among them, or a URL given, the server must answer:
    else ``RedisUnavailable`` (one line naming the URL, within seconds). Only
    when every queue was asked for implicitly and no URL was given, the
    ``redis`` queue is left out instead, and ``note`` is told why.
    """
    wants_redis = queues is None or "redis" in queues
    if not wants_redis and url is None:
        return queues
    try:
        use_redis(url)
    except RedisUnavailable as exc:
        if queues is not None or url or os.environ.get(ENV_URL):
            raise
        note(f"skipping queue 'redis': {exc}")
        return [q for q in QUEUES if q != "redis"]
    return queues
