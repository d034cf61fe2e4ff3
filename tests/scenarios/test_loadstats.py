"""pqlab.scenarios.loadstats: the load run's summary numbers, and a bounded run's outcomes
measured beside the replay's.

``load_extra`` on hand-made records is also checked in tests/test_load.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import pqlab
from pqlab.core.task import Priority
from pqlab.measure import theory
from pqlab.measure.overload import OUTCOMES
from pqlab.measure.records import Records
from pqlab.queues.policy import LevelPolicy, QueuePolicy
from pqlab.scenarios.loadparams import LoadParams, ServiceTime
from pqlab.scenarios.loadstats import _percentiles, _rate, _replay_s, load_extra, overload_extra


def hand_records(service_ns: int) -> Records:
    """Four tasks, one per priority, intended 1 ms apart; LOW's producer 0.5 ms late."""
    intended = 10 * MS + np.arange(4) * MS
    priority = np.array([1, 4, 2, 3], np.int16)
    put_start = intended + np.array([0, MS // 2, 0, 0])
    get_end = intended + np.array([1, 2, 3, 4]) * MS
    rec = Records(
        priority=priority, seq=np.arange(4), put_start=put_start, put_end=put_start + 10_000,
        producer=np.zeros(4, np.int16), get_task=np.arange(4), get_start=get_end - MS,
        get_end=get_end, consumer=np.zeros(4, np.int16), concurrent=True, wall_ns=20 * MS)
    rec.series.update(intended_ns=intended, service_end_ns=get_end + service_ns)
    return rec

MS = 1_000_000


def test_a_rate_counts_gaps_over_the_span():
    assert _rate(np.array([0, 10 * MS, 20 * MS, 40 * MS])) == pytest.approx(75.0)
    assert math.isnan(_rate(np.array([5])))
    assert math.isnan(_rate(np.array([5, 5])))  # no span


def test_the_replay_waits_only_when_the_workers_are_busy():
    intended = np.array([0, 1, 2, 3]) * MS
    service_s = np.full(4, 0.010)
    prio = np.array([4, 4, 1, 4])
    # One worker: the first runs at once; at 10 ms the CRITICAL one (arrived at 2 ms) goes
    # first, then the two LOWs in arrival order.
    waits = _replay_s(intended, service_s, prio, workers=1)
    assert waits == pytest.approx([0.0, 0.019, 0.008, 0.027])
    assert _replay_s(intended, service_s, prio, workers=4) == pytest.approx([0, 0, 0, 0])
    shuffled = [2, 0, 3, 1]  # the order of the records does not matter
    assert _replay_s(intended[shuffled], service_s, prio[shuffled], 1) == pytest.approx(
        waits[shuffled])


def test_percentiles_of_nothing_are_nan():
    assert all(math.isnan(x) for x in _percentiles(np.array([])))
    assert _percentiles(np.arange(101.0)) == (50.0, 99.0)


POLICY = QueuePolicy(LevelPolicy(max_queue_size=4, default_timeout_s=0.02))
OVER = LoadParams(1500, "poisson", ServiceTime("exp", 0.002), duration_s=0.3, policy=POLICY)


@pytest.fixture(scope="module")
def bounded():
    r = pqlab.run("ThreadSafeBucketQueue", "load", tasks=OVER.tasks_for(0.3), consumers=2,
                  seed=11, params=OVER)
    assert r.ok, r.error_messages
    return r


def test_a_bounded_run_s_outcomes_add_up_per_level_measured_and_replayed(bounded):
    e, levels = bounded.extra, bounded.levels
    assert e["duration_s"] == 0.3 and e["patience"] == "none" and math.isnan(e["patience_mean_s"])
    [rec] = bounded.records
    assert sum(levels[p.name]["offered"] for p in Priority) == int((rec.put_end > 0).sum())
    for level in Priority:
        m = levels[level.name]
        assert sum(m[o] for o in OUTCOMES) == m["offered"]
        for prefix in ("", "replay_"):
            assert sum(m[f"{prefix}share_{o}"] for o in OUTCOMES) == pytest.approx(1.0)
            served_per_s = m["share_served"] * m["offered"] / 0.3
            assert 0 <= m["goodput_per_s"] <= served_per_s + 1e-9
        if m["served"]:
            assert 0 <= m["served_wait_p50_ms"] <= m["served_wait_p99_ms"]


def _same(a, b) -> bool:
    return a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b))


def test_overload_extra_is_what_the_run_put_in_its_row(bounded):
    [rec] = bounded.records
    scalars, levels = overload_extra(rec, OVER, workers=2)
    for key, value in scalars.items():
        assert _same(value, bounded.extra[key]), key
    for level, metrics in levels.items():
        for metric, value in metrics.items():
            assert _same(value, bounded.levels[level][metric]), (level, metric)


def test_load_extra_measures_from_the_intended_arrival():
    e, lv = load_extra(hand_records(10 * MS), LoadParams(1000, service=ServiceTime("exp", 0.01)),
                       2)
    assert lv["CRITICAL"]["queue_wait_mean_ms"] == pytest.approx(1.0)
    assert lv["LOW"]["queue_wait_max_ms"] == pytest.approx(2.0)
    assert lv["LOW"]["queue_wait_uncorrected_mean_ms"] == pytest.approx(1.5)  # from the late put
    assert lv["NORMAL"]["sojourn_p50_ms"] == pytest.approx(14.0)
    assert lv["LOW"]["sojourn_uncorrected_mean_ms"] == pytest.approx(11.5)
    assert e["service_mean_ms"] == pytest.approx(10.0)
    assert e["rate_offered_per_s"] == pytest.approx(1000.0)  # 3 gaps in 3 ms
    assert e["rho"] == pytest.approx(5.0) and e["rho_measured"] == pytest.approx(5.0)
    assert e["producer_late_max_ms"] == pytest.approx(0.5)
    assert lv["HIGH"]["tasks"] == 1
    assert math.isnan(lv["LOW"]["theory_wait_mean_ms"])
    assert math.isnan(lv["LOW"]["wait_mean_rel_diff"])


def test_load_extra_puts_theory_and_replay_beside_the_measurement():
    params = LoadParams(1000, service=ServiceTime("exp", 0.0001))
    _, lv = load_extra(hand_records(100_000), params, 2)
    expected = theory.priority_waits([250.0] * 4, 0.0001, 2)
    for level, wait_s in zip(Priority, expected, strict=True):
        v = lv[level.name]
        assert v["theory_wait_mean_ms"] == pytest.approx(wait_s * 1e3)
        assert v["wait_mean_rel_diff"] == pytest.approx(
            v["queue_wait_mean_ms"] / (wait_s * 1e3) - 1)
        assert v["replay_wait_mean_ms"] == 0.0  # 0.1 ms services never overlap
