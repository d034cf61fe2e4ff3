import math
import random
from itertools import combinations, permutations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pqlab.measure.significance import (
    CONFIDENCE,
    MIN_FACTOR,
    P_THRESHOLD,
    Summary,
    compare,
    mann_whitney_u,
    min_p,
    resolution,
    summarize,
    tie_groups,
)


def brute_force_p(a, b):
    """Two-sided p by enumerating every split of the pooled values (no ties in the data)."""
    pooled, m = [*a, *b], len(a)
    mn = m * len(b)

    def u(xs, ys):
        return sum(x > y for x in xs for y in ys)

    observed = u(a, b)
    tail = min(observed, mn - observed)
    extreme = total = 0
    for chosen in combinations(range(len(pooled)), m):
        xs = [pooled[i] for i in chosen]
        ys = [pooled[i] for i in range(len(pooled)) if i not in chosen]
        value = u(xs, ys)
        extreme += min(value, mn - value) <= tail
        total += 1
    return extreme / total


def q_binomial_u_counts(m, n):
    """Counts of U = 0..m*n as the coefficients of the Gaussian binomial [m+n choose m]_q."""
    coefficients = [1]
    for i in range(1, m + 1):  # multiply by (1 - q^(n+i)), then divide by (1 - q^i)
        shifted = [0] * (n + i) + coefficients
        coefficients = [c - s for c, s in zip(coefficients + [0] * (n + i), shifted,
                                               strict=True)]
        for k in range(i, len(coefficients)):
            coefficients[k] += coefficients[k - i]
    return coefficients[: m * n + 1]


def test_complete_separation_of_five_against_five_is_2_over_252():
    u, p = mann_whitney_u([6, 7, 8, 9, 10], [1, 2, 3, 4, 5])
    assert u == 25 and p == pytest.approx(2 / 252)
    assert mann_whitney_u([1, 2, 3, 4, 5], [6, 7, 8, 9, 10]) == (0, pytest.approx(2 / 252))
    assert min_p(5, 5) == pytest.approx(2 / 252) and min_p(5, 5) < P_THRESHOLD < min_p(4, 5)


def test_hand_computed_exact_p_values():
    # m = n = 3: the 20 orderings give U = 0..9 with counts 1,1,2,3,3,3,3,2,1,1
    assert mann_whitney_u([1, 2, 4], [3, 5, 6]) == (1, pytest.approx(2 * 2 / 20))
    assert mann_whitney_u([4, 5, 6], [1, 2, 3])[1] == pytest.approx(2 * 1 / 20)
    assert mann_whitney_u([1, 4, 5], [2, 3, 6])[1] == 1.0  # U = 4, the centre
    assert mann_whitney_u([1, 2], [3, 4])[1] == pytest.approx(2 / 6)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_exact_p_matches_a_brute_force_permutation_test(seed):
    rng = random.Random(seed)
    a = [rng.gauss(0, 1) for _ in range(5)]
    b = [rng.gauss(0.8, 1) for _ in range(6)]
    assert mann_whitney_u(a, b)[1] == pytest.approx(min(1.0, brute_force_p(a, b)))


def test_ties_are_broken_the_least_significant_way():
    a, b = [1.0, 2.0, 3.0, 3.0], [3.0, 3.0, 4.0, 5.0]
    u, p = mann_whitney_u(a, b)
    assert u == 2  # two of the 16 pairs tie: half each
    worst = 0.0
    for order in permutations(range(4)):  # every way to break the four 3.0s apart
        eps = [k * 1e-9 for k in order]
        worst = max(worst, brute_force_p([1.0, 2.0, 3 + eps[0], 3 + eps[1]],
                                         [3 + eps[2], 3 + eps[3], 4.0, 5.0]))
    assert p == pytest.approx(worst)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 7])
def test_the_normal_approximation_above_20_per_side_against_the_exact_distribution(seed):
    rng = random.Random(seed)
    a = [rng.gauss(0, 1) for _ in range(25)]
    b = [rng.gauss(0.7, 1) for _ in range(25)]
    u, p = mann_whitney_u(a, b)
    counts = q_binomial_u_counts(25, 25)
    assert sum(counts) == math.comb(50, 25)
    tail = int(min(u, 625 - u))
    exact = min(1.0, 2 * sum(counts[: tail + 1]) / math.comb(50, 25))
    assert 0.001 < exact < 0.1  # a case where the approximation matters
    # the normal tail is heavier than U's: 0.0023 exact is 0.0028 here (seed 1)
    assert p == pytest.approx(exact, rel=0.25)


def test_the_exact_counts_match_the_gaussian_binomial():
    from pqlab.measure.significance import _u_counts

    for m, n in [(3, 3), (5, 7), (12, 20)]:
        assert list(_u_counts(m, n)) == q_binomial_u_counts(m, n)


def test_summary_ci_coverage_from_order_statistics():
    s = summarize([5.0, 1.0, 4.0, 2.0, 3.0])
    assert (s.n, s.median, s.ci_low, s.ci_high) == (5, 3.0, 1.0, 5.0)
    assert s.confidence == pytest.approx(0.9375)  # 1 - 2 / 2^5: [min, max] is all n = 5 offers
    assert summarize(range(7)).confidence == pytest.approx(1 - 2 / 128)
    assert summarize(range(8)).confidence == pytest.approx(1 - 2 / 256)
    assert summarize(range(8)).confidence >= CONFIDENCE > summarize(range(7)).confidence
    s20 = summarize(range(1, 21))  # P(Bin(20, 1/2) <= 3) = 1351 / 2^20
    assert (s20.ci_low, s20.ci_high) == (4, 17)
    assert s20.confidence == pytest.approx(1 - 2 * 1351 / 2**20)
    assert summarize([2.0]) == Summary(1, 2.0, 2.0, 2.0, 0.0)  # one value: no coverage
    with pytest.raises(ValueError, match="at least one"):
        summarize([])
    with pytest.raises(ValueError, match="finite"):
        summarize([1.0, math.nan])


def noisy(center, n, spread, seed):
    rng = random.Random(seed)
    return [center * (1 + rng.uniform(-spread, spread)) for _ in range(n)]


def test_compare_calls_overlapping_noise_a_tie():
    v = compare(noisy(100, 7, 0.2, 1), noisy(100, 7, 0.2, 2))
    assert not v.different and v.method == "mann-whitney" and v.p > P_THRESHOLD


def test_compare_calls_a_clean_5_percent_difference_a_tie():
    v = compare([105.0, 105.1, 105.2, 105.3, 105.4], [100.0, 100.1, 100.2, 100.3, 100.4])
    assert v.p < P_THRESHOLD and v.ratio == pytest.approx(105.2 / 100.2)
    assert not v.different  # significant, but under MIN_FACTOR


def test_compare_separates_a_clean_2x_difference_with_5_repetitions():
    v = compare(noisy(200, 5, 0.05, 3), noisy(100, 5, 0.05, 4))
    assert v.different and v.method == "mann-whitney"
    assert v.p == pytest.approx(2 / 252) and v.ratio == pytest.approx(2, rel=0.1)


def test_compare_needs_two_values_a_side():
    v = compare([200.0], [100.0, 101.0, 99.0])
    assert (v.different, v.method, v.ratio) == (False, "too few", 2.0) and math.isnan(v.p)


def test_compare_falls_back_on_confidence_intervals_where_u_cannot_reach_p():
    far = [[1.0, 1.1, 1.2], [5.0, 5.1, 5.2]]
    v = compare(*far)  # min p of 3 vs 3 is 0.1: the CIs (87.5%) cannot reach 99% either
    assert (v.different, v.method) == (False, "ci") and math.isnan(v.p)
    ten = [list(range(10, 20)), list(range(30, 40))]  # 99.8% CIs, disjoint
    strict = compare(*ten, p_threshold=1e-6)
    assert (strict.different, strict.method) == (True, "ci")
    assert not compare(list(range(10, 20)), list(range(15, 25)), p_threshold=1e-6).different


finite = st.floats(min_value=0.01, max_value=1e6, allow_nan=False)


# No per-example time limit: beside the rest of the suite one example once took 283 ms
# (the next run of it 0.03 ms), which says how busy the machine was, not what compare does.
@settings(deadline=None)
@given(st.lists(finite, min_size=1, max_size=12), st.lists(finite, min_size=1, max_size=25),
       st.sampled_from([P_THRESHOLD, 0.05, 1e-6]))
def test_compare_is_symmetric(a, b, p_threshold):
    forward, backward = compare(a, b, p_threshold), compare(b, a, p_threshold)
    assert forward.different == backward.different and forward.method == backward.method


def test_tie_groups_best_first_leader_decides():
    samples = {
        "slow": noisy(100, 7, 0.02, 1),
        "fast": noisy(300, 7, 0.02, 2),
        "fast-too": noisy(295, 7, 0.02, 3),  # within 10% of fast
        "middle": noisy(200, 7, 0.02, 4),
        "single": [250.0],  # too few: a tie with whichever leader it meets first
    }
    assert tie_groups(samples) == [["fast", "fast-too", "single"], ["middle"], ["slow"]]
    assert tie_groups(samples, higher_is_better=False) == [
        ["slow", "single"], ["middle"], ["fast-too", "fast"]]


def test_tie_groups_is_deterministic_and_equal_medians_keep_mapping_order():
    samples = {"b": [1.0, 2.0, 3.0], "a": [1.5, 2.0, 2.5], "c": [9.0, 10.0, 11.0]}
    assert tie_groups(samples) == [["c", "b", "a"]]  # 3 per side cannot reach p = 0.01
    assert tie_groups(dict(reversed(samples.items()))) == [["c", "a", "b"]]


def test_resolution_is_the_factor_for_tight_data_and_wider_for_noisy_data():
    tight = {name: noisy(100 * (i + 1), 5, 0.01, i) for i, name in enumerate("abc")}
    assert resolution(tight) == MIN_FACTOR
    wide = {name: [80.0, 90.0, 100.0, 110.0, 120.0] for name in "abc"}
    assert resolution(wide) == pytest.approx(1.2 / 0.8)  # h = 20 / 100
    assert resolution({name: [1.0, 2.0, 3.0] for name in "ab"}) == math.inf  # 3 per side
    assert resolution({"a": [1.0, 2.0, 3.0, 4.0, 5.0]}) == math.inf  # nothing to compare
