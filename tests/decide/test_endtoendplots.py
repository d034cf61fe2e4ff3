"""The end-to-end figures (pqlab.decide.endtoendplots), drawn from a small tidy frame."""

from __future__ import annotations

import pandas as pd
import pytest
from study.test_endtoend import LEVELS

from decide.test_endtoend import two_queue_frame
from pqlab.decide import endtoendplots as figures


def test_the_figures_are_written(tmp_path):
    frame = two_queue_frame()
    for draw in (figures.latency_vs_rate, figures.request_split, figures.loop_lag,
                 figures.goodput):
        draw(frame, out_dir=tmp_path)
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [
        "e2e-goodput.png", "e2e-latency.png", "e2e-loop-lag.png", "e2e-split.png"]


@pytest.fixture(scope="module")
def frame():
    return two_queue_frame()


def test_the_latency_figure_has_a_panel_per_priority_on_log_axes(frame):
    fig = figures.latency_vs_rate(frame)
    drawn = [ax for ax in fig.axes if ax.get_title()]
    assert {ax.get_title() for ax in drawn} >= {f"{level} (async)" for level in LEVELS}
    assert all(ax.get_xlabel() == "offered rate (requests/s, log)" for ax in drawn)
    assert drawn[0].get_ylabel() == "latency of the 200s (ms, log)"
    assert all(ax.get_xscale() == "log" for ax in drawn)


def test_each_p99_is_labelled_with_its_n_above_every_marker(frame):
    fig = figures.latency_vs_rate(frame)
    fig.canvas.draw()
    for ax in (ax for ax in fig.axes if ax.get_title()):
        labels = [t for t in ax.texts if t.get_text().startswith("n=")]
        solid = [line for line in ax.get_lines() if line.get_linestyle() == "-"
                 and line.get_marker() not in (None, "None", "")]
        assert len(labels) == len(solid) > 0  # one label per p99 marker
        top = max(ax.transData.transform(line.get_xydata())[:, 1].max() + line.get_markersize()
                  for line in solid)
        for label in labels:
            assert label.get_window_extent().y0 > top, label.get_text()
            assert label.get_window_extent().x0 > ax.get_window_extent().x0  # not on the spine
        assert {t.get_text() for t in labels} == {"n=1,200"}


def test_the_split_and_lag_figures_label_their_axes(frame):
    split = figures.request_split(frame)
    titled = [ax for ax in split.axes if ax.get_title()]
    assert [ax.get_title() for ax in titled][:len(LEVELS)] == LEVELS
    assert titled[0].get_ylabel() == "share of the mean end-to-end time"
    lag = figures.loop_lag(frame)
    assert any(ax.get_xlabel() == "rate sent (requests/s, log)"
               and ax.get_ylabel() == "event-loop lag (ms, log)" for ax in lag.axes)


def test_without_points_each_figure_says_what_is_missing(tmp_path):
    empty = pd.DataFrame()
    for draw, said in ((figures.latency_vs_rate, "no end-to-end points below saturation"),
                       (figures.request_split, "no end-to-end points"),
                       (figures.loop_lag, "no end-to-end points"),
                       (figures.goodput, "no points past saturation")):
        fig = draw(empty, out_dir=tmp_path)
        assert said in " ".join(t.get_text() for ax in fig.axes for t in ax.texts), draw
