"""The overload and failover figures (pqlab.decide.overloadplots), drawn from the tidy frames
of a synthetic overload run and failover drills (the fixtures of test_saturation.py)."""

from __future__ import annotations

import json

import pandas as pd

from decide import test_saturation
from pqlab.decide import overloadplots, saturation
from pqlab.study import loadframes

POLICY = test_saturation.POLICY
summary = test_saturation.summary  # the fixtures: an overload frame, failover drills
drills = test_saturation.drills


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


def test_the_failover_figure_draws_each_setting_with_its_n(drills, tmp_path):
    fig = overloadplots.failover_outcomes(drills, out_dir=tmp_path)
    assert (tmp_path / "failover.png").stat().st_size > 10_000
    notes = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert sum("n = 3" in t for t in notes) == 8  # 2 panels x 2 scenarios x 2 settings
    assert "6 of\n7,200\nn = 3" in notes
    behind = pd.read_csv(tmp_path / "failover.csv")
    assert len(behind) == 12 and {"lost", "no_service_s"} <= set(behind.columns)
    assert overloadplots.failover_outcomes(pd.DataFrame(), out_dir=tmp_path / "none") is None
    assert not (tmp_path / "none").exists()


def test_the_depth_figure_draws_each_levels_limit(tmp_path):
    depth = pd.DataFrame({"t_s": [0.0, 0.5] * 4, "priority": ["LOW"] * 4 + ["CRITICAL"] * 4,
                          "depth": [0, 3, 0, 1] * 2,
                          "policy": ["none", "none", "p", "p"] * 2, "rho": 1.5})
    limits = saturation.level_limits(json.dumps(POLICY.to_mapping()))
    assert limits == {"CRITICAL": 50, "LOW": 3}
    fig = overloadplots.overload_depth(depth, limits=limits)
    dashed = {ax.get_title(): sorted(line.get_ydata()[0] for line in ax.get_lines()
                                     if line.get_linestyle() == "--") for ax in fig.axes}
    assert dashed == {"policy: none": [], "policy: p": [3, 50]}


def test_the_failover_figure_says_one_run_and_names_only_the_scenarios_it_drew(drills, tmp_path):
    title = overloadplots.failover_outcomes(drills, out_dir=tmp_path)._suptitle.get_text()
    assert "median over runs" in title and "paused replica" in title  # 3 runs, both drills
    one = drills[(drills["scenario"] == "plain") & (drills["run"] == 1)]
    title = overloadplots.failover_outcomes(one, out_dir=tmp_path)._suptitle.get_text()
    assert "one run per bar" in title and "median" not in title and "paused" not in title


def test_the_goodput_figure_has_its_stem_axes_and_a_line_per_policy_and_priority(summary,
                                                                                  tmp_path):
    goodput = loadframes.goodput_frame(summary)
    fig = overloadplots.overload_goodput(goodput, out_dir=tmp_path)
    assert {p.name for p in tmp_path.iterdir()} >= {"overload-goodput.png",
                                                     "overload-goodput.csv"}
    good_ax, wait_ax = fig.axes[:2]
    assert good_ax.get_xlabel() == wait_ax.get_xlabel() == overloadplots.RHO_LABEL
    assert good_ax.get_ylabel() == "goodput (requests/s served in time)"
    assert wait_ax.get_ylabel() == "p99 wait of served requests (ms, log)"
    n_policies = summary["policy"].nunique()
    assert len(good_ax.get_lines()) == n_policies * len(saturation.LEVELS)
    dashes = {line.get_linestyle() for line in good_ax.get_lines()}
    assert dashes == {"--", "-"}  # no policy dashed, the policy solid


def test_the_outcomes_figure_has_a_panel_per_priority_and_stacks_to_one(summary, tmp_path):
    fig = overloadplots.overload_outcomes(loadframes.outcomes_frame(summary), out_dir=tmp_path)
    assert (tmp_path / "overload-outcomes.png").is_file()
    assert [ax.get_title() for ax in fig.axes] == list(saturation.LEVELS)
    assert all(ax.get_xlabel() == overloadplots.RHO_LABEL for ax in fig.axes)
    assert fig.axes[0].get_ylabel() == "share of offered requests"
    for ax in fig.axes:  # every bar's stack of outcome shares reaches 1
        tops = {}
        for bar in ax.patches:
            key = round(bar.get_x(), 6)
            tops[key] = max(tops.get(key, 0.0), bar.get_y() + bar.get_height())
        assert tops and all(abs(top - 1.0) < 1e-6 for top in tops.values()), ax.get_title()
    legend = [t.get_text() for t in fig.axes[-1].get_legend().get_texts()]
    assert legend[:len(overloadplots.OUTCOME_ORDER)] == list(overloadplots.OUTCOME_ORDER)
