"""pqlab.measure.overload: the ideal-queue replay past saturation (policy, patience, the end)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pqlab.measure.overload import (
    CANCELLED,
    EXPIRED,
    NOT_OFFERED,
    QUEUED,
    REJECTED,
    SERVED,
    simulate_outcomes,
)
from pqlab.queues.policy import LevelPolicy, QueuePolicy


def sim(arrivals, levels, *, service=1.0, servers=1, **kwargs):
    codes, waits = simulate_outcomes(arrivals, [service] * len(arrivals), levels, servers,
                                     **kwargs)
    return codes.tolist(), waits


def test_replay_rejects_what_does_not_fit_its_level():
    policy = QueuePolicy(levels={1: LevelPolicy(max_queue_size=1)})
    # A is served at once; B fills level 1; C is rejected; D (level 2, unbounded) waits.
    codes, waits = sim([0, 0.1, 0.2, 0.3], [1, 1, 1, 2], policy=policy)
    assert codes == [SERVED, SERVED, REJECTED, SERVED]
    assert waits[:2].tolist() == [0, pytest.approx(0.9)] and waits[3] == pytest.approx(1.7)
    assert math.isnan(waits[2])


def test_replay_reject_expires_and_delay_demotes():
    reject = QueuePolicy(LevelPolicy(default_timeout_s=0.5))
    # B's deadline (0.6) passes before the server frees at 1.0: expired, never served.
    codes, _ = sim([0, 0.1, 0.7], [1, 1, 1], policy=reject)
    assert codes == [SERVED, EXPIRED, SERVED]
    delay = QueuePolicy(LevelPolicy(default_timeout_s=0.5, timeout_action="DELAY"))
    # At 1.0, B (deadline 0.6) is delayed behind C (deadline 1.2), yet before D of level 2.
    codes, waits = sim([0, 0.1, 0.2, 0.7], [1, 1, 2, 1], policy=delay)
    assert codes == [SERVED] * 4
    assert waits.tolist() == pytest.approx([0, 1.9, 2.8, 0.3])


def test_replay_patience_cancels_only_queued_requests_and_the_end_leaves_the_rest():
    # B gives up at 0.6 while queued; A (patience 0.1) is already in service.
    codes, _ = sim([0, 0.1, 0.2], [1, 1, 1], patience_s=[0.1, 0.5, 5])
    assert codes == [SERVED, CANCELLED, SERVED]
    # End at 1.5: B starts at 1.0; C would start at 2.0 (queued); D arrives after the end.
    codes, _ = sim([0, 0.1, 0.2, 1.6], [1, 1, 1, 1], end_s=1.5)
    assert codes == [SERVED, SERVED, QUEUED, NOT_OFFERED]
    # Under REJECT a request whose deadline passed by the end counts as expired, not queued.
    codes, _ = sim([0, 0.1, 0.2], [1, 1, 1], end_s=1.5,
                   policy=QueuePolicy(LevelPolicy(default_timeout_s=1.2)))
    assert codes == [SERVED, SERVED, EXPIRED]


def test_replay_with_the_default_policy_matches_the_plain_replay():
    rng = np.random.default_rng(3)
    arrivals = np.cumsum(rng.exponential(0.01, 2000))
    service, levels = rng.exponential(0.03, 2000), rng.integers(1, 5, 2000)
    from pqlab.measure.theory import simulate_waits

    codes, waits = simulate_outcomes(arrivals, service, levels, 3, policy=QueuePolicy())
    assert (codes == SERVED).all()
    assert waits == pytest.approx(simulate_waits(arrivals, service, levels, 3))
