"""pqlab.adr: the decision is derived from the data, and its numbers match the run's frames."""

from __future__ import annotations

import re

import pytest

from pqlab import adr, analysis, config, store
from pqlab.sweep import Grid, run_sweep


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    paths = config.paths(tmp_path_factory.mktemp("adr"))
    run = store.Run.create(paths.data, "adr-test")
    for grid in (Grid(scenarios=("single",), task_counts=(300, 600), repetitions=2),
                 Grid(scenarios=("threads", "async"), task_counts=(600,), worker_counts=(2, 4),
                      repetitions=2),
                 Grid(scenarios=("ordering",), task_counts=(600,), worker_counts=(2,),
                      repetitions=1)):
        run_sweep(grid, run, fresh_process=False, progress=False)
    return paths, run, adr.write_adr("adr-test", paths).read_text()


def _table_rows(text):
    """The measured table of the ADR as dicts of the cell texts."""
    lines = text.split("## Measurements", 1)[1].split("## Figures", 1)[0].splitlines()
    table = [line for line in lines if line.startswith("| ")]
    head = [c.strip() for c in table[0].strip("|").split("|")]
    return [dict(zip(head, (c.strip() for c in line.strip("|").split("|")), strict=True))
            for line in table[2:]]


def _number(text):
    return float(text.replace(",", ""))


def test_every_number_in_the_table_matches_the_frames(lab):
    paths, run, text = lab
    summary = run.summary()
    rows = _table_rows(text)
    contexts = {c.name: c.scenario for c in adr.CONTEXTS}
    measured = set(summary["scenario"].astype(str))
    assert {r["context"] for r in rows} == {c for c, s in contexts.items() if s in measured}
    for r in rows:
        queue = r["queue"].strip("`")
        tasks, workers = int(_number(r["tasks"])), int(r["workers"])
        cell = summary[(summary["scenario"] == contexts[r["context"]])
                       & (summary["queue"] == queue) & (summary["tasks"] == tasks)
                       & (summary["producers"] == workers)]
        assert len(cell) == 2, (queue, r["context"])
        median, rest = r["throughput ops/s, median (min-max)"].split(" (")
        low, high = rest.rstrip(")").split("-")
        assert _number(median) == pytest.approx(cell["throughput_ops_s"].median(), abs=0.5)
        assert _number(low) == pytest.approx(cell["throughput_ops_s"].min(), abs=0.5)
        assert _number(high) == pytest.approx(cell["throughput_ops_s"].max(), abs=0.5)
        assert _number(r["mean enqueue µs"]) == pytest.approx(
            cell["enqueue_mean_us"].median(), abs=0.005)
        assert _number(r["mean dequeue µs"]) == pytest.approx(
            cell["dequeue_mean_us"].median(), abs=0.005)
        assert _number(r["p99 enqueue µs"]) == pytest.approx(
            cell["enqueue_p99_us"].median(), abs=0.005)
        checked = summary[(summary["queue"] == queue) & summary["scenario"].isin(
            [contexts[r["context"]], "ordering"])]
        for col in ("violations", "lost", "duplicated", "errors"):
            assert int(r[col]) == checked[col].sum()


def test_the_reference_cell_is_the_nearest_measured(lab):
    _, _, text = lab
    rows = _table_rows(text)
    assert {r["tasks"] for r in rows} == {"600"}  # nearest 10,000 among 300 and 600
    assert {r["workers"] for r in rows if r["context"] != "single-threaded code"} == {"4"}


def test_the_decision_follows_the_criteria(lab):
    _, run, text = lab
    for d in adr.decide(run.summary(), 10_000, 4):
        if d.table.empty:  # the context's scenario was not measured in this run
            assert f"**{d.context.name}**" in text and "not measured" in text
            continue
        passing = d.table[d.table["meets"]]
        if passing.empty:
            assert d.choice is None and "no measured queue meets" in text
        else:
            best = passing.sort_values("throughput_median").iloc[-1]["queue"]
            assert d.choice == best and f"use `{best}`" in text
            row = passing[passing["queue"] == best].iloc[0]
            assert row["throughput_median"] > analysis.MIN_THROUGHPUT_OPS_S
            assert row["enqueue_mean_us"] < analysis.MAX_LATENCY_US


def test_changing_the_data_changes_the_decision(lab):
    _, run, _ = lab
    summary = run.summary()
    slow = summary.copy()
    slow["throughput_ops_s"] = 1_000.0
    assert all(d.choice is None for d in adr.decide(slow))
    broken = summary.copy()
    heapq_rows = broken["queue"] == "heapq"
    broken.loc[heapq_rows, "violations"] = 3
    single = next(d for d in adr.decide(broken) if d.context.scenario == "single")
    assert single.choice != "heapq"
    row = single.table[single.table["queue"] == "heapq"].iloc[0]
    assert row["failures"] == [f"{3 * heapq_rows.sum()} violations"]


def test_a_missing_context_is_said_not_invented(lab):
    _, run, _ = lab
    summary = run.summary()
    decisions = adr.decide(summary[summary["scenario"] != "async"])
    assert decisions[0].context.scenario == "async" and decisions[0].choice is None
    assert "not measured" in adr._verdict_line(decisions[0])


def test_the_adr_links_the_run_and_its_figures(lab):
    paths, run, text = lab
    assert f"--run {run.run_id}" in text and run.machine()["machine"] in text
    links = re.findall(r"\]\(([^)]+\.svg)\)", text)
    assert links and all((paths.adr_dir / link).resolve().is_file() for link in links)
    assert any("decision-overview" in link for link in links)
