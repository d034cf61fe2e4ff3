"""Run a coroutine on a fresh event loop in a thread of its own.

The probes (``pqlab.harness.features``) and the idle-burn measurement
(``pqlab.harness.idleburn``) each need their own loop, also when called from code
that already runs one (a Jupyter kernel does); ``asyncio.run`` refuses that,
a new thread does not mind.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_in_loop_thread(main: Callable[[], Coroutine[Any, Any, T]],
                       name: str = "pqlab-loop") -> T:
    """``asyncio.run(main())`` in a new thread; blocks until it ends, returns its result
    and re-raises what it raised."""
    outcome: list[T] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            outcome.append(asyncio.run(main()))
        except BaseException as exc:  # noqa: BLE001 - raised again in the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return outcome[0]
