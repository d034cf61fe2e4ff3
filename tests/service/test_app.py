"""The service's HTTP surface through real HTTP on loopback: replies, 422s, /healthz, /metrics.

Each server is ``python -m pqlab serve`` in its own process on a free port;
requests come from this process's threads. One worker and ``work_ms`` make
the queue's state certain: a request holding the worker keeps the next ones
queued for as long as the test needs.
"""

from __future__ import annotations

import signal
import socket
import time

import pytest
from service_helpers import serving, wait_for


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


def test_a_timeout_the_policy_does_not_allow_is_422(policed):
    status, _, body = policed.infer({"priority": "LOW", "timeout_ms": 50})  # LOW: no override
    assert status == 422 and body["detail"][0]["loc"] == ["body", "timeout_ms"]
    assert "allow_timeout_override is false" in body["detail"][0]["msg"]


def test_healthz_and_metrics_do_not_go_through_the_queue(policed):
    busy = policed.in_background({"priority": "CRITICAL", "work_ms": 800})
    policed.wait_queued(1)
    started = time.monotonic()
    assert policed.request("GET", "/healthz")[0] == 200
    status, headers, text = policed.request("GET", "/metrics")
    assert time.monotonic() - started < 0.7  # not behind the busy worker
    assert status == 200 and "pqlab_queue_depth" in text and "pqlab_service_requests_total" in text
    assert busy()[0] == 200


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
