"""Starting ``python -m pqlab serve`` on a free loopback port, and talking to it over HTTP.

Everything polls with a deadline: on a busy 2-core box a server can take
seconds to start, and a test must fail, not hang, when it never does.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from pqlab.service.server import stop_serve

START_S = 30.0  # the longest a server may take to answer (spawning processes included)
STOP_S = 20.0  # the longest it may take to exit after SIGTERM


def pqlab_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pqlab", *args], capture_output=True,
                          text=True, timeout=timeout)


class Service:
    """A running ``pqlab serve``: its process, base URL and the lines it printed."""

    def __init__(self, proc: subprocess.Popen, url: str) -> None:
        self.proc = proc
        self.url = url
        self.host, self.port = re.match(r"http://([\d.]+):(\d+)", url).groups()

    def request(self, method: str, path: str, body: Any = None, timeout: float = 30,
                raw: bytes | None = None) -> tuple[int, dict[str, str], Any]:
        """One request on a fresh connection: (status, headers, parsed JSON or text)."""
        conn = http.client.HTTPConnection(self.host, int(self.port), timeout=timeout)
        try:
            data = raw if raw is not None else (None if body is None else json.dumps(body))
            conn.request(method, path, body=data, headers={"content-type": "application/json"})
            response = conn.getresponse()
            text = response.read().decode()
            headers = {k.lower(): v for k, v in response.getheaders()}
        finally:
            conn.close()
        try:
            return response.status, headers, json.loads(text)
        except ValueError:
            return response.status, headers, text

    def infer(self, body: dict, timeout: float = 30) -> tuple[int, dict[str, str], Any]:
        return self.request("POST", "/v1/infer", body, timeout)

    def stats(self) -> dict:
        return self.request("GET", "/v1/stats")[2]

    def in_background(self, body: dict) -> Callable[[], tuple[int, dict, Any]]:
        """Send ``body`` to /v1/infer from a thread; returns a function awaiting its reply
        (after which the function's ``at`` says when the reply arrived)."""
        result: list = []
        thread = threading.Thread(
            target=lambda: result.append((self.infer(body), time.monotonic())), daemon=True)
        thread.start()

        def reply(timeout: float = 30) -> tuple[int, dict, Any]:
            thread.join(timeout)
            assert result, f"no reply to {body} within {timeout} s"
            reply.at = result[0][1]  # when it arrived (time.monotonic)
            return result[0][0]

        return reply

    def wait_queued(self, count: int, deadline_s: float = 10) -> None:
        """Poll /v1/stats until ``count`` requests are admitted and unanswered."""
        wait_for(lambda: self.stats()["queued"] >= count, deadline_s,
                 f"{count} requests queued")


def wait_for(check: Callable[[], bool], deadline_s: float, what: str) -> None:
    end = time.monotonic() + deadline_s
    while not check():
        assert time.monotonic() < end, f"not seen within {deadline_s} s: {what}"
        time.sleep(0.02)


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample of a Prometheus exposition, 0 if absent."""
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@contextlib.contextmanager
def serving(*args: str) -> Iterator[Service]:
    """``python -m pqlab serve ARGS --port 0``, up and answering; stopped on the way out."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "pqlab", "serve", *args, "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        wait_for(lambda: any("http://" in line for line in lines) or proc.poll() is not None,
                 START_S, "the serve command's ready line")
        if proc.poll() is not None:
            raise AssertionError(f"serve exited {proc.returncode}: {proc.stderr.read()}")
        url = re.search(r"http://[\d.:]+", next(x for x in lines if "http://" in x)).group()
        service = Service(proc, url)
        wait_for(lambda: _healthy(service), START_S, "/healthz 200")
        yield service
    finally:
        stop_serve(proc, STOP_S)


def _healthy(service: Service) -> bool:
    try:
        return service.request("GET", "/healthz", timeout=2)[0] == 200
    except OSError:
        return False
