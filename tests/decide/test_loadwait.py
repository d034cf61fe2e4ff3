"""The load claims of the record (pqlab.decide.loadwait): the verdict against the wait target,
the aging line, the sampling and the outliers, read from a load frame."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pqlab.decide import loadwait

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = "20261206T173954Z-vm"  # the committed reference run


def test_the_decision_changes_with_the_data():
    frame = pd.read_parquet(ROOT / "data" / REFERENCE / "load.parquet")
    before = "\n".join(loadwait.record_claims(frame))
    worse = frame.copy()
    worse.loc[worse["priority"].astype(str) == "CRITICAL", "queue_wait_p99_ms"] = 75.0
    after = "\n".join(loadwait.record_claims(worse))
    assert "below 50 ms" in before and "75.00 ms" in after and "at or above 50 ms" in after
