"""What the notebooks share: versions, opening the run, the decision, the closing record.

Notebooks call these so that they hold no logic of their own: a measuring
notebook opens (or creates) the run named by ``RUN_ID`` under ``OUTPUT_DIR``
and sweeps its grid into it; a reading notebook opens ``RUN_ID`` or the
latest run; every notebook ends with ``produced(...)``.
"""

from __future__ import annotations

import importlib.metadata
import platform
from pathlib import Path
from types import SimpleNamespace

import pandas as pd

from pqlab.decide import decision, overloadplots, plots, saturation
from pqlab.harness import features
from pqlab.measure import quiet
from pqlab.record import adr
from pqlab.study import config, store

VERSION_PACKAGES = ("pqlab", "numpy", "pandas", "pyarrow", "matplotlib", "seaborn", "papermill")


def versions() -> dict[str, str]:
    """Python and the versions of the packages a notebook's numbers depend on."""
    out = {"python": f"{platform.python_implementation()} {platform.python_version()}"}
    for name in VERSION_PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def print_versions() -> None:
    for name, version in versions().items():
        print(f"{name:>10}  {version}")


def open_run(p: SimpleNamespace) -> tuple[config.Paths, store.Run]:
    """The run a measuring notebook adds to: ``RUN_ID`` (created if new) or a new one."""
    paths = config.paths(p.OUTPUT_DIR)
    return paths, store.Run.create(paths.data, p.RUN_ID or None, exist_ok=True)


def read_run(p: SimpleNamespace) -> tuple[config.Paths, store.Run]:
    """The run a reading notebook reads: ``RUN_ID``, or the latest run in ``data/``."""
    paths = config.paths(p.OUTPUT_DIR)
    return paths, store.Run.open(paths.data, p.RUN_ID or store.latest_run(paths.data))


def store_features(run: store.Run) -> pd.DataFrame:
    """Probe every in-process queue's features (``pqlab.harness.features``) and store them in
    ``run`` (``features.parquet``), where the record reads them; a run that has them keeps
    them (they describe the code that measured it)."""
    path = run.dir / adr.FEATURES_FILE
    if not path.is_file():
        store.write_parquet(path, features.features_frame())
    return adr.run_features(run)


def decide(p: SimpleNamespace, run: store.Run) -> list:
    """The decision of notebook 00 (``pqlab.decide.decision``), on the run's frames and the
    features it stored (probed now if it has none)."""
    store_features(run)
    return adr.decide_run(run, (p.REFERENCE_TASKS, p.REFERENCE_WORKERS))


def decision_figures(paths: config.Paths, run: store.Run, decisions: list) -> list:
    """Notebook 00's figures, which the record embeds: the gates, the CPU cost, and notebook
    08's depth figure again with the chosen policy's limits drawn."""
    out = paths.figures_dir(run.run_id)
    drawn = [plots.decision_overview(decision.decision_table(decisions), out_dir=out),
             plots.cpu_cost(decision.cost_frame(decisions), out_dir=out)]
    depth = run.frame("overload-depth")
    if not depth.empty:
        _, spec = saturation.chosen_policy(run.frame("overload"))
        drawn.append(overloadplots.overload_depth(depth, limits=saturation.level_limits(spec),
                                                  out_dir=out))
    return drawn


def write_adr(p: SimpleNamespace, paths: config.Paths, run: store.Run) -> Path | None:
    """Write the run's ADR; on a busy run without ``ALLOW_BUSY``, print why and write none."""
    try:
        return adr.write_adr(run.run_id, paths, reference_tasks=p.REFERENCE_TASKS,
                             reference_workers=p.REFERENCE_WORKERS, allow_busy=p.ALLOW_BUSY)
    except adr.BusyRunError as exc:
        print(f"No ADR written: {exc}")
        print("\n".join(quiet.warning_lines(run.summary(), limit=10)))
        return None


def headline(summary: pd.DataFrame, decimals: int | None = 2) -> pd.DataFrame:
    """Per cell, medians over repetitions of the numbers a reader looks at first, rounded to
    ``decimals`` (None: not rounded, for text that formats them itself)."""
    cols = {"throughput_ops_s": "throughput ops/s", "enqueue_mean_us": "mean enqueue µs",
            "enqueue_p99_us": "p99 enqueue µs", "dequeue_mean_us": "mean dequeue µs",
            "dequeue_p99_us": "p99 dequeue µs", "violations": "violations"}
    keys = ["queue", "scenario", "tasks", "producers"]
    out = summary.groupby(keys, observed=True)[list(cols)].median().reset_index()
    out["repetitions"] = summary.groupby(keys, observed=True).size().to_numpy()
    out = out.rename(columns=cols)
    return out if decimals is None else out.round(decimals)


def quiet_check(summary: pd.DataFrame) -> None:
    """Print a warning naming every unit measured on a busy machine, or that all were quiet."""
    lines = quiet.warning_lines(summary, limit=len(summary))
    if lines:
        print("\n".join(lines))
    elif "busy" in summary.columns:
        print(f"quiet machine: none of the {len(summary)} units was measured on a busy one")


def produced(paths: config.Paths, run: store.Run, *extra: Path) -> pd.DataFrame:
    """The files this run holds so far (data, figures, ADR), with their sizes."""
    files = [p for p in sorted(run.dir.glob("*")) if p.is_file()]
    figures = paths.figures_dir(run.run_id)
    files += sorted(figures.glob("*")) if figures.is_dir() else []
    files += [Path(e) for e in extra if Path(e).is_file()]
    return pd.DataFrame({"file": [str(f) for f in files],
                         "kB": [round(f.stat().st_size / 1e3, 1) for f in files]})
