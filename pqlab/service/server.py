"""Serving the app: uvicorn on a loopback socket, with uvloop and httptools, no access log.

``bind_loopback(port)`` takes the port first, so a port in use is one
``ServiceError`` before anything starts. ``serve`` runs uvicorn on it until
SIGINT or SIGTERM; the signal starts the scheduler's shutdown at once (stop
admitting, stop the workers, answer every queued request 503) while uvicorn
stops listening and waits for the replies to go out.
"""

from __future__ import annotations

import asyncio
import errno
import signal
import socket
import subprocess
from collections.abc import Callable
from typing import Any

import uvicorn

from pqlab.service.app import create_app
from pqlab.service.scheduler import Scheduler, ServiceConfig
from pqlab.service.workers import STOP_WAIT_S, ServiceError

HOST = "127.0.0.1"
GRACE_S = STOP_WAIT_S + 5  # uvicorn's wait for the last replies after the workers stop


def bind_loopback(port: int) -> socket.socket:
    """A TCP socket bound to 127.0.0.1:``port`` (0: a free one); ``ServiceError`` if in use."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ServiceError(f"port {port} on {HOST} is in use: choose a free port "
                               "(1-65535), or 0 for any free one") from None
        raise ServiceError(f"cannot listen on {HOST}:{port}: {exc.strerror or exc}") from None
    return sock


class ServiceServer(uvicorn.Server):
    """uvicorn's server; a stop signal also starts the scheduler's shutdown at once."""

    def __init__(self, config: uvicorn.Config, scheduler: Scheduler,
                 ready: Callable[[str], None]) -> None:
        super().__init__(config)
        self.scheduler = scheduler
        self.ready = ready
        self.url = ""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and sockets:
            self.url = f"http://{HOST}:{sockets[0].getsockname()[1]}"
            self.ready(self.url)

    def handle_exit(self, sig: int, frame: Any) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None and not self.should_exit:
            loop.call_soon_threadsafe(asyncio.ensure_future, self.scheduler.shutdown())
        super().handle_exit(sig, frame)


def serve(config: ServiceConfig, port: int, ready: Callable[[str], None]) -> None:
    """Serve until SIGINT/SIGTERM; ``ready(url)`` once it answers. Blocks for the whole run.

    Raises ``ServiceError`` for a config the service cannot run or a port it
    cannot take, before anything starts.
    """
    config.check()
    sock = bind_loopback(port)
    app = create_app(config)
    uv_config = uvicorn.Config(app, loop="uvloop", http="httptools", access_log=False,
                               log_level="warning", lifespan="on",
                               timeout_graceful_shutdown=GRACE_S)
    ServiceServer(uv_config, app.state.scheduler, ready).run(sockets=[sock])


def stop_serve(proc: Any, wait_s: float) -> None:
    """Stop a ``python -m pqlab serve`` child: SIGTERM (it answers what is queued with 503),
    SIGKILL if it has not exited after ``wait_s``; its pipes closed."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(wait_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()
