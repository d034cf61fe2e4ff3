"""Correctness from the records: lost and duplicated tasks, priority violations.

Sequential runs (one thread puts everything, then gets everything) count
adjacent pairs of the dequeue order that are out of ``(priority, seq)`` order.

Concurrent runs use a rule that never blames a correct (linearizable) queue:
task X is a violation when some task Y *provably* should have been served
first and was in the queue the whole time X was being taken:

- Y should precede X: Y has a higher priority (lower value), or the same
  priority, an earlier ``seq`` and its put finished before X's put started
  (so Y is first both by creation and by arrival);
- Y was in the queue: Y's put finished before X's get started, and Y's get
  started after X's get finished.

Counting is sort-and-sweep (prefix maxima and binary search), O(n log² n),
never pairwise over all tasks.

Under a ``DELAY`` policy a request whose timeout passed while queued is
demoted behind every live request of its level (Triton's ``DELAY``), so FIFO
within that level no longer holds. Where the records carry each task's
``DELAY`` timeout (``series["delay_timeout_ns"]``, ``delay_timeouts``), the
same-level rule uses the deadline's bounds (the queue stamps it during the
put: between put start + timeout and put end + timeout):

- Y blocks X only while Y cannot have been demoted: Y's earliest deadline
  is after X's get finished, and then
- either the FIFO rule above holds, or X provably had been demoted when it
  was taken (X's latest deadline before X's get started) while Y was live.

Levels still order as before: a demoted request stays ahead of every lower
level. Those levels are checked pairwise in blocks (O(n²) work, O(n·block)
memory): bounded runs hold thousands of tasks, not millions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pqlab.measure.records import Records, first_gets
from pqlab.queues.policy import QueuePolicy, TimeoutAction, is_active

LEAF = 64  # below this many tasks a pairwise block is cheaper than splitting further
DELAY_TIMEOUT = "delay_timeout_ns"  # Records.series: a task's DELAY timeout (0: none)
DELAY_BLOCK = 1024  # tasks X per pairwise block: 1024 x n booleans per condition


@dataclass(frozen=True)
class Verdict:
    """What the checks found in one set of records."""

    violations: int
    lost: int
    duplicated: int


def lost_and_duplicated(rec: Records) -> tuple[int, int]:
    """Tasks never taken, and surplus takes of tasks taken more than once (or never put).

    A task the scenario accounts for without a take (``rec.series["ended_unserved"]``:
    the bounded load run's rejected, expired, cancelled, still queued or never
    offered requests, whose conservation that scenario checks) is not lost.
    """
    counts = np.bincount(rec.get_task[rec.get_task >= 0], minlength=rec.tasks)
    untaken = counts == 0
    if "ended_unserved" in rec.series:
        untaken &= ~rec.series["ended_unserved"]
    lost = int(np.count_nonzero(untaken))
    duplicated = int(np.sum(counts[counts > 1] - 1)) + int(np.count_nonzero(rec.get_task < 0))
    return lost, duplicated


def sequential_violations(rec: Records) -> int:
    """Adjacent pairs of the dequeue order that are out of ``(priority, seq)`` order."""
    valid = rec.get_task >= 0
    order = np.argsort(rec.get_start[valid], kind="stable")
    idx = rec.get_task[valid][order]
    p, s = rec.priority[idx].astype(np.int64), rec.seq[idx]
    wrong = (p[1:] < p[:-1]) | ((p[1:] == p[:-1]) & (s[1:] < s[:-1]))
    return int(np.count_nonzero(wrong))


def _prefix_blocker(y_put_end, y_get_start, threshold) -> np.ndarray:
    """For each threshold: the latest get start among Y whose put ended before it."""
    order = np.argsort(y_put_end, kind="stable")
    prefix_max = np.maximum.accumulate(y_get_start[order])
    k = np.searchsorted(y_put_end[order], threshold, side="left")
    latest = np.full(len(threshold), np.iinfo(np.int64).min)
    has = k > 0
    latest[has] = prefix_max[k[has] - 1]
    return latest


def _same_level_flags(seq, put_start, put_end, get_start, get_end) -> np.ndarray:
    """Flags X blocked by a same-priority Y with earlier seq (divide and conquer on seq)."""
    order = np.argsort(seq, kind="stable")
    seq, ps, pe, gs, ge = (a[order] for a in (seq, put_start, put_end, get_start, get_end))
    threshold = np.minimum(ps, gs)
    flagged = np.zeros(len(seq), bool)
    stack = [(0, len(seq))]
    while stack:
        lo, hi = stack.pop()
        if hi - lo <= LEAF:
            y, x = slice(lo, hi), slice(lo, hi)
            blocks = ((seq[y, None] < seq[None, x]) & (pe[y, None] < threshold[None, x])
                      & (gs[y, None] > ge[None, x]))
            flagged[x] |= blocks.any(axis=0)
            continue
        mid = (lo + hi) // 2
        flagged[mid:hi] |= _prefix_blocker(pe[lo:mid], gs[lo:mid], threshold[mid:hi]) > ge[mid:hi]
        stack += [(lo, mid), (mid, hi)]
    result = np.empty_like(flagged)
    result[order] = flagged
    return result


def delay_timeouts(priority: np.ndarray, policy: QueuePolicy | None) -> dict[str, np.ndarray]:
    """``{DELAY_TIMEOUT: per task ns}`` for the levels ``policy`` delays, ``{}`` if none does.

    Each task's timeout is its level's default: the load scenario sets no
    per-request timeout.
    """
    if not is_active(policy):
        return {}
    timeout_ns = np.zeros(len(priority), np.int64)
    for level in np.unique(priority):
        p = policy.for_level(int(level))
        if p.timeout_action is TimeoutAction.DELAY and p.default_timeout_s > 0:
            timeout_ns[priority == level] = round(p.default_timeout_s * 1e9)
    return {DELAY_TIMEOUT: timeout_ns} if timeout_ns.any() else {}


def _delay_level_flags(seq, put_start, put_end, get_start, get_end, timeout) -> np.ndarray:
    """Flags X of one ``DELAY`` level blocked by a live Y of it (see the module doc)."""
    infinite = np.iinfo(np.int64).max // 2
    timeout = np.where(timeout > 0, timeout, infinite)
    earliest_deadline = put_start + timeout
    demoted_x = put_end + timeout < get_start  # X's deadline had passed before its get
    threshold = np.minimum(put_start, get_start)
    flagged = np.zeros(len(seq), bool)
    for lo in range(0, len(seq), DELAY_BLOCK):
        x = slice(lo, lo + DELAY_BLOCK)
        live_y = ((put_end[:, None] < get_start[None, x]) & (get_start[:, None] > get_end[None, x])
                  & (earliest_deadline[:, None] > get_end[None, x]))
        fifo = (seq[:, None] < seq[None, x]) & (put_end[:, None] < threshold[None, x])
        flagged[x] = (live_y & (fifo | demoted_x[None, x])).any(axis=0)
    return flagged


def concurrent_violations(rec: Records) -> int:
    """Tasks served while a task that provably should precede them waited (see module doc)."""
    idx, gs, ge = first_gets(rec)
    if len(idx) < 2:
        return 0
    prio, seq = rec.priority[idx], rec.seq[idx]
    ps, pe = rec.put_start[idx], rec.put_end[idx]
    flagged = np.zeros(len(idx), bool)
    delay = rec.series.get(DELAY_TIMEOUT)
    delay = delay[idx] if delay is not None else np.zeros(len(idx), np.int64)
    for level in np.unique(prio):
        is_y = prio == level
        lower = prio > level
        if lower.any():
            latest = _prefix_blocker(pe[is_y], gs[is_y], gs[lower])
            flagged[lower] |= latest > ge[lower]
        if delay[is_y].any():
            flagged[is_y] |= _delay_level_flags(seq[is_y], ps[is_y], pe[is_y], gs[is_y],
                                                ge[is_y], delay[is_y])
        else:
            flagged[is_y] |= _same_level_flags(seq[is_y], ps[is_y], pe[is_y], gs[is_y],
                                               ge[is_y])
    return int(np.count_nonzero(flagged))


def verify(rec: Records) -> Verdict:
    """Run every check that applies to ``rec``."""
    lost, duplicated = lost_and_duplicated(rec)
    rule = concurrent_violations if rec.concurrent else sequential_violations
    return Verdict(rule(rec), lost, duplicated)
