"""What a client sends and what the queue holds: the request body, the queued job, outcomes.

``InferBody`` is the JSON body of ``POST /v1/infer`` (and of the no-op
endpoint): a priority (1-4 or a level name, default NORMAL), an optional
``timeout_ms`` and an optional ``work_ms``; pydantic refuses anything else
with a 422 that names the field. ``Job`` is what goes through the queue: it
orders by ``(priority, seq)`` as ``Task`` does (so ``asyncio.PriorityQueue``
and the library heaps never compare payloads) and carries the future its
handler awaits. A job's ``state`` changes only through ``Job.claim`` under
one lock, so a worker thread and a handler can never both settle it.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from time import perf_counter_ns
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pqlab.core.checks import LEVEL_NAMES
from pqlab.core.task import PRIORITY_LEVELS, STOP, Priority, next_seq

# A job's life: queued, then exactly one of the others.
QUEUED = "queued"
TAKEN = "taken"  # a worker has it: it will be served
EXPIRED = "expired"  # its timeout passed while queued: 504
CANCELLED = "cancelled"  # its client left and the queue removed it
GONE = "gone"  # its client left; the queue cannot cancel, so a worker skips it (abandoned)
LATE = "late"  # expired by the service (a queue without a policy): a worker skips it
SHUT = "shut"  # still queued at shutdown: 503

# Every outcome the service counts, per priority level (``/metrics``, ``/v1/stats``).
OUTCOMES = ("admitted", "rejected", "served", "expired", "cancelled", "abandoned", "shutdown",
            "failed")


def parse_priority(value: Any) -> int:
    """A priority from 1-4 or a level name (any case); ``ValueError`` names what is allowed."""
    if isinstance(value, str) and value.strip().upper() in Priority.__members__:
        return int(Priority[value.strip().upper()])
    if isinstance(value, int) and not isinstance(value, bool) and value in PRIORITY_LEVELS:
        return value
    raise ValueError(f"must be 1-4 or one of {', '.join(LEVEL_NAMES)}, got {value!r}")


class InferBody(BaseModel):
    """The body of ``POST /v1/infer``; an unknown field or a bad value is a 422 naming it."""

    model_config = ConfigDict(extra="forbid", strict=True)  # strict: true is not a number

    priority: int | str = Field(default="NORMAL", validate_default=True,
                                description="1-4 or CRITICAL..LOW")
    timeout_ms: float | None = Field(default=None, gt=0, allow_inf_nan=False,
                                     description="the longest the request may wait queued")
    work_ms: float | None = Field(default=None, ge=0, le=60_000, allow_inf_nan=False,
                                  description="its inference time (default: drawn from "
                                              "the service's --service)")

    @field_validator("priority", mode="before")
    @classmethod
    def _level(cls, value: Any) -> int:
        return parse_priority(value)


_STATE_LOCK = threading.Lock()  # every Job.claim: a handler and a worker thread race on it


@dataclass(order=True, slots=True)
class Job:
    """One request in the queue; ordered by ``(priority, seq)`` only.

    ``future`` is resolved on ``loop`` with the job's result (``Job.settle``,
    from any thread); ``enqueued_ns``, ``taken_ns`` and ``service_ns`` are the
    server-side split. ``payload`` is ``STOP`` for a stop sentinel.
    """

    priority: int
    seq: int
    work_s: float = field(compare=False, default=0.0)
    deadline_ns: int | None = field(compare=False, default=None)
    loop: Any = field(compare=False, default=None, repr=False)
    future: Any = field(compare=False, default=None, repr=False)
    state: str = field(compare=False, default=QUEUED)
    enqueued_ns: int = field(compare=False, default=0)
    taken_ns: int = field(compare=False, default=0)
    service_ns: int = field(compare=False, default=0)
    payload: Any = field(compare=False, default=None, repr=False)
    timer: Any = field(compare=False, default=None, repr=False)  # the handler's deadline

    @classmethod
    def make(cls, priority: int, work_s: float, timeout_s: float | None = None) -> Job:
        """A job for the running loop, stamped now; its deadline ``timeout_s`` from now."""
        loop = asyncio.get_running_loop()
        now = perf_counter_ns()
        deadline = None if timeout_s is None else now + round(timeout_s * 1e9)
        return cls(priority, next_seq(), work_s, deadline, loop, loop.create_future(),
                   enqueued_ns=now)

    @classmethod
    def sentinel(cls) -> Job:
        """A stop sentinel: LOW and the newest sequence, so it goes after every request."""
        return cls(int(Priority.LOW), next_seq(), payload=STOP)

    @property
    def request_id(self) -> str:
        return f"r{self.seq}"

    @property
    def is_stop(self) -> bool:
        return self.payload is STOP

    def claim(self, new_state: str, expected: tuple[str, ...] = (QUEUED,)) -> bool:
        """Move to ``new_state`` if the state is one of ``expected``; whether it moved."""
        with _STATE_LOCK:
            if self.state not in expected:
                return False
            self.state = new_state
            return True

    def settle(self, result: dict[str, Any]) -> None:
        """Resolve the handler's future with ``result``, from the loop or from any thread."""
        if self.future is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            _resolve(self.future, result)
        else:
            try:
                self.loop.call_soon_threadsafe(_resolve, self.future, result)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                pass


def _resolve(future: asyncio.Future, result: dict[str, Any]) -> None:
    if not future.done():
        future.set_result(result)
