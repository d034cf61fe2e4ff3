from pqlab.bench import COMPARISONS, run_bench


def test_bench_measures_ratios_side_by_side():
    lines = []
    results = run_bench(tasks=500, repeats=3, seed=1, groups=["adapter"], out=lines.append)
    assert [r.comparison.group for r in results] == ["adapter"]
    [r] = results
    assert len(r.ratios) == 3 and all(x > 0 for x in r.ratios)
    assert "heapq through pqlab" in lines[-1] and "target >= 0.8x" in lines[-1]


def test_every_comparison_has_a_target():
    assert all(c.target > 0 for c in COMPARISONS)
