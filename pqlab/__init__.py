"""pqlab: a benchmark lab for priority queues in a model-serving request scheduler.

Public API::

    from pqlab import Priority, Task, QUEUES, register_queue, run
    result = run("heapq", "single", tasks=10_000)
"""

from pqlab import mpqueue, processes, redisqueue  # noqa: F401 - register queues, scenario
from pqlab.metrics import RunResult
from pqlab.queues import QUEUES, QueueSpec, register_queue, unregister_queue
from pqlab.runner import run
from pqlab.scenarios import SCENARIOS, Records
from pqlab.task import Priority, Task, make_workload

__version__ = "0.1.0"

__all__ = [
    "QUEUES",
    "SCENARIOS",
    "Priority",
    "QueueSpec",
    "Records",
    "RunResult",
    "Task",
    "make_workload",
    "register_queue",
    "run",
    "unregister_queue",
]
