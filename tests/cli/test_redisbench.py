"""pqlab.cli.redisbench: the Redis queue beside redis-benchmark, on a private server."""

import math

import pytest
from redis_helpers import private_server, require_redis_server

from pqlab.cli import redisbench as rb
from pqlab.cli.redisbench import format_replica_cost, replica_costs

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
def server():
    require_redis_server()
    s = private_server()
    yield s
    s.stop()


def test_ratio_is_redis_benchmark_over_pqlab_and_missing_peer_is_no_verdict():
    r = rb.CallRate("enqueue", "no", pqlab=[1000.0, 2000.0, 3000.0], redis_benchmark=[4000.0],
                    redis_py=[])
    assert r.ratio == pytest.approx(2.0) and r.met
    slow = rb.CallRate("claim", "no", pqlab=[100.0], redis_benchmark=[1000.0], redis_py=[])
    assert not slow.met and "NOT met" in rb.format_call_rate(slow)
    alone = rb.CallRate("claim", "no", pqlab=[100.0], redis_benchmark=[], redis_py=[])
    assert math.isnan(alone.ratio) and alone.met
    assert "no redis-benchmark" in rb.format_call_rate(alone)


def test_drain_rate_takes_every_task(server):
    assert rb.drain_rate(server.url, 300, 16) > 0


@pytest.mark.slow
def test_the_whole_bench_prints_its_three_parts(server):
    lines: list[str] = []
    rb.run_redis_bench(server.url, calls=200, repeats=1, tasks=200, processes=(1,),
                       counts=(1, 8), out=lines.append)
    text = "\n".join(lines)
    assert "enqueue" in text and "claim" in text
    assert "k=1" in text and "count=8" in text
    assert "error" not in text
    rates = [float(line.split()[3].replace(",", "")) for line in lines
             if line.strip().startswith(("enqueue", "claim"))]
    assert rates and all(r > 0 for r in rates)


def test_the_bench_measures_put_and_ack_with_and_without_replica_acknowledgement(deployment):
    costs = replica_costs(deployment.url, calls=20, repeats=1)
    assert [c.operation for c in costs] == ["put", "ack"]
    assert all(c.plain_us[0] > 0 and c.confirmed_us[0] > 0 and c.ratio > 0 for c in costs)
    assert "x" in format_replica_cost(costs[0])
