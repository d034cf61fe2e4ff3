"""pqlab.study.loadframes: the tidy frames of load and overload sweeps for notebooks 07 and
08, and where a priority's p99 crosses a target."""

from __future__ import annotations

import math

import pytest
from overload_helpers import POLICY, SERVICE

import pqlab
from pqlab.core.task import Priority
from pqlab.measure import levels
from pqlab.measure.overload import (
    OUTCOMES,
)
from pqlab.scenarios.loadparams import LoadParams, ServiceTime
from pqlab.study.loadframes import (
    crossing_rho,
    depth_frame,
    goodput_frame,
    outcomes_frame,
    policy_for_wait,
    sweep_overload,
    sweep_utilization,
    theory_frame,
    wait_spectrum,
    waits_frame,
)

FAST = LoadParams(500, "poisson", ServiceTime("exp", 0.004))  # ρ = 0.67 on 3 workers



def test_frames_for_notebooks():
    service = ServiceTime("exp", 0.004)
    frame = sweep_utilization("queue.PriorityQueue", [0.3, 0.6], workers=2, service=service,
                              duration_s=0.3, seed=1)
    assert len(frame) == 8 and list(frame["priority"].cat.categories) == [
        p.name for p in Priority]
    assert frame["rho"].tolist() == pytest.approx([0.3] * 4 + [0.6] * 4)
    for column in ("queue_wait_p99_ms", "queue_wait_uncorrected_mean_ms", "sojourn_max_ms",
                   "theory_wait_mean_ms", "replay_wait_mean_ms", "wait_mean_rel_diff", "tasks"):
        assert column in frame
    lines = theory_frame([0.3, 0.6, 1.0], workers=2, service_mean_s=0.004)
    assert len(lines) == 12 and lines["theory_wait_mean_ms"].iloc[:8].gt(0).all()
    assert lines["theory_wait_mean_ms"].iloc[8:].isna().all()
    r = pqlab.run("asyncio.PriorityQueue", "load", tasks=100, consumers=2, seed=1, params=FAST)
    assert len(waits_frame(r)) == 4
    depth = depth_frame(r)
    assert len(depth) == 200 and depth["t_s"].is_monotonic_increasing and depth["depth"].min() >= 0
    spectrum = wait_spectrum(r, percentiles=(50, 99, 100), measure="sojourn_uncorrected")
    assert set(spectrum.columns) == {"priority", "percentile", "ms"}
    assert spectrum.groupby("priority")["ms"].is_monotonic_increasing.all()
    with pytest.raises(ValueError, match="measure 'nope' unknown"):
        wait_spectrum(r, measure="nope")


def test_crossing_rho_interpolates_between_swept_points():
    import pandas as pd

    frame = pd.DataFrame({"rho": [0.2, 0.2, 0.5, 0.8, 0.5], "priority": ["CRITICAL"] * 4 + ["LOW"],
                          "queue_wait_p99_ms": [10.0, 30.0, 40.0, 100.0, 999.0]})
    assert crossing_rho(frame, target_ms=50) == pytest.approx(0.5 + 0.3 * 10 / 60)
    assert crossing_rho(frame, target_ms=15) == pytest.approx(0.2)  # median 20 at the first ρ
    assert math.isnan(crossing_rho(frame, target_ms=500))
    assert crossing_rho(frame, priority="LOW", target_ms=50) == pytest.approx(0.5)


def test_policy_for_wait_sizes_limits_by_littles_law():
    policy = policy_for_wait(0.1, [50, 50, 50, 50], 0.02, 4, timeout_s=0.5, action="DELAY")
    # 200 served a second; each level is left what the levels above do not take.
    assert [policy.for_level(p).max_queue_size for p in Priority] == [20, 15, 10, 5]
    assert policy.for_level(4).default_timeout_s == 0.5
    assert policy.for_level(4).timeout_action == "DELAY"
    saturated = policy_for_wait(0.1, [150, 100, 1, 1], 0.02, 4)
    assert saturated.for_level(3).max_queue_size == 1  # the levels above take it all
    with pytest.raises(ValueError, match="must be positive"):
        policy_for_wait(0, [1, 1, 1, 1], 0.02, 4)


def test_sweep_overload_and_its_tidy_frames():
    summary = sweep_overload("ThreadSafeBucketQueue", [1.5], policies={"none": None,
                             "limits": POLICY}, workers=2, service=SERVICE, duration_s=0.5,
                             seed=2)
    # one long levels frame: a row per run and priority, the run's columns on each
    assert summary["policy"].tolist() == ["none"] * 4 + ["limits"] * 4
    assert summary["priority"].tolist() == list(levels.LEVELS) * 2
    assert levels.runs(summary)["policy_label"].tolist() == ["none", "limits+timeouts (REJECT)"]
    assert (summary["errors"] == 0).all()
    by_name = levels.table(summary, ["policy"])
    assert by_name.loc[("limits", "LOW"), "offered"] == sum(
        by_name.loc[("limits", "LOW"), o] for o in OUTCOMES)
    assert not any(c.endswith("_LOW") for c in summary.columns)
    outcomes = outcomes_frame(summary)
    assert len(outcomes) == 2 * 4 * 5 and set(outcomes["outcome"]) == set(OUTCOMES)
    per_run = outcomes.groupby(["policy", "priority"], observed=True)["share"].sum()
    assert per_run.to_numpy() == pytest.approx(1)
    goodput = goodput_frame(summary)
    assert len(goodput) == 8 and {"goodput_per_s", "replay_goodput_per_s",
                                  "served_wait_p99_ms"} <= set(goodput.columns)
