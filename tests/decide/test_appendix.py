"""The appendix's tables (pqlab.decide.appendix): one row per candidate in the rule's order,
a context block that says what was measured, and the processes consequence."""

from __future__ import annotations

import pandas as pd
import pytest

from decide.test_decision import FEATURES, IDLE, summary
from pqlab.decide import appendix, decision


@pytest.fixture(scope="module")
def decisions():
    return decision.decide(summary(), idle=IDLE, features=FEATURES)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def test_the_measured_table_has_a_row_per_candidate_in_the_rules_order(decisions):
    d = next(d for d in decisions if d.context.scenario == "async")
    head, rule, *rows = appendix.measured_table(d)
    assert _cells(head)[0] == "queue" and set(_cells(rule)) == {"---"}
    assert all(len(_cells(r)) == len(_cells(head)) for r in rows)
    assert [_cells(r)[0].split("`")[1] for r in rows] == list(d.table["queue"])
    chosen = [r for r in rows if "(chosen)" in r]
    assert len(chosen) == 1 and f"`{d.choice}` (chosen)" in chosen[0]
    needed = _cells(head).index("needed features")
    assert all(_cells(r)[needed].endswith(f"of {len(d.context.needs)}") for r in rows)


def test_a_context_block_says_what_was_measured_or_that_nothing_was(decisions):
    d = next(d for d in decisions if d.context.scenario == "async")
    block = appendix.context_block(d)
    assert block[0] == f"### {d.context.name}"
    assert f"Scenario `async`; reference cell {int(d.table['tasks'].iloc[0]):,} tasks" in block[2]
    assert "5 repetitions per queue" in block[2]
    unmeasured = next(d for d in decisions if d.table.empty)
    assert appendix.context_block(unmeasured) == [
        f"### {unmeasured.context.name}", "",
        f"Not measured in this run (scenario `{unmeasured.context.scenario}`).", ""]


def test_median_of_one_is_one_run():
    assert appendix.median_of(1) == "one run"
    assert appendix.median_of(5) == "median of 5 runs"


def _processes(rows):
    return pd.DataFrame([{"queue": q, "scenario": "processes", "tasks": 1000, "producers": 2,
                          "consumers": 2, "throughput_ops_s": ops, "violations": v, "lost": 0,
                          "duplicated": 0, "errors": 0} for q, ops, v in rows])


def test_across_processes_is_one_row_per_queue_fastest_first():
    table = appendix.across_processes(_processes([
        ("multiprocessing", 30_000.0, 0), ("multiprocessing", 50_000.0, 1),
        ("redis", 4_000.0, 0)]), reference_tasks=1000, reference_workers=2)
    assert list(table["queue"]) == ["multiprocessing", "redis"]
    assert list(table["throughput_median"]) == [40_000.0, 4_000.0]
    assert list(table["problems"]) == [1, 0] and list(table["cell_runs"]) == [2, 1]
    [line] = appendix.processes_line(table)
    assert "`multiprocessing` 40,000 ops/s (median of 2 runs)" in line
    assert "`redis` 4,000 ops/s (one run)" in line


def test_without_the_processes_scenario_there_is_no_row_and_no_line():
    assert appendix.across_processes(summary()).empty
    assert appendix.processes_line(pd.DataFrame()) == []
