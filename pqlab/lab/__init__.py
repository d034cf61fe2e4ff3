"""What the notebooks share: versions, opening the run, the grid, the closing record.

Notebooks call these so that they hold no logic of their own: a measuring
notebook opens (or creates) the run named by ``RUN_ID`` under ``OUTPUT_DIR``
and sweeps its grid into it; a reading notebook opens ``RUN_ID`` or the
latest run; every notebook ends with ``produced(...)``.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import json
import platform
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

from pqlab.decide import adr, saturation
from pqlab.harness import idleburn
from pqlab.harness.runner import run as run_once
from pqlab.measure import levels, quiet
from pqlab.queues import register_queue, unregister_queue
from pqlab.queues.policy import QueuePolicy
from pqlab.queues.syncqueue import ThreadSafeAgingQueue
from pqlab.scenarios import failover, loadparams
from pqlab.study import config, frames, loadframes, store
from pqlab.study.progress import Reporter
from pqlab.study.sweep import Grid, SweepResult, run_sweep

VERSION_PACKAGES = ("pqlab", "numpy", "pandas", "pyarrow", "matplotlib", "seaborn", "papermill")


def versions() -> dict[str, str]:
    """Python and the versions of the packages a notebook's numbers depend on."""
    out = {"python": f"{platform.python_implementation()} {platform.python_version()}"}
    for name in VERSION_PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def print_versions() -> None:
    for name, version in versions().items():
        print(f"{name:>10}  {version}")


def open_run(p: SimpleNamespace) -> tuple[config.Paths, store.Run]:
    """The run a measuring notebook adds to: ``RUN_ID`` (created if new) or a new one."""
    paths = config.paths(p.OUTPUT_DIR)
    return paths, store.Run.create(paths.data, p.RUN_ID or None, exist_ok=True)


def read_run(p: SimpleNamespace) -> tuple[config.Paths, store.Run]:
    """The run a reading notebook reads: ``RUN_ID``, or the latest run in ``data/``."""
    paths = config.paths(p.OUTPUT_DIR)
    return paths, store.Run.open(paths.data, p.RUN_ID or store.latest_run(paths.data))


def decide(p: SimpleNamespace, run: store.Run) -> list:
    """The decision of notebook 00 (``pqlab.decide.decision``), on the run's frames."""
    return adr.decide_run(run, (p.REFERENCE_TASKS, p.REFERENCE_WORKERS))


def write_adr(p: SimpleNamespace, paths: config.Paths, run: store.Run) -> Path | None:
    """Write the run's ADR; on a busy run without ``ALLOW_BUSY``, print why and write none."""
    try:
        return adr.write_adr(run.run_id, paths, reference_tasks=p.REFERENCE_TASKS,
                             reference_workers=p.REFERENCE_WORKERS, allow_busy=p.ALLOW_BUSY)
    except adr.BusyRunError as exc:
        print(f"No ADR written: {exc}")
        print("\n".join(quiet.warning_lines(run.summary(), limit=10)))
        return None


def sweep(p: SimpleNamespace, run: store.Run, scenarios: list[str],
          queues: list[str] | None = None) -> SweepResult:
    """Sweep the notebook's grid (its validated parameters) into ``run``.

    ``queues`` replaces ``p.QUEUES`` (a notebook that sweeps two sets of queues).
    """
    grid = Grid(queues=tuple(p.QUEUES if queues is None else queues),
                scenarios=tuple(scenarios),
                task_counts=tuple(p.TASK_COUNTS),
                worker_counts=tuple(getattr(p, "WORKER_COUNTS", config.SWEEP_WORKER_COUNTS)),
                repetitions=p.REPETITIONS, seed=p.SEED)
    return run_sweep(grid, run, fresh_process=p.FRESH_PROCESS, progress=p.PROGRESS)


def sweep_processes(p: SimpleNamespace, run: store.Run) -> SweepResult:
    """Notebook 06's grid: ``p.QUEUES`` in scenario ``processes`` with k producer and k
    consumer processes for each k of ``p.WORKER_COUNTS``, then, for scale,
    ``p.THREAD_QUEUES`` in scenario ``threads`` with the same task and worker counts.

    Redis units share one server for the whole sweep (``sweep.run_sweep``).
    Returns both parts as one result.
    """
    parts = [sweep(p, run, ["processes"])]
    if p.THREAD_QUEUES:
        parts.append(sweep(p, run, ["threads"], queues=p.THREAD_QUEUES))
    return SweepResult(frames.concat([r.summary for r in parts]),
                       frames.concat([r.samples for r in parts], typed=frames.typed_samples),
                       run, sum(r.measured for r in parts), sum(r.skipped for r in parts),
                       [u for r in parts for u in r.units])


def load_sweep(p: SimpleNamespace, run: store.Run) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Open-loop load at each of ``RHOS`` into ``run``: (waits per ρ and priority, spectrum).

    Exponential service with mean ``SERVICE_MS`` on ``WORKERS`` workers, Poisson
    arrivals for ``DURATION_S`` seconds per ρ. The spectrum is the waits'
    percentiles per priority in the run at ``SPECTRUM_RHO``. Both frames are
    stored in the run (``store.Run.save_frames``); a rerun replaces them.
    """
    spectra: list[pd.DataFrame] = []
    aging_runs = sum(rho >= p.SPECTRUM_RHO for rho in p.RHOS) if _aging(p) else 0
    report = Reporter(len(p.RHOS) + aging_runs)  # units for the batch's console

    def seen(result) -> None:
        report.advance()
        rho = result.extra["rho"]
        if abs(rho - p.SPECTRUM_RHO) < 1e-9:
            spectra.append(loadframes.wait_spectrum(result).assign(rho=p.SPECTRUM_RHO))
        if p.PROGRESS:
            late = result.extra["producer_late_p99_ms"]
            print(f"ρ = {rho:.2f}: {result.tasks:,} tasks in {result.wall_s:.1f} s, "
                  f"ρ measured {result.extra['rho_measured']:.3f}, producers late p99 "
                  f"{late:.2f} ms")

    _warm_up(p)
    frame = _tidy_load(loadframes.sweep_utilization(
        p.QUEUE, p.RHOS, workers=p.WORKERS,
        service=loadparams.ServiceTime("exp", p.SERVICE_MS / 1e3),
        duration_s=p.DURATION_S, seed=p.SEED, progress=seen), p)
    spectrum = pd.concat(spectra, ignore_index=True) if spectra else pd.DataFrame()
    aging = _aging_sweep(p, report) if _aging(p) else pd.DataFrame()
    run.save_frames(replace=("load-aging",), load=frame, **{"load-spectrum": spectrum,
                                                             "load-aging": aging})
    return run.frame("load"), run.frame("load-spectrum")


def overload_policy(p: SimpleNamespace) -> tuple[str, QueuePolicy]:
    """Notebook 08's policy and its label: limits per level sized by Little's law so a request
    admitted at its level's limit waits about ``WAIT_TARGET_MS`` when the offered load is at
    saturation, ρ = 1 (``loadframes.policy_for_wait``), every level timing out after
    ``TIMEOUT_MS`` (0: never) with ``ACTION``."""
    service = loadparams.ServiceTime("exp", p.SERVICE_MS / 1e3)
    at_capacity = loadparams.LoadParams.at_utilization(1.0, p.WORKERS, service)
    policy = loadframes.policy_for_wait(p.WAIT_TARGET_MS / 1e3, at_capacity.class_rates(),
                                        service.mean_s, p.WORKERS, p.TIMEOUT_MS / 1e3, p.ACTION)
    label = loadparams.policy_label(loadparams.LoadParams(policy=policy, duration_s=1.0))
    return label, policy


def overload_sweep(p: SimpleNamespace, run: store.Run) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Bounded open-loop runs at each of ``LOADS``, without a policy and with notebook 08's.

    Each run offers Poisson arrivals for ``DURATION_S`` seconds to ``WORKERS``
    workers (exponential service, mean ``SERVICE_MS``); clients give up after an
    exponential time of mean ``PATIENCE_S`` and cancel their queued request.
    Stores ``overload`` (one row per run and priority, ``pqlab.measure.levels``, with the
    policy's JSON and the wait target) and ``overload-depth`` (depth per level over the runs at
    ``DEPTH_RHO``) in the run; returns both.
    """
    label, policy = overload_policy(p)
    policies = {loadparams.NO_POLICY_LABEL: None, label: policy}
    depth: list[pd.DataFrame] = []
    report = Reporter(len(p.LOADS) * len(policies) * p.REPETITIONS)

    def seen(result) -> None:
        report.advance()
        e = result.extra
        if abs(e["rho"] - p.DEPTH_RHO) < 1e-9 and result.repetition == 0:
            depth.append(loadframes.level_depth_frame(result).assign(
                policy=e["policy"], rho=p.DEPTH_RHO))
        if p.PROGRESS:
            print(f"ρ = {e['rho']:.2f}, policy {e['policy']}: {result.tasks:,} requests, "
                  f"served {levels.total(result.levels, 'served'):,}, rejected "
                  f"{levels.total(result.levels, 'rejected'):,}, expired "
                  f"{levels.total(result.levels, 'expired'):,}, cancelled "
                  f"{levels.total(result.levels, 'cancelled'):,}")

    summary = loadframes.sweep_overload(
        p.POLICY_QUEUE, p.LOADS, policies=policies, workers=p.WORKERS,
        service=loadparams.ServiceTime("exp", p.SERVICE_MS / 1e3),
        patience=loadparams.ServiceTime("exp", p.PATIENCE_S), duration_s=p.DURATION_S,
        seed=p.SEED, repetitions=p.REPETITIONS, progress=seen)
    summary["policy_spec"] = [json.dumps(policy.to_mapping()) if name != loadparams.NO_POLICY_LABEL
                              else "" for name in summary["policy"]]
    summary["wait_target_ms"] = p.WAIT_TARGET_MS
    summary["service_ms"] = p.SERVICE_MS
    run.save_frames(overload=frames.typed_summary(summary),
                    **{"overload-depth": pd.concat(depth, ignore_index=True)
                       if depth else pd.DataFrame()})
    return run.frame("overload"), run.frame("overload-depth")


def overload_redis_sweep(p: SimpleNamespace, run: store.Run) -> pd.DataFrame:
    """Notebook 06's "Past saturation across processes": bounded runs on ``redis`` with worker
    processes (``driver="processes"``) at each of ``LOADS``, without a policy and with
    notebook 08's (``overload_policy``). Stores ``overload-redis`` (one row per run and priority)
    and returns each outcome share beside the replay's (``saturation.replay_gaps``).
    """
    label, policy = overload_policy(p)
    policies = {loadparams.NO_POLICY_LABEL: None, label: policy}
    report = Reporter(len(p.LOADS) * len(policies))
    summary = loadframes.sweep_overload(
        "redis", p.LOADS, policies=policies, workers=p.WORKERS,
        service=loadparams.ServiceTime("exp", p.SERVICE_MS / 1e3),
        patience=loadparams.ServiceTime("exp", p.PATIENCE_S), duration_s=p.DURATION_S,
        seed=p.SEED, progress=lambda _: report.advance(), driver="processes")
    summary["policy_spec"] = [json.dumps(policy.to_mapping()) if name != loadparams.NO_POLICY_LABEL
                              else "" for name in summary["policy"]]
    run.save_frames(**{"overload-redis": frames.typed_summary(summary)})
    return saturation.replay_gaps(run.frame("overload-redis"))


def failover_drills(p: SimpleNamespace, run: store.Run) -> pd.DataFrame:
    """Notebook 06's "Losing the primary": ``FAILOVER_RUNS`` failover drills
    (``pqlab.scenarios.failover``) of the plain scenario, and of the paused-replica one with
    ``FAILOVER_PAUSED``, each with every ``min_replicas`` of ``FAILOVER_MIN_REPLICAS`` on a
    fresh deployment. Stores
    ``failover`` (run × scenario × min_replicas × metric) and returns it; with
    ``FAILOVER_RUNS = 0`` it measures nothing, says so and returns an empty frame.
    """
    if p.FAILOVER_RUNS == 0:
        print("Failover: not measured in this profile (FAILOVER_RUNS = 0); "
              "`python -m pqlab failover --runs 5` measures it.")
        return pd.DataFrame()
    scenarios = ["plain", "paused replica"] if p.FAILOVER_PAUSED else ["plain"]
    report = Reporter(p.FAILOVER_RUNS * len(scenarios) * len(p.FAILOVER_MIN_REPLICAS))

    def seen(scenario: str, drill: failover.FailoverRun) -> None:
        report.advance()
        if p.PROGRESS:
            print(f"{scenario}, min_replicas={drill.min_replicas}: lost {drill.lost} of "
                  f"{drill.acknowledged:,} acknowledged, duplicated {drill.duplicated}, "
                  f"no service for {drill.no_service_s:.2f} s")

    frame = failover.drill_frame(p.FAILOVER_RUNS, scenarios, p.FAILOVER_MIN_REPLICAS,
                                 progress=seen)
    run.save_frames(failover=frame)
    return run.frame("failover")


def _warm_up(p: SimpleNamespace, seconds: float = 0.5) -> None:
    """A short unrecorded load run first: imports, thread start-up and caches are paid there."""
    params = loadparams.LoadParams.at_utilization(min(p.RHOS), p.WORKERS,
                                            loadparams.ServiceTime("exp", p.SERVICE_MS / 1e3))
    run_once(p.QUEUE, "load", tasks=params.tasks_for(seconds), consumers=p.WORKERS,
             seed=p.SEED, params=params)


def _tidy_load(frame: pd.DataFrame, p: SimpleNamespace) -> pd.DataFrame:
    frame["rho"] = frame["rho"].round(6)  # ρ·C/E[S]·E[S]/C is not exactly ρ in floats
    frame["service_ms"] = p.SERVICE_MS
    frame["duration_s"] = p.DURATION_S
    return frame


@contextlib.contextmanager
def aging_queue(age_ms: float):
    """A ``ThreadSafeAgingQueue`` registered under a temporary name for the duration."""
    name = f"ThreadSafeAgingQueue(age={age_ms:g}ms)"
    register_queue(name, functools.partial(ThreadSafeAgingQueue, age_s=age_ms / 1e3),
                   thread_safe=True, async_safe=False,
                   description="pqlab: bucket storage with aging (starvation guard)")
    try:
        yield name
    finally:
        unregister_queue(name)


def _aging(p: SimpleNamespace) -> bool:
    return getattr(p, "AGING_MS", 0) > 0


def _aging_sweep(p: SimpleNamespace, report: Reporter) -> pd.DataFrame:
    """The same runs (same seeds) on the aging queue at each ρ ≥ ``SPECTRUM_RHO``."""
    frames = []
    with aging_queue(p.AGING_MS) as name:
        for i, rho in enumerate(p.RHOS):
            if rho >= p.SPECTRUM_RHO:
                frames.append(loadframes.sweep_utilization(
                    name, [rho], workers=p.WORKERS,
                    service=loadparams.ServiceTime("exp", p.SERVICE_MS / 1e3),
                    duration_s=p.DURATION_S, seed=p.SEED + i,
                    progress=lambda _result: report.advance()))
    frame = _tidy_load(pd.concat(frames, ignore_index=True), p)
    frame["aging_ms"] = p.AGING_MS
    return frame


def aging_table(p: SimpleNamespace, run: store.Run) -> pd.DataFrame:
    """Per ρ and priority: mean and p99 wait (ms) strict against with aging, same arrivals."""
    aging = run.frame("load-aging")
    if aging.empty:
        return pd.DataFrame()
    keys = ["rho", "priority"]
    cols = ["queue_wait_mean_ms", "queue_wait_p99_ms"]
    both = run.frame("load")[keys + cols].merge(aging[keys + cols], on=keys,
                                         suffixes=(" strict", " aging"))
    return both.round(3)


def load_theory(p: SimpleNamespace) -> pd.DataFrame:
    """Cobham's mean wait per priority (ms) on a fine ρ grid up to the largest of ``RHOS``."""
    top = max(p.RHOS)
    grid = sorted({round(x, 6) for x in [*np.linspace(min(p.RHOS), top, 60), *p.RHOS]})
    return loadframes.theory_frame(grid, workers=p.WORKERS, service_mean_s=p.SERVICE_MS / 1e3)


def load_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per ρ and priority: measured mean wait beside Cobham's, the difference, p99 (ms)."""
    cols = {"rho": "ρ target", "rho_measured": "ρ measured", "priority": "priority",
            "tasks": "tasks", "queue_wait_mean_ms": "mean wait ms",
            "theory_wait_mean_ms": "theory ms", "wait_mean_rel_diff": "diff",
            "queue_wait_p99_ms": "p99 wait ms", "queue_wait_uncorrected_p99_ms":
            "p99 from put ms"}
    return frame[list(cols)].rename(columns=cols).round(3)


def headline(summary: pd.DataFrame, decimals: int | None = 2) -> pd.DataFrame:
    """Per cell, medians over repetitions of the numbers a reader looks at first, rounded to
    ``decimals`` (None: not rounded, for text that formats them itself)."""
    cols = {"throughput_ops_s": "throughput ops/s", "enqueue_mean_us": "mean enqueue µs",
            "enqueue_p99_us": "p99 enqueue µs", "dequeue_mean_us": "mean dequeue µs",
            "dequeue_p99_us": "p99 dequeue µs", "violations": "violations"}
    keys = ["queue", "scenario", "tasks", "producers"]
    out = summary.groupby(keys, observed=True)[list(cols)].median().reset_index()
    out["repetitions"] = summary.groupby(keys, observed=True).size().to_numpy()
    out = out.rename(columns=cols)
    return out if decimals is None else out.round(decimals)


def idle_burn(p: SimpleNamespace, run: store.Run, scenarios: list[str]) -> pd.DataFrame:
    """Idle burn (``pqlab.harness.idleburn``) of ``p.QUEUES`` in ``scenarios``, stored in ``run``.

    Rows the run already holds are not measured again (a resumed batch), so
    each new (queue, scenario) pair costs about ``idleburn.DEFAULT_SECONDS``.
    Returns the run's rows for those queues and scenarios.
    """
    def shown(queue: str, scenario: str, cores: float) -> None:
        if p.PROGRESS:
            print(f"{queue} in {scenario}: {cores:.3f} cores while idle")

    have, consumers = run.idle(), idleburn.DEFAULT_CONSUMERS
    done = set() if have.empty else set(zip(have["queue"], have["scenario"],
                                            have["consumers"], strict=True))
    for scenario in scenarios:
        todo = [q for q in p.QUEUES if (q, scenario, consumers) not in done]
        run.save_idle(idleburn.idle_frame(todo, [scenario], progress=shown))
    idle = run.idle()
    if idle.empty:
        return idle
    mine = (idle["queue"].isin(p.QUEUES) & idle["scenario"].isin(scenarios)
            & (idle["consumers"] == consumers))
    return idle[mine].reset_index(drop=True).round({"idle_cores": 3})


def quiet_check(summary: pd.DataFrame) -> None:
    """Print a warning naming every unit measured on a busy machine, or that all were quiet."""
    lines = quiet.warning_lines(summary, limit=len(summary))
    if lines:
        print("\n".join(lines))
    elif "busy" in summary.columns:
        print(f"quiet machine: none of the {len(summary)} units was measured on a busy one")


def produced(paths: config.Paths, run: store.Run, *extra: Path) -> pd.DataFrame:
    """The files this run holds so far (data, figures, ADR), with their sizes."""
    files = [p for p in sorted(run.dir.glob("*")) if p.is_file()]
    figures = paths.figures_dir(run.run_id)
    files += sorted(figures.glob("*")) if figures.is_dir() else []
    files += [Path(e) for e in extra if Path(e).is_file()]
    return pd.DataFrame({"file": [str(f) for f in files],
                         "kB": [round(f.stat().st_size / 1e3, 1) for f in files]})
