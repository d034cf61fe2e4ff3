"""Across processes and nodes (notebook 06): process-safe queues, Redis past saturation, failover.

Three parts, one notebook: the closed-loop ``processes`` scenario on the
process-safe queues (with in-process queues on threads beside them, for
scale); the overload study's points on Redis with worker processes
(``pqlab.studies.overload.redis_sweep``, frame ``overload-redis``); and
failover drills of the replicated deployment (frame ``failover``). It adds
no evidence section to the record (the answer's "beyond one process" line
and the risks read its frames); its appendix is the multi-node paragraph.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import pandas as pd

from pqlab.decide import saturation
from pqlab.queues.redisserver import unavailable_reason
from pqlab.scenarios import failover
from pqlab.studies import closedloop
from pqlab.studies.base import RunView, Study, typed
from pqlab.studies.overload import REDIS_FRAME
from pqlab.study import frames, store
from pqlab.study.progress import Reporter
from pqlab.study.sweep import SweepResult

FAILOVER_FRAME = "failover"


@dataclass(frozen=True)
class Drills:
    """Notebook 06's failover parameters (its upper-case names, checked)."""

    failover_runs: int
    failover_paused: bool
    failover_min_replicas: list[int]
    progress: bool = True

    @classmethod
    def of(cls, p: SimpleNamespace) -> Drills:
        return typed(cls, p)


def sweep(p: closedloop.Params, run: store.Run) -> SweepResult:
    """``p.queues`` in scenario ``processes`` with k producer and k consumer processes for
    each k of ``p.worker_counts``, then, for scale, ``p.thread_queues`` in scenario
    ``threads`` with the same task and worker counts. Redis units share one server for the
    whole sweep (``sweep.run_sweep``). Returns both parts as one result."""
    parts = [closedloop.sweep(p, run, ["processes"])]
    if p.thread_queues:
        parts.append(closedloop.sweep(p, run, ["threads"], queues=p.thread_queues))
    return SweepResult(frames.concat([r.summary for r in parts]),
                       frames.concat([r.samples for r in parts], typed=frames.typed_samples),
                       run, sum(r.measured for r in parts), sum(r.skipped for r in parts),
                       [u for r in parts for u in r.units])


def failover_drills(d: Drills, run: store.Run) -> pd.DataFrame:
    """``failover_runs`` failover drills (``pqlab.scenarios.failover``) of the plain
    scenario, and of the paused-replica one with ``failover_paused``, each with every
    ``min_replicas`` of ``failover_min_replicas`` on a fresh deployment. Stores ``failover``
    (run × scenario × min_replicas × metric) and returns it; with no runs it measures
    nothing, says so and returns an empty frame."""
    if d.failover_runs == 0:
        print("Failover: not measured in this profile (FAILOVER_RUNS = 0); "
              "`python -m pqlab failover --runs 5` measures it.")
        return pd.DataFrame()
    scenarios = ["plain", "paused replica"] if d.failover_paused else ["plain"]
    report = Reporter(d.failover_runs * len(scenarios) * len(d.failover_min_replicas))

    def seen(scenario: str, drill: failover.FailoverRun) -> None:
        report.advance()
        if d.progress:
            print(f"{scenario}, min_replicas={drill.min_replicas}: lost {drill.lost} of "
                  f"{drill.acknowledged:,} acknowledged, duplicated {drill.duplicated}, "
                  f"no service for {drill.no_service_s:.2f} s")

    frame = failover.drill_frame(d.failover_runs, scenarios, d.failover_min_replicas,
                                 progress=seen)
    run.save_frames(**{FAILOVER_FRAME: frame})
    return run.frame(FAILOVER_FRAME)


def appendix(view: RunView) -> list[str]:
    return saturation.multi_node(view.frame(REDIS_FRAME), view.frame(FAILOVER_FRAME))


def _no_redis() -> str | None:
    """Why notebook 06 cannot run here (no Redis can be used), or None."""
    reason = unavailable_reason()
    return f"no Redis server can be started or reached ({reason})" if reason else None


STUDY = Study(
    "processes", "06-processes-redis.ipynb",
    # Section 5 (past saturation on Redis, 2 policies per ρ): 4 runs of 1.5 s took 20 s here
    # in the quick profile, spawning the worker processes included. Section 6 (failover
    # drills) costs 22-26 s per drill here (a fresh deployment starts in 6.5 s, the drill
    # 18.5 s, stop 0.9 s): the default profile runs one, with min_replicas=1 (its cell took
    # 21.8 s at load average 5; both settings took 45 s at load average 8-10, past the
    # section's ~30 s share of the 12-minute batch).
    {"quick": {"TASK_COUNTS": [500], "WORKER_COUNTS": [1, 2], "REPETITIONS": 1,
               "OVERLOAD_LOADS": [0.9, 1.5], "OVERLOAD_DURATION_S": 1.5,
               "FAILOVER_RUNS": 0, "FAILOVER_PAUSED": False, "FAILOVER_MIN_REPLICAS": [0, 1]},
     "default": {"TASK_COUNTS": [2_000], "WORKER_COUNTS": [1, 4], "REPETITIONS": 1,
                 "OVERLOAD_LOADS": [0.9, 1.5], "OVERLOAD_DURATION_S": 4.0,
                 "FAILOVER_RUNS": 1, "FAILOVER_PAUSED": False, "FAILOVER_MIN_REPLICAS": [1]},
     "full": {"TASK_COUNTS": [2_000], "WORKER_COUNTS": [1, 2, 4, 8], "REPETITIONS": 2,
              "OVERLOAD_LOADS": [0.9, 1.2, 1.5], "OVERLOAD_DURATION_S": 8.0,
              "FAILOVER_RUNS": 5, "FAILOVER_PAUSED": True,
              "FAILOVER_MIN_REPLICAS": [0, 1]}},
    frames=(REDIS_FRAME, FAILOVER_FRAME), appendix=appendix, skip_reason=_no_redis,
    appendix_rank=30)
