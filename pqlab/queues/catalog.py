"""The queues pqlab compares, declared once and in order: ``BUILTIN_QUEUES``.

The tuple's order is the order the reports list the queues and the
decision's last tie-break (``pqlab.decide``): the standard library and the
lock-guarded heap, pqlab's bucket queues, the library adapters, then the
process-safe ones. Importing this module registers each, in that order, in
``QUEUES`` (``pqlab.queues`` imports it); the modules that define the queues
register nothing themselves.

The bucket queues' factories are ``PolicyFactory``s: ``policy=`` with an
active ``QueuePolicy`` makes the class's policed twin.
"""

from __future__ import annotations

import asyncio
import queue

from pqlab.queues import libqueues, mpqueue, redisqueue
from pqlab.queues.asyncqueue import AsyncBucketQueue, PolicyAsyncBucketQueue
from pqlab.queues.bridge import BridgeBucketQueue, PolicyBridgeBucketQueue
from pqlab.queues.registry import (
    QUEUES,
    HeapqQueue,
    PolicyFactory,
    QueueSpec,
    ThreadSafeHeapQueue,
)
from pqlab.queues.syncqueue import BucketQueue, PolicyThreadSafeBucketQueue, ThreadSafeBucketQueue

BUILTIN_QUEUES: tuple[QueueSpec, ...] = (
    QueueSpec("heapq", HeapqQueue, thread_safe=False, async_safe=False,
              description="stdlib heapq on a list (single-threaded)"),
    QueueSpec("queue.PriorityQueue", queue.PriorityQueue, thread_safe=True, async_safe=False,
              description="stdlib queue.PriorityQueue (thread-safe, blocking)"),
    QueueSpec("asyncio.PriorityQueue", asyncio.PriorityQueue, thread_safe=False,
              async_safe=True, api="async",
              description="stdlib asyncio.PriorityQueue (coroutine-safe)"),
    QueueSpec("ThreadSafeHeapQueue", ThreadSafeHeapQueue, thread_safe=True, async_safe=False,
              description="heapq guarded by a threading.Lock (the POC's custom queue)"),
    QueueSpec("BucketQueue", BucketQueue, thread_safe=False, async_safe=False,
              description="pqlab: one deque per priority level, no lock (single-threaded)"),
    QueueSpec("ThreadSafeBucketQueue",
              PolicyFactory(ThreadSafeBucketQueue, PolicyThreadSafeBucketQueue),
              thread_safe=True, async_safe=False,
              description="pqlab: bucket storage, one lock, blocking get(timeout=), shutdown"),
    QueueSpec("AsyncBucketQueue", PolicyFactory(AsyncBucketQueue, PolicyAsyncBucketQueue),
              thread_safe=False, async_safe=True, api="async",
              description="pqlab: bucket storage, asyncio.Queue's API"),
    QueueSpec("BridgeBucketQueue", PolicyFactory(BridgeBucketQueue, PolicyBridgeBucketQueue),
              thread_safe=True, async_safe=True, api="bridge",
              description="pqlab: bucket storage with a thread face and an asyncio face"),
    QueueSpec("janus.PriorityQueue", libqueues.JanusPriorityQueue, thread_safe=True,
              async_safe=True, api="bridge",
              description="janus 2: a heap with a thread face and an asyncio face"),
    QueueSpec("culsans.PriorityQueue", libqueues.CulsansPriorityQueue, thread_safe=True,
              async_safe=True, api="bridge",
              description="culsans (aiologic): a heap with a thread face and an asyncio face"),
    QueueSpec("multiprocessing", mpqueue.make_queue, thread_safe=True, async_safe=False,
              process_safe=True,
              description="queue.PriorityQueue in a multiprocessing manager process"),
    QueueSpec("redis", redisqueue.make_queue, thread_safe=True, async_safe=False,
              process_safe=True,
              description="Redis sorted sets, claim/ack with leases (at-least-once; "
                          "needs redis-server)"),
)

QUEUE_ORDER: tuple[str, ...] = tuple(spec.name for spec in BUILTIN_QUEUES)

QUEUES.update((spec.name, spec) for spec in BUILTIN_QUEUES)
