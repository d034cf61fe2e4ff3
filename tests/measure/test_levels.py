"""pqlab.measure.levels: per-priority results as a mapping, one long frame, one flat spelling."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from pqlab.core.task import Priority
from pqlab.measure import levels


def two_runs() -> list[tuple[dict, levels.Levels]]:
    return [({"policy": "none", "rho": 1.5},
             {n: {"share_served": 0.1 * (i + 1), "served": 10 * (i + 1)}
              for i, n in enumerate(levels.LEVELS)}),
            ({"policy": "limits", "rho": 1.5},
             {n: {"share_served": 0.2 * (i + 1), "served": 20 * (i + 1)}
              for i, n in enumerate(levels.LEVELS)})]


def test_levels_follow_the_priorities_and_merge_by_name_or_number():
    assert levels.LEVELS == tuple(p.name for p in Priority)
    assert levels.empty() == {n: {} for n in levels.LEVELS}
    merged = levels.merge({"LOW": {"served": 3}}, {int(Priority.LOW): {"queued_peak": 7}},
                          {"LOW": {"served": 4}})
    assert list(merged) == list(levels.LEVELS)
    assert merged["LOW"] == {"served": 4, "queued_peak": 7} and merged["CRITICAL"] == {}
    assert levels.total({n: {"served": 2} for n in levels.LEVELS}, "served") == 8


def test_the_long_frame_has_a_row_per_run_and_priority_selected_by_name():
    frame = levels.frame(two_runs())
    assert list(frame.columns) == ["policy", "rho", "priority", "share_served", "served"]
    assert len(frame) == 8 and frame["priority"].cat.ordered
    assert list(frame["priority"].cat.categories) == list(levels.LEVELS)
    table = levels.table(frame, ["policy", "rho"])
    assert table.loc[("limits", 1.5, "CRITICAL"), "share_served"] == pytest.approx(0.2)
    assert table.loc[("none", 1.5, "LOW"), "served"] == 40
    assert levels.runs(frame)["policy"].tolist() == ["none", "limits"]
    assert levels.frame([]).empty


def test_the_flat_spelling_is_written_and_read_back_only_here():
    runs = two_runs()
    flat = levels.flat(runs[0][1])
    assert flat["share_served_CRITICAL"] == pytest.approx(0.1) and flat["served_LOW"] == 40
    assert levels.key("level_depth", Priority.HIGH) == "level_depth_HIGH"
    assert levels.is_flat(flat) and not levels.is_flat(["rho", "level_depth_source"])
    wide = pd.DataFrame([{**run, **levels.flat(per_level)} for run, per_level in runs])
    back = levels.long(wide)
    pd.testing.assert_frame_equal(back, levels.frame(runs))
    assert levels.long(back) is back  # long already


def test_long_keeps_the_run_columns_dtypes_and_fills_a_missing_metric():
    wide = pd.DataFrame({"queue": pd.Categorical(["a", "b"]), "rho": [0.5, 0.9],
                         "served_CRITICAL": [1, 2], "served_LOW": [3, 4],
                         "queued_peak_LOW": [5, 6]})
    frame = levels.long(wide, ["queue"])
    assert list(frame.columns) == ["queue", "priority", "served", "queued_peak"]
    assert isinstance(frame["queue"].dtype, pd.CategoricalDtype)
    assert frame["served"].iloc[0] == 1  # run a, CRITICAL
    low_b = frame[(frame["queue"] == "b") & (frame["priority"] == "LOW")].iloc[0]
    assert low_b["served"] == 4 and low_b["queued_peak"] == 6
    high_a = frame[(frame["queue"] == "a") & (frame["priority"] == "HIGH")].iloc[0]
    assert math.isnan(high_a["served"]) and math.isnan(high_a["queued_peak"])
