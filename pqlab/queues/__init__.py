"""Queues: the registry (``QUEUES``) and every queue pqlab compares.

Importing this package registers every queue, in the order the reports list
them: the standard library and the lock-guarded heap (``registry``), pqlab's
bucket queues (``syncqueue``, ``asyncqueue``, ``bridge``, built from the
storage policies in ``storage`` and the waiter lists in ``waiters``), the
library adapters (``libqueues``), then the process-safe ones (``mpqueue``,
and ``redisqueue`` with its server manager ``redisserver``, Sentinel discovery
``redissentinel`` and the replicated deployment ``redisdeploy``).
"""

from pqlab.queues.registry import (
    APIS,
    QUEUES,
    QueueSpec,
    async_face,
    get_spec,
    register_queue,
    sync_face,
    unregister_queue,
)

# isort: off
from pqlab.queues import syncqueue, asyncqueue, bridge, libqueues  # noqa: F401, E402 - they register
from pqlab.queues import mpqueue, redisqueue  # noqa: F401, E402 - they register
# isort: on

__all__ = ["APIS", "QUEUES", "QueueSpec", "async_face", "get_spec", "register_queue",
           "sync_face", "unregister_queue"]
