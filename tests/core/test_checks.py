"""pqlab.core.checks: one validator per concept, one message shape, the caller's error type."""

import math

import pytest

from pqlab.core import checks


class Custom(ValueError):
    pass


@pytest.mark.parametrize("value", [1, 7, 10**9])
def test_positive_int_returns_the_value(value):
    assert checks.positive_int("tasks", value) == value


@pytest.mark.parametrize("value", [0, -3, 2.0, "5", True, None])
def test_positive_int_refuses_with_the_field_and_value(value):
    with pytest.raises(Custom, match=rf"^tasks must be a positive integer, got {value!r}$"):
        checks.positive_int("tasks", value, Custom)


@pytest.mark.parametrize("value", [0, -1.5, math.inf, math.nan, "1", False, 1e12])
def test_positive_number_refuses(value):
    with pytest.raises(ValueError, match="seconds must be a positive number"):
        checks.positive_number("seconds", value)


def test_positive_number_returns_a_float():
    assert checks.positive_number("seconds", 2) == 2.0
    assert isinstance(checks.positive_number("seconds", 2), float)


def test_priority_weights_default_is_uniform_and_values_pass_through():
    assert checks.priority_weights(None) == [1.0, 1.0, 1.0, 1.0]
    assert checks.priority_weights((1, 0, 2, 3)) == [1.0, 0.0, 2.0, 3.0]


@pytest.mark.parametrize("weights", [(1, 1, 1), (1, -1, 1, 1), (0, 0, 0, 0), ("a", 1, 1, 1),
                                     (1, math.nan, 1, 1), (math.inf, 1, 1, 1), 5])
def test_priority_weights_refuse_naming_the_levels(weights):
    with pytest.raises(Custom, match=r"mix must be 4 non-negative numbers "
                                     r"\(CRITICAL, HIGH, NORMAL, LOW\) with a positive sum"):
        checks.priority_weights(weights, "mix", Custom)


def test_every_caller_uses_the_same_rule():
    """The workload, the runner and the load parameters all refuse a zero count the same way."""
    import pqlab
    from pqlab.core.task import make_workload
    from pqlab.scenarios.loadparams import LoadParams

    for call in (lambda: make_workload(0), lambda: pqlab.run("heapq", tasks=0)):
        with pytest.raises(ValueError, match="tasks must be a positive integer, got 0"):
            call()
    with pytest.raises(ValueError, match="weights must be 4 non-negative numbers"):
        LoadParams(weights=(1, 1))
