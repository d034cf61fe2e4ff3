import pandas as pd
import pytest

from pqlab.decide import analysis
from pqlab.study import frames


def summary_of(throughputs, run_id="a", machine="box a", scenario="single"):
    """A summary frame: one row per (queue, repetition) of one cell, given the throughputs."""
    rows = [{"run_id": run_id, "machine": machine, "queue": queue, "scenario": scenario,
             "tasks": 1000, "producers": 1, "consumers": 1, "repetition": i,
             "throughput_ops_s": value}
            for queue, values in throughputs.items() for i, value in enumerate(values)]
    return frames.categorize(pd.DataFrame(rows))


def spread(center, n=7):
    return [center * (1 + 0.01 * (k - n // 2)) for k in range(n)]


def test_ratios_say_which_queues_the_repetitions_separate_from_the_baseline():
    summary = summary_of({"heapq": spread(1e6), "queue.PriorityQueue": spread(3e5),
                          "BucketQueue": spread(1.03e6)})
    ratios = analysis.ratios_to_baseline(summary).set_index("queue", drop=False)
    assert set(ratios["baseline"]) == {"heapq"}
    assert ratios.loc["queue.PriorityQueue", "ratio"] == pytest.approx(0.3)
    assert ratios.loc["queue.PriorityQueue", "vs_baseline"] == "different"
    assert ratios.loc["BucketQueue", "vs_baseline"] == "tie"  # 3%: under the 10% factor
    assert ratios.loc["heapq", "vs_baseline"] == "tie"


def test_the_separation_is_judged_within_each_run_and_needs_repetitions():
    summary = frames.concat([
        summary_of({"heapq": spread(1e6), "queue.PriorityQueue": spread(3e5)}),
        summary_of({"heapq": spread(2e6, 3), "queue.PriorityQueue": spread(6e5, 3)},
                   run_id="b", machine="box b")])
    ratios = analysis.ratios_to_baseline(summary)
    pq = ratios[ratios["queue"] == "queue.PriorityQueue"].set_index("run_id")
    assert pq["ratio"].tolist() == pytest.approx([0.3, 0.3])
    assert pq.loc["a", "vs_baseline"] == "different"
    assert pq.loc["b", "vs_baseline"] == "tie"  # 3 repetitions a side cannot reach p < 0.01
