"""pqlab.cli.main's run command with the load scenario: text, JSON and CSV, warnings, bad
values in one line."""

from __future__ import annotations

import json

import pytest

from pqlab.cli.main import main
from pqlab.measure.overload import (
    OUTCOMES,
)
from pqlab.queues.policy import LevelPolicy, QueuePolicy
from pqlab.scenarios.loadparams import LoadParams, ServiceTime

ARGS = ["run", "--queues", "ThreadSafeBucketQueue", "--scenarios", "load", "--workers", "2",
        "--service", "exp:5ms", "--rho", "1.5", "--seed", "1"]

LOAD_ARGS = ["run", "--queues", "queue.PriorityQueue", "--scenarios", "load", "--rate", "400",
             "--workers", "2", "--service", "exp:2ms", "--tasks", "120", "--seed", "1"]


def test_cli_text_shows_waits_rho_and_theory(capsys):
    assert main(LOAD_ARGS) == 0
    out = capsys.readouterr().out
    for text in ("waiting time, arrival → start of service", "sojourn time", "ρ = 0.400 target",
                 "theory", "diff", "replay", "p99.9", "CRITICAL", "LOW", "2 workers"):
        assert text in out


def test_cli_json_and_csv_carry_the_load_fields(capsys):
    assert main([*LOAD_ARGS, "--format", "json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["consumers"] == 2 and row["tasks"] == 120 and row["rho"] == pytest.approx(0.4)
    for key in ("queue_wait_p99_9_ms_CRITICAL", "sojourn_max_ms_LOW", "theory_wait_mean_ms_HIGH",
                "wait_mean_rel_diff_NORMAL", "queue_wait_uncorrected_p50_ms_LOW",
                "rate_achieved_per_s"):
        assert key in row
    assert main([*LOAD_ARGS, "--format", "csv", "--duration", "0.2"]) == 0
    header, line = capsys.readouterr().out.splitlines()
    assert "theory_wait_mean_ms_CRITICAL" in header.split(",") and ",80," in line


def test_cli_warns_on_overload(capsys):
    args = ["run", "--queues", "queue.PriorityQueue", "--scenarios", "load", "--rate", "1000",
            "--workers", "1", "--service", "const:2ms", "--tasks", "20", "--seed", "1"]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "warning: ρ = 1000/s × 2 ms / 1 = 2.00 ≥ 1" in captured.err
    assert "theory: n/a" in captured.out


@pytest.mark.parametrize("args, message", [
    (["--rate", "0"], "argument --rate: must be a positive number, got '0'"),
    (["--rate", "-3"], "argument --rate: must be a positive number"),
    (["--service", "exp:"], "argument --service: bad service time 'exp:'"),
    (["--service", "foo:3"], "argument --service: bad service time 'foo:3'"),
    (["--weights", "1,2"], "argument --weights: must be 4 non-negative numbers"),
    (["--weights", "a,b,c,d"], "argument --weights: must be 4 non-negative numbers"),
    (["--duration", "0"], "argument --duration: must be a positive number"),
    (["--workers", "0"], "argument --workers: must be a positive integer"),
    (["--arrivals", "bursty"], "argument --arrivals: invalid choice: 'bursty'"),
    (["--queues", "heapq"], "scenario 'load' needs a thread-safe queue"),
])
def test_cli_bad_load_values_are_one_line_exit_2(capsys, args, message):
    assert main([*LOAD_ARGS, *args]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert captured.out == "" and len(lines) == 1 and message in lines[0]


def test_run_without_scenarios_leaves_the_open_loop_load_out(capsys):
    assert main(["run", "--queues", "queue.PriorityQueue", "--tasks", "50", "--format",
                 "json"]) == 0
    scenarios = [row["scenario"] for row in json.loads(capsys.readouterr().out)]
    assert scenarios and "load" not in scenarios


@pytest.mark.parametrize("args, message", [
    (["--policy", "{bad json"], "argument --policy: not a valid JSON or YAML policy"),
    (["--policy", "/no/such/file.yaml"], "argument --policy: not JSON and not a readable file"),
    (["--policy", '{"default": {"max_queue_size": -1}}'],
     "default.max_queue_size must be a non-negative integer"),
    (["--policy", '{"levels": {"LOW": {"timeout_action": "DROP"}}}'],
     "levels.LOW.timeout_action must be one of REJECT, DELAY"),
    (["--policy", '{"default": {"max_queue_size": 3}}'], "a policy or patience needs duration_s"),
    (["--patience", "exp:0", "--duration", "1"], "argument --patience: bad service time"),
    (["--rate", "10", "--duration", "1"], "argument --rate: not allowed with argument --rho"),
    (["--queues", "queue.PriorityQueue", "--patience", "exp:1s", "--duration", "1"],
     "queue 'queue.PriorityQueue' takes no queue policy"),
])
def test_cli_bad_overload_values_are_one_line_exit_2(capsys, args, message):
    assert main([*ARGS, *args]) == 2  # a second --queues replaces the first
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert captured.out == "" and len(lines) == 1 and message in lines[0], lines


def test_cli_policy_from_a_yaml_file_prints_outcomes_beside_the_replay(tmp_path, capsys):
    path = tmp_path / "policy.yaml"
    path.write_text("default: {max_queue_size: 5, default_timeout_s: 0.05}\n")
    assert main([*ARGS, "--policy", str(path), "--duration", "0.5", "--patience", "exp:0.1s"]) == 0
    out = capsys.readouterr().out
    for text in ("outcomes in 0.5 s, policy limits+timeouts (REJECT), patience exp:100ms",
                 "measured / replay", "goodput/s", *OUTCOMES):
        assert text in out


def test_the_overload_warning_says_what_happens_past_saturation():
    from pqlab.scenarios.loadparams import overload_warning

    unbounded = LoadParams.at_utilization(1.5, 4, ServiceTime("exp", 0.02), duration_s=2.0)
    assert "the queue grows for the whole run" in overload_warning(unbounded, 4)
    bounded = LoadParams.at_utilization(1.5, 4, ServiceTime("exp", 0.02), duration_s=2.0,
                                        policy=QueuePolicy(LevelPolicy(10)))
    assert "requests will be shed" in overload_warning(bounded, 4)
    assert overload_warning(LoadParams.at_utilization(0.5, 4), 4) is None
