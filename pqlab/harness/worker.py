"""Measure one sweep unit (one cell at one repetition); the part a fresh process runs.

``python -m pqlab.harness.worker SPEC_JSON OUT_PATH`` runs a warm-up, then the
measured run, and pickles ``(summary_row, samples)`` to ``OUT_PATH``; for an
open-loop unit (``{"open": ...}``, ``pqlab.harness.openunit``) the rows of its
study's frames instead (``openunit.measure_open``). Frames of closed-loop units
are built by the parent (``pqlab.study.sweep``).
"""

from __future__ import annotations

import json
import os
import pickle
import sys
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from pqlab.harness.openunit import OpenSpec, measure_open
from pqlab.harness.runner import run
from pqlab.measure import metrics, quiet
from pqlab.measure.records import Records, first_gets
from pqlab.scenarios import DEFAULT_DEADLINE_S

# The warm-up runs the same queue and scenario on this many tasks and is
# thrown away: it pays imports, first allocations and thread/loop start-up.
WARMUP_TASKS = 1_000
# Per-task rows stored per run; larger runs keep a uniform random subset of
# this size (summary statistics always use every task; summary records
# samples_total and samples_stored). About 5.5 bytes a row in Parquet: 5,000
# kept the full profile's ~240 runs near 7 MB with the four stdlib queues; with
# every queue the full profile has ~430 runs, so 2,000 keep it under 20 MB.
SAMPLES_PER_RUN = 2_000


@dataclass(frozen=True)
class UnitFields:
    """One cell of a sweep's grid at one repetition (``pqlab.study.sweep.Unit`` adds its names)."""

    queue: str
    scenario: str
    tasks: int
    producers: int
    consumers: int
    repetition: int


@dataclass(frozen=True)
class UnitSpec(UnitFields):
    """Everything a (possibly fresh) process needs to measure one unit."""

    seed: int
    max_samples: int = SAMPLES_PER_RUN
    deadline_s: float = DEFAULT_DEADLINE_S
    warmup: bool = True

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> UnitSpec:
        return cls(**json.loads(text))


def _thin(n: int, max_samples: int, seed: int) -> np.ndarray:
    """Positions to keep: all of them, or a sorted uniform subset of ``max_samples``."""
    if n <= max_samples:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=max_samples, replace=False))


def task_samples(records: list[Records], max_samples: int, seed: int) -> dict[str, np.ndarray]:
    """One row per dequeued task of each pass: priority, seq and three durations (ns).

    Durations come from the core's definitions: the first get of each task
    (``records.first_gets``) and the time waited (``metrics.wait_ns``).
    Thinned to ``max_samples`` rows in all, shared evenly between passes.
    """
    parts: list[dict[str, np.ndarray]] = []
    share = max(1, max_samples // max(1, len(records)))
    for rec in records:
        idx, get_start, get_end = first_gets(rec)
        priority, wait = metrics.wait_ns(rec)
        keep = _thin(len(idx), share, seed)
        idx = idx[keep]
        parts.append({
            "pass": np.full(len(idx), rec.label or "main", dtype=object),
            "priority": priority[keep].astype(np.int8),
            "seq": rec.seq[idx].astype(np.int64),
            "enqueue_ns": (rec.put_end[idx] - rec.put_start[idx]).astype(np.int64),
            "dequeue_ns": (get_end[keep] - get_start[keep]).astype(np.int64),
            "wait_ns": wait[keep].astype(np.int64),
        })
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]} if parts else {}


def measure(spec: UnitSpec) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Warm up (unless told not to), run the unit, return its summary row and samples.

    The row adds the quiet-machine readings over the measured run
    (``pqlab.measure.quiet.UnitWindow``: ``loadavg_1m``, ``others_cores``,
    ``oncpu_share``) and the verdict on them (``busy``, ``busy_why``).
    """
    kwargs = dict(producers=spec.producers, consumers=spec.consumers, seed=spec.seed,
                  deadline_s=spec.deadline_s)
    if spec.warmup:
        run(spec.queue, spec.scenario, tasks=min(spec.tasks, WARMUP_TASKS), memory=False,
            **kwargs)
    window = quiet.UnitWindow()
    result = run(spec.queue, spec.scenario, tasks=spec.tasks, repetition=spec.repetition,
                 **kwargs)
    in_process = not any(r.cpu_elsewhere for r in result.records)
    row = {**result.to_dict(), **window.close(in_process=in_process)}
    row.update(quiet.judge(row, os.cpu_count() or 1))
    row["error_messages"] = "; ".join(row["error_messages"])
    samples = task_samples(result.records, spec.max_samples, spec.seed)
    row["samples_total"] = int(sum(len(first_gets(r)[0]) for r in result.records))
    row["samples_stored"] = int(len(samples.get("seq", ())))
    return row, samples


def spec_from_json(text: str) -> UnitSpec | OpenSpec:
    """A closed-loop ``UnitSpec`` or, for ``{"open": ...}``, an open-loop ``OpenSpec``."""
    data = json.loads(text)
    return OpenSpec.from_mapping(data["open"]) if "open" in data else UnitSpec(**data)


def main(argv: list[str]) -> int:
    spec_json, out_path = argv
    spec = spec_from_json(spec_json)
    outcome = measure_open(spec) if isinstance(spec, OpenSpec) else measure(spec)
    tmp = f"{out_path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as fh:
        pickle.dump(outcome, fh, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, out_path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
