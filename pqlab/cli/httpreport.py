"""``http-load``'s console lines: the schedule kept, then per priority statuses and latencies."""

from __future__ import annotations

import math
from typing import Any

from pqlab.service.httpload import QUANTILES, LoadResult


def _ms(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:,.1f}"


def _tail(n: int, q: float) -> str:
    """A percentile with fewer than one response beyond it is the maximum: marked ``*``."""
    return "*" if 0 < n and n * (1 - q / 100) < 1 else " "


def load_lines(result: LoadResult) -> list[str]:
    """The run in lines: what was sent and how late, then one row per priority."""
    plan, sched = result.plan, result.schedule_summary()
    late = sched["lateness_ms"]
    lines = [
        f"http-load: {sched['offered']:,} requests to {plan.url} over {plan.duration_s:g} s "
        f"({plan.arrivals}, target {plan.rate_per_s:g}/s): sent at "
        f"{_ms(sched['achieved_rate_per_s'])}/s (the drawn schedule "
        f"{_ms(sched['scheduled_rate_per_s'])}/s); behind schedule p50 {_ms(late['p50'])} ms, "
        f"p99 {_ms(late['p99'])} ms, max {_ms(late['max'])} ms",
        "latency of the 200s from each request's scheduled send time, ms "
        "(n: the 200s behind the percentiles; *: fewer than one beyond it, so the maximum)",
        f"{'priority':<9}{'offered':>8}{'200':>7}{'503':>7}{'504':>7}{'disc':>6}{'err':>5}"
        + "".join(f"{'p' + format(q, 'g'):>10} " for q in QUANTILES) + f"{'n':>7}",
    ]
    for name, row in result.per_priority().items():
        lat: dict[str, Any] = row["latency_ms"]
        errors = row["error"] + row["unfinished"] + row["other"]
        lines.append(
            f"{name:<9}{row['offered']:>8,}{row['200']:>7,}{row['503']:>7,}{row['504']:>7,}"
            f"{row['disconnect']:>6,}{errors:>5,}"
            + "".join(f"{_ms(lat[f'p{q:g}']):>10}{_tail(lat['n'], q)}" for q in QUANTILES)
            + f"{lat['n']:>7,}")
    split = result.per_priority()["all"]["split_ms"]
    if split["server_ms"]["n"]:
        lines.append("server-side split of the 200s, p50/p99 ms: " + ", ".join(
            f"{key.removesuffix('_ms')} {_ms(q['p50'])}/{_ms(q['p99'])}"
            for key, q in split.items() if q["n"]))
    lines += [f"  error: {e}" for e in result.errors]
    return lines
