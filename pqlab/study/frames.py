"""The two tidy frames of a run, typed the same way wherever they are built or loaded.

- ``summary``: one row per run of a queue through a scenario (``RunResult.to_dict()``
  plus the run keys); latencies in µs, throughput in ops/s.
- ``samples``: one row per dequeued task (thinned for large runs; see
  ``samples_stored``/``samples_total`` in ``summary``): priority, seq and
  ``enqueue_ns``, ``dequeue_ns``, ``wait_ns`` as integer nanoseconds.

Names are categoricals whose categories follow the registries' order, so
every table and figure lists queues and scenarios the same way.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from pqlab.queues import QUEUES
from pqlab.scenarios import SCENARIOS

KEYS = ["run_id", "queue", "scenario", "tasks", "producers", "consumers", "repetition"]
CELL = ["queue", "scenario", "tasks", "producers", "consumers"]
UNIT = [*CELL, "repetition"]
INT_COLUMNS = {"tasks": "int64", "producers": "int32", "consumers": "int32",
               "repetition": "int32", "violations": "int64", "lost": "int64",
               "duplicated": "int64", "errors": "int64", "rss_bytes": "int64",
               "samples_total": "int64", "samples_stored": "int64"}
SAMPLE_TYPES = {"priority": "int8", "seq": "int64", "enqueue_ns": "int64",
                "dequeue_ns": "int64", "wait_ns": "int64"}


def _ordered(values: Iterable[Any], registry: Iterable[str]) -> list[str]:
    present = {str(v) for v in values if not pd.isna(v)}
    known = [name for name in registry if name in present]
    return known + sorted(present - set(known))


def categorize(df: pd.DataFrame) -> pd.DataFrame:
    """Names as categoricals: queues and scenarios in registry order, others sorted."""
    order = {"queue": list(QUEUES), "scenario": list(SCENARIOS)}
    for col in ("run_id", "machine", "machine_id", "queue", "scenario", "pass"):
        if col in df.columns:
            cats = _ordered(df[col].unique(), order.get(col, []))
            df[col] = pd.Categorical(df[col].astype(str), categories=cats)
    return df


def typed_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Categoricals for names, integer counts, floats for the rest."""
    df = df.copy()
    for col, dtype in INT_COLUMNS.items():
        if col in df.columns:
            df[col] = df[col].fillna(0).astype(dtype)
    if "seed" in df.columns:
        df["seed"] = df["seed"].astype("int64")
    return categorize(df)


def typed_samples(df: pd.DataFrame) -> pd.DataFrame:
    """Integer nanoseconds, small integers for keys, categoricals for names."""
    df = df.copy()
    for col, dtype in {**INT_COLUMNS, **SAMPLE_TYPES}.items():
        if col in df.columns:
            df[col] = df[col].astype(dtype)
    return categorize(df)


def summary_rows(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """A typed ``summary`` frame from row dicts, keys first."""
    df = pd.DataFrame(rows)
    first = [c for c in KEYS if c in df.columns]
    return typed_summary(df[first + [c for c in df.columns if c not in first]])


def samples_rows(keys: dict[str, Any], samples: dict[str, np.ndarray]) -> pd.DataFrame:
    """A typed ``samples`` frame: the run keys repeated on every per-task row."""
    n = len(samples.get("seq", ()))
    data = {k: np.repeat(np.asarray([v]), n) for k, v in keys.items()}
    data.update(samples)
    return typed_samples(pd.DataFrame(data))


def concat(frames: list[pd.DataFrame], typed=typed_summary) -> pd.DataFrame:
    """Concatenate frames and type the result again (categories differ between parts)."""
    frames = [f for f in frames if f is not None and len(f.columns)]
    if not frames:
        return pd.DataFrame()
    plain = [f.astype({c: str for c in f.select_dtypes("category").columns}) for f in frames]
    return typed(pd.concat(plain, ignore_index=True))


def file_safe(name: str) -> str:
    """``name`` as a part of a file name: other characters replaced, and then a short hash
    of ``name`` added, so two names that differ only in replaced characters stay apart."""
    safe = re.sub(r"[^A-Za-z0-9.\-]+", "_", name)
    if safe != name:
        safe += "-" + hashlib.sha1(name.encode()).hexdigest()[:6]
    return safe


def unit_key(queue: str, scenario: str, tasks: int, producers: int, consumers: int,
             repetition: int) -> str:
    """A file-name-safe key for one unit (a cell at one repetition)."""
    return f"{scenario}__{file_safe(queue)}__t{tasks}__p{producers}c{consumers}__r{repetition}"


def unit_keys(df: pd.DataFrame) -> list[str]:
    """The unit key of every row of a summary or samples frame."""
    return [unit_key(str(q), str(s), int(t), int(p), int(c), int(r))
            for q, s, t, p, c, r in df[UNIT].itertuples(index=False)]


def in_units(df: pd.DataFrame, keys: set[str]) -> np.ndarray:
    """Per row of ``df``: is its unit one of ``keys``? (keys computed once per unit)."""
    units = df[UNIT].drop_duplicates()
    units = units.assign(_hit=[k in keys for k in unit_keys(units)])
    return df[UNIT].merge(units, on=UNIT, how="left")["_hit"].to_numpy(bool)


def sort_units(df: pd.DataFrame) -> pd.DataFrame:
    """Rows by scenario and queue (registry order), tasks, workers, repetition; stable."""
    if df.empty:
        return df
    order = ["scenario", "queue", "tasks", "producers", "consumers", "repetition"]
    return df.sort_values(order, kind="stable").reset_index(drop=True)
