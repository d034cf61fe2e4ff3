"""``python -m pqlab …``: argument parsing and clear one-line errors, nothing else.

Each command is one entry of ``COMMANDS``: a help line, a function that adds
its arguments, and a handler returning the exit code. Handlers raise
``UsageError`` (or ``ValueError``) for bad input; ``main`` prints it as one
line and exits 2.

Handlers import what they run inside themselves, for start-up time: this
module alone imports in 0.35-0.5 s here, with every handler's modules
(pandas, matplotlib, papermill) in 1.9-2.0 s, which ``--help``, ``queues``
and every bad-input error would otherwise pay.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from pqlab.cli.errors import USAGE_EXIT, UsageError
from pqlab.core import checks
from pqlab.queues import QUEUES
from pqlab.queues.policy import PolicyError, QueuePolicy
from pqlab.queues.redisserver import (
    ENV_URL,
    RedisUnavailable,
    add_redis_url_argument,
    prepare_queues,
)
from pqlab.scenarios import DEFAULT_DEADLINE_S, SCENARIOS
from pqlab.scenarios.loadparams import ARRIVALS, DRIVERS, LoadParams, ServiceTime


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, no usage dump
        raise UsageError(f"{self.prog}: {message}")


def positive_int(text: str) -> int:
    """argparse type: an integer > 0 (``checks.positive_int`` on the parsed text)."""
    try:
        value: object = int(text)
    except ValueError:
        value = text
    try:
        return checks.positive_int("", value, argparse.ArgumentTypeError)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None


def positive_float(text: str) -> float:
    """argparse type: a number > 0 (``checks.positive_number`` on the parsed text)."""
    try:
        value: object = float(text)
    except ValueError:
        value = text
    try:
        return checks.positive_number("", value, argparse.ArgumentTypeError)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}") from None


def int_list(text: str) -> list[int]:
    """argparse type: comma-separated positive integers."""
    parts = [part for part in text.split(",") if part.strip()]
    if not parts:
        raise argparse.ArgumentTypeError(f"must be comma-separated positive integers, got {text!r}")
    return [positive_int(part) for part in parts]


def replica_counts(text: str) -> list[int]:
    """argparse type: comma-separated integers >= 0 (0: no replica acknowledgement)."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts or not all(part.isdigit() for part in parts):
        raise argparse.ArgumentTypeError(f"must be comma-separated integers >= 0, got {text!r}")
    return [int(part) for part in parts]


def port_number(text: str) -> int:
    """argparse type: a TCP port 0-65535 (0: any free one)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(
            f"must be a port number 0-65535 (0: any free one), got {text!r}")
    return value


def name_list(option: str, allowed: Callable[[], Sequence[str]]) -> Callable[[str], list[str]]:
    """argparse type: comma-separated names, each one of ``allowed()``."""

    def parse(text: str) -> list[str]:
        names = [n.strip() for n in text.split(",") if n.strip()]
        known = list(allowed())
        bad = [n for n in names if n not in known]
        if bad or not names:
            raise argparse.ArgumentTypeError(
                f"unknown {option} {', '.join(map(repr, bad)) or repr(text)}; "
                f"allowed: {', '.join(known)}")
        return names

    return parse


def add_workload_arguments(p: argparse.ArgumentParser, tasks: int = 10_000) -> None:
    """The options every measuring command shares."""
    p.add_argument("--tasks", type=positive_int, default=tasks,
                   help=f"tasks per run (default {tasks:,})")
    p.add_argument("--producers", type=positive_int, default=5,
                   help="producer threads, coroutines or processes (default 5)")
    p.add_argument("--consumers", type=positive_int, default=5,
                   help="consumer threads, coroutines or processes (default 5)")
    p.add_argument("--seed", type=int, default=None, help="workload seed (default: random, "
                   "reported with each result)")
    p.add_argument("--deadline", type=positive_float, default=DEFAULT_DEADLINE_S,
                   help=f"seconds without progress before a run is ended with an error "
                        f"(default {DEFAULT_DEADLINE_S:g})")
    p.add_argument("--no-yield", dest="producer_yield", action="store_false",
                   help="producers do not yield after each put (less overlap)")


def service_time(text: str) -> ServiceTime:
    """argparse type: a service-time distribution such as ``exp:16ms`` (see ``ServiceTime``)."""
    try:
        return ServiceTime.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def weight_list(text: str) -> tuple[float, ...]:
    """argparse type: the priority mix ``a,b,c,d`` (CRITICAL, HIGH, NORMAL, LOW)."""
    try:
        return LoadParams(weights=tuple(float(w) for w in text.split(","))).weights
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be 4 non-negative numbers a,b,c,d (CRITICAL, HIGH, NORMAL, LOW) with a "
            f"positive sum, got {text!r}") from None


def queue_policy(text: str):
    """argparse type: a queue policy as JSON (``{"default": {...}, "levels": {...}}``) or the
    path of a YAML or JSON file holding one (``QueuePolicy.from_mapping``)."""
    import json

    import yaml  # here, not at the top: only a --policy pays its import


    source = text
    if not text.lstrip().startswith("{"):
        try:
            with open(text, encoding="utf-8") as f:
                source = f.read()
        except OSError as exc:
            raise argparse.ArgumentTypeError(
                f"not JSON and not a readable file: {text!r} ({exc.strerror})") from None
    try:
        data = json.loads(source) if source.lstrip().startswith("{") else yaml.safe_load(source)
    except (ValueError, yaml.YAMLError) as exc:
        first = str(exc).splitlines()[0]
        raise argparse.ArgumentTypeError(f"not a valid JSON or YAML policy: {first}") from None
    try:
        return QueuePolicy.from_mapping(data)
    except PolicyError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_load_arguments(p: argparse.ArgumentParser) -> None:
    """The options of the open-loop ``load`` scenario."""
    g = p.add_argument_group("load scenario (open loop; waits against queueing theory)")
    rate = g.add_mutually_exclusive_group()
    rate.add_argument("--rate", type=positive_float, default=LoadParams.rate_per_s,
                      help=f"target arrivals per second (default {LoadParams.rate_per_s:g})")
    rate.add_argument("--rho", type=positive_float, default=None,
                      help="target utilization ρ instead of --rate: rate = ρ × workers / "
                           "service mean (past 1: overload)")
    g.add_argument("--arrivals", choices=ARRIVALS, default=ARRIVALS[0],
                   help=f"arrival process (default {ARRIVALS[0]})")
    g.add_argument("--service", type=service_time, default=ServiceTime(),
                   help=f"service time KIND:MEAN, KIND exp or const, MEAN in s or with ms "
                        f"(default {ServiceTime()})")
    g.add_argument("--duration", type=positive_float, default=None,
                   help="seconds the run lasts: arrivals stop then, nothing starts service "
                        "after it, what is left counts as queued; the task count becomes "
                        "rate × duration (default: --tasks, served to the last)")
    g.add_argument("--patience", type=service_time, default=None,
                   help="client patience KIND:MEAN (e.g. exp:2s): a request still queued "
                        "then is cancelled (needs --duration and a queue with a policy)")
    g.add_argument("--policy", type=queue_policy, default=None, metavar="JSON_OR_FILE",
                   help='a queue policy per level, as JSON or a YAML/JSON file, e.g. '
                        '\'{"default": {"max_queue_size": 50, "default_timeout_s": 1}}\' '
                        "(needs --duration and a queue that takes one)")
    g.add_argument("--weights", type=weight_list, default=None,
                   help="priority mix CRITICAL,HIGH,NORMAL,LOW (default 1,1,1,1)")
    g.add_argument("--workers", dest="consumers", type=positive_int, default=argparse.SUPPRESS,
                   help="service workers (the same as --consumers)")
    g.add_argument("--load-driver", choices=DRIVERS, default=DRIVERS[0],
                   help="what runs producers and workers (default auto: processes for a "
                        "process-safe queue, else threads, else asyncio); producers are "
                        "threads either way")


def _add_run(p: argparse.ArgumentParser) -> None:
    p.add_argument("--queues", type=name_list("queue", lambda: list(QUEUES)), default=None,
                   help=f"comma-separated queues (default: all): {', '.join(QUEUES)}")
    p.add_argument("--scenarios", type=name_list("scenario", lambda: list(SCENARIOS)),
                   default=None,
                   help=f"comma-separated scenarios (default: all but the open-loop "
                        f"load): {', '.join(SCENARIOS)}")
    add_workload_arguments(p)
    p.add_argument("--repeat", type=positive_int, default=1, help="repetitions per pair")
    p.add_argument("--format", choices=("text", "json", "csv"), default="text",
                   help="output format (default text)")
    add_redis_url_argument(p)
    p.add_argument("--metrics-port", type=port_number, default=None, metavar="PORT",
                   help="serve Prometheus metrics of the in-process queues at "
                        "http://127.0.0.1:PORT/metrics while the run lasts (0: a free port); "
                        "their puts and gets are then recorded, which their measured costs "
                        "include (bench --group metrics says how much)")
    add_load_arguments(p)


def _note(line: str) -> None:
    print(f"pqlab: note: {line}", file=sys.stderr)


def _cmd_run(args: argparse.Namespace) -> int:
    if args.metrics_port is None:
        return _run_queues(args)
    from pqlab.queues.prometheus import MetricsPortError, instrumenting, serve_metrics

    try:  # the endpoint first: a port in use stops the command before anything starts
        server = serve_metrics(args.metrics_port)
    except MetricsPortError as exc:
        raise UsageError(f"pqlab run: --metrics-port: {exc}") from None
    with server, instrumenting(args.queues or list(QUEUES)) as names:
        left = [q for q in args.queues or QUEUES if q not in names]
        _note(f"metrics of {', '.join(names) or 'no queue'} at {server.url} while the run "
              "lasts" + (f"; not of {', '.join(left)} (process-backed)" if left else ""))
        return _run_queues(args)


def _run_queues(args: argparse.Namespace) -> int:
    try:
        args.queues = prepare_queues(args.queues, args.redis_url, _note)
    except RedisUnavailable as exc:
        raise UsageError(str(exc)) from None
    from pqlab.cli.report import run_command

    return run_command(args)


# Five repetitions per queue and scenario is the fewest with which the significance
# test (Mann-Whitney U at p < 0.01) can separate two queues (pqlab.measure.significance).
POC_REPEATS = 5


def _add_poc(p: argparse.ArgumentParser) -> None:
    add_workload_arguments(p)
    p.add_argument("--repeat", type=positive_int, default=POC_REPEATS,
                   help="repetitions per queue and scenario, compared with a significance "
                        f"test (default {POC_REPEATS}; below 5 every queue ties)")
    p.add_argument("--idle-seconds", type=positive_float, default=1.0,
                   help="how long consumers wait on an empty queue for the idle-burn "
                        "measurement (default 1)")


def _cmd_poc(args: argparse.Namespace) -> int:
    from pqlab.cli.report import poc_command

    return poc_command(args)


def _add_queues(p: argparse.ArgumentParser) -> None:
    pass


def _cmd_queues(args: argparse.Namespace) -> int:
    from pqlab.cli.report import queues_lines

    print("\n".join(queues_lines()))
    return 0


def _bench_repeats(text: str) -> int:
    """argparse type: repetitions enough for the U test to separate subject and peer."""
    from pqlab.cli.bench import MIN_REPEATS

    value = positive_int(text)
    if value < MIN_REPEATS:
        raise argparse.ArgumentTypeError(
            f"must be at least {MIN_REPEATS} (fewer cannot reach the significance threshold), "
            f"got {text!r}")
    return value


def _add_bench(p: argparse.ArgumentParser) -> None:
    from pqlab.cli.bench import COMPARISONS, DEFAULT_REPEATS, MIN_REPEATS

    groups = sorted({c.group for c in COMPARISONS})
    p.add_argument("--tasks", type=positive_int, default=10_000, help="tasks (default 10,000)")
    p.add_argument("--repeat", type=_bench_repeats, default=DEFAULT_REPEATS,
                   help=f"interleaved repetitions, at least {MIN_REPEATS} "
                        f"(default {DEFAULT_REPEATS})")
    p.add_argument("--seed", type=int, default=1, help="workload seed (default 1)")
    p.add_argument("--group", type=name_list("group", lambda: groups), default=None,
                   help=f"only these comparison groups: {', '.join(groups)}")


def _cmd_bench(args: argparse.Namespace) -> int:
    from pqlab.cli.bench import run_bench

    results = run_bench(args.tasks, args.repeat, args.seed, args.group)
    return 0 if all(r.met for r in results) else 1


def _add_redis_bench(p: argparse.ArgumentParser) -> None:
    from pqlab.cli import redisbench as rb

    p.add_argument("--calls", type=positive_int, default=rb.DEFAULT_CALLS,
                   help=f"script calls per measurement (default {rb.DEFAULT_CALLS:,})")
    p.add_argument("--repeat", type=positive_int, default=rb.DEFAULT_REPEATS,
                   help=f"interleaved repetitions (default {rb.DEFAULT_REPEATS})")
    p.add_argument("--tasks", type=positive_int, default=2_000,
                   help="tasks for the process and batch-size tables (default 2,000)")
    p.add_argument("--processes", type=int_list, default=rb.DEFAULT_PROCESSES,
                   help="producer (= consumer) process counts (default "
                        f"{','.join(map(str, rb.DEFAULT_PROCESSES))})")
    p.add_argument("--counts", type=int_list, default=rb.DEFAULT_COUNTS,
                   help=f"claim batch sizes (default {','.join(map(str, rb.DEFAULT_COUNTS))})")
    p.add_argument("--no-replicas", action="store_true",
                   help="skip the replica acknowledgement part (it starts a primary, two "
                        "replicas and three Sentinels, ~6 s)")
    add_redis_url_argument(p)


def _cmd_redis_bench(args: argparse.Namespace) -> int:
    from pqlab.cli.redisbench import run_redis_bench

    url = args.redis_url or os.environ.get(ENV_URL)
    try:
        met = run_redis_bench(url, calls=args.calls, repeats=args.repeat, tasks=args.tasks,
                              processes=args.processes, counts=args.counts,
                              replicas=not args.no_replicas)
    except RedisUnavailable as exc:
        raise UsageError(str(exc)) from None
    return 0 if met else 1


def _add_failover(p: argparse.ArgumentParser) -> None:
    p.add_argument("--runs", type=positive_int, default=5,
                   help="drills per min_replicas value, each on a fresh deployment (default 5)")
    p.add_argument("--paused-replica", action="store_true",
                   help="SIGSTOP the replicas and close their links 1 s before the kill "
                        "(SIGCONT right after)")
    p.add_argument("--min-replicas", type=replica_counts, default=[0, 1],
                   help="replica acknowledgement settings to compare (default 0,1)")


def _cmd_failover(args: argparse.Namespace) -> int:
    from pqlab.cli.failover import run_failover_command

    try:
        results = run_failover_command(args.runs, args.paused_replica, args.min_replicas)
    except RedisUnavailable as exc:
        raise UsageError(str(exc)) from None
    acknowledged_lost = sum(r.lost + r.duplicated for m, runs in results.items() if m
                            for r in runs)
    return 0 if acknowledged_lost == 0 else 1


def _add_output(p: argparse.ArgumentParser) -> None:
    p.add_argument("--output", metavar="DIR", default=None,
                   help="put data/, figures/ and docs/adr/ under DIR (default: the repository)")


def _add_sweep(p: argparse.ArgumentParser) -> None:
    from pqlab.study import config

    p.add_argument("--queues", type=name_list("queue", lambda: list(QUEUES)), default=None,
                   help=f"comma-separated queues (default: the in-process ones): "
                        f"{', '.join(QUEUES)}")
    p.add_argument("--scenarios", type=name_list("scenario", lambda: list(SCENARIOS)),
                   default=None,
                   help=f"comma-separated scenarios (default: all but the open-loop "
                        f"load): {', '.join(SCENARIOS)}")
    p.add_argument("--tasks", type=int_list, default=list(config.SWEEP_TASK_COUNTS),
                   help="comma-separated task counts (default %(default)s)")
    p.add_argument("--workers", type=int_list, default=list(config.SWEEP_WORKER_COUNTS),
                   help="comma-separated producer = consumer counts (default %(default)s)")
    p.add_argument("--repeat", type=positive_int, default=config.SWEEP_REPETITIONS,
                   help="repetitions per cell (default %(default)s)")
    p.add_argument("--seed", type=int, default=config.SWEEP_SEED,
                   help="workload seed of repetition 0; repetition r uses seed + r "
                        "(default %(default)s)")
    p.add_argument("--in-process", action="store_true",
                   help="run every repetition in this process (faster, less independent)")
    p.add_argument("--run-id", default=None, help="name of the run (default: UTC time-host)")
    p.add_argument("--resume", action="store_true", help="continue the run --run-id (default: "
                   "the latest run), skipping the units already measured")
    p.add_argument("--csv", action="store_true", help="also export summary.csv and samples.csv")
    p.add_argument("--no-progress", dest="progress", action="store_false",
                   help="no progress bar")
    _add_output(p)


def _cmd_sweep(args: argparse.Namespace) -> int:
    from pqlab.study import config, store
    from pqlab.study.sweep import Grid, SweepError, run_sweep

    paths = config.paths(args.output)
    try:
        grid = Grid(args.queues, args.scenarios, tuple(args.tasks), tuple(args.workers),
                    args.repeat, args.seed)
        run_id = args.run_id or (store.latest_run(paths.data) if args.resume else None)
        run = store.Run.create(paths.data, run_id, exist_ok=args.resume)
    except ValueError as exc:
        raise UsageError(f"pqlab sweep: {exc}") from None
    try:
        result = run_sweep(grid, run, fresh_process=not args.in_process, progress=args.progress)
    except SweepError as exc:
        print(f"pqlab sweep: {exc} (run {run.run_id}: rerun with --resume to finish it)",
              file=sys.stderr)
        return 1
    print(f"run {run.run_id}: {result.measured} runs measured, {result.skipped} already done; "
          f"data in {run.dir}")
    if args.csv:
        for path in run.export_csv():
            print(f"  {path}")
    return 0


def _add_batch(p: argparse.ArgumentParser) -> None:
    from pqlab.study import config

    p.add_argument("--profile", choices=config.PROFILES, default=None,
                   help="; ".join(f"{k}: {v}" for k, v in config.PROFILE_HELP.items())
                   + " (default: default)")
    p.add_argument("-f", "--params-file", metavar="YAML", default=None,
                   help="a YAML plan: profile, timeout_s, notebooks: {name: {PARAM: value}}")
    p.add_argument("--timeout", type=positive_int, default=None, metavar="SECONDS",
                   help="per-cell execution timeout (default: the profile's)")
    p.add_argument("--run-id", default=None, help="name of the run (default: UTC time-host)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run --run-id: measured units are not redone")
    p.add_argument("--kernel", default=None, help="a Jupyter kernel name (default: one that "
                   "runs this Python)")
    p.add_argument("--csv", action="store_true", help="also export summary.csv and samples.csv")
    p.add_argument("--publish-adr", action="store_true",
                   help="also write the run's ADR to docs/adr/ (default: only into "
                        "data/<run-id>/adr.md, leaving the checkout clean)")
    _add_output(p)


def _cmd_batch(args: argparse.Namespace) -> int:
    from pqlab.lab import batch
    from pqlab.study import store

    if args.resume and not args.run_id:
        raise UsageError("pqlab batch: --resume needs --run-id")
    try:
        plan = batch.load_plan(args.profile, args.params_file)
        if args.timeout:
            plan.timeout_s = args.timeout
        result = batch.run_batch(plan, args.output, run_id=args.run_id, resume=args.resume,
                                 kernel=args.kernel, progress=sys.stderr.isatty(),
                                 publish_adr=args.publish_adr)
    except (batch.PlanError, store.StoreError) as exc:
        raise UsageError(f"pqlab batch: {exc}") from None
    except batch.BatchError as exc:
        print(f"pqlab batch: stopped: {exc}", file=sys.stderr)
        return 1
    if args.csv:
        for path in result.run.export_csv():
            print(f"  csv:       {path}")
    return 0


def _add_adr(p: argparse.ArgumentParser) -> None:
    from pqlab.study import config

    p.add_argument("--run", default=None, help="the run to read (default: the latest)")
    p.add_argument("--reference-tasks", type=positive_int, default=config.REFERENCE_TASKS,
                   help="judge at the measured task count nearest this (default %(default)s)")
    p.add_argument("--reference-workers", type=positive_int,
                   default=config.REFERENCE_WORKERS,
                   help="judge at the measured worker count nearest this (default %(default)s)")
    p.add_argument("--allow-busy", action="store_true",
                   help="decide even from a run measured on a busy machine (the ADR says so)")
    p.add_argument("--compare", nargs=2, metavar=("RUN_A", "RUN_B"), default=None,
                   help="compare two runs' decisions instead of writing the ADR: run folders, "
                        "batch output folders or run ids; exit 1 when a decision differs")
    _add_output(p)


def _cmd_adr(args: argparse.Namespace) -> int:
    from pqlab.record import adr, runs
    from pqlab.study import config

    try:
        if args.compare:
            diff = runs.compare_runs(*args.compare, config.paths(args.output),
                                    (args.reference_tasks, args.reference_workers))
            print("\n".join(diff.lines()))
            return 0 if diff.same else 1
        path = adr.write_adr(args.run, config.paths(args.output),
                             reference_tasks=args.reference_tasks,
                             reference_workers=args.reference_workers,
                             allow_busy=args.allow_busy, publish=True)
    except ValueError as exc:
        raise UsageError(f"pqlab adr: {exc}") from None
    print(path)
    return 0


def _add_serve(p: argparse.ArgumentParser) -> None:
    p.add_argument("--queue", required=True, metavar="QUEUE",
                   help=f"the request queue: {', '.join(QUEUES)} (the worker mode must fit it)")
    p.add_argument("--workers", type=positive_int, default=4, help="workers (default 4)")
    p.add_argument("--service", type=service_time, default=ServiceTime("exp", 0.01),
                   help="inference time KIND:MEAN when a request gives no work_ms "
                        "(default exp:10ms)")
    p.add_argument("--worker-mode", choices=("async", "threads", "processes"), default="async",
                   help="async: worker coroutines awaiting a sleep; threads: worker threads "
                        "through a bridging queue; processes: CPU inference in worker "
                        "processes (default async)")
    p.add_argument("--service-holds-gil", action="store_true",
                   help="threads mode: inference busy-loops in Python, holding the GIL")
    p.add_argument("--policy", type=queue_policy, default=None, metavar="JSON_OR_FILE",
                   help="a queue policy per level (limits: 503; timeouts: 504), as JSON or a "
                        "YAML/JSON file; only for queues that take one")
    p.add_argument("--port", type=port_number, default=8000,
                   help="port on 127.0.0.1 (default 8000; 0: any free one, printed)")
    p.add_argument("--seed", type=int, default=None, help="seed of the drawn service times")


def _cmd_serve(args: argparse.Namespace) -> int:
    from pqlab.service.scheduler import ServiceConfig
    from pqlab.service.server import serve
    from pqlab.service.workers import ServiceError

    config = ServiceConfig(args.queue, args.workers, args.service, args.worker_mode,
                           args.policy, args.service_holds_gil, args.seed)

    def ready(url: str) -> None:
        print(f"pqlab serve: {url} (queue {config.queue}, {config.mode} x{config.workers}, "
              f"service {config.service}; Ctrl-C stops)", flush=True)

    try:
        serve(config, args.port, ready)
    except ServiceError as exc:
        raise UsageError(f"pqlab serve: {exc}") from None
    return 0


def _add_http_load(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", required=True,
                   help="the endpoint, e.g. http://127.0.0.1:8000/v1/infer")
    p.add_argument("--rate", type=positive_float, required=True,
                   help="requests per second, sent whatever the server does")
    p.add_argument("--duration", type=positive_float, required=True,
                   help="seconds of sending")
    p.add_argument("--mix", type=weight_list, default=(1.0, 1.0, 1.0, 1.0),
                   help="priority mix CRITICAL,HIGH,NORMAL,LOW (default 1,1,1,1)")
    p.add_argument("--arrivals", choices=ARRIVALS, default=ARRIVALS[0],
                   help=f"gaps between sends (default {ARRIVALS[0]})")
    p.add_argument("--patience", type=service_time, default=None,
                   help="client patience KIND:MEAN (e.g. exp:2s): a request still unanswered "
                        "then is closed by its client (a disconnect)")
    p.add_argument("--timeout-ms", type=positive_float, default=None,
                   help="timeout_ms sent in every request body")
    p.add_argument("--seed", type=int, default=None, help="schedule seed (default 0)")
    p.add_argument("--json", metavar="FILE", default=None,
                   help="also write the result as JSON (summary and every request)")


def _cmd_http_load(args: argparse.Namespace) -> int:
    import json

    from pqlab.cli.httpreport import load_lines
    from pqlab.service.httpload import LoadPlan, run

    try:
        plan = LoadPlan(args.url, args.rate, args.duration, args.mix, args.arrivals,
                        args.patience, args.seed, args.timeout_ms)
    except ValueError as exc:
        raise UsageError(f"pqlab http-load: {exc}") from None
    result = run(plan)
    print("\n".join(load_lines(result)))
    if args.json:
        from pqlab.study.store import atomic_write

        text = json.dumps(result.to_dict())
        atomic_write(args.json, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    answered = (result.status > 0).sum()
    return 0 if answered else 1


Command = tuple[str, Callable[[argparse.ArgumentParser], None],
                Callable[[argparse.Namespace], int]]

COMMANDS: dict[str, Command] = {
    "poc": ("the POC's console report, every number measured in this run", _add_poc, _cmd_poc),
    "run": ("run queues through scenarios; text, JSON or CSV", _add_run, _cmd_run),
    "bench": ("speed claims as ratios measured side by side in one run", _add_bench,
              _cmd_bench),
    "redis-bench": ("the Redis queue against redis-benchmark, processes and claim batches",
                    _add_redis_bench, _cmd_redis_bench),
    "failover": ("kill the Redis primary under load: lost, duplicated, time without service",
                 _add_failover, _cmd_failover),
    "queues": ("list the registered queues, their capabilities and scenarios", _add_queues,
               _cmd_queues),
    "sweep": ("measure a grid (queues x scenarios x tasks x workers x repetitions) into "
              "data/<run-id>/", _add_sweep, _cmd_sweep),
    "batch": ("execute the notebooks with papermill: data, figures, executed notebooks, "
              "the run's ADR",
              _add_batch, _cmd_batch),
    "serve": ("the reference scheduler service: FastAPI on uvicorn, a queue, workers",
              _add_serve, _cmd_serve),
    "http-load": ("open-loop HTTP load on a service, free of coordinated omission, per "
                  "priority", _add_http_load, _cmd_http_load),
    "adr": ("write a run's ADR into its folder and publish it to "
            "docs/adr/0001-request-queue.md", _add_adr, _cmd_adr),
}


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="pqlab", description="A benchmark lab for priority queues.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (help_text, add_arguments, _) in COMMANDS.items():
        add_arguments(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return USAGE_EXIT
        return COMMANDS[args.command][2](args)
    except UsageError as exc:
        print(f"pqlab: error: {exc}" if not str(exc).startswith("pqlab") else f"{exc}",
              file=sys.stderr)
        return USAGE_EXIT
    except KeyboardInterrupt:
        print("pqlab: interrupted", file=sys.stderr)
        return 130
