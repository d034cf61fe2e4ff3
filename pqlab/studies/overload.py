"""Past saturation (notebook 08): bounded runs with and without a Triton-style queue policy.

Each run offers Poisson arrivals for ``duration_s`` seconds to ``workers``
workers (exponential service, mean ``service_ms``); clients give up after an
exponential time of mean ``patience_s`` and cancel their queued request. The
policy's limits per level are sized by Little's law for ``wait_target_ms``
at saturation. Stores ``overload`` (one row per run and priority,
``pqlab.measure.levels``) and ``overload-depth``. Notebook 06 runs the same
sweep on Redis with worker processes (``redis_sweep``, frame
``overload-redis``). Its record section:
the policy's effect at the highest ρ and its own target judged
(``pqlab.decide.saturation`` computes the claims).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from types import SimpleNamespace

import pandas as pd

from pqlab.decide import captions, saturation
from pqlab.harness.openunit import OpenSpec
from pqlab.measure import levels
from pqlab.queues.policy import QueuePolicy
from pqlab.scenarios import loadparams
from pqlab.studies.base import RunView, Section, Study, typed
from pqlab.study import frames, loadframes, opensweep, store
from pqlab.study.opensweep import OpenUnit

FRAMES = ("overload", "overload-depth")
REDIS_FRAME = "overload-redis"


@dataclass(frozen=True)
class Params:
    """Notebook 08's parameters (the notebook's upper-case names, checked)."""

    loads: Sequence[float]
    duration_s: float
    workers: int = 4
    service_ms: float = 20.0
    patience_s: float = 2.0
    wait_target_ms: float = 250.0
    timeout_ms: float = 1000.0
    action: str = "REJECT"
    policy_queue: str = "ThreadSafeBucketQueue"
    depth_rho: float | None = None
    repetitions: int = 1
    seed: int = 1
    progress: bool = True
    fresh_process: bool = True  # False: every run in this process (faster, for tests)

    @classmethod
    def of(cls, p: SimpleNamespace, **given) -> Params:
        return typed(cls, p, **given)

    @property
    def service(self) -> loadparams.ServiceTime:
        return loadparams.ServiceTime("exp", self.service_ms / 1e3)

    @property
    def patience(self) -> loadparams.ServiceTime:
        return loadparams.ServiceTime("exp", self.patience_s)


def policy(p: Params) -> tuple[str, QueuePolicy]:
    """The policy and its label: limits per level sized by Little's law so a request admitted
    at its level's limit waits about ``wait_target_ms`` when the offered load is at
    saturation, ρ = 1 (``loadframes.policy_for_wait``), every level timing out after
    ``timeout_ms`` (0: never) with ``action``."""
    at_capacity = loadparams.LoadParams.at_utilization(1.0, p.workers, p.service)
    chosen = loadframes.policy_for_wait(p.wait_target_ms / 1e3, at_capacity.class_rates(),
                                        p.service.mean_s, p.workers, p.timeout_ms / 1e3,
                                        p.action)
    label = loadparams.policy_label(loadparams.LoadParams(policy=chosen, duration_s=1.0))
    return label, chosen


def _with_spec(summary: pd.DataFrame, chosen: QueuePolicy) -> pd.DataFrame:
    summary["policy_spec"] = [json.dumps(chosen.to_mapping())
                              if name != loadparams.NO_POLICY_LABEL else ""
                              for name in summary["policy"]]
    return summary


def plan(p: Params, queue: str | None = None, frame: str = "overload",
         driver: str = "auto") -> list[OpenUnit]:
    """The sweep's units, repetitions outermost: each of ``loads`` without a policy and with
    ``policy(p)``, on ``queue`` (``policy_queue``); repetition r of the i-th ρ uses seed
    ``seed + 1000 r + i`` for both policies (the same arrivals). The depth per level is
    kept of the runs at ``depth_rho`` in repetition 0 (not on ``overload-redis``)."""
    label, chosen = policy(p)
    units = []
    for repetition in range(p.repetitions if frame == "overload" else 1):
        for i, rho in enumerate(p.loads):
            for name, rules in ((loadparams.NO_POLICY_LABEL, None), (label, chosen)):
                params = loadparams.LoadParams.at_utilization(
                    rho, p.workers, p.service, "poisson", driver=driver, policy=rules,
                    patience=p.patience, duration_s=p.duration_s)
                depth = (frame == "overload" and p.depth_rho is not None
                         and abs(rho - p.depth_rho) < 1e-9 and repetition == 0)
                spec = OpenSpec(queue or p.policy_queue, params.to_mapping(),
                                params.tasks_for(p.duration_s), p.workers,
                                p.seed + 1000 * repetition + i, repetition, rows="overload",
                                policy_name=name, depth=depth)
                units.append(OpenUnit(spec, frame, rho, name))
    return units


def _levels(result: opensweep.OpenSweepResult, frame: str) -> pd.DataFrame:
    parts = [rows for _, _, rows in result.parts(frame)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def sweep(p: Params, run: store.Run) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each of ``loads`` without a policy and with ``policy(p)``, into ``run``: stores
    ``overload`` (one row per run and priority, with the policy's JSON and the wait target)
    and ``overload-depth`` (depth per level over the runs at ``depth_rho``); returns both.
    Each run is a unit of the sweep machinery (``pqlab.study.opensweep``)."""
    _, chosen = policy(p)

    def seen(_unit: OpenUnit, info: dict) -> None:
        if p.progress:
            e = info["run"]
            print(f"ρ = {e['rho']:.2f}, policy {e['policy']}: {e['tasks']:,} requests, "
                  + ", ".join(f"{outcome} {levels.total(info['levels'], outcome):,}"
                              for outcome in ("served", "rejected", "expired", "cancelled")))

    result = opensweep.run_open_sweep(plan(p), run, fresh_process=p.fresh_process,
                                      progress=p.progress, on_unit=seen)
    summary = _with_spec(_levels(result, "overload"), chosen)
    summary["wait_target_ms"] = p.wait_target_ms
    summary["service_ms"] = p.service_ms
    depth = [rows.assign(policy=info["run"]["policy"], rho=p.depth_rho)
             for _, info, rows in result.parts("overload", "depth")]
    run.save_frames(overload=frames.typed_summary(summary),
                    **{"overload-depth": pd.concat(depth, ignore_index=True)
                       if depth else pd.DataFrame()})
    return run.frame("overload"), run.frame("overload-depth")


def redis_sweep(p: Params, run: store.Run) -> pd.DataFrame:
    """The same points on ``redis`` with worker processes (``driver="processes"``), one run
    each, without and with the policy, as units of the sweep machinery (which starts the
    Redis they share). Stores ``overload-redis`` and returns each outcome share beside the
    replay's (``saturation.replay_gaps``)."""
    _, chosen = policy(p)
    result = opensweep.run_open_sweep(plan(p, "redis", REDIS_FRAME, driver="processes"), run,
                                      fresh_process=p.fresh_process, progress=p.progress)
    summary = _with_spec(_levels(result, REDIS_FRAME), chosen)
    run.save_frames(**{REDIS_FRAME: frames.typed_summary(summary)})
    return saturation.replay_gaps(run.frame(REDIS_FRAME))


# -- the record ------------------------------------------------------------------------------


def section(view: RunView) -> Section:
    summary = view.frame("overload")
    return Section("### Past saturation", saturation.record_claims(summary),
                   view.embeddable(captions.overload(summary)), rank=30)


def appendix(view: RunView) -> list[str]:
    return saturation.findings(view.frame("overload"))


STUDY = Study(
    "overload", "08-overload.ipynb",
    # Each point DURATION_S seconds of arrivals, without and with the policy (2 runs per ρ):
    # 8 × 5 s in the default profile.
    {"quick": {"LOADS": [0.9, 1.5], "DEPTH_RHO": 1.5, "DURATION_S": 2.0},
     "default": {"LOADS": [0.5, 0.9, 1.2, 1.5], "DEPTH_RHO": 1.5, "DURATION_S": 5.0},
     "full": {"LOADS": [0.5, 0.7, 0.9, 1.1, 1.2, 1.5, 2.0], "DEPTH_RHO": 1.5,
              "DURATION_S": 15.0, "REPETITIONS": 2}},
    frames=FRAMES, section=section, appendix=appendix, appendix_rank=20)
