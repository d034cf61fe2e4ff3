"""``python -m pqlab failover``: the failover drill, several runs, each on a fresh deployment.

Each run starts a private replicated deployment (``pqlab.queues.redissentinel``),
runs ``pqlab.scenarios.failover.run_failover`` once per ``min_replicas`` asked
for, each time on a fresh deployment, and stops it. Every figure printed is
measured in this command; the load average is printed with them.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable, Sequence

from pqlab.queues.redisdeploy import Deployment
from pqlab.scenarios import failover as drill

COLUMNS = ("run", "min_replicas", "acknowledged", "served", "lost", "duplicated", "redelivered",
           "unconfirmed", "failover_s", "no_service_s")


def format_row(number: int, run: drill.FailoverRun) -> str:
    values = (number, run.min_replicas, run.acknowledged, run.served, run.lost, run.duplicated,
              run.redelivered, run.unconfirmed, f"{run.failover_s:.2f}",
              f"{run.no_service_s:.2f}")
    return "  ".join(f"{v:>{len(c)}}" for v, c in zip(values, COLUMNS, strict=True))


def format_summary(runs: list[drill.FailoverRun]) -> str:
    gaps = [r.no_service_s for r in runs]
    return (f"min_replicas={runs[0].min_replicas}: lost {sum(r.lost for r in runs)} of "
            f"{sum(r.acknowledged for r in runs)} acknowledged in {len(runs)} runs "
            f"(per run: {', '.join(str(r.lost) for r in runs)}), duplicated "
            f"{sum(r.duplicated for r in runs)}; time without service median "
            f"{statistics.median(gaps):.2f} s, max {max(gaps):.2f} s; failover median "
            f"{statistics.median(r.failover_s for r in runs):.2f} s")


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def run_failover_command(runs: int, paused: bool, min_replicas: Sequence[int],
                         out: Callable[[str], None] = print) -> dict[int, list[drill.FailoverRun]]:
    """``runs`` drills per ``min_replicas`` value, interleaved; prints rows and summaries."""
    pause = (f"every replica SIGSTOPped and its link closed {drill.PAUSE_S:g} s before the "
             "kill, SIGCONT right after; " if paused else "")
    out(f"failover drill: {drill.PRODUCERS} producers x {drill.RATE_PER_S} puts/s for "
        f"{drill.DURATION_S:g} s, {drill.CONSUMERS} consumers, lease {drill.LEASE_S:g} s; "
        f"primary SIGKILLed at {drill.DURATION_S / 2:g} s, restarted once the Sentinels name "
        f"another; {pause}load average {load_average()}")
    out("  ".join(COLUMNS))
    results: dict[int, list[drill.FailoverRun]] = {m: [] for m in min_replicas}
    for number in range(1, runs + 1):
        for m in min_replicas:
            with Deployment() as deployment:
                run = drill.run_failover(deployment, min_replicas=m, paused=paused)
            results[m].append(run)
            out(format_row(number, run))
    for m in min_replicas:
        out(format_summary(results[m]))
    out(f"load average after: {load_average()}")
    return results
