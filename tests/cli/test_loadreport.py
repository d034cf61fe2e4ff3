"""pqlab.cli.loadreport: a load run's console block, and the run command's load options."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

import pqlab
from pqlab.cli.errors import UsageError
from pqlab.cli.loadreport import load_lines, load_options, outcome_lines
from pqlab.cli.main import build_parser
from pqlab.core.task import Priority
from pqlab.measure.overload import OUTCOMES
from pqlab.scenarios.loadparams import LoadParams, ServiceTime

FAST = LoadParams(2000, "poisson", ServiceTime("exp", 0.0005))  # ρ = 0.5 on 2 workers


@pytest.fixture(scope="module")
def load_run():
    r = pqlab.run("queue.PriorityQueue", "load", tasks=120, producers=1, consumers=2, seed=3,
                  params=FAST)
    assert r.ok, r.error_messages
    return r


def test_the_block_says_what_ran_and_has_a_wait_and_a_sojourn_row_per_priority(load_run):
    lines = load_lines(load_run)
    assert lines[0].startswith("load: queue.PriorityQueue on threads, 2 workers, 1 producer, "
                               "120 tasks in ") and lines[0].endswith("seed 3")
    assert "at 2000/s" in lines[1] and "ρ = 0.500 target" in lines[2]
    waits = lines.index(next(x for x in lines if x.startswith("  waiting time")))
    sojourns = lines.index(next(x for x in lines if x.startswith("  sojourn time")))
    levels = load_run.levels
    for i, level in enumerate(Priority):
        wait_row, sojourn_row = lines[waits + 2 + i].split(), lines[sojourns + 2 + i].split()
        assert wait_row[0] == sojourn_row[0] == level.name
        assert int(wait_row[1].replace(",", "")) == levels[level.name]["tasks"]
    assert sum(levels[p.name]["tasks"] for p in Priority) == 120
    assert any(x.startswith("  theory:") for x in lines)
    assert not any("outcomes in" in x for x in lines)  # unbounded: no outcome table
    assert not any(x.startswith("  !") for x in lines)


def test_a_run_with_errors_ends_with_them(load_run):
    broken = replace(load_run, lost=2, error_messages=["consumer 1 raised"])
    lines = load_lines(broken)
    assert lines[-2:] == ["  ! 0 priority violations, 2 lost, 0 duplicated",
                          "  ! consumer 1 raised"]


def _outcomes() -> tuple[dict, dict]:
    e = {"duration_s": 2.0, "policy": "limits", "patience": "none"}
    levels = {}
    for level in Priority:
        m = {"offered": 1000 * int(level), "goodput_per_s": 12.34,
             "replay_goodput_per_s": 5.0, "served_wait_p50_ms": 1.234,
             "served_wait_p99_ms": math.nan}
        for o in OUTCOMES:
            m[f"share_{o}"] = 0.25
            m[f"replay_share_{o}"] = math.nan if level == Priority.LOW else 0.5
        levels[level.name] = m
    return e, levels


def test_the_outcome_table_pairs_each_share_with_the_replay_s():
    lines = outcome_lines(*_outcomes())
    assert lines[0] == ("  outcomes in 2 s, policy limits, patience none (measured / replay, "
                        "shares of offered):")
    assert lines[1].split()[:2] == ["priority", "offered"] and all(o in lines[1] for o in OUTCOMES)
    rows = {row.split()[0]: row for row in lines[2:6]}
    assert list(rows) == [p.name for p in Priority]
    assert rows["CRITICAL"].split()[1] == "1,000" and rows["LOW"].split()[1] == "4,000"
    assert rows["HIGH"].count("25.0% / 50.0%") == len(OUTCOMES)
    assert rows["LOW"].count("25.0% / n/a") == len(OUTCOMES)
    assert "12.3 / 5.0" in rows["NORMAL"] and rows["NORMAL"].split()[-2:] == ["1.23", "n/a"]
    assert lines[-1].startswith("  goodput: served within the deadline")


def _run_args(*extra: str):
    return build_parser().parse_args(["run", "--scenarios", "load", *extra])


def test_rho_sets_the_rate_and_a_duration_the_task_count():
    params, tasks = load_options(_run_args("--rho", "0.5", "--consumers", "2", "--service",
                                           "exp:10ms", "--duration", "3"))
    assert params.rate_per_s == pytest.approx(100.0) and params.duration_s == 3
    assert tasks == 300
    params, tasks = load_options(_run_args("--rate", "50", "--tasks", "70"))
    assert params.rate_per_s == 50 and tasks == 70 and params.duration_s is None


def test_a_policy_without_a_duration_is_a_usage_error():
    args = _run_args("--policy", '{"default": {"max_queue_size": 5}}')
    with pytest.raises(UsageError, match="^pqlab run: .*duration"):
        load_options(args)
