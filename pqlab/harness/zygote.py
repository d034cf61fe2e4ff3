"""Fresh processes for sweep units, forked from a process that has only imported pqlab.

A new interpreter per unit (``python -m pqlab.harness.worker``) pays its start-up
and imports, about 0.5 s here, on every unit: most of a 10,000-task unit's
time. A zygote pays them once: ``python -m pqlab.harness.zygote`` imports the
worker, then forks one child per unit and never measures anything itself, so
each child starts as a fresh interpreter would after its imports (no thread, no
event loop, no heap history of an earlier unit) at the cost of a fork.

Protocol, one line each way per unit: the parent writes ``{"spec": ..., "out":
...}`` (JSON) to the zygote's stdin; the zygote forks, answers ``<pid>``, waits
for the child and answers ``<exit code>``. The child writes its result to
``out`` (``worker.main``) and its standard error to ``out + ".err"``. The
zygote exits when its stdin closes, so it does not outlive its parent.

``Zygote`` is the parent's side (``pqlab.study.sweep`` starts one per sweep).
On Linux the zygote dies with its parent and a unit's process with the zygote
(``PR_SET_PDEATHSIG``): a killed sweep leaves no unit measuring behind it.
"""

from __future__ import annotations

import atexit
import ctypes
import gc
import json
import os
import random
import select
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

ERR_SUFFIX = ".err"


class ZygoteError(RuntimeError):
    """The zygote died or a unit's process did not finish in time (one line)."""


# -- the zygote ----------------------------------------------------------------------

PR_SET_PDEATHSIG = 1  # prctl(2)


def _die_with_parent() -> None:
    """Be killed when the parent process ends (Linux; elsewhere nothing happens)."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):
            pass



def _child(spec_json: str, out: str) -> int:
    """Run one unit in the forked child; standard error goes to ``out + .err``."""
    _die_with_parent()
    fd = os.open(out + ERR_SUFFIX, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 2)
    os.dup2(fd, 1)  # the zygote's stdout is the protocol: a unit's prints go to .err
    os.close(fd)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 - lives as long as the child
    sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115 - lives as long as the child
    random.seed()  # a fresh interpreter seeds from the OS; a fork would share the zygote's
    try:
        from pqlab.harness import worker

        return worker.main([spec_json, out])
    except BaseException:  # noqa: BLE001 - everything is reported through .err and the code
        traceback.print_exc()
        return 1
    finally:
        # What an interpreter does at exit and os._exit skips: multiprocessing's exit
        # function stops the processes a unit started (the multiprocessing queue's manager
        # server), which would otherwise outlive it, orphaned.
        atexit._run_exitfuncs()
        sys.stderr.flush()
        sys.stdout.flush()


def serve(stdin=sys.stdin, stdout=sys.stdout) -> int:
    """Fork a child per request line until stdin closes."""
    for line in stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:  # the child: never returns into this loop
            code = 1
            try:
                code = _child(request["spec"], request["out"])
            finally:
                os._exit(code)
        stdout.write(f"{pid}\n")
        stdout.flush()
        _, status = os.waitpid(pid, 0)
        stdout.write(f"{os.waitstatus_to_exitcode(status)}\n")
        stdout.flush()
    return 0


def prepare() -> None:
    """What the zygote does once for all its children: import what a unit needs and freeze
    those objects out of the collector.

    The imported modules' objects (numpy and pandas among them: 86,000 objects)
    are the same in every child. Frozen, the collections a unit runs between its
    passes, and any during them, skip them, as a sweep in a notebook's kernel
    does (``runner.frozen_heap``), and their pages stay shared.
    """
    import pqlab.harness.worker  # noqa: F401 - the imports every child would pay

    gc.collect()
    gc.freeze()


def main() -> int:
    prepare()
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    return serve()


# -- the parent's side ----------------------------------------------------------------


class Zygote:
    """One zygote process; ``run(spec_json, out, timeout_s)`` measures a unit in a fork.

    ``env`` is the children's environment, fixed when the zygote starts (start
    it after whatever the units need, e.g. the shared Redis, is exported).
    """

    def __init__(self, env: dict[str, str] | None = None) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "pqlab.harness.zygote"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True, bufsize=1, env=env)

    def __enter__(self) -> Zygote:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _line(self, deadline: float, what: str) -> str:
        out = self._proc.stdout
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([out], [], [], remaining)[0]:
            raise TimeoutError(what)
        line = out.readline()
        if not line:
            raise ZygoteError(f"the zygote process exited (code {self._proc.poll()}) {what}")
        return line.strip()

    def run(self, spec_json: str, out: Path, timeout_s: float) -> tuple[int, str]:
        """Measure one unit; its exit code and the last line of its standard error.

        Raises ``TimeoutError`` when the unit takes longer than ``timeout_s``
        (its process is killed first) and ``ZygoteError`` if the zygote died.
        """
        deadline = time.monotonic() + timeout_s
        err = Path(f"{out}{ERR_SUFFIX}")
        try:
            self._proc.stdin.write(json.dumps({"spec": spec_json, "out": str(out)}) + "\n")
            self._proc.stdin.flush()
        except BrokenPipeError:
            raise ZygoteError(f"the zygote process exited (code {self._proc.poll()})") from None
        pid = int(self._line(time.monotonic() + 60.0, "before forking a unit"))
        try:
            code = int(self._line(deadline, "unit"))
        except TimeoutError:
            os.kill(pid, signal.SIGKILL)
            self._line(time.monotonic() + 60.0, "after killing a unit")
            err.unlink(missing_ok=True)
            raise
        try:
            lines = err.read_text(errors="replace").strip().splitlines()
        except FileNotFoundError:
            lines = []
        err.unlink(missing_ok=True)
        return code, (lines[-1] if lines else f"exit code {code}")

    def close(self) -> None:
        if self._proc.poll() is None:
            try:
                self._proc.stdin.close()
                self._proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self._proc.kill()
                self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()


if __name__ == "__main__":
    raise SystemExit(main())
