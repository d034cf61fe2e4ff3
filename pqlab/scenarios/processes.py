"""Scenario ``processes``: P producer and C consumer processes on one process-safe queue.

Workers are started with the "spawn" method: fresh interpreters, not forks of
a parent that may hold locks, threads or a half-used connection. Each loads
pqlab (about 0.3 s), says it is ready, and all start together when the parent
sets one event, so start-up is never measured.

Stamps are ``time.perf_counter_ns``, which on Linux is
``clock_gettime(CLOCK_MONOTONIC)`` (``time.get_clock_info("perf_counter")``
says so): one clock for the whole system, so a put stamped in one process
and a get stamped in another compare directly (tests/scenarios/test_processes.py
checks that children's stamps fall between two of the parent's). On macOS
and Windows the clock behind it is system-wide too.

Each worker sends its stamps back through a pipe once it is done; the parent
builds the same ``Records`` as the thread scenarios, so ``verify`` checks
violations, lost and duplicated tasks unchanged. Consumers stop when exactly
N tasks were taken: a shared counter, under its lock, tells the consumer that
took the N-th task, and that one puts a stop sentinel for each other consumer.
A worker that raises or dies, or a run with no progress for ``deadline_s``,
ends the run with an error in the records: the parent kills every worker
still running (a consumer blocked in a ``get`` that will never return is not
waited for).
"""

from __future__ import annotations

import math
import multiprocessing
import time
from collections.abc import Callable
from multiprocessing.connection import wait

from pqlab.core.task import STOP, Task
from pqlab.measure.quiet import descendants_cpu_ns
from pqlab.measure.records import Records, UntimedPass
from pqlab.queues import QueueSpec, sync_face
from pqlab.scenarios._engine import (
    EMPTY_ERRORS,
    WATCH_POLL_S,
    PassState,
    Scenario,
    Watchdog,
    Workers,
    stall_error,
)

pc = time.perf_counter_ns
cpu = time.process_time_ns  # in a worker: that worker process's CPU, user + system
CONTEXT = multiprocessing.get_context("spawn")
# Spawning a worker and importing pqlab takes ~0.3 s on an idle machine and several
# seconds on a loaded one; start-up is not measured, so it gets its own, longer deadline.
STARTUP_DEADLINE_S = 60.0
KILL_WAIT_S = 5.0  # a killed worker is gone within milliseconds; this only bounds a stuck join


class SharedCounters:
    """What workers share: the start signal, the taken counter, per-worker progress."""

    def __init__(self, workers: int) -> None:
        self.ready = CONTEXT.Semaphore(0)  # released once by each worker when it is set up
        self.go = CONTEXT.Event()  # set by the parent when every worker is ready
        self.stop = CONTEXT.Event()  # set by the parent when the run is abandoned
        self.taken = CONTEXT.Value("q", 0)  # tasks taken, under its lock
        # Operations done, one slot per worker, each written only by its worker:
        # an aligned 8-byte store needs no lock for the parent's reads.
        self.progress = CONTEXT.RawArray("q", workers)

    def finish_if_last(self, face, n: int, sentinels: list[Task]) -> bool:
        """Count one task taken; the worker that took the ``n``-th puts the stop
        sentinels for the others and is told True (it stops too).

        One call per task in the workers' measured loops: the count is inline.
        """
        with self.taken.get_lock():
            self.taken.value += 1
            if self.taken.value != n:
                return False
        for sentinel in sentinels:
            face.put(sentinel)
        return True


def _warm_up(face) -> None:
    """One round trip before the start, so connecting is not part of the first stamp."""
    qsize = getattr(face, "qsize", None)
    if qsize is not None:
        qsize()


def _produce(face, shared: SharedCounters, slot: int, tasks: list[Task], timed: bool) -> list:
    """A producer process's loop: apart from the engine's because progress and the taken
    count live in shared memory (``SharedCounters``), not in a ``PassState``."""
    put, progress, log = face.put, shared.progress, []
    append = log.append
    for i, task in enumerate(tasks, 1):
        t0 = pc() if timed else 0
        put(task)
        if timed:
            append((t0, pc()))
        progress[slot] = i
    return log


def _consume(face, shared: SharedCounters, slot: int, n: int, sentinels: list[Task],
             timed: bool) -> list:
    """A consumer process's loop: apart from the engine's for the same reason as ``_produce``."""
    get, progress, stop, log = face.get, shared.progress, shared.stop, []
    append, finish_if_last, done = log.append, shared.finish_if_last, 0
    while True:
        t0 = pc() if timed else 0
        try:
            task = get()
        except EMPTY_ERRORS:
            if stop.is_set():
                break
            time.sleep(0)
            continue
        t1 = pc() if timed else 0
        if task.payload is STOP:
            break
        append((task.seq, t0, t1))
        done += 1
        progress[slot] = done
        if finish_if_last(face, n, sentinels):
            break
    return log


def _worker(name: str, body: Callable[..., list], face, args: tuple, shared: SharedCounters,
            slot: int, conn) -> None:
    """A child process: set up, wait for the start, run ``body``, send (log, span) or an error.

    The span is (wall start, wall end, CPU start, CPU end) of this process, ns.

    ``body(face, shared, slot, *args)`` returns the worker's log; it is a
    module-level function, so the child imports it by name.
    """
    try:
        _warm_up(face)
        shared.ready.release()
        shared.go.wait()
        start, cpu0 = pc(), cpu()
        log = body(face, shared, slot, *args)
        conn.send(("ok", log, (start, pc(), cpu0, cpu())))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        conn.send(("error", f"{name}: {type(exc).__name__}: {exc}", None))
    finally:
        conn.close()


class WorkerProcess:
    """The parent's handle on one worker process and the pipe its results come back on."""

    def __init__(self, role: str, index: int, body: Callable[..., list], face, args: tuple,
                 shared: SharedCounters, slot: int) -> None:
        self.role, self.index = role, index
        self.reader, writer = CONTEXT.Pipe(duplex=False)
        self.process = CONTEXT.Process(target=_worker, name=f"pqlab-{role}-{index}",
                                       args=(f"{role} {index}", body, face, args, shared, slot,
                                             writer), daemon=True)
        self.writer = writer

    def start(self) -> None:
        self.process.start()
        self.writer.close()  # the child holds its own end now; EOF means it is gone

    def receive(self) -> tuple[str, object, object]:
        """What the worker sent: ("ok", log, span) or ("error", message, None)."""
        try:
            message = self.reader.recv()
        except EOFError:
            self.process.join(KILL_WAIT_S)
            message = ("error", f"{self.role} {self.index}: died before reporting "
                                f"(exit code {self.process.exitcode})", None)
        self.reader.close()
        self.reader = None
        return message

    def end(self, kill: bool) -> None:
        if not kill:
            self.process.join(KILL_WAIT_S)
        if self.process.is_alive():
            self.process.kill()
        self.process.join(KILL_WAIT_S)
        if self.reader is not None:
            self.reader.close()


class ProcessPool:
    """The parent's side of worker processes: start them, start them together, watch, gather.

    ``execute`` starts every worker, waits until all are set up (up to
    ``STARTUP_DEADLINE_S``), sets the start signal, calls ``begin`` and takes
    in each worker's log (``accept``) until all have reported, an error is
    recorded, or ``progress`` has not changed for ``deadline_s``; then it
    kills the workers still running if there was an error and calls
    ``end``. A subclass changes the hooks (``pqlab.scenarios.loadprocesses`` adds
    producer threads in the parent).
    """

    def __init__(self, run: PassState, shared: SharedCounters, workers: list[WorkerProcess],
                 deadline_s: float, queue: object) -> None:
        self.run, self.shared, self.workers = run, shared, workers
        self.n, self.deadline_s = run.n, deadline_s
        self.queue = queue  # kept alive until the workers are done (its owner may clean up)
        self.servers_cpu_ns = 0.0

    def execute(self) -> PassState:
        servers = descendants_cpu_ns()  # before any worker: the queue's manager or server
        try:
            for worker in self.workers:
                worker.start()
            if self._await_ready():
                self.shared.go.set()
                self.begin()
                self._gather()
        finally:
            self.shared.stop.set()
            for worker in self.workers:
                worker.end(kill=bool(self.run.errors))
            self.end()
            after = descendants_cpu_ns()
            self.servers_cpu_ns = sum(after[pid] - ns for pid, ns in servers.items()
                                      if pid in after)
        return self.run

    def cpu_ns(self) -> float:
        """CPU time of the pass: each worker process over its measured body, plus
        the processes this one had started before the pass (the queue's manager, a
        private redis-server) over the whole pass.

        A server this process did not start (the one Redis a sweep shares, a
        remote one) is not counted. NaN unless every worker reported.
        """
        spans = self.run.spans
        if self.run.errors or len(spans) != len(self.workers):
            return math.nan
        return float(sum(s[3] - s[2] for s in spans) + self.servers_cpu_ns)

    def begin(self) -> None:
        """Called once, right after the start signal."""

    def end(self) -> None:
        """Called once, after every worker process is gone."""

    def progress(self) -> int:
        """Operations done so far; the stall deadline runs while it does not change."""
        return sum(self.shared.progress)

    def accept(self, worker: WorkerProcess, log: list, span: tuple[int, int]) -> None:
        """Keep what a worker sent when it finished."""
        logs = self.run.put_logs if worker.role == "producer" else self.run.get_logs
        logs[worker.index] = log
        self.run.spans.append(span)

    def _await_ready(self) -> bool:
        """Wait until every worker is set up; False (with an error) if one failed or all stalled."""
        ready, since = 0, time.monotonic()
        while ready < len(self.workers):
            if self.shared.ready.acquire(timeout=WATCH_POLL_S):
                ready, since = ready + 1, time.monotonic()
                continue
            self._collect(timeout=0)
            if self.run.errors:
                return False
            if time.monotonic() - since > STARTUP_DEADLINE_S:
                self.run.errors.append(f"only {ready} of {len(self.workers)} worker processes "
                                       f"were ready after {STARTUP_DEADLINE_S:g} s")
                return False
        return True

    def _gather(self) -> None:
        dog = Watchdog(self.progress, self.deadline_s)
        while any(w.reader is not None for w in self.workers) and not self.run.errors:
            self._collect(timeout=WATCH_POLL_S)
            if dog.stalled():
                self.run.errors.append(stall_error(self.deadline_s, self.shared.taken.value,
                                                   self.n))

    def _collect(self, timeout: float) -> None:
        """Take in what finished workers sent; a worker gone without a word is an error."""
        readers = {w.reader: w for w in self.workers if w.reader is not None}
        for reader in wait(list(readers), timeout):
            worker = readers[reader]
            status, body, span = worker.receive()
            if status == "error":
                self.run.errors.append(body)
            else:
                self.accept(worker, body, span)


def _pool(spec: QueueSpec, tasks: list[Task], w: Workers, timed: bool) -> ProcessPool:
    """P producer and C consumer processes on one new queue."""
    run = PassState(tasks, w.producers, w.consumers)
    shared = SharedCounters(w.producers + w.consumers)
    queue = spec.factory()
    face = sync_face(spec, queue)
    sentinels = run.sentinels[: w.consumers - 1]
    workers = [WorkerProcess("producer", p, _produce, face, (tasks[p :: w.producers], timed),
                       shared, p) for p in range(w.producers)]
    workers += [WorkerProcess("consumer", c, _consume, face, (len(tasks), sentinels, timed),
                        shared, w.producers + c) for c in range(w.consumers)]
    return ProcessPool(run, shared, workers, w.deadline_s, queue)


def _timed(spec: QueueSpec, tasks: list[Task], w: Workers) -> list[Records]:
    run = _pool(spec, tasks, w, True).execute()
    return [run.records(True, "processes", cpu_elsewhere=True)]


def _untimed(spec: QueueSpec, tasks: list[Task], w: Workers) -> UntimedPass:
    pool = _pool(spec, tasks, w, False)
    run = pool.execute()
    return UntimedPass(run.wall_ns(), run.gets(), list(run.errors), pool.cpu_ns())


def _can_processes(spec: QueueSpec) -> bool:
    return spec.process_safe and spec.has_sync_face


PROCESSES = Scenario(
    "processes", "P producer and C consumer processes (spawned) on one queue",
    "a process-safe queue with a sync face", _can_processes, _timed, _untimed, in_poc=False)
