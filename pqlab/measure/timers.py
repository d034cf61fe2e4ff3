"""Sleep precision: Linux's per-thread timer slack, read and narrowed for a load run.

Linux lets a sleeping thread's wake-up be late by up to its *timer slack*
(50 µs by default) so that timers can be batched. An open-loop run sleeps
twice per task: the producer until the task's intended arrival, the worker
for its service time. Both overshoots land in the measured waits, so
``load`` narrows the slack to 1 ns for its own threads (a thread inherits its
creator's slack) and puts it back afterwards. Elsewhere (no ``prctl``) both
functions do nothing.

What is left of the overshoot is the kernel's and the virtual machine's
wake-up; ``sleep_until`` hides it by sleeping to ``SPIN_NS`` before the
deadline and yielding the CPU (and the GIL) in a loop for the rest. Every
``load`` run prints what remains: the producers' lateness and the service
overshoot, mean to max (README, "Sleep precision", has the before and after).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import time
from collections.abc import Iterator

PR_SET_TIMERSLACK = 29  # <linux/prctl.h>
PR_GET_TIMERSLACK = 30
FINE_SLACK_NS = 1  # the smallest slack Linux accepts (0 means "back to the default")
SPIN_NS = 200_000  # sleep_until's spin: more than a VM's wake-up, little CPU per sleep


def _prctl():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def timer_slack_ns() -> int | None:
    """This thread's timer slack in ns, or None where it cannot be read."""
    prctl = _prctl()
    if prctl is None:
        return None
    value = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0)
    return value if value >= 0 else None


@contextlib.contextmanager
def fine_timer_slack(slack_ns: int = FINE_SLACK_NS) -> Iterator[int | None]:
    """Within the block this thread, and threads it starts, sleep with ``slack_ns`` of slack.

    Yields the slack in effect (None where it cannot be set); restores the
    thread's previous slack on the way out.
    """
    prctl, before = _prctl(), timer_slack_ns()
    if prctl is None or before is None or prctl(PR_SET_TIMERSLACK, slack_ns, 0, 0, 0) != 0:
        yield before
        return
    try:
        yield timer_slack_ns()
    finally:
        prctl(PR_SET_TIMERSLACK, before, 0, 0, 0)


def sleep_until(deadline_ns: int, spin_ns: int = SPIN_NS) -> None:
    """Return at ``deadline_ns`` (``time.perf_counter_ns``), never before, late by about 1 µs.

    Sleeps until ``spin_ns`` before the deadline, then calls ``os.sched_yield``
    (which lets other threads take the GIL) until it has passed.
    """
    pc, sleep, yield_ = time.perf_counter_ns, time.sleep, os.sched_yield
    while (left := deadline_ns - pc()) > spin_ns:
        sleep((left - spin_ns) / 1e9)
    while pc() < deadline_ns:
        yield_()
