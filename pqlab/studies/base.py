"""What a study is: one module that owns its notebook's plan, its frames and its sections.

A study (``pqlab.studies.<name>``) declares one ``Study``: the notebook that
runs it and that notebook's parameters per profile (the batch's plan), the
frames it stores in a run, and two readers of a stored run: ``section`` (its
evidence in the decision record: claims and the figures they cite) and
``appendix`` (its detailed findings). Its sweep and figures are functions of
the same module that its notebook calls. ``pqlab.studies.STUDIES`` lists the
studies once, in execution order; the batch's plan and the record's evidence
are loops over it.

A section reads the run only through a ``RunView``: stored frames, the
decisions and the figure files already drawn. It draws nothing and measures
nothing, so re-rendering a record is deterministic and cheap.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pandas as pd

from pqlab.decide.captions import Embedded
from pqlab.decide.decision import Decision
from pqlab.study import config, store


@dataclass(frozen=True)
class Section:
    """A study's part of the record's evidence: a heading, claim lines (bullets cite the
    section's figures) and the figures to embed, each with its caption's claim."""

    heading: str
    lines: list[str]
    figures: list[Embedded] = field(default_factory=list)
    rank: int = 100  # the record's order: lower first


@dataclass
class RunView:
    """A stored run as the record reads it: frames, decisions, the figures drawn."""

    run: store.Run
    decisions: list[Decision]
    figure_stems: frozenset[str] = frozenset()

    _frames: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)

    @property
    def summary(self) -> pd.DataFrame:
        return self.frame("summary")

    def frame(self, name: str) -> pd.DataFrame:
        """The run's stored frame ``name`` ("summary": its closed-loop units), read once."""
        if name not in self._frames:
            self._frames[name] = self.run.summary() if name == "summary" else self.run.frame(name)
        return self._frames[name]

    def has_figure(self, stem: str) -> bool:
        return stem in self.figure_stems

    def embeddable(self, *found: Embedded | None) -> list[Embedded]:
        """The figures among ``found`` the run has a file for."""
        return [f for f in found if f is not None and self.has_figure(f.stem)]


def _nothing(view: RunView) -> Any:
    del view
    return None


@dataclass(frozen=True)
class Study:
    """One study: its notebook and plan, its stored frames, its record section and appendix."""

    name: str
    notebook: str  # file name in notebooks/
    profiles: Mapping[str, Mapping[str, Any]]  # profile -> the notebook's parameters
    frames: tuple[str, ...] = ()  # the run frames it writes besides the summary
    section: Callable[[RunView], Section | None] = _nothing
    appendix: Callable[[RunView], list[str] | None] = _nothing
    skip_reason: Callable[[], str | None] | None = field(default=None, compare=False)
    appendix_rank: int = 100  # the appendix's order: lower first
    # Checks of the notebook's own parameters (name -> check(name, value), raising
    # params.ParameterError); the shared ones are checked by pqlab.study.params.
    checks: Mapping[str, Callable[[str, Any], Any]] = field(default_factory=dict,
                                                            compare=False)

    @property
    def spec(self) -> config.NotebookSpec:
        """The batch's plan entry of its notebook."""
        return config.NotebookSpec(self.notebook, {k: dict(v) for k, v in
                                                   self.profiles.items()}, self.skip_reason,
                                   dict(self.checks))


def typed(cls: type, p: SimpleNamespace, **given: Any) -> Any:
    """A study's typed parameters from a notebook's checked ones (``params.validate``):
    field ``duration_s`` reads ``DURATION_S``; ``given`` sets fields outright."""
    values = {}
    for f in dataclasses.fields(cls):
        if f.name in given:
            values[f.name] = given[f.name]
        elif hasattr(p, f.name.upper()):
            values[f.name] = getattr(p, f.name.upper())
    return cls(**values)
