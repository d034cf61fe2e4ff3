"""``python -m pqlab batch``: execute the notebooks with papermill, in order, into one run.

The plan is ``pqlab.studies.plan()`` (every study's notebook, then 05 and 00)
with the parameters of a named profile, or a YAML file (``-f``) that starts
from a profile and overrides parameters::

    profile: quick            # the base profile (default: default)
    timeout_s: 600            # per-cell execution timeout
    remeasure_tries: 2        # how often a unit measured on a busy machine is measured again
                              # (default: 0 in the quick profile, 2 in the others)
    notebooks:                # parameters per notebook (names as in the notebook)
      01-single-baseline: {TASK_COUNTS: [1000, 5000], REPETITIONS: 2}

The whole plan is checked before anything is written: a malformed file, an
unknown key, notebook or parameter, or a bad value is one error line.
Every notebook gets the batch's ``RUN_ID`` and ``OUTPUT_DIR``; executed
copies go to ``data/<run-id>/notebooks/``, the decision record to
``data/<run-id>/adr.md`` (``docs/adr/`` only with ``publish_adr``). The kernel
is a kernelspec that runs this very interpreter with this pqlab first on
``PYTHONPATH``. While a notebook runs, its sweeps' progress is printed
(``pqlab.study.progress``): units done of total and the time left.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pqlab import studies
from pqlab.measure import quiet
from pqlab.record.adr import write_adr
from pqlab.study import config, params, store
from pqlab.study.progress import PRINT_EVERY_S, watching
from pqlab.study.sweep import ENV_REMEASURE, REMEASURE_TRIES

RESERVED = ("RUN_ID", "OUTPUT_DIR")  # set by the batch itself
PLAN_KEYS = ("profile", "timeout_s", "remeasure_tries", "notebooks")


class PlanError(ValueError):
    """A profile or parameter file the batch cannot use; the message is one line."""


class BatchError(RuntimeError):
    """A notebook failed; the message names the notebook, the cell and the error."""


@dataclass
class Plan:
    """What the batch will execute: notebooks in order with their parameters."""

    source: str  # "profile quick" or the YAML file
    profile: str
    timeout_s: int
    notebooks: list[tuple[config.NotebookSpec, dict[str, Any]]]
    remeasure_tries: int = REMEASURE_TRIES  # per sweep, for units measured on a busy machine


@dataclass
class BatchResult:
    run: store.Run
    paths: config.Paths
    executed: list[Path] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    published_adr: Path | None = None  # docs/adr/... when the batch was asked to publish


def notebook_parameters(spec: config.NotebookSpec) -> list[str]:
    """The names in a notebook's ``parameters`` cell."""
    import papermill  # here, not at the top: ~1 s of start-up that a bad plan need not pay

    return list(papermill.inspect_notebook(str(spec.source)))


def _check_parameters(spec: config.NotebookSpec, values: dict[str, Any], where: str) -> None:
    known = notebook_parameters(spec)
    for name, value in values.items():
        if name in RESERVED:
            raise PlanError(f"{where}: {name} is set by the batch (use --run-id / --output)")
        if name not in known:
            raise PlanError(f"{where}: unknown parameter {name!r} for {spec.name}; "
                            f"known: {', '.join(n for n in known if n not in RESERVED)}")
        try:
            spec.checks[name](name, value) if name in spec.checks else params.check(name, value)
        except params.ParameterError as exc:
            raise PlanError(f"{where}: {spec.name}: {exc}") from None


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise PlanError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise PlanError(f"{path}: not valid YAML{at}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise PlanError(f"{path}: expected a mapping with keys {', '.join(PLAN_KEYS)}, "
                        f"got {type(data).__name__}")
    return data


def load_plan(profile: str | None = None, param_file: Path | None = None) -> Plan:
    """The checked plan of a profile, or of a YAML file; ``PlanError`` on any problem."""
    overrides: dict[str, Any] = {}
    timeout = None
    tries = None
    where = f"profile {profile or 'default'}"
    if param_file is not None:
        data = _read_yaml(param_file)
        where = str(param_file)
        unknown = [k for k in data if k not in PLAN_KEYS]
        if unknown:
            raise PlanError(f"{where}: unknown key {unknown[0]!r}; allowed: "
                            f"{', '.join(PLAN_KEYS)}")
        if profile and data.get("profile", profile) != profile:
            raise PlanError(f"{where}: profile {data['profile']!r} differs from --profile "
                            f"{profile!r}")
        profile = data.get("profile", profile)
        timeout = data.get("timeout_s")
        tries = data.get("remeasure_tries")
        if tries is not None and (isinstance(tries, bool) or not isinstance(tries, int)
                                  or tries < 0):
            raise PlanError(f"{where}: remeasure_tries must be a whole number >= 0, "
                            f"got {tries!r}")
        overrides = data.get("notebooks") or {}
        if not isinstance(overrides, dict):
            raise PlanError(f"{where}: 'notebooks' must map notebook names to parameters")
    profile = profile or "default"
    if profile not in config.PROFILES:
        raise PlanError(f"{where}: unknown profile {profile!r}; allowed: "
                        f"{', '.join(config.PROFILES)}")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int)
                                or timeout <= 0):
        raise PlanError(f"{where}: timeout_s must be a positive integer, got {timeout!r}")
    named = {}
    for name, values in overrides.items():
        try:
            named[studies.notebook(str(name)).name] = values
        except KeyError as exc:
            raise PlanError(f"{where}: {exc.args[0]}") from None
        if not isinstance(values, dict):
            raise PlanError(f"{where}: parameters of {name} must be a mapping, got {values!r}")
    notebooks = []
    for spec in studies.plan():
        values = spec.parameters(profile)
        values.update(named.get(spec.name, {}))
        _check_parameters(spec, values, where)
        notebooks.append((spec, values))
    if tries is None:
        tries = config.REMEASURE_TRIES[profile]
    return Plan(where, profile, timeout or config.TIMEOUT_S[profile], notebooks, tries)


@contextlib.contextmanager
def project_kernel() -> Iterator[str]:
    """A kernelspec named ``config.KERNEL_NAME`` that runs this interpreter, for the batch.

    Written to a temporary directory placed first on ``JUPYTER_PATH``, so it
    wins over any other kernel of that name and needs no install step.
    """
    saved = os.environ.get("JUPYTER_PATH")
    with tempfile.TemporaryDirectory(prefix="pqlab-kernel-") as tmp:
        spec_dir = Path(tmp) / "kernels" / config.KERNEL_NAME
        spec_dir.mkdir(parents=True)
        (spec_dir / "kernel.json").write_text(json.dumps({
            # The kernel's own log is noise here: a warning at start (plain TCP on
            # localhost) and "KeyboardInterrupt caught" at shutdown (jupyter_client
            # sends SIGINT before every shutdown). Errors in cells reach the batch
            # through papermill.
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}",
                     "--IPKernelApp.log_level=CRITICAL"],
            "display_name": config.KERNEL_DISPLAY_NAME, "language": "python",
            "env": {"PYTHONPATH": config.package_pythonpath()}}))
        os.environ["JUPYTER_PATH"] = os.pathsep.join(p for p in (tmp, saved) if p)
        try:
            yield config.KERNEL_NAME
        finally:
            if saved is None:
                os.environ.pop("JUPYTER_PATH", None)
            else:
                os.environ["JUPYTER_PATH"] = saved


def _failure(spec: config.NotebookSpec, exc: Exception, executed: Path) -> BatchError:
    from papermill.exceptions import PapermillExecutionError  # start-up time, as above

    if isinstance(exc, PapermillExecutionError):
        first = (exc.source or "").strip().splitlines()
        code = f" ({first[0][:60]})" if first else ""
        return BatchError(f"{spec.filename} failed in cell In [{exc.exec_count}]{code}: "
                          f"{exc.ename}: {exc.evalue}; executed copy: {executed}")
    return BatchError(f"{spec.filename} failed: {type(exc).__name__}: {exc}; "
                      f"executed copy: {executed}")


@contextlib.contextmanager
def _environment(name: str, value: str) -> Iterator[None]:
    """``os.environ[name] = value`` inside the block (the notebooks' kernels inherit it)."""
    saved = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved


def run_batch(plan: Plan, output: Path | None = None, *, run_id: str | None = None,
              resume: bool = False, kernel: str | None = None, progress: bool = False,
              publish_adr: bool = False, progress_every_s: float = PRINT_EVERY_S,
              echo: Callable[[str], None] = print) -> BatchResult:
    """Execute the plan into one run; ``BatchError`` stops at the first failing notebook.

    ``progress`` shows papermill's cell bar; the sweeps' units are printed
    through ``echo`` at most every ``progress_every_s``. ``publish_adr`` writes
    the run's decision record to ``docs/adr/`` too, once every notebook ran.
    """
    import papermill  # start-up time, as above

    paths = config.paths(output)
    run = store.Run.create(paths.data, run_id, exist_ok=resume, profile=plan.profile,
                           plan=plan.source)
    result = BatchResult(run, paths)
    echo(f"pqlab batch: {plan.source}, run {run.run_id}, {len(plan.notebooks)} notebooks")
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        kernel = kernel or stack.enter_context(project_kernel())
        stack.enter_context(_environment(ENV_REMEASURE, str(plan.remeasure_tries)))
        for i, (spec, values) in enumerate(plan.notebooks, 1):
            reason = spec.skip_reason() if spec.skip_reason else None
            if reason:
                result.skipped.append((spec.name, reason))
                echo(f"  [{i}/{len(plan.notebooks)}] {spec.filename}: skipped: {reason}")
                continue
            executed = paths.executed_dir(run.run_id) / spec.filename
            executed.parent.mkdir(parents=True, exist_ok=True)
            t0 = time.perf_counter()
            try:
                with watching(spec.name, echo, every_s=progress_every_s):
                    papermill.execute_notebook(
                        str(spec.source), str(executed),
                        parameters={**values, "RUN_ID": run.run_id,
                                    "OUTPUT_DIR": str(paths.root)},
                        kernel_name=kernel, progress_bar=progress, log_output=False,
                        execution_timeout=plan.timeout_s, cwd=str(config.NOTEBOOKS_DIR))
            except Exception as exc:  # noqa: BLE001 - reported as one line naming the cell
                raise _failure(spec, exc, executed) from None
            result.seconds[spec.name] = round(time.perf_counter() - t0, 1)
            result.executed.append(executed)
            echo(f"  [{i}/{len(plan.notebooks)}] {spec.filename}: done in "
                 f"{result.seconds[spec.name]:.0f} s")
    if publish_adr:
        result.published_adr = _publish_adr(plan, run.run_id, paths)
    total = round(time.perf_counter() - started, 1)
    run.update_manifest(batch={"profile": plan.profile, "plan": plan.source,
                               "seconds": total, "notebook_seconds": result.seconds,
                               "skipped": dict(result.skipped)})
    for line in where_lines(result, total):
        echo(line)
    for line in busy_warnings(run):
        print(line, file=sys.stderr)
    return result


def busy_warnings(run: store.Run) -> list[str]:
    """Lines naming the run's units measured on a busy machine (``measure.quiet``); [] if none."""
    return quiet.warning_lines(run.summary())


def _publish_adr(plan: Plan, run_id: str, paths: config.Paths) -> Path:
    """Write the run's ADR to ``docs/adr/`` as well, judged as notebook 00 was."""
    decision = dict((spec.name, values) for spec, values in plan.notebooks).get("00-decision", {})
    return write_adr(run_id, paths, publish=True,
                     reference_tasks=decision.get("REFERENCE_TASKS", config.REFERENCE_TASKS),
                     reference_workers=decision.get("REFERENCE_WORKERS",
                                                    config.REFERENCE_WORKERS),
                     allow_busy=decision.get("ALLOW_BUSY", False))


def _adr_line(result: BatchResult) -> str:
    adr = result.paths.run_adr_file(result.run.run_id)
    if not adr.is_file():
        busy = busy_warnings(result.run)
        why = (f"not written: units that could change a decision stayed busy after being "
               f"measured again; `python -m pqlab adr --run {result.run.run_id} --allow-busy` "
               "writes it anyway" if busy else "not written")
        return f"  ADR:       {adr} ({why})"
    if result.published_adr is not None:
        return f"  ADR:       {adr}, published to {result.published_adr}"
    return f"  ADR:       {adr} (docs/adr/ unchanged: `make adr` or --publish-adr publishes it)"


def where_lines(result: BatchResult, seconds: float) -> list[str]:
    """The closing report: where data, figures, executed notebooks and the ADR went."""
    run, paths = result.run, result.paths
    figures = paths.figures_dir(run.run_id)
    svgs = len(list(figures.glob("*.svg"))) if figures.is_dir() else 0
    minutes, secs = divmod(round(seconds), 60)
    return [
        f"pqlab batch: done in {minutes} min {secs:02d} s",
        f"  data:      {run.dir}/ (summary.parquet, samples.parquet, machine.json)",
        f"  figures:   {figures}/ ({svgs} figures, SVG + PNG + CSV)",
        f"  notebooks: {paths.executed_dir(run.run_id)}/ ({len(result.executed)} executed"
        + (f", {len(result.skipped)} skipped" if result.skipped else "") + ")",
        _adr_line(result),
    ]
