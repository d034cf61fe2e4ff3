"""Queues: the registry (``QUEUES``) and every queue pqlab compares.

Importing this package registers every queue, in the order
``catalog.BUILTIN_QUEUES`` declares: the standard library and the
lock-guarded heap (``registry``), pqlab's bucket queues (``syncqueue``,
``asyncqueue``, ``bridge``, built from the storages in ``storage`` and
``policystorage`` and the waiter lists in ``waiters``), the library adapters
(``libqueues``), then the process-safe ones (``mpqueue``, and
``redisqueue`` with its key layout ``rediskeys``, its Lua ``redisscripts``,
its server manager ``redisserver``, Sentinel discovery ``redissentinel`` and
the replicated deployment ``redisdeploy``).
"""

from pqlab.queues.catalog import BUILTIN_QUEUES, QUEUE_ORDER
from pqlab.queues.registry import (
    APIS,
    QUEUES,
    PolicyFactory,
    QueueSpec,
    async_face,
    create_queue,
    get_spec,
    register_queue,
    sync_face,
    unregister_queue,
)

__all__ = ["APIS", "BUILTIN_QUEUES", "QUEUES", "QUEUE_ORDER", "PolicyFactory", "QueueSpec",
           "async_face", "create_queue", "get_spec", "register_queue", "sync_face",
           "unregister_queue"]
