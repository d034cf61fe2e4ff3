"""The open-loop HTTP load generator against a real service: counts, patience, no omission.

The generator runs as ``python -m pqlab http-load`` in its own process, the
server as ``python -m pqlab serve`` in another.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from service_helpers import serving, wait_for

from pqlab.cli.main import main
from pqlab.service.httpload import DISCONNECT, LoadPlan


def http_load(url: str, *args: str, json_path=None, timeout: float = 120) -> tuple[str, dict]:
    extra = ["--json", str(json_path)] if json_path else []
    p = subprocess.run([sys.executable, "-m", "pqlab", "http-load", "--url", url, *args, *extra],
                       capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, p.stderr
    return p.stdout, json.loads(json_path.read_text()) if json_path else {}


def test_the_schedule_is_seeded_and_keeps_to_the_rate_and_mix():
    plan = LoadPlan("http://127.0.0.1:1/v1/infer", 200, 50, (1, 0, 0, 3), seed=4)
    due, priorities, patience = plan.schedule()
    again = LoadPlan("http://127.0.0.1:1/v1/infer", 200, 50, (1, 0, 0, 3), seed=4).schedule()
    assert all(np.array_equal(a, b) for a, b in zip((due, priorities, patience), again,
                                                    strict=True))
    assert len(due) == 10_000 and 48 < due[-1] < 52 and np.all(np.diff(due) > 0)
    assert set(priorities.tolist()) == {1, 4} and 0.72 < np.mean(priorities == 4) < 0.78
    assert not patience.any()
    const = LoadPlan("http://x/", 10, 1, arrivals="constant").schedule()[0]
    assert np.allclose(np.diff(const), 0.1)


@pytest.mark.timing
def test_per_priority_counts_and_the_server_split(tmp_path):
    with serving("--queue", "AsyncBucketQueue", "--workers", "2",
                 "--service", "const:2ms") as service:
        out, result = http_load(f"{service.url}/v1/infer", "--rate", "60", "--duration", "1",
                                "--mix", "1,0,2,1", "--seed", "3",
                                json_path=tmp_path / "load.json")
    rows = result["per_priority"]
    assert rows["HIGH"]["offered"] == 0 and rows["HIGH"]["latency_ms"]["n"] == 0
    offered = sum(r["offered"] for name, r in rows.items() if name != "all")
    assert offered == rows["all"]["offered"] == result["schedule"]["offered"] == 60
    for name in ("CRITICAL", "NORMAL", "LOW"):
        row = rows[name]
        assert row["offered"] > 0 and row["200"] == row["offered"] == row["latency_ms"]["n"]
        assert row["latency_ms"]["p50"] >= 2.0  # at least the service
        assert row["split_ms"]["service_ms"]["p50"] >= 2.0
    assert "CRITICAL" in out and "p99.9" in out and "behind schedule" in out
    requests = result["requests"]
    assert len(requests["status"]) == 60 and set(requests["status"]) == {200}


@pytest.mark.timing
def test_a_client_out_of_patience_disconnects_and_the_server_cancels(tmp_path):
    with serving("--queue", "AsyncBucketQueue", "--workers", "1",
                 "--service", "const:50ms") as service:  # ρ = 40/s × 50 ms = 2
        _, result = http_load(f"{service.url}/v1/infer", "--rate", "40", "--duration", "1",
                              "--patience", "const:150ms", "--arrivals", "constant",
                              json_path=tmp_path / "load.json")
        time.sleep(0.2)
        counts = service.stats()["counts"]
    disconnects = result["per_priority"]["all"]["disconnect"]
    cancelled = sum(c["cancelled"] for c in counts.values())
    assert disconnects >= 10
    assert cancelled >= disconnects // 2  # those still queued when their client left
    assert sum(c["served"] for c in counts.values()) < 40
    status = np.array(result["requests"]["status"])
    assert np.all(np.isin(status, (200, DISCONNECT)))


@pytest.mark.slow
@pytest.mark.timing
def test_sends_stay_on_schedule_while_the_server_is_stopped(tmp_path):
    """Coordinated omission: a SIGSTOPped server must show in the latencies, not in the sends."""
    rate, pause_s = 100, 1.0
    with serving("--queue", "AsyncBucketQueue", "--workers", "4",
                 "--service", "const:1ms") as service:
        path = tmp_path / "load.json"
        load = subprocess.Popen(
            [sys.executable, "-m", "pqlab", "http-load", "--url", f"{service.url}/v1/infer",
             "--rate", str(rate), "--duration", "3.5", "--arrivals", "constant",
             "--json", str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for(lambda: sum(c["admitted"] for c in service.stats()["counts"].values()) >= 20,
                 30, "the generator sending")
        os.kill(service.proc.pid, signal.SIGSTOP)
        stopped_at = time.monotonic()
        threading.Event().wait(pause_s)
        os.kill(service.proc.pid, signal.SIGCONT)
        stopped_for = time.monotonic() - stopped_at
        out, err = load.communicate(timeout=60)
    assert load.returncode == 0, err
    result = json.loads(path.read_text())
    requests = result["requests"]
    latency_ms = np.array(requests["latency_ms"], dtype=float)
    lateness_ms = np.array(requests["lateness_ms"], dtype=float)
    assert set(requests["status"]) == {200}
    # The sends kept to the schedule: none left more than 100 ms late, the rate held.
    assert lateness_ms.max() < 100, lateness_ms.max()
    assert math.isclose(result["schedule"]["achieved_rate_per_s"], rate, rel_tol=0.1)
    # The pause shows: the request due as it began waited about the whole pause, and every
    # request due during it waited (a closed-loop client would show one slow request).
    assert latency_ms.max() >= 0.8 * stopped_for * 1e3, latency_ms.max()
    assert (latency_ms > 100).sum() >= 0.5 * rate * stopped_for
    assert np.median(latency_ms) < 50  # the rest of the run was fast


BAD_LOAD = [
    (["--rate", "-5"], "argument --rate: must be a positive number, got '-5'"),
    (["--rate", "0"], "argument --rate: must be a positive number"),
    (["--duration", "-1"], "argument --duration: must be a positive number"),
    (["--mix", "1,1,1"], "argument --mix: must be 4 non-negative numbers"),
    (["--mix", "1,-1,1,1"], "argument --mix: must be 4 non-negative numbers"),
    (["--mix", "0,0,0,0"], "with a positive sum"),
    (["--arrivals", "bursty"], "argument --arrivals: invalid choice: 'bursty'"),
    (["--patience", "2s"], "bad service time '2s'"),
    (["--url", "ftp://x"], "url must start with http:// or https://"),
]


@pytest.mark.parametrize(("args", "message"), BAD_LOAD)
def test_bad_input_to_http_load_is_one_line_and_exit_2(capsys, args, message):
    base = {"--url": "http://127.0.0.1:9/v1/infer", "--rate": "10", "--duration": "1"}
    for option, value in zip(args[::2], args[1::2], strict=True):
        base[option] = value
    argv = [part for pair in base.items() for part in pair]
    assert main(["http-load", *argv]) == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert out == "" and len(lines) == 1 and message in lines[0], err


def test_bad_input_to_http_load_from_the_command_line():
    p = subprocess.run([sys.executable, "-m", "pqlab", "http-load", "--url", "http://x/",
                        "--rate", "-1", "--duration", "1"], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.strip().count("\n") == 0 and "--rate: must be a positive number" in p.stderr
