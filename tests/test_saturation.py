"""pqlab.decide.saturation and overloadplots: the ADR's "Past saturation" and notebook 08's
figures, read from an overload frame."""

import json

import pandas as pd
import pytest

from pqlab.decide import overloadplots, saturation
from pqlab.queues.policy import LevelPolicy, QueuePolicy
from pqlab.study import loadframes

LEVELS = saturation.LEVELS
POLICY = QueuePolicy(LevelPolicy(0, 1.0), {1: LevelPolicy(50, 1.0), 4: LevelPolicy(3, 1.0)})


def run_row(policy: str, rho: float, served_low: float, replay_low: float) -> dict:
    row = {"queue": "ThreadSafeBucketQueue", "policy": policy, "rho": rho, "repetition": 0,
           "consumers": 4, "duration_s": 5.0, "patience_mean_s": 2.0,
           "policy_spec": json.dumps(POLICY.to_mapping()) if policy != "none" else "",
           "wait_target_ms": 250.0}
    for level in LEVELS:
        served = served_low if level == "LOW" else 0.98
        rest = 1 - served
        shares = {"served": served, "rejected": rest if policy != "none" else 0.0,
                  "expired": 0.0, "cancelled": 0.0 if policy != "none" else rest / 2,
                  "queued": 0.0 if policy != "none" else rest / 2}
        replay = dict(shares, served=replay_low if level == "LOW" else served)
        for outcome, share in shares.items():
            row[f"share_{outcome}_{level}"] = share
            row[f"replay_share_{outcome}_{level}"] = replay[outcome]
            row[f"{outcome}_{level}"] = round(share * 100)
        row[f"offered_{level}"] = 100
        row[f"goodput_per_s_{level}"] = 20 * served
        row[f"replay_goodput_per_s_{level}"] = 20 * served
        row[f"served_wait_p50_ms_{level}"] = 5.0 if policy != "none" else 50.0
        row[f"served_wait_p99_ms_{level}"] = 30.0 if policy != "none" else 900.0
    return row


@pytest.fixture
def summary() -> pd.DataFrame:
    return pd.DataFrame([run_row("none", 1.5, 0.1, 0.1),
                         run_row("limits+timeouts (REJECT)", 1.5, 0.2, 0.2),
                         run_row("none", 0.9, 0.98, 0.98),
                         run_row("limits+timeouts (REJECT)", 0.9, 0.97, 0.80)])


def test_the_section_reads_its_numbers_from_the_frame(summary):
    text = "\n".join(saturation.findings(summary))
    assert text.startswith("## Past saturation")
    assert "| LOW | 10% | 45% | 45% | 900 ms | 2.0 |" in text  # without limits at ρ = 1.5
    assert "| CRITICAL | 50 | 1.00 s | REJECT |" in text and "| LOW | 3 | 1.00 s | REJECT |" in text
    assert "| 1.5 | LOW | 2.0 → 4.0 | 900 ms → 30 ms | 80% | 0.0% |" in text
    assert "about 250 ms" in text and "**Recommended:**" in text


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


def test_the_figures_draw_from_the_tidy_frames(summary, tmp_path):
    overloadplots.overload_goodput(loadframes.goodput_frame(summary), out_dir=tmp_path)
    overloadplots.overload_outcomes(loadframes.outcomes_frame(summary), out_dir=tmp_path)
    depth = pd.DataFrame({"t_s": [0.0, 0.5, 0.0, 0.5], "priority": ["LOW"] * 4,
                          "depth": [0, 3, 0, 1], "policy": ["none", "none", "p", "p"],
                          "rho": 1.5})
    overloadplots.overload_depth(depth, out_dir=tmp_path)
    for name in ("overload-goodput", "overload-outcomes", "overload-depth"):
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000
        assert not pd.read_csv(tmp_path / f"{name}.csv").empty


def test_empty_frames_give_a_figure_that_says_so():
    fig = overloadplots.overload_goodput(pd.DataFrame())
    assert "no overload runs" in fig.axes[0].texts[0].get_text()


def test_the_multi_node_paragraph_reads_the_redis_frame(summary):
    redis = summary.assign(queue="redis", redelivered=[0, 2, 0, 1])
    (text, blank) = saturation.multi_node(redis)
    assert blank == "" and text.startswith("**Across processes** (`overload-redis`")
    assert "With it, at ρ = 1.5: CRITICAL served 98% (p99 wait 30 ms)" in text
    assert "redelivered 3 time(s)" in text
    gaps = saturation.replay_gaps(redis)
    assert f"agree with the replay in {int(gaps['ok'].sum())} of {len(gaps)}" in text
    assert saturation.multi_node(pd.DataFrame()) == []
