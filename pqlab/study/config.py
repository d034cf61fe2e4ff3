"""Paths and the batch plan, in one place: no path is spelled anywhere else.

Outputs go under the repository by default (``data/``, ``figures/``,
``docs/adr/``); ``paths(DIR)`` moves all of them under ``DIR`` (the batch's
``--output``). Notebook sources always come from the repository. A run's
decision record goes into its own folder (``data/<run-id>/adr.md``); the
committed one, ``docs/adr/0001-request-queue.md``, is written only when asked
(``make adr``, ``pqlab batch --publish-adr``), so a batch leaves the checkout clean.

The batch's plan (its notebooks in order, each with its parameters per
profile) is ``pqlab.studies.plan()``: the studies list themselves there;
``NotebookSpec`` is one entry of it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pqlab.harness import idleburn

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
# The committed reference run (data/ and figures/ keep it, .gitignore lets it in): the
# published record, docs/adr/, is rendered from it; the tests re-render it.
REFERENCE_RUN = "20261206T205009Z-vm"
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
    # Checks of parameters of its own (name -> check(name, value)); the others are
    # checked by pqlab.study.params.
    checks: dict[str, Callable[[str, Any], Any]] = field(default_factory=dict, compare=False)

    @property
    def name(self) -> str:
        return Path(self.filename).stem

    @property
    def source(self) -> Path:
        return NOTEBOOKS_DIR / self.filename

    def parameters(self, profile: str) -> dict[str, Any]:
        return dict(self.profiles.get(profile, {}))
