"""Finding a stored run by what a user typed, and comparing two runs' decisions.

``find_run`` takes a run folder, a batch's output folder (its latest run) or a
run id; ``compare_runs`` decides from two stored runs and lists every context
and statement that differs (``pqlab adr --compare``). Both only read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pqlab.decide import decision
from pqlab.decide.decision import CONTEXTS, Decision
from pqlab.record.adr import decide_run
from pqlab.study import config, store


def find_run(where: str, paths: config.Paths | None = None) -> store.Run:
    """A run named by a run folder, an output folder holding one ``data/`` (its latest run),
    or a run id under the repository's ``data/``; ``StoreError`` says which was tried."""
    path = Path(where).expanduser()
    if (path / store.RUN_FILE).is_file():
        return store.Run.open(path.parent, path.name)
    if (path / "data").is_dir():
        return store.Run.open(path / "data", store.latest_run(path / "data"))
    data = (paths or config.paths()).data
    if path.is_dir():
        raise store.StoreError(f"{where} is neither a run folder nor an output folder with a "
                               "data/ folder of runs")
    if os.sep in where or where.startswith("."):
        raise store.StoreError(f"no run at {where}: give a run folder, a batch output folder "
                               f"or a run id in {data}")
    return store.Run.open(data, where)


@dataclass(frozen=True)
class DecisionDiff:
    """Two runs' decisions side by side: per context, and every statement that differs."""

    run_a: str
    run_b: str
    contexts: list[tuple[str, str, str, bool]]  # (context, decision A, decision B, agree)
    differing: list[tuple[str, str, str]]  # (subject, claim in A, claim in B)

    @property
    def same(self) -> bool:
        return all(agree for *_, agree in self.contexts)

    def lines(self) -> list[str]:
        out = [f"pqlab adr --compare: {self.run_a} vs {self.run_b}"]
        for name, a, b, agree in self.contexts:
            out.append(f"  {'same' if agree else 'DIFFERS'}: {name}: "
                       + (a if a == b else f"{a} vs {b}"))
        if self.differing:
            out.append(f"  {len(self.differing)} statement(s) differ:")
            out += [f"    {subject}: {a!r} vs {b!r}" for subject, a, b in self.differing]
        else:
            out.append("  every statement agrees")
        out.append("same decision in every context" if self.same
                   else "the decisions differ")
        return out


def _decision_text(d: Decision) -> str:
    if d.table.empty:
        return "not measured"
    tie = sorted(d.tie_group)
    return f"{d.choice or 'none'}" + (f" (tie group: {', '.join(tie)})" if len(tie) > 1 else "")


def compare_decisions(a: list[Decision], b: list[Decision], run_a: str = "A",
                      run_b: str = "B") -> DecisionDiff:
    """Whether two lists of decisions agree per context: the same queue, or the same tie group
    (the queues the rule cannot separate before registry order)."""
    contexts = []
    for da, db in zip(a, b, strict=True):
        agree = (da.choice == db.choice) or (
            bool(da.tie_group) and set(da.tie_group) == set(db.tie_group))
        contexts.append((da.context.name, _decision_text(da), _decision_text(db), agree))
    sa, sb = decision.statements(a), decision.statements(b)
    differing = [(k, sa.get(k, "absent"), sb.get(k, "absent"))
                 for k in dict.fromkeys([*sa, *sb]) if sa.get(k) != sb.get(k)]
    return DecisionDiff(run_a, run_b, contexts, differing)


def compare_runs(where_a: str, where_b: str, paths: config.Paths | None = None,
                 reference: tuple[int, int] = (config.REFERENCE_TASKS,
                                               config.REFERENCE_WORKERS)) -> DecisionDiff:
    """Decide from two stored runs and compare; ``StoreError`` when a run is missing or
    measured none of the contexts."""
    runs = [find_run(w, paths) for w in (where_a, where_b)]
    decided = []
    for run in runs:
        summary = run.summary()
        scenarios = set(summary["scenario"].astype(str)) if not summary.empty else set()
        if not scenarios & {c.scenario for c in CONTEXTS}:
            raise store.StoreError(
                f"run {run.run_id!r} measured none of the contexts' scenarios ("
                + ", ".join(c.scenario for c in CONTEXTS) + ")")
        decided.append(decide_run(run, reference))
    return compare_decisions(*decided, run_a=runs[0].run_id, run_b=runs[1].run_id)
