import json
import subprocess
import sys

import pytest
from redis_helpers import dead_url

from pqlab.cli.main import main


def pqlab_cli(*args):
    return subprocess.run([sys.executable, "-m", "pqlab", *args], capture_output=True,
                          text=True, timeout=300)


def test_run_json_records_carry_the_summary_fields():
    p = pqlab_cli("run", "--queues", "heapq,queue.PriorityQueue", "--scenarios",
                  "single,threads", "--tasks", "500", "--seed", "1", "--format", "json")
    assert p.returncode == 0, p.stderr
    records = json.loads(p.stdout)
    assert [(r["queue"], r["scenario"]) for r in records] == [
        ("heapq", "single"), ("queue.PriorityQueue", "single"), ("queue.PriorityQueue", "threads")]
    for r in records:
        assert r["violations"] == r["lost"] == r["duplicated"] == r["errors"] == 0
        assert r["throughput_ops_s"] > 0 and r["enqueue_p99_us"] > 0
    assert "[3/3]" in p.stderr  # progress


def test_run_text_and_csv():
    p = pqlab_cli("run", "--queues", "heapq", "--scenarios", "single", "--tasks", "200",
                  "--repeat", "2")
    assert p.returncode == 0 and p.stdout.count("heapq") == 2 and "ops/s" in p.stdout
    p = pqlab_cli("run", "--queues", "heapq", "--scenarios", "single", "--tasks", "200",
                  "--format", "csv")
    header, row = p.stdout.splitlines()
    assert header.startswith("queue,scenario,tasks") and row.startswith("heapq,single,200")


@pytest.mark.parametrize("args, message", [
    (["run", "--tasks", "0"], "argument --tasks: must be a positive integer, got '0'"),
    (["run", "--tasks", "-5"], "argument --tasks: must be a positive integer, got '-5'"),
    (["run", "--tasks", "ten"], "argument --tasks: must be a positive integer, got 'ten'"),
    (["run", "--producers", "0"], "argument --producers: must be a positive integer"),
    (["run", "--consumers", "-2"], "argument --consumers: must be a positive integer"),
    (["run", "--queues", "heapq,nope"], "unknown queue 'nope'; allowed: heapq"),
    (["run", "--scenarios", "nope"], "unknown scenario 'nope'; allowed: single"),
    (["run", "--queues", "heapq", "--scenarios", "threads"],
     "scenario 'threads' needs a thread-safe queue"),
    (["run", "--format", "xml"], "argument --format: invalid choice: 'xml'"),
    (["poc", "--tasks", "-1"], "argument --tasks: must be a positive integer"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
])
def test_bad_input_is_one_line_and_exit_2(args, message):
    p = pqlab_cli(*args)
    assert p.returncode == 2
    assert p.stdout == ""
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in p.stderr


def test_the_cli_starts_without_pandas_or_matplotlib():
    # A command that needs a frame imports pandas when it runs; refusing a bad argument
    # or listing the queues should not wait ~1 s for it.
    code = "import sys, pqlab.cli.main; print(sorted({'pandas', 'matplotlib'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_poc_report_has_the_poc_layout():
    p = pqlab_cli("poc", "--tasks", "400", "--seed", "2", "--repeat", "2", "--idle-seconds",
                  "0.2")
    assert p.returncode == 0, p.stderr
    out = p.stdout
    for heading in ("Dependency Check:", "Configuration:", "RUNNING BENCHMARKS",
                    "COMPARISON", "Throughput Ranking", "Latency Comparison",
                    "Priority Order Correctness", "RECOMMENDATIONS", "ARCHITECTURE DECISION",
                    "Success criteria:"):
        assert heading in out
    from pqlab.cli.report import poc_pairs  # every registered queue in every POC scenario it fits

    assert out.count("✅ Complete:") == len(poc_pairs())
    assert "Priority violations: 0/400" in out
    assert "Repetitions: 2" in out and "Idle burn: 5 consumers waiting 0.2 s" in out
    assert "Set aside: ThreadSafeHeapQueue: its waiting consumers burn" in out


def test_queues_lists_the_registry():
    p = pqlab_cli("queues")
    assert p.returncode == 0 and "ThreadSafeHeapQueue" in p.stdout and "threads" in p.stdout


@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.parametrize("command", ["run", "redis-bench"])
def test_cli_names_the_unreachable_url_and_exits_2(capsys, command):
    url = dead_url()
    argv = [command, "--redis-url", url] + (["--queues", "redis"] if command == "run" else [])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and url in err and "Traceback" not in err


BAD_SERVE = [
    (["--queue", "nope"], "unknown queue 'nope'; allowed: heapq"),
    (["--queue", "heapq"], "queue 'heapq' cannot serve worker mode 'async'"),
    (["--queue", "asyncio.PriorityQueue", "--worker-mode", "threads"],
     "cannot serve worker mode 'threads', which needs a bridging queue"),
    (["--queue", "janus.PriorityQueue", "--policy", '{"default": {"max_queue_size": 5}}'],
     "takes no queue policy (--policy); queues that do in mode async: AsyncBucketQueue"),
    (["--queue", "AsyncBucketQueue", "--policy", '{"default": {"max_queue_size": -1}}'],
     "max_queue_size must be a non-negative integer"),
    (["--queue", "AsyncBucketQueue", "--policy", "{nope"], "not a valid JSON or YAML policy"),
    (["--queue", "AsyncBucketQueue", "--workers", "0"], "must be a positive integer"),
    (["--queue", "AsyncBucketQueue", "--service", "exp:-1ms"], "bad service time"),
    (["--queue", "AsyncBucketQueue", "--service-holds-gil"], "is for worker mode threads"),
    (["--queue", "AsyncBucketQueue", "--port", "70000"], "must be a port number 0-65535"),
]


@pytest.mark.parametrize(("args", "message"), BAD_SERVE)
def test_bad_input_to_serve_is_one_line_and_exit_2(capsys, args, message):
    assert main(["serve", *args]) == 2  # refused before anything starts: safe in-process
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert out == "" and len(lines) == 1 and message in lines[0], err


def test_bad_input_to_serve_from_the_command_line():
    p = pqlab_cli("serve", "--queue", "heapq")
    assert p.returncode == 2 and p.stdout == ""
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pqlab serve: queue 'heapq'"), p.stderr
