"""The comparisons issue 4 adds to ``python -m pqlab bench``."""

import math

from pqlab.cli.bench import COMPARISONS, Comparison, format_cost, measure, run_bench
from pqlab.core.task import make_workload


def test_the_issue_s_claims_are_all_compared():
    by_group = {}
    for c in COMPARISONS:
        by_group.setdefault(c.group, []).append(c)
    assert {"bucket", "async", "bridge", "memory"} <= set(by_group)
    targets = {c.label: c.target for c in COMPARISONS}
    assert targets["ThreadSafeBucketQueue vs queue.PriorityQueue in `single`"] == 5
    assert targets["ThreadSafeBucketQueue vs queue.PriorityQueue in `threads` 5/5"] == 3
    assert targets["AsyncBucketQueue vs asyncio.PriorityQueue in `single`"] == 4
    assert targets["BridgeBucketQueue vs janus.PriorityQueue in `mixed` 5/5"] == 1.5
    assert all(c.unit == "B/task" and c.target == 1 for c in by_group["memory"])
    assert any(c.unit == "µs" for c in by_group["bridge"])


def test_a_cost_ratio_is_peer_over_subject_whatever_the_unit():
    costs = iter([10.0, 30.0, 20.0, 40.0, 10.0, 50.0])
    c = Comparison("g", "fake", lambda t: next(costs), lambda t: next(costs), 2.0, "B/task")
    r = measure(c, [], 2)  # the warm-up takes the first pair
    assert r.ratios == [2.0, 5.0] and r.median == 3.5
    assert not r.met and r.verdict.method == "ci"  # 2 a side cannot separate them
    assert r.subject_costs == [20.0, 10.0] and r.peer_costs == [40.0, 50.0]
    assert format_cost(2.5e6, "ns") == "2.5 ms" and format_cost(8.25, "B/task") == "8.2 B/task"


def test_memory_and_bridge_groups_run_end_to_end():
    lines = []
    results = run_bench(tasks=300, repeats=1, seed=1, groups=["memory", "bridge"],
                        out=lines.append)
    assert {r.comparison.group for r in results} == {"memory", "bridge"}
    assert all(math.isfinite(r.median) and r.median > 0 for r in results)
    memory = [r for r in results if r.comparison.group == "memory"]
    assert all(r.subject_costs[0] > 0 for r in memory)
    assert any("B/task" in line for line in lines) and any("µs" in line for line in lines)


def test_the_async_face_runner_drives_the_async_face():
    from pqlab.cli.bench import async_face_single_ns

    assert async_face_single_ns("BridgeBucketQueue")(make_workload(200, seed=1)) > 0
