"""pqlab.cli.httpreport: http-load's console lines from a LoadResult made by hand."""

from __future__ import annotations

import math

import numpy as np

from pqlab.cli.httpreport import load_lines
from pqlab.service.httpload import (
    DISCONNECT,
    ERROR,
    UNFINISHED,
    LoadPlan,
    LoadResult,
    quantiles_ms,
)

NAN = math.nan


def result(split: bool = True, errors=()) -> LoadResult:
    """Ten requests 10 ms apart: CRITICAL 200 200 200, HIGH 200 503, NORMAL 504 disconnect,
    LOW 200 error unfinished; each 1 ms behind schedule but the last, 5 ms."""
    priority = np.array([1, 1, 1, 2, 2, 3, 3, 4, 4, 4])
    status = np.array([200, 200, 200, 200, 503, 504, DISCONNECT, 200, ERROR, UNFINISHED])
    latency_s = np.array([0.010, 0.020, 0.030, 0.040, 0.001, 0.1, NAN, 0.050, NAN, NAN])
    lateness_s = np.array([0.001] * 9 + [0.005])
    split_ms = np.full((10, 3), NAN)
    if split:
        split_ms[status == 200] = [2.0, 3.0, 5.5]
    plan = LoadPlan("http://127.0.0.1:8000/v1/infer", 100.0, 0.1, arrivals="constant")
    return LoadResult(plan, np.arange(10) / 100.0, priority, lateness_s, status, latency_s,
                      split_ms, sent_span_s=0.18, errors=list(errors))


def rows(lines: list[str]) -> dict[str, list[str]]:
    return {line.split()[0]: line.split() for line in lines[3:8]}


def test_the_first_line_says_what_was_sent_and_how_late():
    r = result()
    first = load_lines(r)[0]
    p99 = r.schedule_summary()["lateness_ms"]["p99"]  # the quantile is httpload's to choose
    assert 1.0 < p99 < 5.0
    assert first.startswith("http-load: 10 requests to http://127.0.0.1:8000/v1/infer over "
                            "0.1 s (constant, target 100/s): sent at 50.0/s (the drawn "
                            "schedule 100.0/s)")
    assert first.endswith(f"behind schedule p50 1.0 ms, p99 {p99:.1f} ms, max 5.0 ms")


def test_each_priority_counts_its_statuses_and_all_sums_them():
    lines = load_lines(result())
    assert lines[2].split()[:7] == ["priority", "offered", "200", "503", "504", "disc", "err"]
    table = rows(lines)
    assert list(table) == ["CRITICAL", "HIGH", "NORMAL", "LOW", "all"]
    counts = {name: row[1:7] for name, row in table.items()}
    assert counts["CRITICAL"] == ["3", "3", "0", "0", "0", "0"]
    assert counts["HIGH"] == ["2", "1", "1", "0", "0", "0"]
    assert counts["NORMAL"] == ["2", "0", "0", "1", "1", "0"]
    assert counts["LOW"] == ["3", "1", "0", "0", "0", "2"]  # an error and an unfinished one
    assert counts["all"] == ["10", "5", "1", "1", "1", "2"]


def test_latencies_are_of_the_200s_only_and_a_thin_tail_is_starred():
    table = rows(load_lines(result()))
    # CRITICAL's three 200s: 10, 20, 30 ms; p99 and p99.9 have no response beyond them.
    q = quantiles_ms(np.array([0.010, 0.020, 0.030]))
    assert table["CRITICAL"][7:] == ["20.0", f"{q['p99']:.1f}*", f"{q['p99.9']:.1f}*", "3"]
    assert 20.0 < q["p99"] <= 30.0
    assert table["HIGH"][-1] == "1" and table["HIGH"][7] == "40.0*"  # 503's 1 ms not counted
    assert table["NORMAL"][7:] == ["-", "-", "-", "0"]  # no 200: no latency, no star


def test_the_server_side_split_is_printed_only_when_the_server_gave_one():
    lines = load_lines(result())
    assert lines[8] == ("server-side split of the 200s, p50/p99 ms: queued 2.0/2.0, "
                        "service 3.0/3.0, server 5.5/5.5")
    assert not any(line.startswith("server-side") for line in load_lines(result(split=False)))


def test_network_errors_end_the_block():
    lines = load_lines(result(errors=["ConnectionRefusedError: [Errno 111]"]))
    assert lines[-1] == "  error: ConnectionRefusedError: [Errno 111]"
