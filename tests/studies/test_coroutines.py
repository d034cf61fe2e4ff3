"""The coroutines study (pqlab.studies.coroutines): its record section reads ``mixed``."""

from __future__ import annotations

import pandas as pd

from pqlab.studies import coroutines
from pqlab.studies.base import RunView


def _view(summary: pd.DataFrame, stems=()) -> RunView:
    return RunView(None, [], frozenset(stems), {"summary": summary})


def _mixed() -> pd.DataFrame:
    return pd.DataFrame([{"queue": q, "scenario": "mixed", "producers": 4,
                          "loop_lag_p99_us": lag} for q, lags in
                         (("BridgeBucketQueue", (900, 1000, 1100)),
                          ("janus.PriorityQueue", (4000, 5000, 6000))) for lag in lags])


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
