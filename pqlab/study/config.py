"""Paths and the batch plan, in one place: no path is spelled anywhere else.

Outputs go under the repository by default (``data/``, ``figures/``,
``docs/adr/``); ``paths(DIR)`` moves all of them under ``DIR`` (the batch's
``--output``). Notebook sources always come from the repository. A run's
decision record goes into its own folder (``data/<run-id>/adr.md``); the
committed one, ``docs/adr/0001-request-queue.md``, is written only when asked
(``make adr``, ``pqlab batch --publish-adr``), so a batch leaves the checkout clean.

``NOTEBOOKS`` is the batch plan: the notebooks in execution order, each with
its parameters per profile. Adding a notebook is one entry here.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pqlab.harness import idleburn
from pqlab.queues.redisserver import unavailable_reason

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS_DIR = ROOT / "notebooks"
EXPLORER = NOTEBOOKS_DIR / "explore.ipynb"  # interactive (pqlab.lab.explore), outside the batch
ADR_FILENAME = "0001-request-queue.md"  # the published record, in docs/adr/
RUN_ADR_FILENAME = "adr.md"  # a run's own record, in data/<run-id>/
KERNEL_NAME = "pqlab"  # the kernelspec `make setup` installs; the batch provides its own
KERNEL_DISPLAY_NAME = "Python (pqlab)"


def package_pythonpath() -> str:
    """A ``PYTHONPATH`` that makes a child process (worker, kernel) import this pqlab first."""
    parent = str(Path(__file__).resolve().parents[2])
    return os.pathsep.join(p for p in (parent, os.environ.get("PYTHONPATH")) if p)


@dataclass(frozen=True)
class Paths:
    """Where one lab's outputs live: ``root/data``, ``root/figures``, ``root/docs/adr``."""

    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def figures(self) -> Path:
        return self.root / "figures"

    @property
    def adr_dir(self) -> Path:
        return self.root / "docs" / "adr"

    @property
    def adr_file(self) -> Path:
        """The published decision record (committed in the repository)."""
        return self.adr_dir / ADR_FILENAME

    def run_adr_file(self, run_id: str) -> Path:
        """The decision record of one run, beside its data (links relative to that folder)."""
        return self.run_dir(run_id) / RUN_ADR_FILENAME

    def run_dir(self, run_id: str) -> Path:
        return self.data / run_id

    def figures_dir(self, run_id: str) -> Path:
        return self.figures / run_id

    def executed_dir(self, run_id: str) -> Path:
        """Where the batch puts the executed copies of the notebooks."""
        return self.run_dir(run_id) / "notebooks"


def paths(output: str | Path | None = None) -> Paths:
    """The output paths: under ``output`` if given (and not empty), else the repository."""
    if output is None or str(output) == "":
        return Paths(ROOT)
    return Paths(Path(output).expanduser().resolve())


# -- defaults shared by the sweep, the CLI and the decision record --------------------

SWEEP_TASK_COUNTS = (10_000,)  # the POC's workload size
SWEEP_WORKER_COUNTS = (4,)  # producers = consumers
SWEEP_REPETITIONS = 3  # fewest that give a median and a spread
SWEEP_SEED = 1
REFERENCE_TASKS = 10_000  # the ADR judges at the measured task count nearest this
REFERENCE_WORKERS = idleburn.DEFAULT_CONSUMERS  # the power of two nearest the POC's 5 workers


# -- the batch plan ----------------------------------------------------------------

# Repetitions of every cell the decision reads (notebooks 01-03) in the default profile:
# 5 a side is the fewest with which the significance test (Mann-Whitney U, p < 0.01;
# pqlab.measure.significance) can separate two queues at all (its smallest p is 2/252). To pay
# for them within 10 minutes the default grid stops at 50,000 tasks and 8 workers (the
# 100,000-task and 16-worker cells took 11 min in all, measured on this 2-core VM).
DECISIVE_REPETITIONS = 5

PROFILES = ("quick", "default", "full")
PROFILE_HELP = {
    "quick": "CI and smoke checks: tiny grids, about 3 minutes on a 2-core machine",
    "default": "what `make run` uses: about 11 minutes on a 2-core machine",
    "full": "the real study: task counts up to 1,000,000, 1-32 workers (30-40 minutes)",
}
# Per-cell execution timeout (s) of each profile: generous, it only catches a hang.
# The full profile's longest cell is notebook 09's sweep (hours: 10 req/s points of 470 s).
TIMEOUT_S = {"quick": 300, "default": 900, "full": 6 * 3600}
# How often a sweep measures again a unit measured on a busy machine (a plan file's
# ``remeasure_tries`` overrides it). The quick profile is a smoke check whose record is
# written from busy units anyway: measuring them again would only slow it down.
REMEASURE_TRIES = {"quick": 0, "default": 2, "full": 2}


@dataclass(frozen=True)
class NotebookSpec:
    """One notebook of the batch and its parameters per profile."""

    filename: str
    profiles: dict[str, dict[str, Any]]
    # Returns a plain reason when the notebook cannot run on this machine
    # (e.g. no server can start), or None; the batch then skips it and says why.
    skip_reason: Callable[[], str | None] | None = field(default=None, compare=False)

    @property
    def name(self) -> str:
        return Path(self.filename).stem

    @property
    def source(self) -> Path:
        return NOTEBOOKS_DIR / self.filename

    def parameters(self, profile: str) -> dict[str, Any]:
        return dict(self.profiles.get(profile, {}))


def _same(params: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p: dict(params) for p in PROFILES}


def _no_redis() -> str | None:
    """Why notebook 06 cannot run here (no Redis can be used), or None."""
    reason = unavailable_reason()
    return f"no Redis server can be started or reached ({reason})" if reason else None


# Execution order: the measuring notebooks first, then the comparison across
# machines, then 00, which reads the finished run and writes the decision
# record (it is numbered 00 because it is what a reader opens first).
# Later notebooks that measure (06 processes, 07 load, 08 overload, 09 end to end) go
# before 05.
NOTEBOOKS: list[NotebookSpec] = [
    NotebookSpec("01-single-baseline.ipynb", {
        "quick": {"TASK_COUNTS": [1_000, 10_000], "REPETITIONS": 1},
        "default": {"TASK_COUNTS": [1_000, 10_000, 50_000],
                    "REPETITIONS": DECISIVE_REPETITIONS},
        "full": {"TASK_COUNTS": [1_000, 10_000, 100_000, 1_000_000], "REPETITIONS": 2},
    }),
    NotebookSpec("02-threads.ipynb", {
        "quick": {"TASK_COUNTS": [5_000], "WORKER_COUNTS": [1, 4], "REPETITIONS": 2},
        "default": {"TASK_COUNTS": [10_000], "WORKER_COUNTS": [1, 4, 8],
                    "REPETITIONS": DECISIVE_REPETITIONS},
        "full": {"TASK_COUNTS": [10_000, 100_000], "WORKER_COUNTS": [1, 4, 16, 32],
                 "REPETITIONS": 2},
    }),
    NotebookSpec("03-asyncio.ipynb", {
        "quick": {"TASK_COUNTS": [5_000], "WORKER_COUNTS": [1, 4], "REPETITIONS": 2},
        "default": {"TASK_COUNTS": [10_000], "WORKER_COUNTS": [1, 4, 8],
                    "REPETITIONS": DECISIVE_REPETITIONS},
        "full": {"TASK_COUNTS": [10_000, 100_000], "WORKER_COUNTS": [1, 4, 16, 32],
                 "REPETITIONS": 2},
    }),
    NotebookSpec("04-priority-correctness.ipynb", {
        "quick": {"TASK_COUNTS": [2_000], "WORKER_COUNTS": [4], "REPETITIONS": 1},
        "default": {"TASK_COUNTS": [10_000], "WORKER_COUNTS": [4, 16], "REPETITIONS": 2},
        "full": {"TASK_COUNTS": [10_000, 100_000], "WORKER_COUNTS": [4, 16],
                 "REPETITIONS": 3},
    }),
    # 06's section 5 (past saturation on Redis, 2 policies per ρ): 4 runs of 1.5 s took
    # 20 s here in the quick profile, spawning the worker processes included. Section 6
    # (failover drills) costs 22-26 s per drill here (a fresh deployment starts in 6.5 s,
    # the drill 18.5 s, stop 0.9 s): the default profile runs one, with min_replicas=1
    # (its cell took 21.8 s at load average 5; both settings took 45 s at load average 8-10,
    # past the section's ~30 s share of the 12-minute batch).
    NotebookSpec("06-processes-redis.ipynb", {
        "quick": {"TASK_COUNTS": [500], "WORKER_COUNTS": [1, 2], "REPETITIONS": 1,
                  "OVERLOAD_LOADS": [0.9, 1.5], "OVERLOAD_DURATION_S": 1.5,
                  "FAILOVER_RUNS": 0, "FAILOVER_PAUSED": False, "FAILOVER_MIN_REPLICAS": [0, 1]},
        "default": {"TASK_COUNTS": [2_000], "WORKER_COUNTS": [1, 4], "REPETITIONS": 1,
                    "OVERLOAD_LOADS": [0.9, 1.5], "OVERLOAD_DURATION_S": 4.0,
                    "FAILOVER_RUNS": 1, "FAILOVER_PAUSED": False, "FAILOVER_MIN_REPLICAS": [1]},
        "full": {"TASK_COUNTS": [2_000], "WORKER_COUNTS": [1, 2, 4, 8], "REPETITIONS": 2,
                 "OVERLOAD_LOADS": [0.9, 1.2, 1.5], "OVERLOAD_DURATION_S": 8.0,
                 "FAILOVER_RUNS": 5, "FAILOVER_PAUSED": True,
                 "FAILOVER_MIN_REPLICAS": [0, 1]},
    }, skip_reason=_no_redis),
    # 07: open-loop load, sized by seconds of arrivals per ρ (plus draining); the runs at
    # ρ ≥ SPECTRUM_RHO are repeated on the aging queue (section 5).
    NotebookSpec("07-load.ipynb", {
        "quick": {"RHOS": [0.3, 0.6, 0.9], "SPECTRUM_RHO": 0.9, "DURATION_S": 2.5},
        "default": {"RHOS": [0.1, 0.5, 0.8, 0.95], "SPECTRUM_RHO": 0.8, "DURATION_S": 6.0},
        "full": {"RHOS": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95],
                 "SPECTRUM_RHO": 0.8, "DURATION_S": 25.0},
    }),
    # 08: past saturation, each point DURATION_S seconds of arrivals, without and with
    # the policy (2 runs per ρ): 8 × 5 s in the default profile.
    NotebookSpec("08-overload.ipynb", {
        "quick": {"LOADS": [0.9, 1.5], "DEPTH_RHO": 1.5, "DURATION_S": 2.0},
        "default": {"LOADS": [0.5, 0.9, 1.2, 1.5], "DEPTH_RHO": 1.5, "DURATION_S": 5.0},
        "full": {"LOADS": [0.5, 0.7, 0.9, 1.1, 1.2, 1.5, 2.0], "DEPTH_RHO": 1.5,
                 "DURATION_S": 15.0, "REPETITIONS": 2},
    }),
    # 09: the end-to-end study, each point a `pqlab serve` and a `pqlab http-load` process
    # (about 3.5 s of start-up, warm-up and stop per point on this 2-core box, plus its
    # sending). Default: the async slice, 2 queues × 3 rates, and ρ 1.5 with and without
    # the policy on AsyncBucketQueue (8 points, capped at 2.5 s each); quick: one queue at
    # 1,000/s, nothing past saturation; full: the grid, with caps that let every priority
    # reach 1,000 responses (10 req/s needs 460 s a point).
    NotebookSpec("09-end-to-end.ipynb", {
        "quick": {"QUEUES": ["AsyncBucketQueue"], "RATES": [1000], "PAST_RHOS": [],
                  "POINT_CAP_S": 1.0, "BASELINE_S": 0.5, "CEILING_RATES": [2000],
                  "CEILING_STEP_S": 0.5},
        "default": {"QUEUES": ["asyncio.PriorityQueue", "AsyncBucketQueue"],
                    "RATES": [10, 100, 1000], "PAST_RHOS": [1.5], "POINT_CAP_S": 2.5,
                    "BASELINE_S": 1.0, "CEILING_RATES": [1000, 2000], "CEILING_STEP_S": 1.0},
        "full": {"MODES": ["async", "threads", "threads-gil", "processes"],
                 "QUEUES": ["asyncio.PriorityQueue", "AsyncBucketQueue", "BridgeBucketQueue",
                            "janus.PriorityQueue", "culsans.PriorityQueue"],
                 "RATES": [10, 100, 1000], "PAST_RHOS": [1.2, 1.5], "POINT_CAP_S": 470.0,
                 "BASELINE_S": 10.0, "CEILING_RATES": [250, 500, 1000, 2000, 4000],
                 "CEILING_STEP_S": 2.0},
    }),
    NotebookSpec("05-across-machines.ipynb", _same({})),
    # The quick profile is a smoke check, measured beside whatever else runs: its ADR
    # is written even from busy units (and says so); the others refuse a busy run.
    NotebookSpec("00-decision.ipynb", {"quick": {"ALLOW_BUSY": True}, "default": {},
                                       "full": {}}),
]


def notebook(name: str) -> NotebookSpec:
    """The plan entry called ``name`` (with or without ``.ipynb``); ``KeyError`` lists them."""
    for spec in NOTEBOOKS:
        if name in (spec.name, spec.filename):
            return spec
    raise KeyError(f"unknown notebook {name!r}; known: {', '.join(s.name for s in NOTEBOOKS)}")
