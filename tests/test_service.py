"""The reference scheduler service through real HTTP on loopback: statuses, disconnects, shutdown.

Each server is ``python -m pqlab serve`` in its own process on a free port;
requests come from this process's threads. One worker and ``work_ms`` make
the queue's state certain: a request holding the worker keeps the next ones
queued for as long as the test needs.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time

import psutil
import pytest
from service_helpers import metric, pqlab_cli, serving, wait_for

from pqlab.cli.main import main

POLICY = json.dumps({"default": {"allow_timeout_override": True},
                     "levels": {"LOW": {"max_queue_size": 1}}})
HOLD_MS = 2500  # the request that keeps the one worker busy while a test fills the queue


@pytest.fixture(scope="module")
def policed():
    """AsyncBucketQueue under a policy (LOW holds 1; any request may carry a timeout), 1 worker."""
    with serving("--queue", "AsyncBucketQueue", "--workers", "1", "--service", "const:1ms",
                 "--policy", POLICY) as service:
        yield service


def test_200_carries_the_id_and_the_server_side_split(policed):
    status, _, body = policed.infer({"priority": "HIGH", "work_ms": 5})
    assert status == 200, body
    assert body["id"].startswith("r") and body["priority"] == "HIGH"
    assert body["service_ms"] >= 4.5 and body["queued_ms"] >= 0
    assert body["server_ms"] >= body["service_ms"] + body["queued_ms"] - 0.01
    status, _, body = policed.infer({"priority": 1})
    assert status == 200 and body["priority"] == "CRITICAL"
    assert policed.infer({})[2]["priority"] == "NORMAL"  # the default


@pytest.mark.parametrize(("body", "field"), [
    ({"priority": 9}, "priority"),
    ({"priority": "URGENT"}, "priority"),
    ({"priority": True}, "priority"),
    ({"timeout_ms": -5}, "timeout_ms"),
    ({"work_ms": "lots"}, "work_ms"),
    ({"colour": "red"}, "colour"),
])
def test_malformed_input_is_422_naming_the_field(policed, body, field):
    status, _, reply = policed.infer(body)
    assert status == 422, reply
    assert any(field in error["loc"] for error in reply["detail"]), reply


def test_a_body_that_is_not_json_is_422(policed):
    status, _, reply = policed.request("POST", "/v1/infer", raw=b"{not json")
    assert status == 422 and reply["detail"][0]["loc"][0] == "body"


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


def test_a_timeout_the_policy_does_not_allow_is_422(policed):
    status, _, body = policed.infer({"priority": "LOW", "timeout_ms": 50})  # LOW: no override
    assert status == 422 and body["detail"][0]["loc"] == ["body", "timeout_ms"]
    assert "allow_timeout_override is false" in body["detail"][0]["msg"]


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


def test_healthz_and_metrics_do_not_go_through_the_queue(policed):
    busy = policed.in_background({"priority": "CRITICAL", "work_ms": 800})
    policed.wait_queued(1)
    started = time.monotonic()
    assert policed.request("GET", "/healthz")[0] == 200
    status, headers, text = policed.request("GET", "/metrics")
    assert time.monotonic() - started < 0.7  # not behind the busy worker
    assert status == 200 and "pqlab_queue_depth" in text and "pqlab_service_requests_total" in text
    assert busy()[0] == 200


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


def test_a_request_after_shutdown_began_is_503():
    with serving("--queue", "AsyncBucketQueue", "--workers", "1") as service:
        busy = service.in_background({"priority": "CRITICAL", "work_ms": 1000})
        service.wait_queued(1)
        conn = socket.create_connection((service.host, int(service.port)))  # open before
        service.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: service.request("GET", "/healthz")[0] == 503
                 if _listening(service) else True, 5, "healthz 503")
        body = b'{"priority": 1}'
        conn.sendall(b"POST /v1/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                     b"\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        conn.settimeout(10)
        head = conn.recv(4096).decode()
        conn.close()
        assert head.startswith("HTTP/1.1 503"), head
        assert busy(15)[0] == 200


def _listening(service) -> bool:
    try:
        socket.create_connection((service.host, int(service.port)), timeout=1).close()
        return True
    except OSError:
        return False


BAD_SERVE = [
    (["--queue", "nope"], "unknown queue 'nope'; allowed: heapq"),
    (["--queue", "heapq"], "queue 'heapq' cannot serve worker mode 'async'"),
    (["--queue", "asyncio.PriorityQueue", "--worker-mode", "threads"],
     "cannot serve worker mode 'threads', which needs a bridging queue"),
    (["--queue", "janus.PriorityQueue", "--policy", '{"default": {"max_queue_size": 5}}'],
     "takes no queue policy (--policy); queues that do in mode async: AsyncBucketQueue"),
    (["--queue", "AsyncBucketQueue", "--policy", '{"default": {"max_queue_size": -1}}'],
     "max_queue_size must be a non-negative integer"),
    (["--queue", "AsyncBucketQueue", "--policy", "{nope"], "not a valid JSON or YAML policy"),
    (["--queue", "AsyncBucketQueue", "--workers", "0"], "must be a positive integer"),
    (["--queue", "AsyncBucketQueue", "--service", "exp:-1ms"], "bad service time"),
    (["--queue", "AsyncBucketQueue", "--service-holds-gil"], "is for worker mode threads"),
    (["--queue", "AsyncBucketQueue", "--port", "70000"], "must be a port number 0-65535"),
]


@pytest.mark.parametrize(("args", "message"), BAD_SERVE)
def test_bad_input_to_serve_is_one_line_and_exit_2(capsys, args, message):
    assert main(["serve", *args]) == 2  # refused before anything starts: safe in-process
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert out == "" and len(lines) == 1 and message in lines[0], err


def test_bad_input_to_serve_from_the_command_line():
    p = pqlab_cli("serve", "--queue", "heapq")
    assert p.returncode == 2 and p.stdout == ""
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pqlab serve: queue 'heapq'"), p.stderr


def test_a_port_in_use_is_one_line_and_exit_2(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--queue", "AsyncBucketQueue", "--port", str(port)]) == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert out == "" and len(lines) == 1 and f"port {port} on 127.0.0.1 is in use" in lines[0]


@pytest.mark.parametrize(("mode", "extra"), [
    ("threads", ["--service-holds-gil"]),
    ("processes", []),
])
def test_the_cpu_modes_serve(mode, extra):
    queue = "BridgeBucketQueue" if mode == "threads" else "AsyncBucketQueue"
    with serving("--queue", queue, "--worker-mode", mode, "--workers", "2", *extra) as service:
        replies = [service.in_background({"priority": p, "work_ms": 20}) for p in (1, 2, 3, 4)]
        for reply in replies:
            status, _, body = reply()
            assert status == 200 and 19 <= body["service_ms"] < 500, body
        stats = service.stats()
        assert stats["mode"] == mode and sum(c["served"] for c in stats["counts"].values()) == 4


def test_serve_stops_cleanly_with_nothing_queued():
    with serving("--queue", "culsans.PriorityQueue", "--worker-mode", "threads") as service:
        assert service.infer({"work_ms": 1})[0] == 200
        service.proc.send_signal(signal.SIGTERM)
        try:
            service.proc.wait(15)
        except subprocess.TimeoutExpired:
            pytest.fail("serve did not exit within 15 s of SIGTERM")


def test_a_dead_worker_process_is_a_500_not_a_hang():
    with serving("--queue", "AsyncBucketQueue", "--worker-mode", "processes",
                 "--workers", "1") as service:
        assert service.infer({"work_ms": 1})[0] == 200
        workers = [p for p in psutil.Process(service.proc.pid).children()
                   if "resource_tracker" not in " ".join(p.cmdline())]
        assert workers, "no worker process"
        for process in workers:
            process.kill()
        status, _, body = service.infer({"work_ms": 1}, timeout=20)
        assert status == 500 and "inference failed" in body["error"], body
        assert sum(c["failed"] for c in service.stats()["counts"].values()) == 1
