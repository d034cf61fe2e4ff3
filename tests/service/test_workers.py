"""The service's worker modes for CPU-bound work: threads, processes, a dead worker process."""

from __future__ import annotations

import psutil
import pytest
from service_helpers import serving


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
