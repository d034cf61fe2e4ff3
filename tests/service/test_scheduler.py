"""The service's scheduler through real HTTP on loopback: full levels, expiries, clients that
leave, shutdown.

Each server is ``python -m pqlab serve`` in its own process on a free port;
requests come from this process's threads. One worker and ``work_ms`` make
the queue's state certain: a request holding the worker keeps the next ones
queued for as long as the test needs.
"""

from __future__ import annotations

import json
import signal
import socket
import time

import pytest
from service_helpers import metric, serving, wait_for

HOLD_MS = 2500  # the request that keeps the one worker busy while a test fills the queue


@pytest.mark.timing
def test_full_level_is_503_with_retry_after_and_expired_is_504(policed):
    busy = policed.in_background({"priority": "CRITICAL", "work_ms": HOLD_MS})
    policed.wait_queued(1)
    wait_for(lambda: policed.stats()["counts"]["CRITICAL"]["admitted"] >= 1, 10, "taken")
    queued_low = policed.in_background({"priority": "LOW", "work_ms": 1})
    wait_for(lambda: policed.stats()["queued"] >= 2, 10, "LOW queued")
    status, headers, body = policed.infer({"priority": "LOW"})
    assert status == 503, body
    assert int(headers["retry-after"]) >= 1 and "full" in body["error"]
    started = time.monotonic()
    status, _, body = policed.infer({"priority": "HIGH", "timeout_ms": 100})
    waited = time.monotonic() - started
    assert status == 504, body
    assert "expired" in body["error"] and 0.09 <= waited < HOLD_MS / 1e3
    assert busy()[0] == 200 and queued_low()[0] == 200
    counts = policed.stats()["counts"]
    assert counts["LOW"]["rejected"] >= 1 and counts["HIGH"]["expired"] >= 1


def _leave_while_queued(service, priority: str = "HIGH") -> None:
    """Send a request on a raw connection and close it once the request is queued."""
    before = service.stats()["queued"]
    sock = socket.create_connection((service.host, int(service.port)))
    body = json.dumps({"priority": priority, "work_ms": 1}).encode()
    sock.sendall(b"POST /v1/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    wait_for(lambda: service.stats()["queued"] > before, 10, "the request queued")
    sock.close()


@pytest.mark.parametrize(("queue", "mode", "outcome"), [
    ("AsyncBucketQueue", "async", "cancelled"),  # cancel() removes it from the queue
    ("asyncio.PriorityQueue", "async", "abandoned"),  # no cancel: the worker skips it
    ("janus.PriorityQueue", "threads", "abandoned"),
])
def test_a_client_that_leaves_while_queued_is_never_served(queue, mode, outcome):
    with serving("--queue", queue, "--worker-mode", mode, "--workers", "1") as service:
        busy = service.in_background({"priority": "CRITICAL", "work_ms": 1000})
        service.wait_queued(1)
        _leave_while_queued(service)
        assert busy()[0] == 200
        wait_for(lambda: service.stats()["counts"]["HIGH"][outcome] == 1, 10, outcome)
        assert service.infer({"priority": "HIGH", "work_ms": 1})[0] == 200  # worker free again
        counts = service.stats()["counts"]["HIGH"]
        assert counts["served"] == 1 and counts["admitted"] == 2  # the one after, not the one left
        exposition = service.request("GET", "/metrics")[2]
        assert metric(exposition, "pqlab_service_requests_total", priority="HIGH",
                      outcome=outcome) == 1
        if outcome == "cancelled":  # the queue's own count, through pqlab.queues.prometheus
            assert metric(exposition, "pqlab_queue_requests_total", priority="HIGH",
                          outcome="cancelled") == 1


@pytest.mark.parametrize(("queue", "mode", "sig"), [
    ("AsyncBucketQueue", "async", signal.SIGTERM),  # the queue's own shutdown
    ("asyncio.PriorityQueue", "async", signal.SIGINT),  # stop sentinels (no shutdown on 3.11)
    ("BridgeBucketQueue", "threads", signal.SIGTERM),
])
def test_shutdown_answers_every_queued_request_503(queue, mode, sig):
    with serving("--queue", queue, "--worker-mode", mode, "--workers", "1") as service:
        busy = service.in_background({"priority": "CRITICAL", "work_ms": 1500})
        service.wait_queued(1)
        queued = [service.in_background({"priority": p, "work_ms": 1})
                  for p in ("HIGH", "NORMAL", "LOW", "LOW")]
        service.wait_queued(5)
        service.proc.send_signal(sig)
        replies = [reply(15) for reply in queued]
        assert [r[0] for r in replies] == [503] * 4, replies
        assert all("shutting down" in r[2]["error"] for r in replies)
        assert busy(15)[0] == 200  # the request in service finishes
        assert max(reply.at for reply in queued) < busy.at  # at once, not after it
        service.proc.wait(15)
        with pytest.raises(OSError):
            service.infer({})  # no longer listening
