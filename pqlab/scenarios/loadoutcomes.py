"""The accounting of a bounded load pass: how every offered request ended, and the depths.

``Ends`` collects what the driver's threads saw (refused, cancelled, expired,
taken after the end, left in the queue; the queue's own counts and sampled
depths). From it and the pass's ``Records``: ``outcome_series`` gives every
offered request exactly one of ``measure.overload.OUTCOMES`` and checks that
(with a policy, against the queue's own ``counts()``), recording any mismatch
as an error of the run; ``level_depth_series`` the depth per level over time
(sampled from the queue's ``depths()`` where it has one, else derived from the
stamps, ``events_depth``); ``patience_series`` each request's patience. The
drivers that fill ``Ends`` are ``pqlab.scenarios.loadbounded`` (threads,
coroutines) and ``pqlab.scenarios.loadprocesses`` (worker processes).
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from pqlab.core.task import PRIORITY_LEVELS, Priority, Task
from pqlab.measure.levels import key
from pqlab.measure.overload import (
    CANCELLED,
    EXPIRED,
    NOT_OFFERED,
    OUTCOME_CODES,
    QUEUED,
    REJECTED,
    SERVED,
)
from pqlab.measure.records import Records
from pqlab.scenarios._engine import PassState

pc = time.perf_counter_ns


class Ends:
    """How the requests of one bounded pass ended, appended by the threads that saw it.

    Lists of seqs (and stamps where the moment matters); ``counts`` is the
    queue's own ``counts()`` at the end (with a policy), ``samples`` the sampled
    ``depths()``.
    """

    def __init__(self) -> None:
        self.end_ns = 2**62  # set when the schedule starts
        self.rejected: list[int] = []
        self.cancelled: list[tuple[int, int]] = []  # (seq, stamp)
        self.expired_at: dict[int, int] = {}  # seq -> when the queue reported it
        self.expired: list[int] = []
        self.late: list[tuple[int, int]] = []  # taken after the end: (seq, stamp), queued
        self.left: list[int] = []  # still in the queue at the end
        self.counts: dict[int, dict[str, int]] | None = None
        self.samples: list[tuple[int, dict[int, int]]] = []
        self.extra: dict[str, Any] = {}  # the driver's own summary columns (redeliveries...)
        self.levels: dict[str, dict[str, Any]] = {}  # the driver's own per level (levels.Levels)

    def stamp_expiry(self, task: Task) -> None:
        """The queue's ``on_expired``: when it found ``task`` expired."""
        self.expired_at[task.seq] = pc()

    def clock(self) -> float:
        """The policy's clock (monotonic seconds, as ``perf_counter_ns``), stopped at the end.

        Nothing expires after the end, so emptying the queue then finds the
        requests expired by the end and no others, as the replay counts them.
        """
        return min(pc(), self.end_ns) / 1e9


def outcome_series(run: PassState, rec: Records, ends: Ends) -> dict[str, np.ndarray]:
    """Per task its outcome code (``measure.overload.OUTCOME_CODES``), ``ended_unserved``
    and ``cancel_ns`` (when a cancel removed it; 0 if none did).

    Appends to ``rec.errors`` when conservation fails: an offered task with no
    outcome or more than one, an outcome for a task never offered, or (with a
    policy) counts that differ from the queue's own ``counts()``.
    """
    position = {t.seq: i for i, t in enumerate(run.tasks)}
    served = [seq for log in run.get_logs for seq, _, _ in log]
    by_code = {SERVED: served, REJECTED: ends.rejected,
               CANCELLED: [seq for seq, _ in ends.cancelled], EXPIRED: ends.expired,
               QUEUED: [seq for seq, _ in ends.late] + ends.left}
    outcome = np.full(run.n, NOT_OFFERED, np.int8)
    hits = np.zeros(run.n, np.int64)
    for code, seqs in by_code.items():
        idx = np.fromiter((position[s] for s in seqs), np.int64, len(seqs))
        outcome[idx] = code
        np.add.at(hits, idx, 1)
    offered = rec.put_end > 0
    bad = int(np.count_nonzero(offered & (hits != 1)) + np.count_nonzero(~offered & (hits > 0)))
    if bad:
        rec.errors.append(f"conservation: {bad} tasks did not end in exactly one of "
                          f"{', '.join(OUTCOME_CODES)} (offered {int(offered.sum())})")
    if ends.counts is not None:
        late = np.zeros(run.n, bool)
        late[[position[seq] for seq in [*(s for s, _ in ends.late), *ends.left]]] = True
        rec.errors.extend(_counts_mismatch(outcome, rec.priority, late, ends.counts))
    cancel_ns = np.zeros(run.n, np.int64)
    for seq, stamp in ends.cancelled:
        cancel_ns[position[seq]] = stamp
    return {"outcome": outcome, "ended_unserved": outcome != SERVED, "cancel_ns": cancel_ns}


def _counts_mismatch(outcome: np.ndarray, priority: np.ndarray, late: np.ndarray,
                     counts: dict[int, dict[str, int]]) -> list[str]:
    """Where the queue's own counts differ from what the pass saw, one message per level.

    ``late`` marks the tasks the pass counts queued that the queue counts
    served: taken after the end, or emptied out of it then.
    """
    errors = []
    for level, got in counts.items():
        mine = priority == level
        seen = {name: int(np.count_nonzero(mine & (outcome == code)))
                for name, code in OUTCOME_CODES.items()}
        expected = {"rejected": seen["rejected"], "expired": seen["expired"],
                    "cancelled": seen["cancelled"],
                    "served": seen["served"] + int(np.count_nonzero(mine & late)),
                    "admitted": sum(seen.values()) - seen["rejected"]}
        wrong = {k: (got[k], v) for k, v in expected.items() if got[k] != v}
        if wrong:
            errors.append(f"conservation at {Priority(level).name}: the queue counted "
                          + ", ".join(f"{k} {q} against {v} seen" for k, (q, v) in wrong.items()))
    return errors


def level_depth_series(rec: Records, ends: Ends) -> dict[str, Any]:
    """Per-level depth over time: ``level_depth_at_ns`` and ``level_depth_{P}`` per priority.

    Sampled from the queue's ``depths()`` where it has one; else from the
    stamps (+1 at each admitted put's end, −1 at each take, cancel or expiry).
    """
    if ends.samples:
        at = np.fromiter((t for t, _ in ends.samples), np.int64, len(ends.samples))
        series = {key("level_depth", p): np.fromiter(
            (d.get(int(p), 0) for _, d in ends.samples), np.int64, len(ends.samples))
            for p in Priority}
        return {"level_depth_at_ns": at, **series}
    return events_depth(rec, ends)


def events_depth(rec: Records, ends: Ends) -> dict[str, np.ndarray]:
    """Per-level depth from the stamps: +1 at each admitted put's end, −1 at each way out."""
    outcome = rec.series["outcome"]
    admitted = (rec.put_end > 0) & (outcome != REJECTED) & (outcome != NOT_OFFERED)
    seq_pos = {int(s): i for i, s in enumerate(rec.seq)}
    leave_pos, leave_at = [], []
    valid = rec.get_task >= 0
    leave_pos += rec.get_task[valid].tolist()
    leave_at += rec.get_end[valid].tolist()
    for seq, t in [*ends.cancelled, *ends.late]:
        leave_pos.append(seq_pos[seq])
        leave_at.append(t)
    for seq in ends.expired:
        leave_pos.append(seq_pos[seq])
        leave_at.append(ends.expired_at.get(seq, ends.end_ns))
    pos = np.concatenate([np.flatnonzero(admitted), np.asarray(leave_pos, np.int64)])
    at = np.concatenate([rec.put_end[admitted], np.asarray(leave_at, np.int64)])
    step = np.concatenate([np.ones(int(admitted.sum()), np.int64),
                           -np.ones(len(leave_pos), np.int64)])
    order = np.argsort(at, kind="stable")
    pos, at, step = pos[order], at[order], step[order]
    prio = rec.priority[pos]
    series = {"level_depth_at_ns": at}
    for level in PRIORITY_LEVELS:
        series[key("level_depth", level)] = np.cumsum(np.where(prio == level, step, 0))
    return series


def queue_depth_series(level_series: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The total depth (``depth_at_ns``, ``depth``) from the per-level series."""
    total = sum(level_series[key("level_depth", p)] for p in Priority)
    return {"depth_at_ns": level_series["level_depth_at_ns"], "depth": np.asarray(total)}


def patience_series(tasks: list[Task]) -> np.ndarray:
    """Each task's patience in seconds (inf: never gives up)."""
    return np.fromiter((t.payload.patience_s or math.inf for t in tasks), float, len(tasks))
