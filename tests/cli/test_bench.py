import pytest

from pqlab.cli import main as cli
from pqlab.cli.bench import (
    ACTIVE_POLICY,
    ACTIVE_POLICY_QUEUE,
    COMPARISONS,
    DEFAULT_POLICY_QUEUE,
    THREADS_CEILING,
    Comparison,
    Ratio,
    format_ratio,
    instrumented,
    measure,
    run_bench,
)
from pqlab.core.task import make_workload
from pqlab.queues.asyncqueue import AsyncBucketQueue
from pqlab.queues.policy import TimeoutAction
from pqlab.queues.prometheus import InstrumentedAsyncQueue
from pqlab.queues.syncqueue import PolicyThreadSafeBucketQueue, ThreadSafeBucketQueue

POLICY_COST = "ThreadSafeBucketQueue with limits and timeouts vs without, `single`"
DEFAULT_POLICY = "ThreadSafeBucketQueue with a default policy vs without, `single`"


def test_bench_measures_ratios_side_by_side():
    lines = []
    results = run_bench(tasks=500, repeats=3, seed=1, groups=["adapter"], out=lines.append)
    assert [r.comparison.group for r in results] == ["adapter"]
    [r] = results
    assert len(r.ratios) == 3 and all(x > 0 for x in r.ratios)
    assert "heapq through pqlab" in lines[-1] and "target >= 0.8x" in lines[-1]
    assert "75.0% CI" in lines[0] and "p < 0.01" in lines[0]  # [min, max] of 3: 1 - 2/2^3


def test_every_claim_has_a_target_and_only_ceiling_and_costs_are_references():
    references = [c for c in COMPARISONS if c.target is None]
    assert all(c.target > 0 for c in COMPARISONS if c.target is not None)
    costs = [c.label for c in COMPARISONS if c.group == "metrics"]
    assert [c.label for c in references] == [THREADS_CEILING, POLICY_COST, *costs]


def test_a_ceiling_is_a_reference_measured_earlier_in_the_same_group():
    for i, c in enumerate(COMPARISONS):
        if c.ceiling is not None:
            [ref] = [r for r in COMPARISONS[:i] if r.label == c.ceiling]
            assert ref.target is None and ref.group == c.group
    capped = [c.label for c in COMPARISONS if c.ceiling]
    assert capped == ["ThreadSafeBucketQueue vs queue.PriorityQueue in `threads` 5/5"]


def test_the_ceiling_runs_simple_queue_through_threads_and_never_fails_the_bench():
    [ceiling] = [c for c in COMPARISONS if c.label == THREADS_CEILING]
    r = measure(ceiling, make_workload(300, 1), 1)
    assert r.met and r.median > 0 and r.subject_costs[0] > 0
    line = format_ratio(r)
    assert "reference: the ceiling of any queue here" in line and "NOT met" not in line
    assert "too few repetitions" in line


def test_run_bench_hands_the_measured_ceiling_to_the_claim_it_caps():
    results = run_bench(tasks=200, repeats=1, seed=1, groups=["bucket"], out=lambda line: None)
    by_label = {r.comparison.label: r for r in results}
    claim = by_label["ThreadSafeBucketQueue vs queue.PriorityQueue in `threads` 5/5"]
    assert claim.ceiling is by_label[THREADS_CEILING]
    assert [r.comparison.label for r in results].index(THREADS_CEILING) < results.index(claim)


@pytest.mark.parametrize("repeat", ["3", "4", "0", "x"])
def test_bench_refuses_repetitions_the_test_cannot_resolve(repeat, capsys):
    assert cli.main(["bench", "--repeat", repeat, "--group", "adapter"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--repeat" in err


def test_bench_help_names_the_minimum(capsys):
    with pytest.raises(SystemExit):
        cli.main(["bench", "--help"])
    assert "at least 5" in capsys.readouterr().out


def fake(target, ceiling=None):
    return Comparison("g", "fake", lambda t: 0.0, lambda t: 0.0, target, "ns", ceiling)


def synthetic(target, subject, peer, ceiling=None, comparison=None):
    """A Ratio from given costs, without measuring."""
    c = comparison or fake(target, "ref" if ceiling else None)
    return Ratio(c, [p / s for s, p in zip(subject, peer, strict=True)], list(subject),
                 list(peer), ceiling)


def costs(center, spread=0.02, n=7):
    return [center * (1 + spread * (k - n // 2) / n) for k in range(n)]


def reference(ratio):
    return synthetic(None, costs(100), costs(100 * ratio), comparison=fake(None))


def test_a_ceiling_below_4x_caps_the_target_at_three_quarters_of_it():
    claim = synthetic(3.0, costs(100), costs(240), ceiling=reference(2.9))
    assert claim.target == pytest.approx(0.75 * 2.9) == pytest.approx(2.175)
    assert claim.median == pytest.approx(2.4) and claim.met
    line = format_ratio(claim)
    assert "2.40x (" in line and "ceiling 2.90x, target >= 2.175x  met" in line
    assert synthetic(3.0, costs(100), costs(240), ceiling=reference(5.0)).target == 3.0
    assert not synthetic(3.0, costs(100), costs(240), ceiling=reference(5.0)).met
    assert synthetic(3.0, costs(100), costs(240)).target == 3.0  # no ceiling: as claimed


def test_a_collapsed_ceiling_still_asks_the_subject_to_be_faster():
    """On a busy machine the ceiling can fall near 1; a faster-claim does not become a tie."""
    collapsed = reference(1.18)
    assert synthetic(3.0, costs(100), costs(100), ceiling=collapsed).target == 1.05
    assert not synthetic(3.0, costs(100), costs(100), ceiling=collapsed).met
    assert synthetic(3.0, costs(100), costs(120), ceiling=collapsed).met


def test_a_claim_above_1_needs_the_median_and_a_separation():
    assert synthetic(2.0, costs(100), costs(300)).met
    short = synthetic(2.0, costs(100), costs(180))  # separated, but under the target
    assert short.verdict.different and not short.met
    assert "NOT met" in format_ratio(short)
    # the median ratio reaches 2x, yet the costs overlap: one wild repetition per side
    noisy = synthetic(2.0, [100, 100, 100, 100, 300, 300, 300], [200, 200, 200, 200, 60, 600, 600])
    assert noisy.median >= 2.0 and not noisy.verdict.different and not noisy.met
    line = format_ratio(noisy)
    assert "not significant" in line and "NOT met" in line


def test_no_worse_than_the_peer_is_met_by_a_tie_and_failed_by_a_significant_loss():
    tie = synthetic(1.0, [100, 104, 97, 102, 99, 101, 98], [97, 103, 99, 100, 98, 102, 96])
    assert tie.median < 1.0 and tie.met
    assert "not significant  target >= 1x  met" in format_ratio(tie)
    loss = synthetic(1.0, costs(150), costs(100))
    assert loss.verdict.different and not loss.met
    small_loss = synthetic(1.0, costs(105), costs(100))  # significant, but within 10%
    assert small_loss.met and "within 10%" in format_ratio(small_loss)


def test_a_target_below_1_is_judged_against_the_scaled_peer():
    assert synthetic(0.8, costs(110), costs(100)).met  # 0.91x: above 0.8x
    assert synthetic(0.8, costs(124), costs(100)).met  # 0.81x
    assert not synthetic(0.8, costs(200), costs(100)).met  # 0.5x, clearly short
    line = format_ratio(synthetic(0.8, costs(200), costs(100)))
    assert "p=0.00058" in line and "NOT met" in line  # 2 / C(14, 7)


def test_too_few_repetitions_never_meet_a_claim_above_1():
    r = synthetic(2.0, [100.0], [400.0])
    assert r.median == 4.0 and not r.met and "too few repetitions" in format_ratio(r)


def test_the_policy_lines_compare_a_default_and_an_active_policy_with_none_per_put_and_get():
    assert type(DEFAULT_POLICY_QUEUE.factory()) is ThreadSafeBucketQueue
    active = ACTIVE_POLICY_QUEUE.factory()
    assert type(active) is PolicyThreadSafeBucketQueue
    levels = [ACTIVE_POLICY.for_level(level) for level in active.levels]
    assert all(p.max_queue_size and p.default_timeout_s and
               p.timeout_action is TimeoutAction.REJECT for p in levels)
    lines = []
    results = run_bench(tasks=400, repeats=1, seed=1, groups=["policy"], out=lines.append)
    by_label = {r.comparison.label: r for r in results}
    assert list(by_label) == [DEFAULT_POLICY, POLICY_COST]
    assert by_label[DEFAULT_POLICY].comparison.target == 1.0
    cost = by_label[POLICY_COST]
    # per put+get: a pass of 400 puts and 400 gets costs some hundreds of ns a task
    assert all(50 < c < 1e6 for c in cost.subject_costs + cost.peer_costs)
    assert cost.met and "reference: what an active policy costs per put+get" in lines[-1]
    assert " ns/op vs " in lines[-1] and "NOT met" not in lines[-1]


def test_the_metrics_lines_put_instrumented_queues_beside_bare_ones_per_put_and_get():
    labels = [c.label for c in COMPARISONS if c.group == "metrics"]
    assert {"ThreadSafeBucketQueue", "AsyncBucketQueue"} <= {x.split(" ")[0] for x in labels}
    made = instrumented("AsyncBucketQueue").factory()
    assert isinstance(made, InstrumentedAsyncQueue) and isinstance(made.queue, AsyncBucketQueue)
    policed = instrumented(ACTIVE_POLICY_QUEUE).factory()
    assert type(policed.queue) is PolicyThreadSafeBucketQueue
    lines = []
    results = run_bench(tasks=300, repeats=1, seed=1, groups=["metrics"], out=lines.append)
    assert [r.comparison.label for r in results] == labels
    for r, line in zip(results, lines[2:], strict=True):
        assert r.comparison.unit == "ns/op" and r.met
        assert all(50 < c < 1e6 for c in r.subject_costs + r.peer_costs)
        assert "reference: what instrumentation adds per put+get" in line and "NOT met" not in line
