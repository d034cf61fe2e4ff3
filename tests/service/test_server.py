"""The service's server process: a port in use, a clean stop on SIGTERM."""

from __future__ import annotations

import signal
import socket
import subprocess

import pytest
from service_helpers import serving

from pqlab.cli.main import main


def test_a_port_in_use_is_one_line_and_exit_2(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--queue", "AsyncBucketQueue", "--port", str(port)]) == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert out == "" and len(lines) == 1 and f"port {port} on 127.0.0.1 is in use" in lines[0]


def test_serve_stops_cleanly_with_nothing_queued():
    with serving("--queue", "culsans.PriorityQueue", "--worker-mode", "threads") as service:
        assert service.infer({"work_ms": 1})[0] == 200
        service.proc.send_signal(signal.SIGTERM)
        try:
            service.proc.wait(15)
        except subprocess.TimeoutExpired:
            pytest.fail("serve did not exit within 15 s of SIGTERM")
