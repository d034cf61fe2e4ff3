"""The ``processes`` driver of the open-loop ``load`` scenario: workers in spawned processes.

Requests reach the front-end process, so the producers stay threads in the
parent, exactly as in the threads driver (``loadschedule.produce_on_schedule``: each sleeps
until its task's intended arrival and stamps the put). The C workers are
spawned processes, started with ``pqlab.scenarios.processes``'s machinery (a fresh
interpreter each, a ready/go start signal, a startup deadline, a stall
deadline, killed on any error). Once every worker is waiting for the start
signal, the parent sets it, and only then does the schedule start
(``loadschedule.Schedule``, ``LEAD_IN_NS`` ahead), so start-up is never measured.

A worker narrows its timer slack, then takes tasks: stamps before and after
``get``, sleeps (``sleep_until``) for the task's service time, stamps the end
of service and logs ``(seq, t0, t1, done_ns)``; the one that takes the N-th
task puts a stop sentinel for each other worker. Stamps from the children
compare with the parent's directly (``time.perf_counter_ns`` is
CLOCK_MONOTONIC, one clock for the system; see ``pqlab.scenarios.processes``). The
parent builds the same ``Records`` and series as the threads driver.

Bounded runs (``LoadParams.duration_s``, policy, patience) go to
``bounded_processes_pass``, for the queues of
``loadparams.PROCESS_POLICY_FACTORIES`` (redis): workers claim, serve and
acknowledge until the end and write each finished task's stamps into shared
memory (``Stamps``), so a worker killed mid-run loses nothing it finished;
its task in service comes back when its lease runs out. A worker writes the
task it is acknowledging into its pending slot before the acknowledgement
and clears it after the stamps: one killed in between leaves a task that
Redis counts served and no stamps say so, and the pass counts it served
exactly when Redis's per-level served count says so (``BoundedPool.finish``).
The environment variable ``PQLAB_KILL_AFTER_ACK`` (``worker:n``) makes that
worker SIGKILL itself right after acknowledging its n-th task, before its
stamps: a fault-injection point for the tests. The parent runs the
producers, the canceller (by id), the depth sampler and, at the end, drains
the expired and empties the queue; then checks conservation against the
queue's counters in Redis (``loadoutcomes.outcome_series``).
"""

from __future__ import annotations

import functools
import gc
import os
import signal
import threading
import time

from pqlab.core.task import STOP, Task
from pqlab.measure.levels import merge
from pqlab.measure.timers import fine_timer_slack, sleep_until
from pqlab.queues import QueueSpec, sync_face
from pqlab.queues.redisqueue import COUNTED, DEFAULT_RETAIN, AckStatus
from pqlab.scenarios._engine import EMPTY_ERRORS, PassState, Workers, guard
from pqlab.scenarios.loadbounded import (
    cancel_on_give_up,
    give_ups,
    helpers_for,
    produce_until_end,
    sample_depths,
)
from pqlab.scenarios.loadoutcomes import Ends
from pqlab.scenarios.loadparams import SERVICE_S, LoadParams
from pqlab.scenarios.loadschedule import (
    IDLE_POLL_S,
    Schedule,
    produce_on_schedule,
    stall_deadline_s,
)
from pqlab.scenarios.processes import (
    CONTEXT,
    STARTUP_DEADLINE_S,
    ProcessPool,
    SharedCounters,
    WorkerProcess,
)

pc = time.perf_counter_ns
JOIN_S = 1.0  # producers are done when the workers are, unless the run failed; then asleep


def _serve(face, shared: SharedCounters, slot: int, n: int, sentinels: list[Task]) -> list:
    """One worker process's loop; returns ``(seq, t0, t1, done_ns)`` per task served.

    The cyclic GC stays off, as in the parent (``load (its timed hook)``): the loop
    makes no reference cycles, and a collection would delay every task in
    service at once.
    """
    get, progress, stop = face.get, shared.progress, shared.stop
    finish_if_last = shared.finish_if_last
    log: list[tuple[int, int, int, int]] = []
    append, served = log.append, 0
    gc.disable()
    with fine_timer_slack():
        while True:
            t0 = pc()
            try:
                task = get()
            except EMPTY_ERRORS:
                if stop.is_set():
                    break
                time.sleep(IDLE_POLL_S)
                continue
            t1 = pc()
            if task.payload is STOP:
                break
            sleep_until(t1 + round(task.payload[SERVICE_S] * 1e9))
            append((task.seq, t0, t1, pc()))
            served += 1
            progress[slot] = served
            if finish_if_last(face, n, sentinels):
                break
    return log


class LoadPool(ProcessPool):
    """Worker processes, plus the producer threads in this process, started after them."""

    def __init__(self, spec: QueueSpec, tasks: list[Task], w: Workers) -> None:
        run = PassState(tasks, w.producers, w.consumers)
        shared = SharedCounters(w.consumers)
        queue = spec.factory()
        self.face = sync_face(spec, queue)
        self.sched = Schedule(w.consumers)
        args = (len(tasks), run.sentinels[: w.consumers - 1])
        workers = [WorkerProcess("worker", c, _serve, self.face, args, shared, c)
                   for c in range(w.consumers)]
        super().__init__(run, shared, workers, stall_deadline_s(tasks, w), queue)
        self.threads: list[threading.Thread] = []

    def begin(self) -> None:
        """Start the producers; the last at the barrier starts the schedule (``LEAD_IN_NS``)."""
        run = self.run
        barrier = threading.Barrier(run.producers, action=self.sched.start)
        self.threads = [threading.Thread(target=guard(run, functools.partial(
            produce_on_schedule, run, self.face, p, barrier, self.sched)), daemon=True)
            for p in range(run.producers)]
        for thread in self.threads:
            thread.start()

    def progress(self) -> int:
        return super().progress() + self.run.progress()

    def accept(self, worker: WorkerProcess, log: list, span: tuple[int, int]) -> None:
        self.run.get_logs[worker.index] = [(seq, t0, t1) for seq, t0, t1, _ in log]
        self.sched.done_logs[worker.index] = [done for *_, done in log]
        self.run.spans.append(span)

    def end(self) -> None:
        self.run.stop.set()  # a producer still asleep (the run failed) puts nothing more
        for thread in self.threads:
            thread.join(JOIN_S)


def processes_pass(spec: QueueSpec, tasks: list[Task], w: Workers) -> tuple[PassState, Schedule]:
    """One open-loop pass with C worker processes and P producer threads here."""
    pool = LoadPool(spec, tasks, w)
    return pool.execute(), pool.sched


# -- bounded: past saturation across processes ------------------------------------------

# A lease must outlast any service, or a busy worker's task is handed to another: at
# least 2 s, and 4x the longest drawn service (exp:20ms over 2,000 tasks draws ~0.15 s).
LEASE_FLOOR_S = 2.0
LEASE_OVER_SERVICE = 4
SERVED_STATE, LATE_STATE = 1, 2  # per task in ``Stamps.state``; 0: not served by a worker
REAP_POLL_S = 0.05
KILL_AFTER_ACK_ENV = "PQLAB_KILL_AFTER_ACK"  # "worker:n": see the module doc


class Stamps:
    """Per task, in shared memory, what a worker process did with it: written by the worker
    that acknowledged it, after the acknowledgement, so a worker killed mid-run loses
    nothing it had finished (its task in service comes back when the lease runs out).

    Per worker, the task it is acknowledging (``pending``: index + 1, 0 for none) and
    what its stamps will be: written before the acknowledgement, ``pending`` last, and
    cleared after the task's own stamps, so a worker killed in between leaves them.
    """

    def __init__(self, n: int, workers: int) -> None:
        self.end_ns = CONTEXT.RawValue("q", 0)  # set when the schedule starts
        self.t0, self.t1, self.done = (CONTEXT.RawArray("q", n) for _ in range(3))
        self.worker = CONTEXT.RawArray("h", n)
        self.state = CONTEXT.RawArray("b", n)
        self.pending = CONTEXT.RawArray("q", workers)
        self.pending_state = CONTEXT.RawArray("b", workers)
        self.pending_t0, self.pending_t1, self.pending_done = (
            CONTEXT.RawArray("q", workers) for _ in range(3))

    def begin_ack(self, slot: int, i: int, state: int, t0: int, t1: int) -> None:
        """Worker ``slot`` is about to acknowledge task ``i``: what its stamps will be."""
        self.pending_state[slot], self.pending_t0[slot], self.pending_t1[slot] = state, t0, t1
        self.pending_done[slot] = pc()  # the service is over; the acknowledgement not yet
        self.pending[slot] = i + 1

    def place_pending(self, slot: int) -> int:
        """Give the pending task of (killed) worker ``slot`` the stamps it was going to get;
        returns its index."""
        i = self.pending[slot] - 1
        self.t0[i], self.t1[i], self.done[i] = (self.pending_t0[slot], self.pending_t1[slot],
                                                self.pending_done[slot])
        self.worker[i], self.state[i] = slot, self.pending_state[slot]
        return i


def _kill_after_ack(slot: int) -> int:
    """After which acknowledged task worker ``slot`` kills itself (``KILL_AFTER_ACK_ENV``);
    0: never."""
    spec = os.environ.get(KILL_AFTER_ACK_ENV, "")
    worker, _, n = spec.partition(":")
    if not spec:
        return 0
    if not (worker.isdigit() and n.isdigit() and int(n) >= 1):
        raise ValueError(f"{KILL_AFTER_ACK_ENV} must be worker:n (n >= 1), got {spec!r}")
    return int(n) if int(worker) == slot else 0


def _serve_bounded(queue, shared: SharedCounters, slot: int, stamps: Stamps,
                   position: dict[int, int], block_s: float) -> list:
    """One worker process of a bounded pass: claim, serve, acknowledge, until the end.

    Waits on the queue's wake-up marker (``wait``) at most until the end; a
    task claimed after the end is acknowledged and marked late (not served); a
    task whose lease ran out during its service (``AckStatus.LEASE_LOST``)
    went back to the queue and is not logged here. Each acknowledgement is
    bracketed by ``Stamps.begin_ack`` and clearing the pending slot. Returns an
    empty log: the stamps are in ``stamps``.
    """
    claim, ack_each, wait, progress, stop = (queue.claim, queue.ack_each, queue.wait,
                                             shared.progress, shared.stop)
    kill_after = _kill_after_ack(slot)
    while not stamps.end_ns.value and not stop.is_set():
        time.sleep(0.001)  # the parent sets the end as the schedule starts, LEAD_IN_NS ahead
    end_ns, served = stamps.end_ns.value, 0
    gc.disable()
    with fine_timer_slack():
        while not stop.is_set():
            t0 = pc()
            if t0 >= end_ns:
                break
            claims = claim()
            if not claims:
                wait(max(0.001, min(block_s, (end_ns - t0) / 1e9)))
                continue
            t1 = pc()
            task = claims[0].task
            i = position[task.seq]
            if t1 >= end_ns:
                stamps.begin_ack(slot, i, LATE_STATE, t0, t1)
                if ack_each(*claims)[0] is not AckStatus.LEASE_LOST:
                    stamps.t1[i], stamps.state[i] = t1, LATE_STATE
                stamps.pending[slot] = 0
                break
            sleep_until(t1 + round(task.payload[SERVICE_S] * 1e9))
            # The service ends when the queue has the acknowledgement: the worker is not
            # free before, and the replay (given the measured service times) must know
            # it. At ρ = 1.5 on this busy 2-core machine, with done stamped before the
            # ack, the workers spent 8% of the run outside service (11.0 of 12.0 s).
            stamps.begin_ack(slot, i, SERVED_STATE, t0, t1)
            lost = ack_each(*claims)[0] is AckStatus.LEASE_LOST
            if not lost and served + 1 == kill_after:
                os.kill(os.getpid(), signal.SIGKILL)  # the fault-injection point
            done = pc()
            if not lost:
                stamps.t0[i], stamps.t1[i], stamps.done[i], stamps.worker[i] = t0, t1, done, slot
                stamps.state[i] = SERVED_STATE
                served += 1
                progress[slot] = served
            stamps.pending[slot] = 0
    return []


class KillableWorker(WorkerProcess):
    """A worker process whose death by a signal (SIGKILL) is noted, not an error of the run:
    at-least-once delivery gives its task in service to another worker."""

    killed: str | None = None

    def receive(self) -> tuple[str, object, object]:
        status, body, span = super().receive()
        if status == "error" and (self.process.exitcode or 0) < 0:
            self.killed = str(body)
            return "ok", [], None
        return status, body, span


class BoundedPool(ProcessPool):
    """A bounded pass across processes: producers, canceller, depth sampler and the end's
    settling in this process; workers claiming and acknowledging in theirs."""

    def __init__(self, spec: QueueSpec, tasks: list[Task], w: Workers) -> None:
        params: LoadParams = w.params
        run = PassState(tasks, w.producers, w.consumers)
        shared = SharedCounters(w.consumers)
        self.params, self.ends, self.sched = params, Ends(), Schedule(w.consumers)
        self.lease_s = max(LEASE_FLOOR_S,
                           LEASE_OVER_SERVICE * max(t.payload.service_s for t in tasks))
        # Every request could expire before the end's drain: the queue keeps them all.
        queue = spec.factory(lease_s=self.lease_s, retain=max(DEFAULT_RETAIN, len(tasks)), **(
            {"policy": params.policy} if params.policy is not None else {}))
        self.stamps = Stamps(len(tasks), w.consumers)
        self.ids: dict[int, int] = {}
        self.end_offset_ns = round(params.duration_s * 1e9)
        position = {t.seq: i for i, t in enumerate(tasks)}
        args = (self.stamps, position, queue.block_s)
        workers = [KillableWorker("worker", c, _serve_bounded, queue, args, shared, c)
                   for c in range(w.consumers)]
        super().__init__(run, shared, workers, stall_deadline_s(tasks, w), queue)
        self.threads: list[threading.Thread] = []

    def begin(self) -> None:
        """Start producers, canceller, sampler and the settler; the schedule starts when all
        of them are at the barrier."""
        run, queue, ends, sched = self.run, self.queue, self.ends, self.sched
        helpers = helpers_for(queue, self.params)

        def start() -> None:
            sched.start()
            ends.end_ns = sched.base_ns + self.end_offset_ns
            self.stamps.end_ns.value = ends.end_ns

        barrier = threading.Barrier(run.producers + len(helpers), action=start)
        producers = [functools.partial(produce_until_end, run, queue, p, barrier, sched, ends,
                                       self.end_offset_ns, self.ids)
                     for p in range(run.producers)]
        helpers_bodies = []
        if "cancel" in helpers:
            times = give_ups(run.tasks, self.end_offset_ns)
            helpers_bodies.append(functools.partial(cancel_on_give_up, queue, barrier, sched,
                                                    ends, times, run.stop, self.ids))
        if "sample" in helpers:
            helpers_bodies.append(functools.partial(sample_depths, queue, barrier, sched, ends,
                                                    run.stop))
        started = [threading.Thread(target=guard(run, body), daemon=True)
                   for body in (*producers, *helpers_bodies)]
        for thread in started:
            thread.start()
        settler = threading.Thread(target=guard(run, lambda: self._settle_at_end(started)),
                                   daemon=True)
        settler.start()
        self.threads = [*started, settler]

    def _settle_at_end(self, started: list[threading.Thread]) -> None:
        """At the end, once producers and helpers are done: collect the expired, empty the
        queue. Done at once, as the queue's clock (the server's) does not stop at the end:
        a request whose deadline falls after the end would expire if left waiting."""
        while not self.ends.end_ns < 2**62:
            time.sleep(0.001)
        sleep_until(self.ends.end_ns)
        for thread in started:
            thread.join()
        self._collect_expired()
        self._empty()

    def _collect_expired(self) -> None:
        if self.params.policy is not None:
            self.ends.expired += [t.seq for t in self.queue.drain_expired()]

    def _empty(self) -> None:
        """Claim and acknowledge what is still queued: it counts ``queued`` (not served)."""
        queue = self.queue
        while n := queue.qsize():
            claims = queue.claim(count=n)
            if not claims:
                break  # all expired as the claim reached them: drain_expired takes them
            queue.ack(*claims)
            self.ends.left += [c.task.seq for c in claims]

    def progress(self) -> int:
        return super().progress() + self.run.progress()

    def accept(self, worker: WorkerProcess, log: list, span: tuple | None) -> None:
        if span is not None:
            self.run.spans.append(span)

    def end(self) -> None:
        for thread in self.threads:
            thread.join(JOIN_S + self.params.duration_s if not self.run.errors else JOIN_S)
        self.run.stop.set()  # anything still asleep (the run failed) puts nothing more

    def finish(self) -> None:
        """After every worker is gone: wait out a killed worker's lease, empty the queue
        again, collect the expired, read the queue's counts, place what a killed worker
        acknowledged but never stamped (``_place_acked_unstamped``), fill the logs from
        the stamps.

        Records an error when the queue is not empty after that.
        """
        queue, ends, run = self.queue, self.ends, self.run
        give_up = time.monotonic() + self.lease_s + STARTUP_DEADLINE_S
        while queue.inflight() and time.monotonic() < give_up:
            queue.reap()
            time.sleep(REAP_POLL_S)
        self._empty()
        self._collect_expired()
        left = queue.qsize() + queue.inflight()
        if left:
            run.errors.append(f"conservation: {left} requests still in the queue after the "
                              "run's end was settled")
        if self.params.policy is not None:
            snapshot = queue.snapshot()  # one read: counts and the most ever queued
            ends.counts = {level: {k: row[k] for k in COUNTED} for level, row in snapshot.items()}
            for name in ("redelivered", "dead_lettered"):
                ends.extra[name] = sum(row[name] for row in snapshot.values())
            ends.levels = merge({level: {"queued_peak": row["peak"]}
                                 for level, row in snapshot.items()})
        killed = [w.killed for w in self.workers if w.killed]
        ends.extra["workers_killed"] = len(killed)
        ends.extra["acked_unstamped"] = self._place_acked_unstamped()
        ends.extra["lease_s"] = self.lease_s
        stamps = self.stamps
        for i, task in enumerate(run.tasks):
            state = stamps.state[i]
            if state == SERVED_STATE:
                c = stamps.worker[i]
                run.get_logs[c].append((task.seq, stamps.t0[i], stamps.t1[i]))
                self.sched.done_logs[c].append(stamps.done[i])
            elif state == LATE_STATE:
                ends.late.append((task.seq, stamps.t1[i]))
        for c, log in enumerate(run.get_logs):  # each worker's in the order it took them
            order = sorted(range(len(log)), key=lambda k: log[k][2])
            run.get_logs[c] = [log[k] for k in order]
            self.sched.done_logs[c] = [self.sched.done_logs[c][k] for k in order]

    def _place_acked_unstamped(self) -> int:
        """Stamp the tasks killed workers acknowledged and never stamped; how many.

        A worker's pending slot still set names the task it was acknowledging
        when it was killed. If that task ended nowhere else (no worker's
        stamps, not emptied, expired, cancelled or rejected), Redis has either
        the acknowledgement or the task: with a policy, it gets the stamps the
        worker meant (``Stamps.place_pending``) exactly when Redis's served count
        at its level exceeds the served the pass accounts for there by as many
        such tasks; else they stay unplaced and conservation reports them.
        Without a policy there is no count: the queue was settled empty, so the
        acknowledgement landed (a task whose lease ran out would have come back
        and been emptied), and it is placed.
        """
        stamps, tasks, ends = self.stamps, self.run.tasks, self.ends
        elsewhere = {*ends.left, *ends.expired, *ends.rejected,
                     *(seq for seq, _ in ends.cancelled)}
        pending = [c for c in range(len(self.workers)) if stamps.pending[c]]
        pending = [c for c in pending if not stamps.state[stamps.pending[c] - 1]
                   and tasks[stamps.pending[c] - 1].seq not in elsewhere]
        if ends.counts is not None:
            levels = {c: tasks[stamps.pending[c] - 1].priority for c in pending}
            pending = [c for c in pending if self._served_unstamped(levels[c])
                       == sum(level == levels[c] for level in levels.values())]
        for c in pending:
            stamps.place_pending(c)
        return len(pending)

    def _served_unstamped(self, level: int) -> int:
        """Tasks of ``level`` Redis counts served (acknowledged) that no stamps and no
        emptying at the end account for."""
        stamps, tasks, ends = self.stamps, self.run.tasks, self.ends
        stamped = sum(1 for i, t in enumerate(tasks) if t.priority == level and stamps.state[i])
        left = set(ends.left)
        emptied = sum(1 for t in tasks if t.priority == level and t.seq in left)
        return ends.counts[level]["served"] - stamped - emptied


def bounded_processes_pass(spec: QueueSpec, tasks: list[Task], w: Workers
                           ) -> tuple[PassState, Schedule, Ends]:
    """One bounded pass (duration, policy, patience) with C worker processes claiming from a
    queue of ``PROCESS_POLICY_FACTORIES`` and P producer threads here (see ``BoundedPool``)."""
    pool = BoundedPool(spec, tasks, w)
    run = pool.execute()
    pool.finish()
    return run, pool.sched, pool.ends
