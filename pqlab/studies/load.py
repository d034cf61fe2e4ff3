"""Waiting under open-loop load (notebook 07): how long each priority waits as ρ grows.

Exponential service with mean ``service_ms`` on ``workers`` workers, Poisson
arrivals for ``duration_s`` seconds per ρ; the runs at ρ ≥ ``spectrum_rho``
again on the aging queue. Stores ``load`` (waits per ρ and priority),
``load-spectrum`` (percentiles at ``spectrum_rho``) and ``load-aging``. Its
record section: CRITICAL's p99 against the target, aging, the theory check
(``pqlab.decide.loadwait`` computes the claims).
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pandas as pd

from pqlab.decide import captions, loadwait
from pqlab.harness.runner import run as run_once
from pqlab.queues import register_queue, unregister_queue
from pqlab.queues.syncqueue import ThreadSafeAgingQueue
from pqlab.scenarios import loadparams
from pqlab.studies.base import RunView, Section, Study, typed
from pqlab.study import loadframes, store
from pqlab.study.progress import Reporter

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

    @classmethod
    def of(cls, p: SimpleNamespace) -> Params:
        return typed(cls, p)

    @property
    def service(self) -> loadparams.ServiceTime:
        return loadparams.ServiceTime("exp", self.service_ms / 1e3)


def sweep(p: Params, run: store.Run) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Open-loop load at each of ``rhos`` into ``run``: (waits per ρ and priority, spectrum).

    Both frames and the aging runs are stored in the run (``store.Run.save_frames``); a
    rerun replaces them.
    """
    spectra: list[pd.DataFrame] = []
    aging_runs = sum(rho >= p.spectrum_rho for rho in p.rhos) if p.aging_ms > 0 else 0
    report = Reporter(len(p.rhos) + aging_runs)  # units for the batch's console

    def seen(result) -> None:
        report.advance()
        rho = result.extra["rho"]
        if abs(rho - p.spectrum_rho) < 1e-9:
            spectra.append(loadframes.wait_spectrum(result).assign(rho=p.spectrum_rho))
        if p.progress:
            late = result.extra["producer_late_p99_ms"]
            print(f"ρ = {rho:.2f}: {result.tasks:,} tasks in {result.wall_s:.1f} s, "
                  f"ρ measured {result.extra['rho_measured']:.3f}, producers late p99 "
                  f"{late:.2f} ms")

    _warm_up(p)
    frame = _tidy(loadframes.sweep_utilization(
        p.queue, p.rhos, workers=p.workers, service=p.service, duration_s=p.duration_s,
        seed=p.seed, progress=seen), p)
    spectrum = pd.concat(spectra, ignore_index=True) if spectra else pd.DataFrame()
    aging = _aging_sweep(p, report) if p.aging_ms > 0 else pd.DataFrame()
    run.save_frames(replace=("load-aging",), load=frame, **{"load-spectrum": spectrum,
                                                             "load-aging": aging})
    return run.frame("load"), run.frame("load-spectrum")


def _warm_up(p: Params, seconds: float = 0.5) -> None:
    """A short unrecorded load run first: imports, thread start-up and caches are paid there."""
    params = loadparams.LoadParams.at_utilization(min(p.rhos), p.workers, p.service)
    run_once(p.queue, "load", tasks=params.tasks_for(seconds), consumers=p.workers,
             seed=p.seed, params=params)


def _tidy(frame: pd.DataFrame, p: Params) -> pd.DataFrame:
    frame["rho"] = frame["rho"].round(6)  # ρ·C/E[S]·E[S]/C is not exactly ρ in floats
    frame["service_ms"] = p.service_ms
    frame["duration_s"] = p.duration_s
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


def _aging_sweep(p: Params, report: Reporter) -> pd.DataFrame:
    """The same runs (same seeds) on the aging queue at each ρ ≥ ``spectrum_rho``."""
    frames = []
    with aging_queue(p.aging_ms) as name:
        for i, rho in enumerate(p.rhos):
            if rho >= p.spectrum_rho:
                frames.append(loadframes.sweep_utilization(
                    name, [rho], workers=p.workers, service=p.service,
                    duration_s=p.duration_s, seed=p.seed + i,
                    progress=lambda _result: report.advance()))
    frame = _tidy(pd.concat(frames, ignore_index=True), p)
    frame["aging_ms"] = p.aging_ms
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
