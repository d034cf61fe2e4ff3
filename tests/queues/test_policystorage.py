"""The queue policy on every in-process bucket queue face, with an injected clock."""

import asyncio
import queue
import threading
import time

import pytest

from pqlab.core.task import Priority, Task, make_workload, next_seq
from pqlab.queues import create_queue
from pqlab.queues.asyncqueue import AsyncBucketQueue, AsyncQueue, PolicyAsyncBucketQueue
from pqlab.queues.bridge import BridgeBucketQueue, BridgeQueue, PolicyBridgeBucketQueue
from pqlab.queues.policy import LevelPolicy, PolicyError, QueuePolicy, Rejected, TimeoutAction
from pqlab.queues.syncqueue import (
    BucketQueue,
    PolicyThreadSafeBucketQueue,
    SyncQueue,
    ThreadSafeBucketQueue,
)

FACES = ["thread", "asyncio", "bridge-sync", "bridge-async"]
CRITICAL, HIGH, NORMAL, LOW = (int(p) for p in Priority)
DELAY = TimeoutAction.DELAY


def task(priority=NORMAL) -> Task:
    return Task(priority, next_seq(), 0.0, "t", "m", {})


class Clock:
    """A monotonic clock the test moves by hand (seconds)."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Face:
    """One face of a bucket queue driven from the test: coroutines run to completion."""

    def __init__(self, kind: str, **kwargs) -> None:
        self.loop = asyncio.new_event_loop()
        self.kind = kind
        if kind == "thread":
            self.queue = self.face = create_queue("ThreadSafeBucketQueue", **kwargs)
        elif kind == "asyncio":
            self.queue = self.face = create_queue("AsyncBucketQueue", **kwargs)
        else:
            self.queue = create_queue("BridgeBucketQueue", **kwargs)
            self.face = self.queue.sync_q if kind == "bridge-sync" else self.queue.async_q
        self.is_async = kind in ("asyncio", "bridge-async")

    def _call(self, result):
        if self.is_async and asyncio.iscoroutine(result):
            return self.loop.run_until_complete(asyncio.wait_for(result, 10))
        return result

    def put(self, item, **kwargs):
        return self._call(self.face.put(item, **kwargs))

    def put_nowait(self, item, **kwargs):
        return self.face.put_nowait(item, **kwargs)

    def get(self):
        return self._call(self.face.get())

    def get_nowait(self):
        return self.face.get_nowait()

    def __getattr__(self, name):  # cancel, counts, depths, drain_expired, qsize
        return getattr(self.face, name)

    @property
    def empty_error(self):
        return asyncio.QueueEmpty if self.is_async else queue.Empty

    def lock_held(self) -> bool:
        return self.kind != "asyncio" and self.queue.mutex.locked()


@pytest.fixture(params=FACES)
def make(request):
    faces = []

    def factory(**kwargs) -> Face:
        faces.append(Face(request.param, **kwargs))
        return faces[-1]

    yield factory
    for f in faces:
        f.loop.close()




# -- the default policy changes nothing ---------------------------------------------------


@pytest.mark.parametrize("policy", [None, QueuePolicy(),
                                    QueuePolicy(LevelPolicy(timeout_action=DELAY),
                                                {LOW: LevelPolicy()})])
@pytest.mark.parametrize("cls, base_put, base_get", [
    (ThreadSafeBucketQueue, SyncQueue.put, SyncQueue.get),
    (AsyncBucketQueue, AsyncQueue.put, AsyncQueue.get),
    (BridgeBucketQueue, SyncQueue.put, SyncQueue.get)])
def test_without_an_active_policy_the_class_and_its_hot_path_are_today_s(policy, cls, base_put,
                                                                       base_get):
    q = cls(policy=policy, on_expired=print)
    assert type(q) is cls and type(q).put is base_put and type(q).get is base_get
    if cls is BridgeBucketQueue:
        assert type(q).async_put is BridgeQueue.async_put
    assert q.policy is policy


def test_without_a_policy_order_cancel_depths_and_drain_work_and_counts_ask_for_one(make):
    q = make(policy=QueuePolicy())
    tasks = make_workload(300, seed=4)
    for t in tasks:
        q.put(t)
    assert sum(q.depths().values()) == 300 and q.drain_expired() == []
    assert q.cancel(tasks[7]) and not q.cancel(tasks[7])
    expected = sorted(tasks[:7] + tasks[8:])
    assert [q.get() for _ in expected] == expected
    assert q.depths() == {1: 0, 2: 0, 3: 0, 4: 0} and not q.cancel(tasks[0])
    with pytest.raises(PolicyError, match="^counts\\(\\) needs an active policy"):
        q.counts()
    with pytest.raises(PolicyError, match="allow_timeout_override is false"):
        q.put(task(), request_timeout_s=1.0)
    with pytest.raises(PolicyError, match="must be a positive number"):
        q.put(task(), request_timeout_s=0)
    assert q.depths() == {1: 0, 2: 0, 3: 0, 4: 0}


@pytest.mark.parametrize("cls, policed", [
    (ThreadSafeBucketQueue, PolicyThreadSafeBucketQueue),
    (AsyncBucketQueue, PolicyAsyncBucketQueue),
    (BridgeBucketQueue, PolicyBridgeBucketQueue)])
def test_the_registry_s_factory_picks_the_policed_class_for_an_active_policy(cls, policed):
    policy = QueuePolicy(levels={LOW: LevelPolicy(max_queue_size=2)})
    made = create_queue(cls.__name__, policy=policy)
    assert type(made) is policed and isinstance(made, cls)
    assert type(policed(policy=policy)) is policed
    for plain_policy in (None, QueuePolicy()):
        assert type(create_queue(cls.__name__, policy=plain_policy)) is cls
    assert type(create_queue(cls.__name__)) is cls


@pytest.mark.parametrize("cls", [ThreadSafeBucketQueue, AsyncBucketQueue, BridgeBucketQueue])
def test_a_plain_class_constructs_plainly_and_names_the_factory_for_an_active_policy(cls):
    policy = QueuePolicy(levels={LOW: LevelPolicy(max_queue_size=2)})
    with pytest.raises(PolicyError, match=rf"create_queue\('{cls.__name__}', policy=...\)"
                                          rf".*Policy{cls.__name__}"):
        cls(policy=policy)
    with pytest.raises(PolicyError, match="needs an active policy"):
        {ThreadSafeBucketQueue: PolicyThreadSafeBucketQueue, AsyncBucketQueue:
         PolicyAsyncBucketQueue, BridgeBucketQueue: PolicyBridgeBucketQueue}[cls](policy=None)


def test_the_policed_bridge_offers_its_methods_on_both_faces():
    bridge = create_queue("BridgeBucketQueue",
                          policy=QueuePolicy(levels={LOW: LevelPolicy(max_queue_size=2)}))
    assert type(bridge) is PolicyBridgeBucketQueue and isinstance(bridge, BridgeBucketQueue)
    assert bridge.sync_q.put == bridge.put and bridge.async_q.put == bridge.async_put
    assert bridge.async_q.cancel == bridge.sync_q.cancel == bridge.cancel


def test_the_unlocked_bucket_queue_refuses_an_active_policy():
    with pytest.raises(PolicyError, match="BucketQueue takes no active policy"):
        BucketQueue(policy=QueuePolicy(LevelPolicy(max_queue_size=1)))


# -- limits --------------------------------------------------------------------------------


def test_a_full_level_rejects_at_once_and_other_levels_still_admit(make):
    q = make(policy=QueuePolicy(levels={LOW: LevelPolicy(max_queue_size=3)}))
    lows = [task(LOW) for _ in range(3)]
    for t in lows:
        q.put(t)
    refused = task(LOW)
    with pytest.raises(Rejected) as e:
        q.put(refused)  # would hang (wait_for: 10 s) if it blocked
    assert (e.value.level, e.value.reason) == (LOW, "full")
    assert str(e.value) == "level 4 (LOW) is full: 3 queued, max_queue_size 3"
    with pytest.raises(Rejected):
        q.put_nowait(task(LOW))
    normals = [task(NORMAL) for _ in range(50)]
    for t in normals:
        q.put(t)
    assert q.depths() == {1: 0, 2: 0, 3: 50, 4: 3} and not q.cancel(refused)
    assert [q.get() for _ in range(51)] == normals + lows[:1]
    q.put(refused)  # room again
    assert q.counts()[LOW] == {"admitted": 4, "rejected": 2, "expired": 0, "cancelled": 0,
                               "served": 1}
    assert q.counts()[NORMAL]["admitted"] == q.counts()[NORMAL]["served"] == 50


# -- REJECT ----------------------------------------------------------------------------------


def test_reject_never_hands_out_an_expired_request_and_reports_it_outside_the_lock(make):
    clock, reported = Clock(), []
    q = None

    def on_expired(t):
        reported.append((t, q.lock_held()))

    q = make(policy=QueuePolicy(LevelPolicy(default_timeout_s=1.0)), clock=clock,
             on_expired=on_expired)
    old, fresh = task(NORMAL), task(NORMAL)
    q.put(old)
    clock.now += 0.6
    q.put(fresh)
    clock.now += 0.5  # old waited 1.1 s, fresh 0.5 s
    assert q.get() is fresh
    assert reported == [(old, False)]
    assert q.drain_expired() == []  # reported to on_expired, so not kept as well
    clock.now += 5
    q.put(task(HIGH))
    q.get()
    assert q.counts()[NORMAL] == {"admitted": 2, "rejected": 0, "expired": 1, "cancelled": 0,
                                  "served": 1}


def test_a_short_request_timeout_behind_a_long_one_expires_before_any_getter_takes_it(make):
    clock, reported = Clock(), []
    q = make(policy=QueuePolicy(LevelPolicy(default_timeout_s=10, allow_timeout_override=True)),
             clock=clock, on_expired=reported.append)
    long_, short, last = task(), task(), task()
    q.put(long_)
    q.put(short, request_timeout_s=1)
    q.put(last, request_timeout_s=10)
    clock.now += 2
    assert q.depths()[NORMAL] == 3  # found lazily, at the head
    assert q.get() is long_ and q.get() is last
    with pytest.raises(q.empty_error):
        q.get_nowait()
    assert reported == [short] and q.drain_expired() == []
    assert q.counts()[NORMAL]["expired"] == 1 and q.counts()[NORMAL]["served"] == 2


def test_drain_expired_finds_expired_requests_anywhere_and_a_full_level_frees_expired_heads(make):
    clock, reported = Clock(), []
    q = make(policy=QueuePolicy(LevelPolicy(max_queue_size=3, default_timeout_s=5,
                                            allow_timeout_override=True)),
             clock=clock, on_expired=reported.append)
    a, b, c = task(), task(), task()
    q.put(a)
    q.put(b, request_timeout_s=1)
    q.put(c)
    clock.now += 2
    assert q.drain_expired() == [] and reported == [b]  # b was behind a live head
    assert q.depths()[NORMAL] == 2
    q.put(task())
    clock.now += 4  # a and c expired, at the head
    fourth = task()
    q.put(fourth)  # full, but its expired heads make room
    assert reported == [b, a, c] and q.drain_expired() == []
    assert q.depths()[NORMAL] == 2


# -- DELAY -----------------------------------------------------------------------------------


def test_delay_moves_an_expired_request_behind_its_level_s_live_ones_above_lower_levels(make):
    clock, reported = Clock(), []
    q = make(policy=QueuePolicy(levels={NORMAL: LevelPolicy(default_timeout_s=1.0,
                                                            timeout_action=DELAY)}),
             clock=clock, on_expired=reported.append)
    n1, n2, low = task(NORMAL), task(NORMAL), task(LOW)
    for t in (n1, n2, low):
        q.put(t)
    clock.now += 0.9
    n3 = task(NORMAL)
    q.put(n3)
    clock.now += 0.6  # n1 and n2 waited 1.5 s: expired; n3 0.6 s
    assert q.get() is n3
    n4, high = task(NORMAL), task(HIGH)
    q.put(n4)  # arrives after the expiry: still before the delayed ones
    q.put(high)
    assert [q.get() for _ in range(5)] == [high, n4, n1, n2, low]
    assert reported == [] and q.drain_expired() == []
    assert q.counts()[NORMAL] == {"admitted": 4, "rejected": 0, "expired": 0, "cancelled": 0,
                                  "served": 4}


def test_delayed_requests_still_count_towards_the_level_s_limit_and_can_be_cancelled(make):
    clock = Clock()
    q = make(policy=QueuePolicy(LevelPolicy(max_queue_size=2, default_timeout_s=1.0,
                                            timeout_action=DELAY)), clock=clock)
    a, b = task(), task()
    q.put(a)
    q.put(b)
    clock.now += 2
    with pytest.raises(Rejected, match="2 queued"):
        q.put(task())
    high = task(HIGH)
    q.put(high)
    assert q.get() is high
    assert q.cancel(b) and q.depths()[NORMAL] == 1
    assert q.get() is a
    assert q.counts()[NORMAL] == {"admitted": 2, "rejected": 1, "expired": 0, "cancelled": 1,
                                  "served": 1}


# -- cancel ----------------------------------------------------------------------------------


def test_cancel_removes_a_queued_request_and_refuses_a_served_one(make):
    q = make(policy=QueuePolicy(LevelPolicy(max_queue_size=10)))
    a, b, c = task(), task(), task()
    equal_to_b = Task(b.priority, b.seq, 0.0, "t", "m", {})
    for t in (a, b, c):
        q.put(t)
    assert not q.cancel(equal_to_b)  # the very object, not an equal one
    assert q.cancel(b) and not q.cancel(b)
    assert q.get() is a and not q.cancel(a)
    assert not q.cancel(task(99)) and not q.cancel("not a task")
    assert q.get() is c
    assert q.counts()[NORMAL] == {"admitted": 3, "rejected": 0, "expired": 0, "cancelled": 1,
                                  "served": 2}


# -- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize("request_timeout_s, policy, match", [
    (0, LevelPolicy(default_timeout_s=1, allow_timeout_override=True), "must be a positive"),
    (-2, LevelPolicy(allow_timeout_override=True), "must be a positive"),
    (5, LevelPolicy(default_timeout_s=1, allow_timeout_override=True), "only shorten"),
    (0.5, LevelPolicy(default_timeout_s=1), "allow_timeout_override is false"),
])
def test_a_bad_request_timeout_raises_one_error_and_queues_nothing(make, request_timeout_s,
                                                                  policy, match):
    q = make(policy=QueuePolicy(policy))
    with pytest.raises(PolicyError, match=match):
        q.put(task(), request_timeout_s=request_timeout_s)
    with pytest.raises(PolicyError, match=match):
        q.put_nowait(task(), request_timeout_s=request_timeout_s)
    assert q.depths() == {1: 0, 2: 0, 3: 0, 4: 0}
    assert all(c == dict.fromkeys(c, 0) for c in q.counts().values())


@pytest.mark.parametrize("cls", [ThreadSafeBucketQueue, AsyncBucketQueue, BridgeBucketQueue])
@pytest.mark.parametrize("policy, match", [
    (QueuePolicy(levels={5: LevelPolicy(max_queue_size=1)}), "^levels.5: the queue has no level 5"),
    (QueuePolicy(levels={0: LevelPolicy()}), "^levels.0: the queue has no level 0"),
    ({"default": {}}, "^policy must be a QueuePolicy or None"),
])
def test_a_policy_that_does_not_fit_the_queue_is_refused(cls, policy, match):
    with pytest.raises(PolicyError, match=match):
        create_queue(cls.__name__, policy=policy)
    create_queue(cls.__name__, policy=QueuePolicy(levels={5: LevelPolicy(max_queue_size=1)}),
                 levels=(1, 5))


def test_an_unknown_priority_is_still_a_value_error_with_a_policy(make):
    q = make(policy=QueuePolicy(LevelPolicy(max_queue_size=1, allow_timeout_override=True)))
    with pytest.raises(ValueError, match="not one of this queue's levels"):
        q.put(task(9))
    with pytest.raises(ValueError, match="not one of this queue's levels"):
        q.put(task(9), request_timeout_s=1)
    assert q.depths() == {1: 0, 2: 0, 3: 0, 4: 0}


# -- join, shutdown, a failing callback --------------------------------------------------------


def test_join_does_not_wait_for_expired_or_cancelled_requests():
    clock = Clock()
    q = PolicyThreadSafeBucketQueue(policy=QueuePolicy(LevelPolicy(default_timeout_s=1)),
                                    clock=clock)
    a, b, c = task(), task(), task()
    for t in (a, b, c):
        q.put(t)
    q.get()
    q.task_done()
    assert q.cancel(b)
    clock.now += 2
    assert q.drain_expired() == [c]
    joined = threading.Thread(target=q.join, daemon=True)
    joined.start()
    joined.join(10)
    assert not joined.is_alive()


def test_an_immediate_shutdown_counts_what_it_drops_as_cancelled(make):
    q = make(policy=QueuePolicy(LevelPolicy(max_queue_size=5)))
    for _ in range(3):
        q.put(task())
    q.queue.shutdown(immediate=True)
    assert q.counts()[NORMAL] == {"admitted": 3, "rejected": 0, "expired": 0, "cancelled": 3,
                                  "served": 0}
    assert q.depths()[NORMAL] == 0


def test_a_failing_callback_goes_to_the_unraisable_hook_and_the_get_still_returns(make,
                                                                                   monkeypatch):
    clock, hooked = Clock(), []
    monkeypatch.setattr("sys.unraisablehook", hooked.append)

    def on_expired(t):
        raise RuntimeError(f"cannot answer {t.task_id}")

    q = make(policy=QueuePolicy(LevelPolicy(default_timeout_s=1)), clock=clock,
             on_expired=on_expired)
    q.put(task())
    clock.now += 2
    fresh = task()
    q.put(fresh)
    assert q.get() is fresh
    [args] = hooked
    assert isinstance(args.exc_value, RuntimeError) and "on_expired" in args.err_msg


def test_a_cancel_wakes_a_putter_waiting_for_room_in_a_bounded_queue():
    q = PolicyThreadSafeBucketQueue(maxsize=1, policy=QueuePolicy(LevelPolicy(max_queue_size=5)))
    first = task()
    q.put(first)
    second = task()
    putter = threading.Thread(target=q.put, args=(second,), daemon=True)
    putter.start()
    deadline = time.monotonic() + 10
    while not q.not_full.waiting:
        assert time.monotonic() < deadline, "the putter never waited"
        time.sleep(0.001)
    assert q.cancel(first)
    putter.join(10)
    assert not putter.is_alive() and q.get_nowait() is second


# -- an expiry frees room: a putter waiting on maxsize is woken ----------------------------

REJECT_SOON = QueuePolicy(LevelPolicy(default_timeout_s=1.0))


def wait_until(condition, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


@pytest.mark.parametrize("kind", ["thread", "bridge-sync"])
def test_a_get_that_finds_the_queue_expired_wakes_a_blocked_putter(kind):
    clock = Clock()
    queue_class = ThreadSafeBucketQueue if kind == "thread" else BridgeBucketQueue
    whole = create_queue(queue_class.__name__, 1, policy=REJECT_SOON, clock=clock)
    q = whole if kind == "thread" else whole.sync_q
    a, b = task(), task()
    q.put(a)
    putter = threading.Thread(target=q.put, args=(b,), kwargs={"timeout": 10})
    putter.start()
    wait_until(lambda: whole.not_full.waiting)
    clock.now += 2  # a's deadline passes: the get expires it, which makes room for b
    assert q.get(timeout=5) is b
    putter.join(5)
    assert not putter.is_alive()
    assert q.counts()[NORMAL]["expired"] == 1


@pytest.mark.parametrize("kind", ["asyncio", "bridge-async"])
def test_an_async_get_that_finds_the_queue_expired_wakes_a_waiting_async_putter(kind):
    clock = Clock()

    async def main():
        queue_class = AsyncBucketQueue if kind == "asyncio" else BridgeBucketQueue
        whole = create_queue(queue_class.__name__, 1, policy=REJECT_SOON, clock=clock)
        q = whole if kind == "asyncio" else whole.async_q
        a, b = task(), task()
        await q.put(a)
        putter = asyncio.create_task(q.put(b))
        await asyncio.sleep(0)
        assert (whole._putters if kind == "asyncio" else whole.not_full).waiting
        clock.now += 2
        assert await asyncio.wait_for(q.get(), 5) is b
        await asyncio.wait_for(putter, 5)

    asyncio.run(main())


def test_a_put_that_expires_its_full_level_passes_the_room_on_to_the_next_putter():
    clock = Clock()
    policy = QueuePolicy(LevelPolicy(), levels={LOW: LevelPolicy(max_queue_size=3,
                                                                 default_timeout_s=1.0)})
    q = PolicyThreadSafeBucketQueue(4, policy=policy, clock=clock)
    for _ in range(3):
        q.put(task(LOW))
    q.put(task(HIGH))
    putters = []
    for n, item in enumerate((task(LOW), task(NORMAL)), 1):  # the LOW putter waits first
        putters.append(threading.Thread(target=q.put, args=(item,), kwargs={"timeout": 10}))
        putters[-1].start()
        wait_until(lambda n=n: len(q.not_full.waiting) == n)
    clock.now += 2
    assert q.get().priority == HIGH  # room for one: the LOW put expires its level's three
    for putter in putters:
        putter.join(5)
        assert not putter.is_alive()
    assert q.depths() == {CRITICAL: 0, HIGH: 0, NORMAL: 1, LOW: 1}


# -- retention: expiries nobody drains stay bounded ----------------------------------------


@pytest.mark.parametrize("kind", ["thread", "asyncio", "bridge-sync"])
def test_100000_expiries_never_drained_keep_only_the_newest_keep_expired(kind):
    clock = Clock()
    f = Face(kind, policy=QueuePolicy(LevelPolicy(default_timeout_s=1.0)), clock=clock,
             keep_expired=100)
    items = [task() for _ in range(100_000)]
    for item in items:
        f.put_nowait(item)
    clock.now += 2
    with pytest.raises(f.empty_error):
        f.get_nowait()  # finds all 100,000 expired at the head
    assert len(f.queue._expired) == 100  # the bound, not 100,000
    assert f.counts()[NORMAL]["expired"] == 100_000
    assert f.drain_expired() == items[-100:] and f.drain_expired() == []


def test_with_on_expired_no_expiry_is_kept_after_it_is_reported():
    clock, reported = Clock(), []
    q = PolicyThreadSafeBucketQueue(policy=QueuePolicy(LevelPolicy(default_timeout_s=1.0)),
                              clock=clock, on_expired=reported.append)
    for _ in range(1000):
        q.put(task())
    clock.now += 2
    assert q.drain_expired() == [] and len(reported) == 1000 and not q._expired


@pytest.mark.parametrize("bad", [-1, 1.5, True, "10"])
def test_keep_expired_must_be_a_whole_number(bad):
    with pytest.raises(ValueError, match="keep_expired must be a whole number >= 0"):
        PolicyThreadSafeBucketQueue(policy=QueuePolicy(LevelPolicy(default_timeout_s=1.0)),
                              keep_expired=bad)
