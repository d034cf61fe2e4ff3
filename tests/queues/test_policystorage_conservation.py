"""Exact conservation of outcomes under 50 producers and 50 consumers, cancels and timeouts.

Producers put tasks of random priority, some with their own timeout, and
cancel some of their earlier tasks; consumers take tasks with a little work
in between, so levels fill (rejections) and tasks wait past their timeouts.
Once the producers are done the queue is shut down: consumers drain it and
stop. Every task attempted must end in exactly one outcome, and the queue's
counts must say the same.
"""

import asyncio
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from pqlab.core.task import PRIORITY_LEVELS, Task, next_seq
from pqlab.queues import create_queue
from pqlab.queues.asyncqueue import AsyncBucketQueue, QueueShutDown
from pqlab.queues.bridge import BridgeBucketQueue
from pqlab.queues.policy import OUTCOMES, LevelPolicy, QueuePolicy, Rejected, TimeoutAction
from pqlab.queues.syncqueue import ShutDown, ThreadSafeBucketQueue

PRODUCERS = CONSUMERS = 50
PUTS_EACH = 40
JOIN_S = 60  # generous: a busy 2-core machine; the run takes about a second
POLICY = QueuePolicy(
    LevelPolicy(max_queue_size=40, default_timeout_s=0.02, allow_timeout_override=True),
    {1: LevelPolicy(allow_timeout_override=True),  # unbounded, only requests' own timeouts
     2: LevelPolicy(max_queue_size=30, default_timeout_s=0.01,
                    timeout_action=TimeoutAction.DELAY),
     4: LevelPolicy(max_queue_size=10, default_timeout_s=0.005)})


@dataclass
class Ledger:
    """What the test saw happen to each task, by its seq."""

    attempted: dict[int, Task] = field(default_factory=dict)
    timeout_s: dict[int, float] = field(default_factory=dict)  # the task's effective timeout
    put_done_at: dict[int, float] = field(default_factory=dict)
    rejected: list[int] = field(default_factory=list)
    cancelled: list[int] = field(default_factory=list)
    served: list[tuple[int, float]] = field(default_factory=list)  # seq, clock before the get
    expired: list[int] = field(default_factory=list)  # from on_expired

    def plan(self, rng: random.Random) -> tuple[Task, dict]:
        t = Task(rng.choice(PRIORITY_LEVELS), next_seq(), 0.0, "t", "m", None)
        policy = POLICY.for_level(t.priority)
        kwargs = {}
        if policy.allow_timeout_override and rng.random() < 0.5:
            kwargs["request_timeout_s"] = rng.uniform(0.001, 0.01)
        self.attempted[t.seq] = t
        self.timeout_s[t.seq] = kwargs.get("request_timeout_s", policy.default_timeout_s)
        return t, kwargs


def preload(ledger: Ledger, put: Callable) -> None:
    """Before any consumer starts: a LOW task that has expired when the first get could
    see it, and a CRITICAL one with a minute to live, so the run always has an expiry
    and a checked serve, however busy the machine."""
    for priority, own_timeout_s in ((4, None), (1, 60.0)):  # LOW: its default, 5 ms
        t = Task(priority, next_seq(), 0.0, "t", "m", None)
        ledger.attempted[t.seq] = t
        ledger.timeout_s[t.seq] = own_timeout_s or POLICY.for_level(4).default_timeout_s
        put(t, **({"request_timeout_s": own_timeout_s} if own_timeout_s else {}))
        ledger.put_done_at[t.seq] = time.monotonic()
    time.sleep(0.01)  # the LOW task's deadline, at most 5 ms after its put returned, passed


def produce(ledger: Ledger, put: Callable, cancel: Callable, seed: int) -> None:
    rng, mine = random.Random(seed), []
    for _ in range(PUTS_EACH):
        t, kwargs = ledger.plan(rng)
        try:
            put(t, **kwargs)
        except Rejected:
            ledger.rejected.append(t.seq)
            continue
        ledger.put_done_at[t.seq] = time.monotonic()
        mine.append(t)
        if rng.random() < 0.25:
            victim = rng.choice(mine)
            if cancel(victim):
                ledger.cancelled.append(victim.seq)
        if rng.random() < 0.1:
            time.sleep(0.001)


def consume(ledger: Ledger, get: Callable) -> None:
    while True:
        before = time.monotonic()
        try:
            t = get()
        except ShutDown:
            return
        ledger.served.append((t.seq, before))
        time.sleep(0.0005)


async def produce_async(ledger: Ledger, put: Callable, cancel: Callable, seed: int) -> None:
    rng, mine = random.Random(seed), []
    for _ in range(PUTS_EACH):
        t, kwargs = ledger.plan(rng)
        try:
            await put(t, **kwargs)
        except Rejected:
            ledger.rejected.append(t.seq)
            continue
        ledger.put_done_at[t.seq] = time.monotonic()
        mine.append(t)
        if rng.random() < 0.25:
            victim = rng.choice(mine)
            if cancel(victim):
                ledger.cancelled.append(victim.seq)
        await asyncio.sleep(0.001 if rng.random() < 0.1 else 0)


async def consume_async(ledger: Ledger, get: Callable) -> None:
    while True:
        before = time.monotonic()
        try:
            t = await get()
        except QueueShutDown:
            return
        ledger.served.append((t.seq, before))
        await asyncio.sleep(0.0005)


def started(target, *args) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


def joined(threads: list[threading.Thread]) -> None:
    deadline = time.monotonic() + JOIN_S
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
        assert not thread.is_alive(), f"a thread is still running after {JOIN_S} s"


def run_threads(ledger: Ledger) -> ThreadSafeBucketQueue:
    q = create_queue("ThreadSafeBucketQueue", policy=POLICY,
                     on_expired=lambda t: ledger.expired.append(t.seq))
    preload(ledger, q.put)
    consumers = [started(consume, ledger, q.get) for _ in range(CONSUMERS)]
    producers = [started(produce, ledger, q.put, q.cancel, seed) for seed in range(PRODUCERS)]
    joined(producers)
    q.shutdown()
    joined(consumers)
    return q


def run_asyncio(ledger: Ledger) -> AsyncBucketQueue:
    async def main():
        q = create_queue("AsyncBucketQueue", policy=POLICY,
                         on_expired=lambda t: ledger.expired.append(t.seq))
        preload(ledger, q.put_nowait)
        consumers = [asyncio.create_task(consume_async(ledger, q.get)) for _ in range(CONSUMERS)]
        await asyncio.wait_for(asyncio.gather(*(produce_async(ledger, q.put, q.cancel, seed)
                                                for seed in range(PRODUCERS))), JOIN_S)
        q.shutdown()
        await asyncio.wait_for(asyncio.gather(*consumers), JOIN_S)
        return q

    return asyncio.run(main())


def run_bridge(ledger: Ledger) -> BridgeBucketQueue:
    """Threads produce on ``sync_q``; half the consumers are threads, half coroutines."""
    q = create_queue("BridgeBucketQueue", policy=POLICY,
                     on_expired=lambda t: ledger.expired.append(t.seq))

    async def coroutines():
        await asyncio.gather(*(consume_async(ledger, q.async_q.get)
                               for _ in range(CONSUMERS // 2)))

    preload(ledger, q.sync_q.put)
    consumers = [started(consume, ledger, q.sync_q.get) for _ in range(CONSUMERS // 2)]
    consumers.append(started(asyncio.run, coroutines()))
    producers = [started(produce, ledger, q.sync_q.put, q.sync_q.cancel, seed)
                 for seed in range(PRODUCERS)]
    joined(producers)
    q.shutdown()
    joined(consumers)
    return q


@pytest.mark.parametrize("run", [run_threads, run_asyncio, run_bridge])
def test_every_task_ends_in_exactly_one_outcome_and_the_counts_add_up(run):
    ledger = Ledger()
    q = run(ledger)
    drained = q.drain_expired()
    served = [seq for seq, _ in ledger.served]
    outcomes = {"rejected": ledger.rejected, "cancelled": ledger.cancelled, "served": served,
                "expired": ledger.expired}
    assert len(ledger.attempted) == PRODUCERS * PUTS_EACH + 2  # and the preloaded two
    for name, seqs in outcomes.items():
        assert len(seqs) == len(set(seqs)), f"a task {name} twice"
        assert seqs, f"no task {name}: the test did not exercise it"
    assert drained == []  # every expiry went to on_expired, none is kept twice
    every = [seq for seqs in outcomes.values() for seq in seqs]
    assert len(every) == len(set(every)) == len(ledger.attempted)  # one outcome each, all ended
    assert set(every) == set(ledger.attempted)

    counts, depths = q.counts(), q.depths()
    for level in PRIORITY_LEVELS:
        mine = {name: sum(ledger.attempted[s].priority == level for s in seqs)
                for name, seqs in outcomes.items()}
        attempted = sum(t.priority == level for t in ledger.attempted.values())
        c = counts[level]
        assert set(c) == set(OUTCOMES) and depths[level] == 0
        assert {name: c[name] for name in mine} == mine
        assert attempted == c["rejected"] + c["admitted"]
        assert c["admitted"] == c["served"] + c["expired"] + c["cancelled"] + depths[level]


@pytest.mark.parametrize("run", [run_threads, run_bridge])
def test_under_reject_no_getter_ever_receives_a_task_past_its_deadline(run):
    """The queue's deadline lies between the put's call and return, a served task's
    expiry check after its getter's call began: so that call began before the
    task's deadline, at the latest its put's return plus its timeout."""
    ledger = Ledger()
    run(ledger)
    checked = 0
    for seq, before in ledger.served:
        policy = POLICY.for_level(ledger.attempted[seq].priority)
        if policy.timeout_action is TimeoutAction.REJECT and ledger.timeout_s[seq]:
            assert before <= ledger.put_done_at[seq] + ledger.timeout_s[seq]
            checked += 1
    assert checked and ledger.expired  # the preloaded two, whatever the timing
