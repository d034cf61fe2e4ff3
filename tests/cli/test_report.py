import math

import pytest

from pqlab.cli.report import (
    decide,
    decision_lines,
    latency_verdict,
    recommendation_lines,
    representatives,
    success_criteria,
    throughput_verdict,
    violations_verdict,
)
from pqlab.measure.metrics import RunResult

STATS = {"mean": 2.0, "p50": 1.0, "p90": 3.0, "p99": 4.0, "p99_9": 5.0, "max": 6.0}


def result(queue, scenario, ops, violations=0, lost=0, overlap=0.9, enq=2.0, rep=0):
    return RunResult(queue, scenario, 1000, 5, 5, 1, rep, ops, 0.1, {**STATS, "mean": enq},
                     dict(STATS), {}, violations, lost, 0, 0, [], overlap, 8.0, 2**26, 50.0)


def repeated(queue, scenario, ops, reps=5, **kwargs):
    return [result(queue, scenario, ops * (1 + 0.01 * r), rep=r, **kwargs) for r in range(reps)]


@pytest.mark.parametrize("ops, verdict", [(250_000, "Excellent"), (150_000, "Good"),
                                          (60_000, "Acceptable"), (10_000, "Moderate")])
def test_throughput_bands(ops, verdict):
    assert verdict in throughput_verdict(ops)


@pytest.mark.parametrize("us, verdict", [(1, "Excellent"), (7, "Good"), (20, "Acceptable"),
                                         (80, "Moderate")])
def test_latency_bands(us, verdict):
    assert verdict in latency_verdict(us)


def test_violation_bands():
    assert "PASS" in violations_verdict(0)
    assert "CAUTION" in violations_verdict(10)
    assert "FAIL" in violations_verdict(11)


def test_recommendations_follow_the_decision_rule():
    results = [*repeated("asyncio.PriorityQueue", "async", 300_000),
               *repeated("AsyncBucketQueue", "async", 200_000),
               *repeated("AsyncBucketQueue", "async", 200_000, violations=1)[:1],
               *repeated("queue.PriorityQueue", "threads", 120_000),
               *repeated("heapq", "single", 500_000),
               *repeated("asyncio.PriorityQueue", "single", 600_000)]
    decisions = decide(results)
    text = "\n".join(recommendation_lines(decisions))
    # AsyncBucketQueue has more needed features but misordered a task: set aside.
    assert "Set aside: AsyncBucketQueue: incorrect: 1 violations" in text
    assert "Use: asyncio.PriorityQueue" in text
    assert "Use: queue.PriorityQueue" in text
    # the single-threaded pick must be usable from sync code
    assert "Use: heapq" in text
    choice = next(d.choice for d in decisions if d.context.scenario == "async")
    block = "\n".join(decision_lines(results, choice))
    assert "Use asyncio.PriorityQueue" in block
    # the median repetition of five: 300,000 * 1.02 ops/s, half of it in requests
    assert "153,000 requests/sec" in block


def test_representatives_are_the_median_repetitions():
    reps = representatives(repeated("heapq", "single", 100_000))
    assert [r.repetition for r in reps] == [2]


def test_success_criteria_follow_the_numbers():
    met = {c.text: c.met for c in success_criteria(
        [result("asyncio.PriorityQueue", "async", 80_000, enq=20.0)], "asyncio.PriorityQueue")}
    assert met["Throughput > 100,000 ops/sec"] is False
    assert met["Avg latency < 10μs (enqueue and dequeue)"] is False
    met = {c.text: c.met for c in success_criteria(
        [result("asyncio.PriorityQueue", "async", 300_000)], "asyncio.PriorityQueue")}
    assert all(met.values())
    assert not math.isnan(result("x", "async", 1).throughput_ops_s)


def test_no_correct_async_queue_means_no_recommendation():
    [criterion] = success_criteria([result("asyncio.PriorityQueue", "async", 1, lost=2)], None)
    assert criterion.met is False


def test_latency_cells_never_run_together():
    from pqlab.cli.report import _us

    assert [_us(x) for x in (0.5, 999.994, 26076.63, 999_999.0, 3_456_789.0)] == [
        "0.50", "999.99", "26,077", "999,999", "3.5s"]
    assert _us(float("nan")) == "n/a"
    assert max(len(_us(x)) for x in (0.5, 999.99, 26076.63, 999_999.0, 123_456_789.0)) <= 7


def test_the_ranking_calls_a_tie_a_tie():
    from pqlab.cli.report import comparison_lines

    results = [*repeated("AsyncBucketQueue", "async", 300_000),
               *repeated("BridgeBucketQueue", "async", 301_000),
               *repeated("janus.PriorityQueue", "async", 100_000)]
    text = "\n".join(comparison_lines(results))
    rows = {line.split()[1]: line.split()[0] for line in text.splitlines()
            if line.strip().startswith("g")}
    assert rows["AsyncBucketQueue"] == rows["BridgeBucketQueue"] == "g1"
    assert rows["janus.PriorityQueue"] == "g2"
    assert "0 violations, 0 lost, 0 duplicated in 5 runs" in text
