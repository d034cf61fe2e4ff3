"""Per-priority results: the one place they are shaped, named and (un)flattened.

The contract:

- A result measured per priority level is a ``Levels``: a mapping from the level's
  name (``CRITICAL``, ``HIGH``, ``NORMAL``, ``LOW``, in ``Priority`` order) to
  ``{metric: value}``, with plain metric names that are the same in every level
  (``share_served``, ``goodput_per_s``, ``served_wait_p99_ms``, ``queue_wait_p99_ms``,
  ``theory_wait_mean_ms``, ``replay_share_served``, ``wait_p99_us``, ``queued_peak`` ...).
  Scenarios produce it where they measure (``Records.levels``, ``RunResult.levels``);
  ``merge`` joins the parts of one run.
- Stored and read, it is one long frame (``frame``): one row per (run, priority),
  the run's own columns repeated on each row, ``priority`` an ordered categorical
  and one column per metric. A reader selects by name:
  ``table(f, ["rho"]).loc[(rho, "CRITICAL"), "share_served"]``.
- A flat record (``RunResult.to_dict``, a ``summary.parquet`` row) holds the levels
  as ``<metric>_<LEVEL>`` columns. Only this module spells that key: ``flat`` writes
  it, ``long`` reads it back (also the reader of version-1 runs' wide frames).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from pqlab.core.task import Priority

if TYPE_CHECKING:  # pandas is imported where a frame is made: a spawned worker process,
    import pandas as pd  # which imports pqlab but makes no frame, starts without it

LEVELS: tuple[str, ...] = tuple(p.name for p in Priority)
Levels = dict[str, dict[str, Any]]  # level name -> {metric: value}


def empty() -> Levels:
    """A ``Levels`` with every level and no metric yet."""
    return {level: {} for level in LEVELS}


def merge(*parts: Mapping[str, Mapping[str, Any]]) -> Levels:
    """The parts' metrics per level (a later part's value wins), in ``LEVELS`` order."""
    out = empty()
    for part in parts:
        for level, metrics in part.items():
            out[_name(level)].update(metrics)
    return out


def total(levels: Mapping[str, Mapping[str, Any]], metric: str) -> Any:
    """``metric`` summed over the levels (e.g. every level's ``served``)."""
    return sum(levels[level][metric] for level in LEVELS if level in levels)


def _name(level: Any) -> str:
    if isinstance(level, str) and level in LEVELS:
        return level
    return Priority(int(level)).name


def key(metric: str, level: Any) -> str:
    """The flat spelling ``<metric>_<LEVEL>`` of one level's metric (also the name of a
    per-level series, e.g. ``Records.series`` ``level_depth_CRITICAL``)."""
    return f"{metric}_{_name(level)}"


def flat(levels: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The flat record's columns ``<metric>_<LEVEL>`` of ``levels``, level by level."""
    return {key(metric, level): value for level in LEVELS
            for metric, value in levels.get(level, {}).items()}


def _split(column: str) -> tuple[str, str] | None:
    """(metric, level) of a flat per-level column, else None."""
    for level in LEVELS:
        metric = column.removesuffix("_" + level)
        if metric != column and metric:
            return metric, level
    return None


def is_flat(columns: Iterable[str]) -> bool:
    """True if any column is a flat per-level one (``<metric>_<LEVEL>``)."""
    return any(_split(str(c)) for c in columns)


def _categorical(df: pd.DataFrame) -> pd.DataFrame:
    import pandas as pd

    df["priority"] = pd.Categorical(df["priority"], list(LEVELS), ordered=True)
    return df


def frame(rows: Iterable[tuple[Mapping[str, Any], Mapping[str, Mapping[str, Any]]]]
          ) -> pd.DataFrame:
    """The long frame of runs given as (run columns, ``Levels``): one row per run and level."""
    import pandas as pd

    out = [{**run, "priority": level, **levels.get(level, {})}
           for run, levels in rows for level in LEVELS]
    return _categorical(pd.DataFrame(out)) if out else pd.DataFrame()


def long(wide: pd.DataFrame, keys: Sequence[str] | None = None) -> pd.DataFrame:
    """Flat records (one row per run, ``<metric>_<LEVEL>`` columns) as the long frame.

    ``keys``: the run columns each row keeps, their dtypes kept (default: every
    column that is not a per-level one). A frame that is long already is returned
    as it is.
    """
    if "priority" in wide.columns:
        return wide
    split = {c: s for c in wide.columns if (s := _split(str(c)))}
    keep = list(keys) if keys is not None else [c for c in wide.columns if c not in split]
    n = len(LEVELS)
    out = wide[keep].iloc[np.repeat(np.arange(len(wide)), n)].reset_index(drop=True)
    out["priority"] = list(LEVELS) * len(wide)
    columns = {metric: {} for metric, _ in split.values()}
    for column, (metric, level) in split.items():
        columns[metric][level] = column
    for metric, by_level in columns.items():
        parts = [wide[by_level[level]].to_numpy() if level in by_level
                 else np.full(len(wide), np.nan) for level in LEVELS]
        out[metric] = np.column_stack(parts).ravel() if len(wide) else []
    return _categorical(out)


def runs(levels_frame: pd.DataFrame) -> pd.DataFrame:
    """One row per run of a long frame (its first level's rows): for run-wide columns."""
    if "priority" not in levels_frame.columns:
        return levels_frame
    return levels_frame[levels_frame["priority"] == LEVELS[0]]


def table(levels_frame: pd.DataFrame, index: Sequence[str]) -> pd.DataFrame:
    """The long frame indexed by ``index`` and priority, for ``.loc[(..., level), metric]``."""
    return levels_frame.set_index([*index, "priority"]).sort_index()
