"""Derived frames the notebooks, the figures and the decision record share.

Everything here takes the stored frames (``summary``, ``samples``) and
returns small tidy frames; nothing measures and nothing plots. Repetitions
are summarised by their median with the min–max spread.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from pqlab.core.task import Priority
from pqlab.measure import levels, significance
from pqlab.measure.metrics import WAIT_PERCENTILES
from pqlab.study import frames

# Verdict bands of docs/design.md (the POC's interpretation guide).
THROUGHPUT_BANDS = ((200_000, "Excellent"), (100_000, "Good"), (50_000, "Acceptable"),
                    (0, "Moderate"))
LATENCY_BANDS = ((5, "Excellent"), (10, "Good"), (50, "Acceptable"), (math.inf, "Moderate"))
# Success criteria: throughput > 100,000 ops/s, average latency < 10 µs, 0 violations.
MIN_THROUGHPUT_OPS_S = 100_000
MAX_LATENCY_US = 10.0
MAX_VIOLATIONS = 0
# Quantiles behind an ECDF figure: dense in the body, log-spaced into the tail.
ECDF_QUANTILES = np.unique(np.r_[np.linspace(0.0, 0.99, 100), 1 - np.logspace(-2, -4, 25), 1.0])


def throughput_verdict(ops_s: float) -> str:
    return next(label for floor, label in THROUGHPUT_BANDS if ops_s > floor) \
        if ops_s == ops_s else "n/a"


def latency_verdict(us: float) -> str:
    return next(label for ceiling, label in LATENCY_BANDS if us < ceiling) if us == us else "n/a"


def violations_verdict(count: int) -> str:
    return "PASS" if count == 0 else "CAUTION" if count <= 10 else "FAIL"


def _cell_cols(df: pd.DataFrame) -> list[str]:
    extra = [c for c in ("run_id", "machine", "machine_id") if c in df.columns]
    return extra + frames.CELL


def cell_stats(summary: pd.DataFrame, value: str) -> pd.DataFrame:
    """Per cell: median, min and max of ``value`` over repetitions, and how many there were."""
    grouped = summary.groupby(_cell_cols(summary), observed=True)[value]
    out = grouped.agg(median="median", low="min", high="max", repetitions="count")
    return out.reset_index()


def metric_long(summary: pd.DataFrame, metrics: dict[str, str]) -> pd.DataFrame:
    """Summary columns as a long frame: one row per run and metric (``metric``, ``value``).

    ``metrics`` maps column names to the labels shown in figures.
    """
    keys = [c for c in [*_cell_cols(summary), "repetition"] if c in summary.columns]
    long = summary[keys + list(metrics)].melt(id_vars=keys, var_name="metric",
                                              value_name="value")
    long["metric"] = pd.Categorical(long["metric"].map(metrics), categories=list(
        dict.fromkeys(metrics.values())))
    return long


def latency_quantiles(samples: pd.DataFrame, scenario: str | None = None) -> pd.DataFrame:
    """ECDF points of enqueue and dequeue latency (µs) per queue and task count."""
    df = samples if scenario is None else samples[samples["scenario"] == scenario]
    rows = []
    for (queue, tasks), part in df.groupby(["queue", "tasks"], observed=True):
        for op in ("enqueue", "dequeue"):
            values = part[f"{op}_ns"].to_numpy() / 1e3
            if len(values) == 0:
                continue
            points = np.quantile(values, ECDF_QUANTILES)
            rows.append(pd.DataFrame({"queue": queue, "tasks": tasks, "operation": op,
                                      "quantile": ECDF_QUANTILES, "latency_us": points,
                                      "samples": len(values)}))
    out = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(
        columns=["queue", "tasks", "operation", "quantile", "latency_us", "samples"])
    return frames.categorize(out)


def wait_by_priority(summary: pd.DataFrame, scenario: str) -> pd.DataFrame:
    """Median over repetitions of the wait p50 and p99 (µs) per priority, per cell."""
    df = summary[summary["scenario"] == scenario]
    keys = [*_cell_cols(df), "repetition"]
    per_level = levels.long(df, keys)  # wait_p50_us, wait_p99_us per priority
    per_level["priority"] = per_level["priority"].astype(str)
    cols = {"wait_" + p + "_us": p for p in WAIT_PERCENTILES if "wait_" + p + "_us" in per_level}
    long = per_level[[*keys, "priority", *cols]].rename(columns=cols).melt(
        id_vars=[*keys, "priority"], var_name="percentile", value_name="wait_us")
    group = [*_cell_cols(df), "priority", "percentile"]
    out = long.groupby(group, observed=True)["wait_us"].median().reset_index()

    out["priority"] = pd.Categorical(out["priority"], categories=[p.name for p in Priority])
    return out


def correctness_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Per queue and scenario: runs, violations, lost, duplicated, errors (sums), verdict."""
    counts = ["violations", "lost", "duplicated", "errors"]
    out = summary.groupby(["queue", "scenario"], observed=True).agg(
        runs=("repetition", "count"), **{c: (c, "sum") for c in counts}).reset_index()
    out["verdict"] = [
        violations_verdict(v) if lost + dup + err == 0 else "FAIL"
        for v, lost, dup, err in out[counts].itertuples(index=False)]
    return out


def nearest(values: list[int], target: int) -> int:
    """The value closest to ``target`` on a log scale (ties: the smaller)."""
    return min(sorted(values), key=lambda v: abs(math.log(v) - math.log(target)))


def reference_cell(summary: pd.DataFrame, scenario: str, tasks: int, workers: int
                   ) -> tuple[int, int]:
    """The (tasks, workers) of ``scenario`` in ``summary`` closest to the ones asked for."""
    df = summary[summary["scenario"] == scenario]
    if df.empty:
        raise ValueError(f"no runs of scenario {scenario!r}")
    ref_tasks = nearest(df["tasks"].unique().tolist(), tasks)
    df = df[df["tasks"] == ref_tasks]
    return ref_tasks, nearest(df["producers"].unique().tolist(), workers)


def baseline_queue(summary: pd.DataFrame, scenario: str) -> str:
    """The first registered queue that ran ``scenario`` in every run of ``summary``."""
    df = summary[summary["scenario"] == scenario]
    runs = df["run_id"].nunique() if "run_id" in df.columns else 1
    per_queue = df.groupby("queue", observed=True)["run_id"].nunique() \
        if "run_id" in df.columns else df.groupby("queue", observed=True).size().clip(upper=1)
    everywhere = [str(q) for q, n in per_queue.items() if n == runs]
    if not everywhere:
        raise ValueError(f"no queue ran scenario {scenario!r} in every run")
    order = list(df["queue"].cat.categories) if hasattr(df["queue"], "cat") else sorted(
        everywhere)
    return next(q for q in order if q in everywhere)


def _repetitions(summary: pd.DataFrame, value: str) -> dict[tuple, list[float]]:
    """Per cell (keyed as ``_cell_cols``): the finite ``value`` of each repetition."""
    grouped = summary.groupby(_cell_cols(summary), observed=True)[value]
    return {key: [v for v in part.tolist() if math.isfinite(v)] for key, part in grouped}


def _separation(values: list[float], baseline_values: list[float]) -> str:
    return "different" if significance.compare(values, baseline_values).different else "tie"


def ratios_to_baseline(summary: pd.DataFrame, baseline: str = "",
                       value: str = "throughput_ops_s") -> pd.DataFrame:
    """Per run and cell: median ``value`` of each queue / that of the baseline queue.

    The baseline is ``baseline`` or, per scenario, the first registered queue
    that ran it in every run. Ratios compare queues within one machine, so
    machines with different absolute speeds can be compared. ``vs_baseline``
    says whether the queue's repetitions differ from the baseline's in the same
    run and cell (``significance.compare``): "different", else "tie".
    """
    stats = cell_stats(summary, value)
    repetitions = _repetitions(summary, value)
    cols = _cell_cols(stats)
    parts = []
    for scenario, part in stats.groupby("scenario", observed=True):
        base = baseline or baseline_queue(summary, str(scenario))
        keys = [c for c in cols if c != "queue"]
        ref = part[part["queue"] == base][keys + ["median"]].rename(
            columns={"median": "baseline_median"})
        if ref.empty:
            continue
        merged = part.merge(ref, on=keys, how="inner")
        merged["baseline"] = base
        merged["ratio"] = merged["median"] / merged["baseline_median"]
        at = cols.index("queue")
        merged["vs_baseline"] = [
            _separation(repetitions[cell], repetitions[(*cell[:at], base, *cell[at + 1:])])
            for cell in merged[cols].itertuples(index=False, name=None)]
        parts.append(merged)
    if not parts:
        raise ValueError(f"the baseline queue {baseline!r} ran in no scenario of these runs")
    return frames.categorize(pd.concat(parts, ignore_index=True))


# Notebook 06: process-safe queues across processes, in-process queues beside them for scale.
PROCESS_SCENARIO = "processes"
SCALE_SCENARIO = "threads"


def _across_processes(summary: pd.DataFrame) -> pd.DataFrame:
    return summary[summary["scenario"].isin([PROCESS_SCENARIO, SCALE_SCENARIO])]


def series_label(queue: str, scenario: str) -> str:
    """How a figure names a queue in a scenario: ``redis (processes)``."""
    return f"{queue} ({scenario})"


def across_processes(summary: pd.DataFrame, value: str) -> pd.DataFrame:
    """``cell_stats`` of ``value`` in scenarios ``processes`` and ``threads``, labelled.

    ``series`` names each line of a figure (``series_label``); ``producers`` is
    the number of producer processes (threads) and equally of consumers.
    """
    df = _across_processes(summary)
    if df.empty:
        return pd.DataFrame(columns=[*frames.CELL, "series", "median", "low", "high",
                                     "repetitions"])
    out = cell_stats(df, value)
    out["series"] = [series_label(q, s) for q, s in zip(out["queue"], out["scenario"],
                                                        strict=True)]
    return out


def scaling_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Per queue, scenario (``processes``, ``threads``), task and worker count: median
    throughput and p99 latencies over repetitions, and the violations, lost, duplicated
    tasks and errors summed over them (all 0 for a queue that keeps order and loses
    nothing)."""
    counts = ["violations", "lost", "duplicated", "errors"]
    df = _across_processes(summary)
    keys = ["queue", "scenario", "tasks", "producers"]
    out = df.groupby(keys, observed=True).agg(
        runs=("repetition", "count"),
        throughput_ops_s=("throughput_ops_s", "median"),
        enqueue_p99_us=("enqueue_p99_us", "median"),
        dequeue_p99_us=("dequeue_p99_us", "median"),
        **{c: (c, "sum") for c in counts}).reset_index()
    return out.rename(columns={"producers": "workers"})
