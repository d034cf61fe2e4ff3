"""The decision record ``docs/adr/0001-request-queue.md`` and its appendix, from a named run.

The record answers first (ModelMora's context, the queue and policy to use
there, the runner-up; one line per other context), then gives the evidence
with 3-6 captioned figures, what Python 3.13 would change, how to adopt the
queue and the risks. The detailed tables go to ``appendix.md`` beside it
(``pqlab.decide.appendix``). The rule lives in ``pqlab.decide.decision``.
Every number is read from the run's frames or measured by a probe
(``pqlab.harness.features``); nothing is typed in: change the data and the
text changes.

A run measured on a busy machine (``pqlab.measure.quiet``) is not decided from
unless the caller says so (``allow_busy``); the record then says which cells
were busy.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pqlab.decide import (
    adoption,
    appendix,
    captions,
    decision,
    endtoend,
    loadwait,
    overloadplots,
    plots,
    record,
    saturation,
)
from pqlab.decide.appendix import APPENDIX_FILE, across_processes
from pqlab.decide.decision import CONTEXTS, Context, Decision, decide, decision_table  # noqa: F401
from pqlab.decide.loadwait import LOAD_TARGET_MS, load_findings  # noqa: F401 - notebook 07's
from pqlab.harness import features
from pqlab.measure import quiet
from pqlab.study import config, store

DEFAULT_REFERENCE_TASKS = config.REFERENCE_TASKS
DEFAULT_REFERENCE_WORKERS = config.REFERENCE_WORKERS
CORRECTNESS_SCENARIO = decision.CORRECTNESS_SCENARIO
FEATURES_FILE = "features.parquet"
BUSY_SHOWN = 2  # busy units named in the record; the rest counted (the budget is 1,500 words)


class BusyRunError(store.StoreError):
    """The run was measured on a busy machine and no override was given."""


def run_features(run: store.Run) -> pd.DataFrame:
    """The features probed for ``run`` (stored beside it on first use, so a later rewrite
    of the ADR reads what the run's code had); a feature added since is probed now, in
    memory, the stored file left as it was."""
    path = run.dir / FEATURES_FILE
    if path.is_file():
        stored = pd.read_parquet(path)
        missing = [f for f in features.FEATURES if f not in stored.columns]
        if not missing:
            return stored
        probed = features.features_frame(list(stored["queue"]))  # a feature added since
        return stored.merge(probed[["queue", *missing]], on="queue", how="left")
    frame = features.features_frame()
    store.write_parquet(path, frame)
    return frame


def decide_run(run: store.Run, reference: tuple[int, int] = (DEFAULT_REFERENCE_TASKS,
                                                             DEFAULT_REFERENCE_WORKERS)
               ) -> list[Decision]:
    """``decision.decide`` on a stored run's frames."""
    summary = run.summary()
    if summary.empty:
        raise store.StoreError(f"run {run.run_id!r} has no measurements")
    return decide(summary, idle=run.idle(), features=run_features(run), reference=reference)


# -- the quiet-machine check ---------------------------------------------------------------


def busy_cells(summary: pd.DataFrame) -> pd.DataFrame | None:
    """The units measured on a busy machine (``measure.quiet``); None if the run lacks the check."""
    if "busy" not in summary.columns:
        return None
    return quiet.busy_cells(summary)


def gated_scenarios() -> set[str]:
    """The scenarios the decision rule reads: each context's, and the ordering check."""
    return {c.scenario for c in CONTEXTS} | {CORRECTNESS_SCENARIO}


def decisive_busy(busy: pd.DataFrame) -> pd.DataFrame:
    """The busy units in a scenario the rule reads: the ones that could change a decision."""
    return busy[busy["scenario"].isin(gated_scenarios())]


def _unit_text(r: pd.Series) -> str:
    return (f"{r['queue']} [{r['scenario']}] {int(r['tasks']):,} tasks, "
            f"{int(r['producers'])} workers, rep {int(r['repetition'])}")


def check_quiet(summary: pd.DataFrame, run_id: str, allow_busy: bool) -> pd.DataFrame | None:
    """Refuse a run with a busy unit that could change a decision, unless ``allow_busy``.

    A sweep measures a busy unit again before it gives up (``study.sweep``),
    so a unit still busy here stayed busy. One in a scenario no gate reads
    (``gated_scenarios``) cannot change a decision: the record is written
    and names it. Returns the busy units (None: the run predates the check).
    """
    busy = busy_cells(summary)
    if busy is None or busy.empty or allow_busy:
        return busy
    decisive = decisive_busy(busy)
    if not decisive.empty:
        contexts = sorted({c.name for c in CONTEXTS if c.scenario in set(decisive["scenario"])})
        named = "; ".join(_unit_text(r) for _, r in decisive.head(3).iterrows())
        more = f" and {len(decisive) - 3} more" if len(decisive) > 3 else ""
        units = "1 unit" if len(decisive) == 1 else f"{len(decisive)} units"
        raise BusyRunError(
            f"run {run_id!r}: {units} stayed busy after being measured again and could change "
            f"the decision for {', '.join(contexts) or 'the ordering check'}: {named}{more} "
            f"({decisive.iloc[0]['why']}); rerun on a quiet machine or pass --allow-busy")
    return busy


def _quiet_lines(busy: pd.DataFrame | None, units: int, allow_busy: bool) -> list[str]:
    if busy is None:
        return ["Quiet-machine check: not recorded by this run (it predates the check)."]
    if busy.empty:
        return [f"Quiet-machine check: all {units:,} units ran on a quiet machine "
                "(`pqlab.measure.quiet`)."]
    cells = "; ".join(f"`{r['queue']}` [{r['scenario']}] {int(r['tasks']):,}×"
                      f"{int(r['producers'])} rep {int(r['repetition'])}: {r['why']}"
                      for _, r in busy.head(BUSY_SHOWN).iterrows())
    more = f" (and {len(busy) - BUSY_SHOWN} more)" if len(busy) > BUSY_SHOWN else ""
    if not allow_busy:  # check_quiet let it through: none can change a decision
        return [f"Quiet-machine check: {len(busy)} of {units:,} units stayed busy after being "
                f"measured again ({quiet.RULE_TEXT}), none in a scenario the rule reads "
                f"({', '.join(sorted(gated_scenarios()))}), so none can change a decision: "
                f"{cells}{more}."]
    return [f"**Warning: decided with `--allow-busy`.** {len(busy)} of {units:,} units were "
            f"measured on a busy machine ({quiet.RULE_TEXT}): {cells}{more}."]


def _machine_line(run: store.Run) -> str:
    machine, manifest = run.machine(), run.manifest()
    dirty = " (uncommitted changes)" if machine.get("git_dirty") else ""
    return (f"Measured on {machine.get('machine')}, "
            f"{machine.get('os_distribution') or machine.get('os')}, kernel "
            f"{machine.get('kernel')}, Python {machine.get('python_version')} "
            f"({machine.get('python_implementation')}, GIL "
            f"{'on' if machine.get('gil_enabled') else 'off'}), pqlab "
            f"{machine.get('packages', {}).get('pqlab')}, commit "
            f"`{(machine.get('git_commit') or 'unknown')[:12]}`{dirty}, started "
            f"{manifest.get('created_utc')}.")


def _status(run: store.Run, allow_busy: bool) -> str:
    created = str(run.manifest().get("created_utc") or "")[:10] or "undated"
    command = f"python -m pqlab adr --run {run.run_id}" + (" --allow-busy" if allow_busy else "")
    return (f"Status: proposed · {created} · run `{run.run_id}` (`{command}`) · every table "
            f"in [{APPENDIX_FILE}]({APPENDIX_FILE})")


def _processes_text(processes: pd.DataFrame, redis: pd.DataFrame) -> str:
    if processes.empty and redis.empty:
        return ""
    if processes.empty:
        return "`redis` (notebook 06's overload runs; its throughput was not measured here)."
    rates = ", ".join(f"`{r['queue']}` {r['throughput_median']:,.0f} ops/s "
                      f"({appendix.median_of(int(r['cell_runs']))})"
                      for _, r in processes.iterrows())
    return (f"{rates} with {processes.iloc[0]['workers']} producer and consumer processes; "
            "only `redis` spans nodes, and it enforces the policy in the server.")


def _figure_block(figures: list, start: int, section: str,
                  links: dict[str, str]) -> tuple[list[str], int]:
    out, number = [], start
    for f in figures:
        if f.section == section:
            out += captions.markdown(f, number, links[f.stem])
            number += 1
    return out, number


def _cite(lines: list[str], figures: list, section: str, start: int) -> list[str]:
    """The section's first claim cites the figure that shows it."""
    numbers = [start + i for i, f in enumerate(x for x in figures if x.section == section)]
    if not lines or not numbers:
        return lines
    cite = ", ".join(f"figure {n}" for n in numbers)
    return [lines[0].rstrip(".") + f" ({cite}).", *lines[1:]]


def render(run: store.Run, decisions: list[Decision], figure_links: list[tuple[str, str]],
           reference: tuple[int, int], processes: pd.DataFrame | None = None,
           busy: pd.DataFrame | None = None, allow_busy: bool = False) -> str:
    """The record's Markdown text; ``figure_links``: (stem, link) of the run's figures."""
    del reference  # the appendix states the reference cell
    summary, machine = run.summary(), run.machine()
    frames = {name: run.frame(name) for name in ("load", "load-aging", "overload",
                                                 "overload-redis", "failover",
                                                 endtoend.FRAME)}
    links = dict(figure_links)
    figures = captions.embedded(decisions, summary, frames, lambda stem: stem in links)
    label, spec = saturation.chosen_policy(frames["overload"])
    processes = processes if processes is not None else pd.DataFrame()
    primary = record.primary(decisions)
    sections = []
    number = 1
    evidence = [
        ("end to end", "### End to end", endtoend.answer(frames[endtoend.FRAME])),
        ("gates", "### The gates", [*record.gates_table(primary, run_features(run)), "",
                                    *record.gates_text(decisions)]),
        ("load", "### Waiting under load",
         loadwait.record_claims(frames["load"], frames["load-aging"])),
        ("overload", "### Past saturation", saturation.record_claims(frames["overload"])),
        ("threads", "### If workers become threads", _threads_lines(summary)),
    ]
    for section, heading, lines in evidence:
        if not lines:
            continue
        cited = _cite([x for x in lines if x.startswith("- ")], figures, section, number) \
            if section != "gates" else lines
        if section == "gates":
            bullets = [x for x in lines if x.startswith("- ")]
            cited = [x for x in lines if not x.startswith("- ")] + _cite(bullets, figures,
                                                                          section, number)
        block, number = _figure_block(figures, number, section, links)
        sections += [heading, "", *cited, "", *block]
    return "\n".join([
        "# ADR 0001: The request queue of ModelMora's scheduler",
        "",
        _status(run, allow_busy),
        "",
        *record.answer(decisions, label,
                       saturation.policy_summary(spec) if spec else "",
                       _processes_text(processes, frames["overload-redis"])),
        "## Evidence",
        "",
        *sections,
        *record.python_313(decisions, str(machine.get("python_version"))),
        *adoption.section(primary.choice, label, spec),
        *record.risks(decisions, frames["overload-redis"], frames["failover"], machine,
                      not frames[endtoend.FRAME].empty),
        *record.revisit(decisions, frames["load"]),
        "## Measured on",
        "",
        _machine_line(run),
        "",
        *_quiet_lines(busy, len(summary), allow_busy),
        "",
    ])


def _threads_lines(summary: pd.DataFrame) -> list[str]:
    found = captions.loop_lag(summary)
    if found is None:
        return []
    text, best = found
    del text  # the figure's caption gives the numbers
    return [f"- With handlers on the loop and workers in threads (scenario `mixed`), `{best}` "
            "keeps the event loop most responsive."]


def figure_links(figures_dir: Path, adr_dir: Path) -> list[tuple[str, str]]:
    """(stem, link relative to ``adr_dir``, the record's folder) of the run's SVG figures."""
    return [(p.stem, os.path.relpath(p, adr_dir).replace(os.sep, "/"))
            for p in sorted(Path(figures_dir).glob("*.svg"))]


def cost_frame(decisions: list[Decision]) -> pd.DataFrame:
    """Per context and queue: CPU µs per task and idle burn (the ``cpu-cost`` figure's input)."""
    table = decision_table(decisions)
    if table.empty:
        return pd.DataFrame(columns=["context", "queue", "cpu_us_per_task", "idle_cores"])
    return table[["context", "queue", "cpu_us_per_task", "idle_cores"]].copy()


def _redraw_depth(run: store.Run, figures_dir: Path) -> None:
    """Notebook 08's depth figure again, with the policy's limits drawn (the record reads
    it beside the policy)."""
    depth = run.frame("overload-depth")
    if depth.empty:
        return
    _, spec = saturation.chosen_policy(run.frame("overload"))
    overloadplots.overload_depth(depth, limits=saturation.level_limits(spec),
                                 out_dir=figures_dir)


def write_adr(run_id: str | None = None, paths: config.Paths | None = None, *,
              publish: bool = False, reference_tasks: int = DEFAULT_REFERENCE_TASKS,
              reference_workers: int = DEFAULT_REFERENCE_WORKERS,
              allow_busy: bool = False, draw: bool = True) -> Path:
    """Write the record for ``run_id`` (default: the latest run) and its appendix into its
    run folder.

    The run's copies are ``data/<run-id>/adr.md`` and ``appendix.md``; with
    ``publish`` both are also written to ``docs/adr/`` (``0001-request-queue.md``
    and ``appendix.md``), the committed ones. Each copy links the figures
    relative to its own folder. Returns the published record if ``publish``,
    else the run's copy. Also draws the decision's gates, CPU cost and queue-depth
    figures into ``figures/<run-id>/`` (``draw=False``: the record links the
    figures already there, drawn by the batch, and draws none). Raises
    ``store.StoreError`` for a run that is missing or holds no measurements,
    and ``BusyRunError`` when the run was measured on a busy machine and
    ``allow_busy`` is false.
    """
    paths = paths or config.paths()
    run_id = run_id or store.latest_run(paths.data)
    run = store.Run.open(paths.data, run_id)
    summary = run.summary()
    if summary.empty:
        raise store.StoreError(f"run {run_id!r} has no measurements")
    busy = check_quiet(summary, run_id, allow_busy)
    reference = (reference_tasks, reference_workers)
    decisions = decide_run(run, reference)
    figures_dir = paths.figures_dir(run_id)
    if draw:
        plots.decision_overview(decision_table(decisions), out_dir=figures_dir)
        plots.cpu_cost(cost_frame(decisions), out_dir=figures_dir)
        _redraw_depth(run, figures_dir)
    processes = across_processes(summary, reference_tasks, reference_workers)
    destinations = [paths.run_adr_file(run_id)] + ([paths.adr_file] if publish else [])
    for path in destinations:
        links = figure_links(figures_dir, path.parent)
        store.write_text(path, render(run, decisions, links, reference, processes, busy,
                                      allow_busy))
        store.write_text(path.parent / APPENDIX_FILE, appendix.render(
            run, decisions, [(s.replace("-", " "), link) for s, link in links], reference,
            run_features(run), processes))
    return destinations[-1]


# -- comparing the decisions of two runs -------------------------------------------------


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
                 reference: tuple[int, int] = (DEFAULT_REFERENCE_TASKS,
                                               DEFAULT_REFERENCE_WORKERS)) -> DecisionDiff:
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
