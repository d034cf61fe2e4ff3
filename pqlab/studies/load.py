"""Waiting under open-loop load (notebook 07): how long each priority waits as ρ grows.

Exponential service with mean ``service_ms`` on ``workers`` workers, Poisson
arrivals for ``duration_s`` seconds per ρ; the runs at ρ ≥ ``spectrum_rho``
again on the aging queue. Each run is a unit of the sweep machinery
(``pqlab.study.opensweep``: a fresh process each, resumable). Stores ``load``
(waits per ρ and priority), ``load-spectrum`` (percentiles at ``spectrum_rho``)
and ``load-aging``. Its record section: CRITICAL's p99 against the target,
aging, the theory check (``pqlab.decide.loadwait`` computes the claims).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pandas as pd

from pqlab.decide import captions, loadwait
from pqlab.harness.openunit import WARMUP_S, OpenSpec, aging_queue_name
from pqlab.scenarios import loadparams
from pqlab.studies.base import RunView, Section, Study, typed
from pqlab.study import loadframes, opensweep, store
from pqlab.study.opensweep import OpenUnit

FRAMES = ("load", "load-spectrum", "load-aging")


@dataclass(frozen=True)
class Params:
    """Notebook 07's parameters (the notebook's upper-case names, checked)."""

    queue: str
    rhos: list[float]
    spectrum_rho: float
    workers: int
    service_ms: float
    duration_s: float
    seed: int
    target_ms: float = loadwait.LOAD_TARGET_MS
    aging_ms: float = 0.0
    progress: bool = True
    fresh_process: bool = True  # False: every run in this process (faster, for tests)

    @classmethod
    def of(cls, p: SimpleNamespace) -> Params:
        return typed(cls, p)

    @property
    def service(self) -> loadparams.ServiceTime:
        return loadparams.ServiceTime("exp", self.service_ms / 1e3)


def plan(p: Params) -> list[OpenUnit]:
    """The sweep's units: each of ``rhos`` (seed ``seed + i`` for the i-th; the spectrum at
    ``spectrum_rho``), then with ``aging_ms`` the same runs (same seeds, so the same
    arrivals) on the aging queue at each ρ ≥ ``spectrum_rho``."""
    def unit(i: int, rho: float, frame: str, queue: str, aging_ms: float = 0.0) -> OpenUnit:
        params = loadparams.LoadParams.at_utilization(rho, p.workers, p.service)
        spectrum = frame == "load" and abs(rho - p.spectrum_rho) < 1e-9
        spec = OpenSpec(queue, params.to_mapping(), params.tasks_for(p.duration_s),
                        p.workers, p.seed + i, spectrum=spectrum, aging_ms=aging_ms,
                        warmup_s=WARMUP_S)
        return OpenUnit(spec, frame, rho)

    units = [unit(i, rho, "load", p.queue) for i, rho in enumerate(p.rhos)]
    if p.aging_ms > 0:
        units += [unit(i, rho, "load-aging", aging_queue_name(p.aging_ms), p.aging_ms)
                  for i, rho in enumerate(p.rhos) if rho >= p.spectrum_rho]
    return units


def sweep(p: Params, run: store.Run) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Open-loop load at each of ``rhos`` into ``run``: (waits per ρ and priority, spectrum).

    Each ρ, and each aging run, is a unit of the sweep machinery
    (``pqlab.study.opensweep``): measured in a fresh process unless
    ``fresh_process`` is false, stored at once, skipped when ``run`` has it. Both
    frames and the aging runs are stored in the run (``store.Run.save_frames``),
    from this sweep's units; a rerun replaces them.
    """
    def seen(unit: OpenUnit, info: dict) -> None:
        if not p.progress or unit.frame != "load":
            return
        e = info["run"]
        print(f"ρ = {e['rho']:.2f}: {e['tasks']:,} tasks in {e['wall_s']:.1f} s, "
              f"ρ measured {e['rho_measured']:.3f}, producers late p99 "
              f"{e['producer_late_p99_ms']:.2f} ms")

    result = opensweep.run_open_sweep(plan(p), run, fresh_process=p.fresh_process,
                                      progress=p.progress, on_unit=seen)
    frame = _tidy(_concat(rows for _, _, rows in result.parts("load")), p)
    spectrum = _concat(rows.assign(rho=p.spectrum_rho)
                       for _, _, rows in result.parts("load", "spectrum"))
    aging = _concat(rows for _, _, rows in result.parts("load-aging"))
    if not aging.empty:
        aging = _tidy(aging, p)
        aging["aging_ms"] = p.aging_ms
    run.save_frames(replace=("load-aging",), load=frame, **{"load-spectrum": spectrum,
                                                             "load-aging": aging})
    return run.frame("load"), run.frame("load-spectrum")


def _concat(parts) -> pd.DataFrame:
    parts = list(parts)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _tidy(frame: pd.DataFrame, p: Params) -> pd.DataFrame:
    frame["rho"] = frame["rho"].round(6)  # ρ·C/E[S]·E[S]/C is not exactly ρ in floats
    frame["service_ms"] = p.service_ms
    frame["duration_s"] = p.duration_s
    return frame


# -- tables (the notebook shows them) -----------------------------------------------------


def aging_table(run: store.Run) -> pd.DataFrame:
    """Per ρ and priority: mean and p99 wait (ms) strict against with aging, same arrivals."""
    aging = run.frame("load-aging")
    if aging.empty:
        return pd.DataFrame()
    keys = ["rho", "priority"]
    cols = ["queue_wait_mean_ms", "queue_wait_p99_ms"]
    both = run.frame("load")[keys + cols].merge(aging[keys + cols], on=keys,
                                                suffixes=(" strict", " aging"))
    return both.round(3)


def theory(p: Params) -> pd.DataFrame:
    """Cobham's mean wait per priority (ms) on a fine ρ grid up to the largest of ``rhos``."""
    top = max(p.rhos)
    grid = sorted({round(x, 6) for x in [*np.linspace(min(p.rhos), top, 60), *p.rhos]})
    return loadframes.theory_frame(grid, workers=p.workers, service_mean_s=p.service_ms / 1e3)


def table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per ρ and priority: measured mean wait beside Cobham's, the difference, p99 (ms)."""
    cols = {"rho": "ρ target", "rho_measured": "ρ measured", "priority": "priority",
            "tasks": "tasks", "queue_wait_mean_ms": "mean wait ms",
            "theory_wait_mean_ms": "theory ms", "wait_mean_rel_diff": "diff",
            "queue_wait_p99_ms": "p99 wait ms", "queue_wait_uncorrected_p99_ms":
            "p99 from put ms"}
    return frame[list(cols)].rename(columns=cols).round(3)


def crossing(frame: pd.DataFrame, p: Params) -> tuple[float, str]:
    """Where CRITICAL's p99 wait crosses ``target_ms`` (nan: it does not), said in a line."""
    rho = loadframes.crossing_rho(frame, target_ms=p.target_ms)
    said = (f"CRITICAL p99 crosses {p.target_ms:g} ms at ρ ≈ {rho:.2f}" if rho == rho
            else f"CRITICAL p99 stays below {p.target_ms:g} ms up to ρ = {max(p.rhos):g}")
    return rho, said


# -- the record ------------------------------------------------------------------------------


def section(view: RunView) -> Section:
    frame = view.frame("load")
    return Section("### Waiting under load",
                   loadwait.record_claims(frame, view.frame("load-aging")),
                   view.embeddable(captions.load(frame)), rank=20)


def appendix(view: RunView) -> list[str]:
    return loadwait.load_findings(view.frame("load"), aging=view.frame("load-aging"))


STUDY = Study(
    "load", "07-load.ipynb",
    # Sized by seconds of arrivals per ρ (plus draining); the runs at ρ ≥ SPECTRUM_RHO are
    # repeated on the aging queue (the notebook's section 5).
    {"quick": {"RHOS": [0.3, 0.6, 0.9], "SPECTRUM_RHO": 0.9, "DURATION_S": 2.5},
     "default": {"RHOS": [0.1, 0.5, 0.8, 0.95], "SPECTRUM_RHO": 0.8, "DURATION_S": 6.0},
     "full": {"RHOS": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95],
              "SPECTRUM_RHO": 0.8, "DURATION_S": 25.0}},
    frames=FRAMES, section=section, appendix=appendix, appendix_rank=10)
