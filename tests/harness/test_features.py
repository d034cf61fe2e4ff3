"""pqlab.harness.features: each feature is probed on a real queue, and a probe can say no."""

from __future__ import annotations

import asyncio
import queue as stdlib_queue

import pytest

from pqlab.harness import features
from pqlab.queues import QueueSpec


def test_the_stdlib_and_pqlab_queues_have_what_they_document():
    pq = features.probe("queue.PriorityQueue")
    assert pq.get_timeout and pq.bounded and pq.cancel_safe_get is None
    assert not pq.shutdown  # Python 3.11's queue has no shutdown (3.13 added it)
    bucket = features.probe("ThreadSafeBucketQueue")
    assert bucket.get_timeout and bucket.shutdown and bucket.bounded
    bridge = features.probe("BridgeBucketQueue")
    assert all(bridge.has(f) for f in features.FEATURES)


def test_a_polling_heap_has_none_of_them():
    heap = features.probe("ThreadSafeHeapQueue")
    assert not any(heap.has(f) for f in features.FEATURES)


class HandsOffToWaiters:
    """Hands a put straight to a waiting getter's future: a getter cancelled after the
    hand-off but before it runs drops the task (the bug the probe looks for)."""

    def __init__(self) -> None:
        self.items: list = []
        self.waiters: list[asyncio.Future] = []

    async def put(self, item) -> None:
        if self.waiters:
            self.waiters.pop(0).set_result(item)
        else:
            self.items.append(item)

    async def get(self):
        if self.items:
            return self.items.pop(0)
        waiter = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        return await waiter


def test_a_get_that_loses_the_task_on_cancel_is_caught():
    unsafe = QueueSpec("unsafe", HandsOffToWaiters, thread_safe=False, async_safe=True,
                       api="async")
    assert features.probe_cancel_safe_get(unsafe) is False
    safe = QueueSpec("safe", asyncio.PriorityQueue, thread_safe=False, async_safe=True,
                     api="async")
    assert features.probe_cancel_safe_get(safe) is True


class NeverTimesOut(stdlib_queue.PriorityQueue):
    def get(self, block=True, timeout=None):
        raise stdlib_queue.Empty  # at once, whatever the timeout


def test_a_get_that_ignores_its_timeout_is_caught():
    spec = QueueSpec("eager", NeverTimesOut, thread_safe=True, async_safe=False)
    assert features.probe_get_timeout(spec) is False


def test_the_frame_has_a_row_per_in_process_queue_and_unknown_names_fail():
    frame = features.features_frame(["heapq", "AsyncBucketQueue"])
    assert list(frame["queue"]) == ["heapq", "AsyncBucketQueue"]
    assert list(frame.columns) == ["queue", *features.FEATURES]
    with pytest.raises(KeyError, match="allowed"):
        features.probe("no-such-queue")


def test_probes_run_inside_a_running_event_loop():
    """A Jupyter kernel runs a loop; the async probes must still work there."""

    async def main():
        return features.probe("AsyncBucketQueue")

    probed = asyncio.run(main())
    assert probed.cancel_safe_get and probed.shutdown


def test_the_serving_features_are_pqlabs_bucket_queues_only():
    frame = features.features_frame().set_index("queue")
    serving = frame[list(features.SERVING)]
    has_all = set(serving.index[serving.all(axis=1)])
    assert {"ThreadSafeBucketQueue", "AsyncBucketQueue", "BridgeBucketQueue"} <= has_all
    for stdlib in ("queue.PriorityQueue", "asyncio.PriorityQueue", "janus.PriorityQueue"):
        assert not serving.loc[stdlib].any(), stdlib


class CancelDoesNothing:
    """A queue whose cancel() says yes but leaves the request queued (what the probe catches)."""

    def __init__(self) -> None:
        self.items: list = []

    def put(self, item, block=True, timeout=None) -> None:
        self.items.append(item)

    def get(self, block=True, timeout=None):
        return self.items.pop(0)

    def cancel(self, item) -> bool:
        return True


def test_a_cancel_that_leaves_the_request_queued_is_not_the_feature():
    spec = QueueSpec("fake", CancelDoesNothing, thread_safe=True, async_safe=False, api="sync",
                     description="cancel says yes and does nothing")
    assert features.probe_cancel_queued(spec) is False
    assert features.probe_level_limits(spec) is False  # no policy= argument
