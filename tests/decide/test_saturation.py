"""pqlab.decide.saturation and overloadplots: the ADR's "Past saturation" and notebook 08's
figures, read from an overload frame."""

import json

import pandas as pd
import pytest

from pqlab.decide import saturation
from pqlab.measure import levels
from pqlab.queues.policy import LevelPolicy, QueuePolicy
from pqlab.queues.redisdeploy import Deployment
from pqlab.scenarios import failover

LEVELS = saturation.LEVELS
POLICY = QueuePolicy(LevelPolicy(0, 1.0), {1: LevelPolicy(50, 1.0), 4: LevelPolicy(3, 1.0)})


def run_row(policy: str, rho: float, served_low: float,
            replay_low: float) -> tuple[dict, levels.Levels]:
    row = {"queue": "ThreadSafeBucketQueue", "policy": policy, "rho": rho, "repetition": 0,
           "consumers": 4, "duration_s": 5.0, "patience_mean_s": 2.0,
           "policy_spec": json.dumps(POLICY.to_mapping()) if policy != "none" else "",
           "wait_target_ms": 250.0}
    per_level = levels.empty()
    for level in LEVELS:
        v = per_level[level]
        served = served_low if level == "LOW" else 0.98
        rest = 1 - served
        shares = {"served": served, "rejected": rest if policy != "none" else 0.0,
                  "expired": 0.0, "cancelled": 0.0 if policy != "none" else rest / 2,
                  "queued": 0.0 if policy != "none" else rest / 2}
        replay = dict(shares, served=replay_low if level == "LOW" else served)
        for outcome, share in shares.items():
            v["share_" + outcome] = share
            v["replay_share_" + outcome] = replay[outcome]
            v[outcome] = round(share * 100)
        v["offered"] = 100
        v["goodput_per_s"] = 20 * served
        v["replay_goodput_per_s"] = 20 * served
        v["served_wait_p50_ms"] = 5.0 if policy != "none" else 50.0
        v["served_wait_p99_ms"] = 30.0 if policy != "none" else 900.0
    return row, per_level


RUNS = [("none", 1.5, 0.1, 0.1), ("limits+timeouts (REJECT)", 1.5, 0.2, 0.2),
        ("none", 0.9, 0.98, 0.98), ("limits+timeouts (REJECT)", 0.9, 0.97, 0.80)]


@pytest.fixture
def summary() -> pd.DataFrame:
    """An overload frame as notebook 08 stores it: one row per run and priority."""
    return levels.frame([run_row(*run) for run in RUNS])


def test_a_version_1_frame_one_wide_row_per_run_reads_the_same(summary):
    wide = pd.DataFrame([{**row, **levels.flat(per_level)}
                         for row, per_level in (run_row(*run) for run in RUNS)])
    assert len(wide) == 4 and "share_served_LOW" in wide
    assert saturation.findings(wide) == saturation.findings(summary)
    pd.testing.assert_frame_equal(saturation.replay_gaps(wide), saturation.replay_gaps(summary))


def test_the_section_reads_its_numbers_from_the_frame(summary):
    text = "\n".join(saturation.findings(summary))
    assert text.startswith("## Past saturation")
    # without limits at ρ = 1.5; each p99 with the count of served requests behind it
    assert "| LOW | 10% | 45% | 45% | 900 ms (n=10) | 2.0 |" in text
    assert "| CRITICAL | 50 | 1.00 s | REJECT |" in text and "| LOW | 3 | 1.00 s | REJECT |" in text
    assert "| 1.5 | LOW | 2.0 → 4.0 | 900 ms (n=10) → 30 ms (n=20) | 80% | 0.0% |" in text
    assert "about 250 ms" in text and "**Recommended:**" in text
    assert "one run per point" in text and "(s)" not in text and "median" not in text
    assert "80% are refused at once" in text and "0.0% expire" in text


def test_the_policy_is_judged_against_its_own_target_at_every_rho(summary):
    misses = summary.copy()
    policy = misses["policy"] != "none"
    at = policy & (misses["rho"] == 0.9) & (misses["priority"] == "NORMAL")
    misses.loc[at, "served_wait_p99_ms"] = 400.0
    target, found = saturation.target_misses(misses)
    assert target == 250.0 and found == [(0.9, "NORMAL", 400.0, 98)]
    text = "\n".join(saturation.record_claims(misses))
    assert "(0.9, 1.5)" in text and "misses it for NORMAL 400 ms at ρ 0.9 (n=98)" in text
    assert "no level's p99 wait" in "\n".join(saturation.record_claims(summary))


def test_the_replay_rule_is_the_issues(summary):
    gaps = saturation.replay_gaps(summary)
    bad = gaps[~gaps["ok"]]
    # only ρ = 0.9 with the policy: LOW served 97% against the replay's 80% (over 15%)
    assert list(zip(bad["rho"], bad["priority"], bad["outcome"], strict=True)) == [
        (0.9, "LOW", "served")]
    text = "\n".join(saturation.findings(summary))
    assert f"in {len(gaps) - 1} of {len(gaps)} comparisons" in text
    assert "the largest gap: LOW served at ρ = 0.9" in text


def test_no_overload_runs_no_section():
    assert saturation.findings(pd.DataFrame()) == []


def test_the_multi_node_paragraph_reads_the_redis_frame(summary):
    # a run's own count, on each of its rows: counted once per run
    redis = summary.assign(queue="redis", redelivered=[n for n in (0, 2, 0, 1) for _ in LEVELS])
    (text, blank, _, _) = saturation.multi_node(redis)
    assert blank == "" and text.startswith("**Across processes** (`overload-redis`")
    assert "With it, at ρ = 1.5: CRITICAL served 98% (p99 wait 30 ms (n=98))" in text
    assert "LOW refused at once 80% and expired 0.0%" in text
    assert "redelivered 3 times in these runs" in text
    gaps = saturation.replay_gaps(redis)
    assert f"agree with the replay in {int(gaps['ok'].sum())} of {len(gaps)}" in text
    assert saturation.multi_node(pd.DataFrame()) == []


def drill(min_replicas: int, paused: bool, lost: int, gap: float) -> failover.FailoverRun:
    return failover.FailoverRun(min_replicas=min_replicas, paused=paused, acknowledged=2400,
                                served=2400 - lost, lost=lost, duplicated=lost, redelivered=0,
                                unconfirmed=0, failover_s=2.1, no_service_s=gap)


@pytest.fixture
def drills() -> pd.DataFrame:
    """A synthetic failover frame built by the drill's own row builder (a real drill takes
    ~25 s): 3 runs x 2 scenarios x 2 settings, losses only when unacknowledged and paused."""
    deployment = Deployment()  # not started: only its shape is read
    rows = []
    for run in (1, 2, 3):
        for scenario, paused in failover.SCENARIOS.items():
            for m in (0, 1):
                lost = run if paused and m == 0 else 0
                gap = 2.0 + run / 10 + (1.0 if paused and m == 1 else 0.0)
                rows += failover.frame_rows(run, scenario, drill(m, paused, lost, gap),
                                            deployment)
    return pd.DataFrame(rows, columns=list(failover.FRAME_COLUMNS))


def test_the_failover_frame_is_run_scenario_setting_metric(drills):
    assert list(drills.columns) == list(failover.FRAME_COLUMNS)
    assert len(drills) == 3 * 2 * 2 * len(failover.METRICS)
    assert not drills.duplicated(["run", "scenario", "min_replicas", "metric"]).any()
    assert set(drills["metric"]) == set(failover.METRICS)
    assert (drills["replicas"] == 2).all() and (drills["sentinels"] == 3).all()
    assert failover.drill_frame(0).empty  # no drill asked: nothing started


def test_the_multi_node_paragraph_says_what_the_deployment_needs(summary, drills):
    redis = summary.assign(queue="redis")
    text = saturation.multi_node(redis, drills)[2]
    assert text.startswith("**Losing the primary** (`failover`, notebook 06)")
    assert "a primary, 2 replicas and 3 Sentinels" in text and "`min_replicas=1`" in text
    assert "`python -m pqlab redis-bench` measures it" in text  # no cost measured here
    # time without service: runs at 2.1, 2.2, 2.3 s (+1 s paused with acknowledgement)
    assert "`min_replicas=1` median 2.20 s, max 2.30 s (3 runs)" in text
    assert "`min_replicas=1` median 3.20 s, max 3.30 s (3 runs)" in text
    assert "6 of 7,200 acknowledged puts with `min_replicas=0` (3 runs)" in text
    assert "0 of 7,200 acknowledged puts with `min_replicas=1` (3 runs)" in text
    assert "did not measure" not in text and "(s)" not in text


def test_without_the_failover_frame_it_says_what_measures_it(summary, drills):
    text = saturation.multi_node(summary.assign(queue="redis"), pd.DataFrame())[2]
    assert "not measured in this run" in text and "python -m pqlab failover --runs 5" in text
    one = drills[(drills["scenario"] == "plain") & (drills["min_replicas"] == 1)
                 & (drills["run"] == 1)]
    text = saturation.failover_findings(one)
    assert "`min_replicas=1` 2.10 s (1 run)" in text and "0 of 2,400" in text
    assert "--paused-replica --min-replicas 0,1" in text  # what this run did not measure
    assert saturation.multi_node(pd.DataFrame(), one)[0] == text
