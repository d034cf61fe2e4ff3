"""The end-to-end study (pqlab.study.endtoend): its parameters, its plan, its frame, and one
small real point (a service and an http-load process on loopback). The helpers here make
http-load results for tests/decide/test_endtoend.py and test_endtoendplots.py too."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from pqlab.service.httpload import DISCONNECT, LoadPlan, LoadResult
from pqlab.study import endtoend, params

LEVELS = ["CRITICAL", "HIGH", "NORMAL", "LOW"]


def synthetic_load(latency_ms: float = 20.0, n_per_level: int = 40, seed: int = 0,
                   rate: float = 100.0, lost_low: int = 0) -> dict:
    """An http-load ``--json`` dict: ``n_per_level`` requests per priority, all 200 but
    ``lost_low`` of LOW's (503), latencies around ``latency_ms``."""
    rng = np.random.default_rng(seed)
    n = 4 * n_per_level
    priority = np.repeat(np.arange(1, 5), n_per_level)
    status = np.full(n, 200)
    status[np.flatnonzero(priority == 4)[:lost_low]] = 503
    latency_s = (latency_ms + rng.exponential(2.0, n)) / 1e3
    split = np.column_stack([np.full(n, 5.0), np.full(n, 10.0), np.full(n, 16.0)])
    split[status != 200] = math.nan
    latency_s[status != 200] = math.nan
    plan = LoadPlan("http://127.0.0.1:1/v1/infer", rate, n / rate)
    result = LoadResult(plan, np.arange(n) / rate, priority, np.full(n, 1e-4), status,
                        latency_s, split, (n - 1) / rate)
    return result.to_dict()


LAG = {"loop_lag": {"samples": 300, "p50_ms": 0.2, "p99_ms": 1.5, "max_ms": 3.0},
       "service_mean_ms": 10.4}


def keys(queue: str = "AsyncBucketQueue", tier: str = "below", rate: float = 100.0,
         policy: str = "none", endpoint: str = "infer") -> dict:
    return {"point": f"async/{queue}/{policy}/{tier}/{rate:g}", "mode": "async",
            "queue": queue, "policy": policy, "tier": tier, "rate_target_per_s": rate,
            "workers": 2, "rho_planned": 0.5 if tier == "below" else 1.5, "service_ms": 10.0,
            "duration_s": 1.6, "min_responses": 1000, "max_rho": 0.8,
            "wait_target_ms": math.nan, "policy_spec": "", "endpoint": endpoint}


# -- the frame --------------------------------------------------------------------------


def test_point_frame_is_tidy_with_counts_percentiles_and_the_split():
    frame = endtoend.point_frame(synthetic_load(lost_low=5), lag=LAG, indicative_below=30,
                                 **keys())
    assert list(frame.columns[:3]) == ["point", "mode", "queue"]
    assert {"priority", "metric", "stat", "value", "n", "low", "high", "indicative"} \
        <= set(frame.columns)
    assert not any("_" in str(s) and str(s).split("_")[-1] in LEVELS for s in frame["stat"])

    def one(priority, metric, stat):
        rows = frame[(frame["priority"] == priority) & (frame["metric"] == metric)
                     & (frame["stat"] == stat)]
        assert len(rows) == 1, (priority, metric, stat)
        return rows.iloc[0]

    assert one("LOW", "requests", "offered")["value"] == 40
    assert one("LOW", "requests", "503")["value"] == 5
    assert one("LOW", "requests", "200")["value"] == 35
    assert one("all", "requests", "200")["value"] == 155
    p99 = one("LOW", "latency_ms", "p99")
    assert p99["n"] == 35 and not p99["indicative"] and p99["low"] <= p99["value"]
    assert math.isinf(p99["high"])  # 35 values cannot bound a p99 from above
    assert one("CRITICAL", "latency_ms", "p99")["n"] == 40
    # the split: queue wait 5, inference 10, server 16 ms, so queue ops 1 ms and
    # HTTP + framework = end to end − 16 ms
    assert one("HIGH", "queue_wait_ms", "mean")["value"] == pytest.approx(5.0)
    assert one("HIGH", "inference_ms", "mean")["value"] == pytest.approx(10.0)
    assert one("HIGH", "queue_ops_ms", "mean")["value"] == pytest.approx(1.0)
    assert one("HIGH", "http_ms", "mean")["value"] == pytest.approx(
        one("HIGH", "latency_ms", "mean")["value"] - 16.0)
    assert one("all", "loop_lag_ms", "p99")["value"] == 1.5
    assert one("all", "loop_lag_ms", "p99")["n"] == 300
    assert one("all", "rate_per_s", "target")["value"] == 100
    assert one("all", "service_mean_ms", "measured")["value"] == 10.4
    assert one("CRITICAL", "latency_ms", "p99")["indicative"] == (40 < 30)


def test_a_disconnect_is_counted_and_has_no_latency():
    load = synthetic_load()
    load["requests"]["status"][0] = DISCONNECT
    load["requests"]["latency_ms"][0] = None
    frame = endtoend.point_frame(load, **keys())
    rows = frame[(frame["priority"] == "CRITICAL") & (frame["metric"] == "requests")]
    counts = dict(zip(rows["stat"], rows["value"], strict=True))
    assert counts["disconnect"] == 1 and counts["200"] == 39


def test_ceiling_shares_use_the_ramps_highest_reply_rate():
    ramp = endtoend.point_frame(synthetic_load(rate=1000.0), **keys(
        queue="", tier="ceiling", rate=1000.0, endpoint="noop"))
    point = endtoend.point_frame(synthetic_load(), **keys())
    frame = endtoend.with_ceiling_shares(pd.concat([ramp, point], ignore_index=True))
    ceiling = endtoend.ceiling_of(frame)
    assert ceiling == pytest.approx(1000.0, rel=0.05)
    share = frame[(frame["stat"] == "share_of_ceiling") & (frame["tier"] == "below")]
    assert share["value"].iloc[0] == pytest.approx(100.0 / ceiling, rel=0.05)


# -- parameters and plan -------------------------------------------------------------------


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"rates_per_s": (-5.0,)}, "RATES"),
    ({"modes": ("warp",)}, "MODES"),
    ({"past_rhos": (0.5,)}, "PAST_RHOS"),
    ({"max_rho": 1.2}, "MAX_RHO"),
    ({"queues": ("no-such-queue",)}, "QUEUES"),
    ({"modes": ("threads",), "queues": ("asyncio.PriorityQueue",)}, "QUEUES"),
    ({"queues": ("asyncio.PriorityQueue",)}, "QUEUES"),  # past saturation needs a policy queue
    ({"point_cap_s": 0}, "POINT_CAP_S"),
])
def test_bad_parameters_are_one_line_naming_the_parameter(kwargs, name):
    with pytest.raises(params.ParameterError) as info:
        endtoend.Settings(**kwargs)
    assert name in str(info.value) and "\n" not in str(info.value)


def test_the_plan_sizes_workers_and_pairs_the_policy():
    s = endtoend.Settings(modes=("async", "processes"), queues=("AsyncBucketQueue",),
                          rates_per_s=(10.0, 1000.0), past_rhos=(1.5,), cores=2)
    points, left_out = endtoend.plan(s)
    below = {(p.mode, p.rate_per_s): p.workers for p in points if p.tier == "below"}
    assert below[("async", 1000.0)] == 13  # ceil(1000 × 0.01 / 0.8)
    assert below[("async", 10.0)] == 1
    assert ("processes", 1000.0) not in below and "2 cores" in left_out[0]
    past = [p for p in points if p.tier == "past" and p.mode == "async"]
    assert [p.policy_name for p in past] == ["none", "limits+timeouts (REJECT)"]
    assert past[0].rate_per_s == pytest.approx(1.5 * 2 / 0.01)
    assert endtoend.point_duration_s(s, 1000.0) == pytest.approx(
        min(s.point_cap_s, 1.15 * 1000 / 250))


# -- one real point ------------------------------------------------------------------------


@pytest.mark.slow
def test_one_real_point_gives_a_well_formed_frame():
    s = endtoend.Settings(queues=("AsyncBucketQueue",), past_rhos=(), point_cap_s=2.0,
                          baseline_s=0.5, progress=False)
    point = endtoend.Point("async", "AsyncBucketQueue", "below", 50.0, 1, 0.5)
    infer, noop = endtoend.measure_point(point, s, seed=3, baseline=True)
    assert set(infer["priority"].astype(str)) == {*LEVELS, "all"}
    offered = infer[(infer["metric"] == "requests") & (infer["stat"] == "offered")
                    & (infer["priority"] == "all")]["value"].iloc[0]
    assert 60 <= offered <= 140  # Poisson, 50/s for 2 s
    ok = infer[(infer["metric"] == "requests") & (infer["stat"] == "200")
               & (infer["priority"] == "all")]["value"].iloc[0]
    assert ok == offered
    p50 = infer[(infer["metric"] == "latency_ms") & (infer["stat"] == "p50")
                & (infer["priority"] == "all")].iloc[0]
    assert p50["n"] == ok and 10 <= p50["value"] < 1000 and p50["indicative"]
    inference = infer[(infer["metric"] == "inference_ms") & (infer["stat"] == "mean")
                      & (infer["priority"] == "all")]["value"].iloc[0]
    assert 5 <= inference <= 20  # exp:10ms, measured where it ran
    assert (infer["metric"] == "loop_lag_ms").any()
    assert noop["endpoint"].iloc[0] == "noop" and (noop["metric"] == "http_ms").any()
