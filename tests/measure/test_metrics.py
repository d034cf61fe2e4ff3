import math

import numpy as np
import pytest

from measure.test_verify import make_records
from pqlab.measure.metrics import (
    latency_stats_us,
    measure_memory,
    overlap,
    throughput_ops_s,
    timer_overhead_ns,
    wait_by_priority_us,
)


def test_latency_stats_in_microseconds():
    stats = latency_stats_us(np.arange(1, 1001) * 1000)  # 1..1000 µs
    assert stats["mean"] == pytest.approx(500.5)
    assert stats["p50"] == pytest.approx(500.5)
    assert stats["p99"] == pytest.approx(990.01)
    assert stats["p99_9"] == pytest.approx(999.001)
    assert stats["max"] == 1000.0
    assert math.isnan(latency_stats_us(np.array([]))["mean"])


def test_throughput_counts_a_put_and_a_get_per_task():
    assert throughput_ops_s(1000, 10**9) == 2000.0
    assert math.isnan(throughput_ops_s(10, 0))


def test_overlap_and_waits():
    rec = make_records([1, 4], [0, 1], [(0, 10), (100, 110)], [(0, 20, 30), (1, 200, 1110)])
    assert overlap(rec) == 0.5  # the first get ended before the last put did
    waits = wait_by_priority_us(rec)
    assert waits["CRITICAL"]["wait_p50_us"] == pytest.approx(0.02)
    assert waits["LOW"]["wait_p99_us"] == pytest.approx(1.0)
    assert math.isnan(waits["HIGH"]["wait_p50_us"])


def test_timer_overhead_is_measured():
    assert 0 < timer_overhead_ns(2000) < 100_000


def test_memory_counts_what_fill_allocates():
    def fill():
        import tracemalloc

        before = tracemalloc.get_traced_memory()[0]
        keep = [object() for _ in range(1000)]
        return tracemalloc.get_traced_memory()[0] - before, keep

    mem = measure_memory(fill, 1000)
    assert 16 <= mem.bytes_per_task < 100  # an object() plus its list slot
    assert mem.rss_bytes > 10 * 2**20
