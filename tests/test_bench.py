from pqlab.bench import COMPARISONS, format_ratio, measure, run_bench
from pqlab.task import make_workload


def test_bench_measures_ratios_side_by_side():
    lines = []
    results = run_bench(tasks=500, repeats=3, seed=1, groups=["adapter"], out=lines.append)
    assert [r.comparison.group for r in results] == ["adapter"]
    [r] = results
    assert len(r.ratios) == 3 and all(x > 0 for x in r.ratios)
    assert "heapq through pqlab" in lines[-1] and "target >= 0.8x" in lines[-1]


def test_every_claim_has_a_target_and_only_the_ceiling_is_a_reference():
    references = [c for c in COMPARISONS if c.target is None]
    assert all(c.target > 0 for c in COMPARISONS if c.target is not None)
    assert [c.label for c in references] == [
        "queue.SimpleQueue (C, FIFO) vs queue.PriorityQueue in `threads` 5/5"]


def test_the_ceiling_runs_simple_queue_through_threads_and_never_fails_the_bench():
    [ceiling] = [c for c in COMPARISONS if c.target is None]
    lines = []
    r = measure(ceiling, make_workload(300, 1), 1)
    assert r.met and r.median > 0 and r.subject_costs[0] > 0
    lines.append(format_ratio(r))
    assert "reference: the ceiling of any queue here" in lines[0] and "NOT met" not in lines[0]
