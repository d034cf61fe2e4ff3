"""The end-to-end figures (pqlab.decide.endtoendplots), drawn from a small tidy frame."""

from __future__ import annotations

from decide.test_endtoend import two_queue_frame
from pqlab.decide import endtoendplots as figures


def test_the_figures_are_written(tmp_path):
    frame = two_queue_frame()
    for draw in (figures.latency_vs_rate, figures.request_split, figures.loop_lag,
                 figures.goodput):
        draw(frame, out_dir=tmp_path)
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [
        "e2e-goodput.png", "e2e-latency.png", "e2e-loop-lag.png", "e2e-split.png"]
