"""pqlab.cli.failover: the failover command's rows, summaries and its runs, on a stand-in drill.

The drill itself runs on a real deployment in tests/scenarios/test_failover.py; here
``Deployment`` and ``run_failover`` are replaced, so the command's own work is checked
in milliseconds.
"""

from __future__ import annotations

import re

from pqlab.cli import failover as command
from pqlab.cli.failover import COLUMNS, format_row, format_summary, load_average
from pqlab.scenarios.failover import FailoverRun


def drill_run(min_replicas=1, lost=0, no_service_s=1.0, failover_s=2.5, paused=False):
    return FailoverRun(min_replicas, paused, acknowledged=1000, served=1000 - lost, lost=lost,
                       duplicated=1, redelivered=3, unconfirmed=2, failover_s=failover_s,
                       no_service_s=no_service_s)


def test_a_row_puts_each_value_under_its_column():
    header = "  ".join(COLUMNS)
    row = format_row(7, drill_run(min_replicas=0, lost=4, no_service_s=3.456))
    assert len(row) == len(header)
    starts = [m.start() for m in re.finditer(r"\S+", header)]
    cells = row.split()
    assert cells == ["7", "0", "1000", "996", "4", "1", "3", "2", "2.50", "3.46"]
    for cell, start, name in zip(cells, starts, COLUMNS, strict=True):
        assert row[start:start + len(name)].strip() == cell  # right-aligned under its name


def test_the_summary_totals_the_losses_and_takes_medians_and_maxima():
    runs = [drill_run(lost=0, no_service_s=1.0, failover_s=2.0),
            drill_run(lost=5, no_service_s=4.0, failover_s=3.0),
            drill_run(lost=1, no_service_s=2.0, failover_s=9.0)]
    assert format_summary(runs) == (
        "min_replicas=1: lost 6 of 3000 acknowledged in 3 runs (per run: 0, 5, 1), "
        "duplicated 3; time without service median 2.00 s, max 4.00 s; failover median 3.00 s")


def test_the_load_average_is_three_numbers():
    assert re.fullmatch(r"\d+\.\d\d \d+\.\d\d \d+\.\d\d", load_average())


class FakeDeployment:
    started = 0

    def __enter__(self):
        FakeDeployment.started += 1
        return self

    def __exit__(self, *exc):
        return None


def test_the_command_runs_each_min_replicas_on_a_fresh_deployment_interleaved(monkeypatch):
    calls = []

    def fake_run(deployment, min_replicas, paused):
        calls.append((min_replicas, paused))
        return drill_run(min_replicas=min_replicas, lost=len(calls), paused=paused)

    monkeypatch.setattr(command, "Deployment", FakeDeployment)
    monkeypatch.setattr(command.drill, "run_failover", fake_run)
    FakeDeployment.started = 0
    out = []
    results = command.run_failover_command(2, True, [0, 1], out=out.append)
    assert calls == [(0, True), (1, True), (0, True), (1, True)]
    assert FakeDeployment.started == 4
    assert [r.lost for r in results[0]] == [1, 3] and [r.lost for r in results[1]] == [2, 4]
    assert out[0].startswith("failover drill: 4 producers x 100 puts/s for 6 s")
    assert "every replica SIGSTOPped" in out[0]
    assert out[1] == "  ".join(COLUMNS)
    assert [line.split()[:2] for line in out[2:6]] == [["1", "0"], ["1", "1"], ["2", "0"],
                                                       ["2", "1"]]
    assert out[6].startswith("min_replicas=0: lost 4 of 2000") and out[7].startswith(
        "min_replicas=1: lost 6 of 2000")
    assert out[8].startswith("load average after: ") and len(out) == 9
