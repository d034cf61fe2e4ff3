"""The coroutines study (pqlab.studies.coroutines): its record section reads ``mixed``."""

from __future__ import annotations

import pandas as pd

from pqlab.studies import coroutines
from pqlab.studies.base import RunView


def _view(summary: pd.DataFrame, stems=()) -> RunView:
    return RunView(None, [], frozenset(stems), {"summary": summary})


def _mixed(janus=(4000, 4500, 5000, 5500, 6000)) -> pd.DataFrame:
    """Five repetitions a side: enough for the U test to separate them (or not)."""
    return pd.DataFrame([{"queue": q, "scenario": "mixed", "producers": 4,
                          "loop_lag_p99_us": lag} for q, lags in
                         (("BridgeBucketQueue", (900, 950, 1000, 1050, 1100)),
                          ("janus.PriorityQueue", janus)) for lag in lags])


def test_no_mixed_rows_no_section():
    only_async = pd.DataFrame({"queue": ["AsyncBucketQueue"], "scenario": ["async"],
                               "producers": [4], "loop_lag_p99_us": [100.0]})
    assert coroutines.section(_view(only_async)) is None


def test_the_section_names_the_queue_that_keeps_the_loop_most_responsive():
    section = coroutines.section(_view(_mixed()))
    assert section.heading == "### If workers become threads" and section.rank == 40
    assert section.lines == ["- With handlers on the loop and workers in threads (scenario "
                             "`mixed`), `BridgeBucketQueue` keeps the event loop most "
                             "responsive."]
    assert section.figures == []  # the run drew no loop-lag figure
    drawn = coroutines.section(_view(_mixed(), {"loop-lag-vs-workers-mixed"}))
    assert [f.stem for f in drawn.figures] == ["loop-lag-vs-workers-mixed"]


def test_queues_the_repetitions_cannot_separate_are_called_a_tie():
    overlapping = _mixed(janus=(800, 1000, 1200, 1400, 5000))
    [line] = coroutines.section(_view(overlapping)).lines
    assert "cannot separate `BridgeBucketQueue`, `janus.PriorityQueue`" in line
    assert line.endswith("a tie.") and "most responsive" not in line
