"""pqlab: a benchmark lab for priority queues in a model-serving request scheduler.

Public API::

    from pqlab import Priority, Task, QUEUES, create_queue, register_queue, run
    result = run("heapq", "single", tasks=10_000)
    queue = create_queue("AsyncBucketQueue", policy=policy)  # policed when the policy is active
"""

# Importing ``pqlab.queues`` and ``pqlab.scenarios`` registers every queue and
# scenario. The tree's layers are in docs/design.md.
from pqlab.core.task import Priority, Task, make_workload
from pqlab.harness.runner import run
from pqlab.measure.metrics import RunResult
from pqlab.measure.records import Records
from pqlab.queues import QUEUES, QueueSpec, create_queue, register_queue, unregister_queue
from pqlab.queues.asyncqueue import AsyncBucketQueue
from pqlab.queues.bridge import BridgeBucketQueue
from pqlab.queues.syncqueue import BucketQueue, ShutDown, ThreadSafeBucketQueue
from pqlab.scenarios import SCENARIOS

__version__ = "0.1.0"

__all__ = [
    "AsyncBucketQueue",
    "BridgeBucketQueue",
    "BucketQueue",
    "QUEUES",
    "SCENARIOS",
    "ShutDown",
    "Priority",
    "QueueSpec",
    "Records",
    "RunResult",
    "Task",
    "ThreadSafeBucketQueue",
    "create_queue",
    "make_workload",
    "register_queue",
    "run",
    "unregister_queue",
]
