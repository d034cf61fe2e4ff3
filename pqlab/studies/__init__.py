"""The studies, listed once: the batch's plan and the record's evidence loop over ``STUDIES``.

Each study is one module (``pqlab.studies.base.Study``): its notebook and that
notebook's parameters per profile, the frames it stores, its record section
and its appendix. Adding a study is one module, one notebook and one line in
``STUDIES`` (execution order: the measuring notebooks first). Two notebooks
only read a finished run and measure nothing: 05 compares runs across
machines, 00 decides and writes the record; ``PLAN`` runs them last, 00 at
the very end.
"""

from __future__ import annotations

from pqlab.studies import (
    coroutines,
    endtoend,
    load,
    ordering,
    overload,
    processes,
    single,
    threads,
)
from pqlab.studies.base import RunView, Section, Study
from pqlab.study.config import PROFILES, NotebookSpec

STUDIES: tuple[Study, ...] = (
    single.STUDY,
    threads.STUDY,
    coroutines.STUDY,
    ordering.STUDY,
    processes.STUDY,
    load.STUDY,
    overload.STUDY,
    endtoend.STUDY,
)

ACROSS_MACHINES = NotebookSpec("05-across-machines.ipynb", {p: {} for p in PROFILES})
# The quick profile is a smoke check, measured beside whatever else runs: its record is
# written even from busy units (and says so); the others refuse a busy run.
DECISION = NotebookSpec("00-decision.ipynb", {"quick": {"ALLOW_BUSY": True}, "default": {},
                                              "full": {}})


def plan(studies: tuple[Study, ...] | None = None) -> list[NotebookSpec]:
    """The batch's notebooks in execution order: every study's, then 05, then 00."""
    return [s.spec for s in (STUDIES if studies is None else studies)] + [ACROSS_MACHINES,
                                                                          DECISION]


def notebook(name: str, studies: tuple[Study, ...] | None = None) -> NotebookSpec:
    """The plan entry called ``name`` (with or without ``.ipynb``); ``KeyError`` lists them."""
    specs = plan(studies)
    for spec in specs:
        if name in (spec.name, spec.filename):
            return spec
    raise KeyError(f"unknown notebook {name!r}; known: {', '.join(s.name for s in specs)}")


__all__ = ["ACROSS_MACHINES", "DECISION", "STUDIES", "RunView", "Section", "Study", "notebook",
           "plan"]
