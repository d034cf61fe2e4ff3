"""The decision record ``docs/adr/0001-request-queue.md`` and its appendix, from a stored run.

The record answers first (ModelMora's context, the queue and policy to use
there, the runner-up; one line per other context), then gives the evidence:
the decision's gates and one section per study (``pqlab.studies.STUDIES``,
each study's ``section``, in their ranks' order) with captioned figures,
then what Python 3.13 would change, how to adopt the queue and the risks.
The detailed tables go to ``appendix.md`` beside it (``pqlab.decide.appendix``
and each study's ``appendix``). The rule lives in ``pqlab.decide.decision``.

The record only reads: the run's frames, the features the batch probed
(``features.parquet``, ``store_features``) and the figures the batch drew.
It imports no plotting module and measures nothing, so rendering an old run
again gives the same text. A run measured on a busy machine
(``pqlab.measure.quiet``) is not decided from unless the caller says so
(``allow_busy``); the record then says which cells were busy.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from pqlab import studies
from pqlab.decide import adoption, appendix, captions, decision, record, saturation
from pqlab.decide.appendix import APPENDIX_FILE, across_processes
from pqlab.decide.decision import CONTEXTS, Decision, decide
from pqlab.measure import quiet
from pqlab.studies.base import RunView, Section
from pqlab.studies.endtoend import FRAME as ENDTOEND_FRAME
from pqlab.studies.overload import REDIS_FRAME
from pqlab.studies.processes import FAILOVER_FRAME
from pqlab.study import config, store

DEFAULT_REFERENCE_TASKS = config.REFERENCE_TASKS
DEFAULT_REFERENCE_WORKERS = config.REFERENCE_WORKERS
CORRECTNESS_SCENARIO = decision.CORRECTNESS_SCENARIO
FEATURES_FILE = "features.parquet"
BUSY_SHOWN = 2  # busy units named in the record; the rest counted (the budget is 1,500 words)


class BusyRunError(store.StoreError):
    """The run was measured on a busy machine and no override was given."""


def run_features(run: store.Run) -> pd.DataFrame:
    """The features the batch probed for ``run`` (``features.parquet``); ``StoreError`` when
    the run has none. A feature added to pqlab since is not probed here: the record reads
    it as not measured ("n/a")."""
    path = run.dir / FEATURES_FILE
    if not path.is_file():
        raise store.StoreError(
            f"run {run.run_id!r} has no probed features ({FEATURES_FILE}): notebook 00 "
            "stores them; run `python -m pqlab batch --only 00-decision` on it first")
    return pd.read_parquet(path)


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


def _cite(lines: list[str], first: int, count: int) -> list[str]:
    """A section's lines as printed: its prose (tables) first, then its claims (bullets), the
    first claim citing the section's figures."""
    prose = [x for x in lines if not x.startswith("- ")]
    claims = [x for x in lines if x.startswith("- ")]
    if claims and count:
        cite = ", ".join(f"figure {n}" for n in range(first, first + count))
        claims[0] = claims[0].rstrip(".") + f" ({cite})."
    return prose + claims


def gates_section(view: RunView) -> Section:
    """The decision's own evidence: ModelMora's candidates against every gate."""
    primary = record.primary(view.decisions)
    return Section("### The gates", [*record.gates_table(primary, run_features(view.run)), "",
                                     *record.gates_text(view.decisions)],
                   view.embeddable(captions.gates(primary)), rank=10)


def sections(view: RunView) -> list[Section]:
    """The evidence: the gates and every study's section, in rank order, those with claims."""
    found = [gates_section(view), *(s.section(view) for s in studies.STUDIES)]
    return sorted((s for s in found if s is not None and s.lines), key=lambda s: s.rank)


def evidence(view: RunView, links: dict[str, str]) -> list[str]:
    """The sections' Markdown, figures numbered in order and cited by each first claim."""
    out, number = [], 1
    for s in sections(view):
        out += [s.heading, "", *_cite(s.lines, number, len(s.figures)), ""]
        for f in s.figures:
            out += captions.markdown(f, number, links[f.stem])
            number += 1
    return out


def render(run: store.Run, decisions: list[Decision], figure_links: list[tuple[str, str]],
           processes: pd.DataFrame | None = None, busy: pd.DataFrame | None = None,
           allow_busy: bool = False) -> str:
    """The record's Markdown text; ``figure_links``: (stem, link) of the run's figures."""
    links = dict(figure_links)
    view = RunView(run, decisions, frozenset(links))
    overload, redis = view.frame("overload"), view.frame(REDIS_FRAME)
    label, spec = saturation.chosen_policy(overload)
    processes = processes if processes is not None else pd.DataFrame()
    primary = record.primary(decisions)
    return "\n".join([
        "# ADR 0001: The request queue of ModelMora's scheduler",
        "",
        _status(run, allow_busy),
        "",
        *record.answer(decisions, label,
                       saturation.policy_summary(spec) if spec else "",
                       _processes_text(processes, redis)),
        "## Evidence",
        "",
        *evidence(view, links),
        *record.python_313(decisions, str(run.machine().get("python_version"))),
        *adoption.section(primary.choice, label, spec),
        *record.risks(decisions, redis, view.frame(FAILOVER_FRAME), run.machine(),
                      not view.frame(ENDTOEND_FRAME).empty),
        *record.revisit(decisions, view.frame("load")),
        "## Measured on",
        "",
        _machine_line(run),
        "",
        *_quiet_lines(busy, len(view.summary), allow_busy),
        "",
    ])


def appendix_findings(view: RunView) -> list[str]:
    """Every study's detailed findings for the appendix, in their appendix order."""
    ordered = sorted(studies.STUDIES, key=lambda s: s.appendix_rank)
    return [line for s in ordered for line in (s.appendix(view) or [])]


def figure_links(figures_dir: Path, adr_dir: Path) -> list[tuple[str, str]]:
    """(stem, link relative to ``adr_dir``, the record's folder) of the run's SVG figures."""
    return [(p.stem, os.path.relpath(p, adr_dir).replace(os.sep, "/"))
            for p in sorted(Path(figures_dir).glob("*.svg"))]


def write_adr(run_id: str | None = None, paths: config.Paths | None = None, *,
              publish: bool = False, reference_tasks: int = DEFAULT_REFERENCE_TASKS,
              reference_workers: int = DEFAULT_REFERENCE_WORKERS,
              allow_busy: bool = False) -> Path:
    """Write the record for ``run_id`` (default: the latest run) and its appendix into its
    run folder.

    The run's copies are ``data/<run-id>/adr.md`` and ``appendix.md``; with
    ``publish`` both are also written to ``docs/adr/`` (``0001-request-queue.md``
    and ``appendix.md``), the committed ones. Each copy links the figures
    relative to its own folder. Returns the published record if ``publish``,
    else the run's copy. It links the figures the batch drew into
    ``figures/<run-id>/`` and draws none. Raises
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
    processes = across_processes(summary, reference_tasks, reference_workers)
    destinations = [paths.run_adr_file(run_id)] + ([paths.adr_file] if publish else [])
    for path in destinations:
        links = figure_links(figures_dir, path.parent)
        store.write_text(path, render(run, decisions, links, processes, busy, allow_busy))
        store.write_text(path.parent / APPENDIX_FILE, appendix.render(
            run, decisions, [(s.replace("-", " "), link) for s, link in links], reference,
            run_features(run), processes,
            findings=appendix_findings(RunView(run, decisions, frozenset(dict(links))))))
    return destinations[-1]
