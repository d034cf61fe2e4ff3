"""Progress of sweeps for the person waiting on a batch, across the kernel's process boundary.

A sweep inside a papermill kernel cannot print to the batch's console: its
output goes into the executed notebook. So the batch names a file in the
environment variable ``PQLAB_PROGRESS_FILE`` before it starts a notebook's
kernel (which inherits it); every sweep in that kernel appends one JSON line
when it starts and one per finished unit (``Reporter``), and the batch reads the
file while the notebook runs (``watching``) and prints lines such as
``01-single-baseline: 37/90 units, ~52 s left``.

Without the variable a ``Reporter`` does nothing. A notebook with several
sweeps counts the units of the sweeps started so far.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

ENV = "PQLAB_PROGRESS_FILE"
POLL_S = 1.0  # how often the batch reads the file (more often when asked to print more often)
# At most one line per notebook this often: 01 in the default profile (97 s) prints ~9.
PRINT_EVERY_S = 10.0


class Reporter:
    """Appends a sweep's progress to the file named by ``PQLAB_PROGRESS_FILE``, if set."""

    def __init__(self, total: int, done: int = 0) -> None:
        self.path = os.environ.get(ENV) or None
        self.sweep = uuid.uuid4().hex[:12]
        self.total, self.done = total, done
        self._write()

    def advance(self, units: int = 1) -> None:
        """Count ``units`` more finished units (one line appended)."""
        self.done += units
        self._write()

    def grow(self, units: int, note: str) -> None:
        """``units`` more to measure than planned, and why (the batch prints ``note`` once)."""
        self.total += units
        self._write(note)

    def _write(self, note: str | None = None) -> None:
        if self.path is None:
            return
        entry = {"sweep": self.sweep, "done": self.done, "total": self.total,
                 "time": time.time()}
        if note is not None:
            entry["note"] = note
        line = json.dumps(entry)
        # One short write in append mode: a reader sees whole lines, or a last partial
        # one that ``read`` skips.
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")


@dataclass(frozen=True)
class Snapshot:
    """Units done of the units known so far, and the time left at the rate so far."""

    done: int
    total: int
    left_s: float | None  # None until a unit has been measured
    notes: tuple[str, ...] = ()  # what the sweeps said (``Reporter.grow``), in order

    def line(self, name: str) -> str:
        left = "" if self.left_s is None else f", ~{self.left_s:.0f} s left"
        return f"  {name}: {self.done}/{self.total} units{left}"


def read(path: Path, now: float | None = None) -> Snapshot | None:
    """The progress in ``path`` (None if no sweep has reported yet).

    The time left is (units left) × (seconds since the first sweep started) /
    (units measured since): repetitions are the sweeps' outer loop, so each
    stretch of units mixes small and large cells alike.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    first: dict[str, dict] = {}
    last: dict[str, dict] = {}
    notes = []
    for raw in text.splitlines():
        try:
            entry = json.loads(raw)
        except json.JSONDecodeError:  # a line still being written
            continue
        first.setdefault(entry["sweep"], entry)
        last[entry["sweep"]] = entry
        if "note" in entry:
            notes.append(entry["note"])
    if not last:
        return None
    done = sum(e["done"] for e in last.values())
    total = sum(e["total"] for e in last.values())
    measured = done - sum(e["done"] for e in first.values())
    elapsed = (time.time() if now is None else now) - min(e["time"] for e in first.values())
    left = (total - done) * elapsed / measured if measured > 0 else None
    return Snapshot(done, total, left, tuple(notes))


@contextlib.contextmanager
def watching(name: str, echo: Callable[[str], None], *,
             every_s: float = PRINT_EVERY_S) -> Iterator[Path]:
    """Set ``PQLAB_PROGRESS_FILE`` to a fresh file for the block and print its progress.

    A thread reads the file every second (or every ``every_s / 2``, at least
    every 0.05 s) and calls ``echo`` with a line when the progress changed and
    ``every_s`` have passed since the last line. The variable is restored and
    the thread stopped when the block ends.
    """
    poll_s = max(0.05, min(POLL_S, every_s / 2))
    saved = os.environ.get(ENV)
    stop = threading.Event()
    with tempfile.TemporaryDirectory(prefix="pqlab-progress-") as tmp:
        path = Path(tmp) / "progress.jsonl"

        def watch() -> None:
            shown, last_print, noted = None, time.monotonic(), 0
            while not stop.wait(poll_s):
                snap = read(path)
                if snap is None:
                    continue
                for note in snap.notes[noted:]:  # at once, each once
                    echo(f"  {name}: {note}")
                noted = len(snap.notes)
                if (snap.done, snap.total) == shown:
                    continue
                if time.monotonic() - last_print >= every_s:
                    echo(snap.line(name))
                    shown, last_print = (snap.done, snap.total), time.monotonic()

        os.environ[ENV] = str(path)
        thread = threading.Thread(target=watch, name="pqlab-progress", daemon=True)
        thread.start()
        try:
            yield path
        finally:
            stop.set()
            thread.join()
            if saved is None:
                os.environ.pop(ENV, None)
            else:
                os.environ[ENV] = saved
