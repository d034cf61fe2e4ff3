import math

import numpy as np
import pytest

from pqlab.measure import theory


def erlang_c_by_factorials(c: int, a: float) -> float:
    tail = a**c / math.factorial(c) * c / (c - a)
    return tail / (sum(a**k / math.factorial(k) for k in range(c)) + tail)


@pytest.mark.parametrize("c, a", [(1, 0.3), (2, 1.0), (4, 3.2), (8, 6.4), (16, 15.5)])
def test_erlang_c_matches_the_factorial_form(c, a):
    assert theory.erlang_c(c, a) == pytest.approx(erlang_c_by_factorials(c, a), rel=1e-12)


def test_erlang_c_known_values():
    assert theory.erlang_c(1, 0.7) == pytest.approx(0.7)  # M/M/1: P(wait) = ρ
    assert theory.erlang_c(2, 1.0) == pytest.approx(1 / 3)
    assert theory.erlang_c(3, 0.0) == 0.0
    assert theory.erlang_c(200, 180.0) < 1  # the recursion does not overflow


@pytest.mark.parametrize("c, a", [(1, 1.0), (4, 4.0), (4, 5.0)])
def test_erlang_c_raises_without_steady_state(c, a):
    with pytest.raises(ValueError, match="no steady state"):
        theory.erlang_c(c, a)


@pytest.mark.parametrize("c, a", [(0, 0.5), (-1, 0.5), (1.5, 0.5), (2, -0.1)])
def test_erlang_c_rejects_bad_arguments(c, a):
    with pytest.raises(ValueError):
        theory.erlang_c(c, a)


def test_one_class_is_the_fifo_mmc_wait():
    for c, rate, mean in [(1, 50.0, 0.016), (4, 200.0, 0.016), (8, 300.0, 0.02)]:
        [w] = theory.priority_waits([rate], mean, c)
        assert w == pytest.approx(theory.erlang_c(c, rate * mean) / (c / mean - rate))
    assert theory.priority_waits([50.0], 0.016, 1)[0] == pytest.approx(theory.mm1_wait(50, 0.016))


def test_single_server_classes_match_the_mg1_closed_form():
    rates, mean = [20.0, 10.0, 15.0, 5.0], 0.01
    w0 = sum(rates) * 2 * mean**2 / 2  # λE[S²]/2 with E[S²] = 2/μ²
    sigma = np.cumsum([0.0, *rates]) * mean
    expected = [w0 / ((1 - sigma[k]) * (1 - sigma[k + 1])) for k in range(4)]
    assert theory.priority_waits(rates, mean, 1) == pytest.approx(expected)


def test_conservation_law_weighted_class_waits_equal_the_fifo_wait():
    # Kleinrock's conservation law: with equal service times, priorities only
    # redistribute waiting; the rate-weighted mean equals the FIFO mean wait.
    rates, mean, c = [30.0, 60.0, 90.0, 20.0], 0.016, 4
    waits = theory.priority_waits(rates, mean, c)
    [fifo] = theory.priority_waits([sum(rates)], mean, c)
    assert np.dot(rates, waits) / sum(rates) == pytest.approx(fifo)
    assert waits == sorted(waits)  # higher priority waits less


def test_unstable_load_gives_nan_and_bad_values_raise():
    assert all(math.isnan(w) for w in theory.priority_waits([100.0, 200.0], 0.016, 4))
    assert math.isnan(theory.mm1_wait(100.0, 0.01))
    with pytest.raises(ValueError):
        theory.priority_waits([-1.0, 5.0], 0.016, 4)
    with pytest.raises(ValueError):
        theory.priority_waits([1.0], 0.0, 4)


def test_simulation_by_hand():
    # One server: task 0 serves 0-1; at t=1 the CRITICAL task 2 goes before LOW task 1.
    waits = theory.simulate_waits([0.0, 0.1, 0.2], [1.0, 1.0, 1.0], [4, 4, 1], 1)
    assert waits.tolist() == pytest.approx([0.0, 1.9, 0.8])
    # Two servers: tasks 0 and 1 start at once; 2 waits for the first to free (t=0.5).
    waits = theory.simulate_waits([0.0, 0.0, 0.1, 0.2], [0.5, 2.0, 1.0, 1.0], [3, 3, 3, 2], 2)
    assert waits.tolist() == pytest.approx([0.0, 0.0, 1.4, 0.3])
    # FIFO within a priority; an idle server takes a late arrival at its arrival time.
    waits = theory.simulate_waits([0.0, 0.0, 0.0, 5.0], [1.0] * 4, [2, 2, 2, 1], 1)
    assert waits.tolist() == pytest.approx([0.0, 1.0, 2.0, 0.0])
    assert len(theory.simulate_waits([], [], [], 3)) == 0


def simulate_classes(rates, mean, c, n, seed):
    rng = np.random.default_rng(seed)
    shares = np.asarray(rates) / sum(rates)
    arrival = np.cumsum(rng.exponential(1 / sum(rates), n))
    service = rng.exponential(mean, n)
    level = rng.choice(np.arange(1, len(rates) + 1), n, p=shares)
    waits = theory.simulate_waits(arrival, service, level, c)
    return [waits[level == k].mean() for k in range(1, len(rates) + 1)]


def test_cobham_matches_a_simulated_mmc_priority_queue():
    # 200,000 tasks, ρ = 0.6: a class mean spreads by 2-3 % (sd over 20 seeds); 10 % is > 3 sd.
    rates, mean, c = [30.0, 30.0, 45.0, 45.0], 0.016, 4
    simulated = simulate_classes(rates, mean, c, 200_000, seed=7)
    assert simulated == pytest.approx(theory.priority_waits(rates, mean, c), rel=0.1)


def test_mm1_closed_form_matches_a_simulated_queue():
    simulated = simulate_classes([70.0], 0.01, 1, 200_000, seed=11)
    assert simulated[0] == pytest.approx(theory.mm1_wait(70.0, 0.01), rel=0.1)
