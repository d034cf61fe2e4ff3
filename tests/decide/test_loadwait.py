"""The load claims of the record (pqlab.decide.loadwait): the verdict against the wait target,
the aging line, the sampling and the outliers, read from a load frame."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pqlab.decide import loadwait
from pqlab.study import config

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = config.REFERENCE_RUN  # the committed reference run


def test_the_decision_changes_with_the_data():
    frame = pd.read_parquet(ROOT / "data" / REFERENCE / "load.parquet")
    before = "\n".join(loadwait.record_claims(frame))
    worse = frame.copy()
    worse.loc[worse["priority"].astype(str) == "CRITICAL", "queue_wait_p99_ms"] = 75.0
    after = "\n".join(loadwait.record_claims(worse))
    assert "below 50 ms" in before and "75.00 ms" in after and "at or above 50 ms" in after


def _reference(name: str) -> pd.DataFrame:
    return pd.read_parquet(ROOT / "data" / REFERENCE / f"{name}.parquet")


def test_without_a_load_frame_the_claim_says_not_measured():
    assert loadwait.record_claims(pd.DataFrame()) == [
        "- Waiting under open-loop load: not measured in this run (notebook 07)."]


def test_the_verdict_reads_criticals_p99_at_the_highest_rho_against_the_target():
    frame = _reference("load")
    top = loadwait.critical_p99(frame)
    assert top["priority"] == "CRITICAL" and top["rho"] == frame["rho"].max()
    p99 = float(top["queue_wait_p99_ms"])
    [first, *_] = loadwait.record_claims(frame, target_ms=p99 + 1)
    assert f"{p99:.2f} ms (n={int(top['tasks']):,}, one run), below {p99 + 1:g} ms" in first
    assert loadwait.TARGET_SOURCE in first and f"`{top['queue']}`" in first
    [first, *_] = loadwait.record_claims(frame, target_ms=p99)
    assert f"at or above {p99:g} ms" in first


def test_the_aging_line_says_whether_aging_keeps_critical_below_the_target():
    frame, aging = _reference("load"), _reference("load-aging")
    crit = aging[aging["priority"].astype(str) == "CRITICAL"]
    above = float(crit["queue_wait_p99_ms"].max()) + 1
    line = next(x for x in loadwait.record_claims(frame, aging, target_ms=above)
                if x.startswith("- Aging"))
    assert line.endswith("still below the target.")
    assert all(f"ρ {rho:g} (n={int(n):,})" in line
               for rho, n in zip(crit["rho"], crit["tasks"], strict=True))
    line = next(x for x in loadwait.record_claims(frame, aging, target_ms=1e-6)
                if x.startswith("- Aging"))
    assert line.endswith("past the target; do not age.")
    assert not any(x.startswith("- Aging") for x in loadwait.record_claims(frame))


def test_the_aging_finding_compares_strict_and_aged_at_each_rho():
    frame, aging = _reference("load"), _reference("load-aging")
    [line] = loadwait.aging_finding(frame, aging)
    assert f"a level gained per {float(aging['aging_ms'].iloc[0]):g} ms waited" in line
    for rho in sorted(set(frame["rho"]) & set(aging["rho"])):
        assert f"at ρ = {rho:g} CRITICAL's mean wait goes from" in line
    assert loadwait.aging_finding(frame, pd.DataFrame()) == []
