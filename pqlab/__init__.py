"""pqlab: a benchmark lab for priority queues in a model-serving request scheduler.

Public API::

    from pqlab import Priority, Task, QUEUES, register_queue, run
    result = run("heapq", "single", tasks=10_000)
"""

# Importing these modules registers their queues and scenarios, in this order.
# isort: off
from pqlab import syncqueue, asyncqueue, bridge, libqueues, mixed  # noqa: F401
from pqlab import mpqueue, processes, redisqueue  # noqa: F401
# isort: on
from pqlab.asyncqueue import AsyncBucketQueue
from pqlab.bridge import BridgeBucketQueue
from pqlab.metrics import RunResult
from pqlab.queues import QUEUES, QueueSpec, register_queue, unregister_queue
from pqlab.runner import run
from pqlab.scenarios import SCENARIOS, Records
from pqlab.syncqueue import BucketQueue, ShutDown, ThreadSafeBucketQueue
from pqlab.task import Priority, Task, make_workload

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
    "make_workload",
    "register_queue",
    "run",
    "unregister_queue",
]
