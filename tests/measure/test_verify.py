import random
import sys

import numpy as np
import pytest

import pqlab
from pqlab.measure.records import Records
from pqlab.measure.verify import (
    DELAY_TIMEOUT,
    concurrent_violations,
    lost_and_duplicated,
    sequential_violations,
    verify,
)


def make_records(priority, seq, put, gets, concurrent=True):
    """put: list of (start, end) per task; gets: list of (task, start, end)."""
    n = len(priority)
    put = np.asarray(put, np.int64).reshape(n, 2)
    ev = np.asarray(gets, np.int64).reshape(-1, 3)
    return Records(
        priority=np.asarray(priority, np.int16), seq=np.asarray(seq, np.int64),
        put_start=put[:, 0], put_end=put[:, 1], producer=np.zeros(n, np.int16),
        get_task=ev[:, 0], get_start=ev[:, 1], get_end=ev[:, 2],
        consumer=np.zeros(len(ev), np.int16), concurrent=concurrent, wall_ns=1)


def brute_force(rec: Records) -> int:
    """The ordering rule of docs/design.md, pair by pair."""
    first = {}
    for t, s, e in zip(rec.get_task, rec.get_start, rec.get_end, strict=True):
        if t >= 0 and (t not in first or s < first[t][0]):
            first[t] = (s, e)
    flagged = 0
    for x, (gsx, gex) in first.items():
        for y, (gsy, _) in first.items():
            if x == y:
                continue
            before = rec.priority[y] < rec.priority[x] or (
                rec.priority[y] == rec.priority[x] and rec.seq[y] < rec.seq[x]
                and rec.put_end[y] < rec.put_start[x])
            if before and rec.put_end[y] < gsx and gsy > gex:
                flagged += 1
                break
    return flagged


def random_records(rng: random.Random, n: int) -> Records:
    prio = [rng.randint(1, 4) for _ in range(n)]
    put = []
    for _ in range(n):
        s = rng.randint(0, 1000)
        put.append((s, s + rng.randint(1, 30)))
    gets = []
    for i in range(n):
        s = rng.randint(0, 1100)
        gets.append((i, s, s + rng.randint(1, 30)))
    return make_records(prio, list(range(n)), put, gets)


@pytest.mark.parametrize("seed", range(30))
def test_concurrent_rule_matches_brute_force(seed):
    rng = random.Random(seed)
    rec = random_records(rng, rng.choice([5, 40, 70, 200]))
    assert concurrent_violations(rec) == brute_force(rec)


def test_blame_needs_proof_of_presence():
    # Y (CRITICAL) was put before X's get started and taken after X's get ended: violation.
    rec = make_records([4, 1], [0, 1], [(0, 1), (2, 3)], [(0, 10, 11), (1, 12, 13)])
    assert concurrent_violations(rec) == 1
    # Y's put overlaps X's get: the queue may have linearized X first: no blame.
    rec = make_records([4, 1], [0, 1], [(0, 1), (9, 11)], [(0, 10, 12), (1, 13, 14)])
    assert concurrent_violations(rec) == 0
    # Same priority, Y created first but put after X: FIFO by seq and by arrival disagree.
    rec = make_records([2, 2], [0, 1], [(5, 6), (0, 1)], [(1, 10, 11), (0, 12, 13)])
    assert concurrent_violations(rec) == 0


def test_sequential_counts_adjacent_inversions():
    put = [(i, i + 1) for i in range(4)]
    ok = make_records([1, 1, 2, 3], [0, 1, 2, 3], put,
                      [(0, 10, 11), (1, 12, 13), (2, 14, 15), (3, 16, 17)], concurrent=False)
    assert sequential_violations(ok) == 0
    lifo = make_records([1, 1, 2, 3], [0, 1, 2, 3], put,
                        [(1, 10, 11), (0, 12, 13), (2, 14, 15), (3, 16, 17)], concurrent=False)
    assert sequential_violations(lifo) == 1


def test_lost_and_duplicated():
    put = [(i, i + 1) for i in range(4)]
    rec = make_records([1, 1, 1, 1], [0, 1, 2, 3], put,
                       [(0, 10, 11), (0, 12, 13), (0, 14, 15), (2, 16, 17)])
    assert lost_and_duplicated(rec) == (2, 2)
    assert verify(rec).lost == 2 and verify(rec).duplicated == 2


def test_verify_handles_100k_tasks():
    # sort-and-sweep: pairwise over 100,000 tasks would be 10^10 comparisons
    rng = np.random.default_rng(1)
    n = 100_000
    put_start = np.sort(rng.integers(0, 10**9, n))
    gets = np.column_stack([np.arange(n), put_start + 5_000, put_start + 6_000])
    rec = make_records(rng.integers(1, 5, n), np.arange(n),
                       np.column_stack([put_start, put_start + 100]), gets)
    assert verify(rec).lost == 0
    assert concurrent_violations(rec) >= 0


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("queue, scenario", [
    ("queue.PriorityQueue", "threads"), ("ThreadSafeHeapQueue", "threads"),
    ("asyncio.PriorityQueue", "async"), ("queue.PriorityQueue", "ordering"),
])
def test_correct_queues_score_zero_under_many_interleavings(queue, scenario, seed):
    for producer_yield in (True, False):
        r = pqlab.run(queue, scenario, tasks=1500, producers=1 + seed, consumers=4 - seed,
                      seed=seed, memory=False, producer_yield=producer_yield)
        assert (r.violations, r.lost, r.duplicated, r.errors) == (0, 0, 0, 0)


@pytest.mark.parametrize("producer_yield", [True, False])
@pytest.mark.parametrize("scenario", ["single", "threads", "ordering"])
def test_lifo_within_priority_is_caught(lifo_queue, scenario, producer_yield):
    r = pqlab.run(lifo_queue, scenario, tasks=3000, seed=1, memory=False,
                  producer_yield=producer_yield)
    assert r.violations > 0


def test_heap_without_its_lock_is_caught_under_threads(unlocked_heap):
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often, as a loaded machine would
    try:
        r = pqlab.run(unlocked_heap, "threads", tasks=5000, seed=1, memory=False,
                      producer_yield=False, deadline_s=5)
    finally:
        sys.setswitchinterval(old)
    assert r.violations + r.lost + r.duplicated + r.errors > 0


# -- DELAY: a demoted request goes behind its level's live ones -----------------------------


def delay_records(first_x: bool, timeout_ns: int | None):
    """X (seq 0) put at 0 expires at ~10; Y (seq 1) put at 14 is live until ~24; both level 2.

    ``first_x``: X is served first (FIFO, demotion ignored), else Y (the DELAY order).
    """
    x_get, y_get = ((16, 17), (18, 19)) if first_x else ((18, 19), (16, 17))
    rec = make_records([2, 2], [0, 1], [(0, 1), (14, 15)], [(0, *x_get), (1, *y_get)])
    if timeout_ns is not None:
        rec.series[DELAY_TIMEOUT] = np.array([timeout_ns, timeout_ns], np.int64)
    return rec


def test_delay_order_is_no_violation_and_serving_a_demoted_request_early_is_one():
    assert concurrent_violations(delay_records(first_x=False, timeout_ns=10)) == 0
    assert concurrent_violations(delay_records(first_x=True, timeout_ns=10)) == 1
    # Without the DELAY timeouts the FIFO rule applies: the other way round.
    assert concurrent_violations(delay_records(first_x=False, timeout_ns=None)) == 1
    assert concurrent_violations(delay_records(first_x=True, timeout_ns=None)) == 0


def test_delay_blames_only_what_the_deadline_bounds_prove():
    # Y's deadline may have passed before X's get (earliest 14 + 3 < 17): Y may be demoted.
    assert concurrent_violations(delay_records(first_x=True, timeout_ns=3)) == 0
    # A long timeout nobody reached: plain FIFO within the level, both ways.
    assert concurrent_violations(delay_records(first_x=False, timeout_ns=10**6)) == 1
    assert concurrent_violations(delay_records(first_x=True, timeout_ns=10**6)) == 0


def test_delay_keeps_levels_in_order():
    # A demoted CRITICAL request still goes before a live HIGH one.
    rec = make_records([1, 2], [0, 1], [(0, 1), (14, 15)], [(0, 18, 19), (1, 16, 17)])
    rec.series[DELAY_TIMEOUT] = np.array([10, 10], np.int64)
    assert concurrent_violations(rec) == 1


@pytest.mark.parametrize("seed", range(20))
def test_delay_rule_matches_brute_force(seed):
    rng = random.Random(seed)
    rec = random_records(rng, 150)
    rec.series[DELAY_TIMEOUT] = np.array([rng.choice([0, 50, 200]) for _ in range(150)],
                                         np.int64)
    assert concurrent_violations(rec) == brute_force_delay(rec)


def brute_force_delay(rec: Records) -> int:
    """The DELAY rule of the module doc, pair by pair (a timeout of 0: none)."""
    first = {}
    for t, s, e in zip(rec.get_task, rec.get_start, rec.get_end, strict=True):
        if t >= 0 and (t not in first or s < first[t][0]):
            first[t] = (s, e)
    timeout = rec.series[DELAY_TIMEOUT]
    flagged = 0
    for x, (gsx, gex) in first.items():
        for y, (gsy, _) in first.items():
            if x == y:
                continue
            present = rec.put_end[y] < gsx and gsy > gex
            if rec.priority[y] < rec.priority[x]:
                before = True
            elif rec.priority[y] > rec.priority[x]:
                before = False
            elif timeout[y] == 0 and timeout[x] == 0:
                before = rec.seq[y] < rec.seq[x] and rec.put_end[y] < min(rec.put_start[x], gsx)
            else:
                ty = timeout[y] or 10**15
                tx = timeout[x] or 10**15
                live_y = rec.put_start[y] + ty > gex
                fifo = rec.seq[y] < rec.seq[x] and rec.put_end[y] < min(rec.put_start[x], gsx)
                before = live_y and (fifo or rec.put_end[x] + tx < gsx)
            if before and present:
                flagged += 1
                break
    return flagged
