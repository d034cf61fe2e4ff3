"""The ADR's "End to end" and its appendix findings, from the run's ``endtoend`` frame.

The frame (``pqlab.study.endtoend.point_frame``) is long: one row per point ×
priority × metric × stat, each value with the count behind it. ``answer``
gives the record's claims, ``findings`` the appendix's section, every number
read from the frame; the figures are ``pqlab.decide.endtoendplots``.
"""

from __future__ import annotations

import math

import pandas as pd

from pqlab.core.checks import LEVEL_NAMES
from pqlab.scenarios.loadparams import NO_POLICY_LABEL as NO_POLICY

SPLIT = {"http_ms": ("HTTP + framework", "#9fb3c8"), "queue_wait_ms": ("queue wait", "#d1495b"),
         "queue_ops_ms": ("queue operations + hand-offs", "#edae49"),
         "inference_ms": ("inference", "#66a182")}
SEPARATE = "no difference the data can show"
FRAME = "endtoend"  # the run's frame (pqlab.study.endtoend.FRAME)
LEAD_MODE = "async"  # ModelMora's worker coroutines: the mode the record's answer reads
SENT_ENOUGH = 0.95  # a point whose generator sent less than 95% of its target rate says so
BOX_BUSY = 5  # the no-op endpoint's p50 this many times its p50 at the lowest rate: box saturated


# -- selections ----------------------------------------------------------------------------


def values(frame: pd.DataFrame, metric: str, stat: str, *, endpoint: str = "infer",
           tier: str | None = None) -> pd.DataFrame:
    """The rows of one metric and stat, priority as text."""
    rows = frame[(frame["metric"] == metric) & (frame["stat"] == stat)
                 & (frame["endpoint"] == endpoint)]
    if tier is not None:
        rows = rows[rows["tier"] == tier]
    rows = rows.copy()
    rows["priority"] = rows["priority"].astype(str)
    return rows


def ceiling_per_s(frame: pd.DataFrame) -> float:
    rows = values(frame, "rate_per_s", "reply", endpoint="noop", tier="ceiling")
    return float(rows["value"].max()) if not rows.empty else math.nan


def _point_value(frame: pd.DataFrame, point: str, metric: str, stat: str,
                 priority: str = "all") -> float:
    rows = frame[(frame["point"] == point) & (frame["metric"] == metric)
                 & (frame["stat"] == stat) & (frame["priority"].astype(str) == priority)
                 & (frame["endpoint"] == "infer")]
    return float(rows["value"].iloc[0]) if not rows.empty else math.nan


# -- the ADR's section ------------------------------------------------------------------


def _ms(x: float) -> str:
    if not math.isfinite(x):
        return "unbounded" if x > 0 else "n/a"
    return f"{x / 1e3:.2f} s" if x >= 1000 else f"{x:.0f} ms" if x >= 10 else f"{x:.1f} ms"


def _row(cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _p99_cell(r: pd.Series) -> str:
    mark = ", indicative" if r["indicative"] else ""
    return f"{_ms(r['value'])} ({_ms(r['low'])}-{_ms(r['high'])}, n={int(r['n']):,}{mark})"


def compare_p99(a: pd.Series, b: pd.Series) -> str:
    """``SEPARATE`` when the two p99s' 95% intervals overlap (or one is unbounded), else
    the ratio b/a."""
    bounded = all(math.isfinite(r[k]) for r in (a, b) for k in ("low", "high"))
    if not bounded or not (a["high"] < b["low"] or b["high"] < a["low"]):
        return SEPARATE
    return f"{b['value'] / a['value']:.2f}x"


def offered_in_full(frame: pd.DataFrame, point: str) -> bool:
    """Whether the generator sent ``point``'s drawn schedule (at least ``SENT_ENOUGH`` of
    its rate): a Poisson schedule's own rate differs from the target by chance."""
    sent = _point_value(frame, point, "rate_per_s", "achieved")
    drawn = _point_value(frame, point, "rate_per_s", "scheduled")
    return not (math.isfinite(sent) and math.isfinite(drawn) and sent < SENT_ENOUGH * drawn)


def rho_measured(frame: pd.DataFrame, point: str) -> float:
    """ρ as it happened: the rate sent × the measured mean inference of the 200s / workers
    (an event loop that cannot keep up stretches every sleep, and ρ with it)."""
    rows = frame[(frame["point"] == point) & (frame["endpoint"] == "infer")]
    if rows.empty:
        return math.nan
    sent = _point_value(frame, point, "rate_per_s", "achieved")
    inference = _point_value(frame, point, "inference_ms", "mean")
    return sent * inference / 1e3 / float(rows["workers"].iloc[0])


def _share(x: float) -> str:
    return f"{x:.0%}" if x >= 0.095 else f"{x:.1%}"


def _noop_p50(frame: pd.DataFrame, mode: str, rate: float) -> float:
    rows = values(frame, "latency_ms", "p50", endpoint="noop", tier="baseline")
    rows = rows[(rows["mode"] == mode) & (rows["rate_target_per_s"] == rate)
                & (rows["priority"] == "all")]
    return float(rows["value"].iloc[0]) if not rows.empty else math.nan


def _sent_line(frame: pd.DataFrame, mode: str, rate: float, ceiling: float) -> tuple[str, bool]:
    """How much of ``rate`` the generator sent to every queue and what the box itself did at
    that rate; and whether the queues can be judged there (the schedule sent in full)."""
    rows = values(frame, "rate_per_s", "achieved", tier="below")
    rows = rows[(rows["mode"] == mode) & (rows["rate_target_per_s"] == rate)
                & (rows["priority"] == "all")]
    late = values(frame, "lateness_ms", "p99", tier="below")
    late = late[(late["mode"] == mode) & (late["rate_target_per_s"] == rate)]
    sent = float(rows["value"].min())
    share = f", {_share(sent / ceiling)} of the box's ceiling" if math.isfinite(ceiling) else ""
    text = f"sent at {sent:,.0f}/s or more{share}"
    lowest = min(values(frame, "latency_ms", "p50", endpoint="noop",
                        tier="baseline")["rate_target_per_s"], default=math.nan)
    noop, calm = _noop_p50(frame, mode, rate), _noop_p50(frame, mode, lowest)
    if math.isfinite(noop) and math.isfinite(calm):
        text += f"; the no-op endpoint's p50 here {_ms(noop)}"
        if noop > BOX_BUSY * calm:
            text += (f", over {BOX_BUSY}x its {_ms(calm)} at {lowest:,.0f}/s: **the box itself "
                     "is saturated at this rate**, so a difference here may be the box's (and "
                     "what else ran on it during the point), not the queue's")
    full = all(offered_in_full(frame, p) for p in rows["point"])
    rho = max(rho_measured(frame, p) for p in rows["point"])
    if math.isfinite(rho):
        text += (f"; ρ measured (rate sent × mean inference of the 200s / workers) up to "
                 f"{rho:.2f}")
    if rho > 1:
        full = False
        text += ("; **the service itself was saturated at this rate**, its inference "
                 "stretched beyond the planned mean, so these p99s measure that saturation, "
                 "not the queue")
    elif not full:
        text += (f"; **the box could not offer {rate:,.0f}/s**: the generator fell behind its "
                 f"schedule (lateness p99 up to {_ms(float(late['value'].max()))}), so these "
                 "p99s measure the box's overload, not the queue; reported as sent, not "
                 "extrapolated")
    return text, full


def queue_table(frame: pd.DataFrame, mode: str) -> tuple[list[str], dict[float, list[str]]]:
    """The p99 per priority of each queue against the first queue, per rate: table lines and,
    per rate, the priorities where the queue choice separates."""
    p99 = values(frame, "latency_ms", "p99", tier="below")
    p99 = p99[(p99["mode"] == mode) & (p99["policy"] == NO_POLICY)]
    queues = list(dict.fromkeys(p99["queue"]))
    if len(queues) < 2:
        return [], {}
    base = queues[0]
    head = ["rate", "priority", *[f"`{q}` p99 (95% interval, n)" for q in queues],
            *[f"`{q}` against `{base}`" for q in queues[1:]]]
    lines = [_row(head), _row(["---"] * len(head))]
    differs: dict[float, list[str]] = {}
    for rate in sorted(p99["rate_target_per_s"].unique()):
        differs[rate] = []
        for level in LEVEL_NAMES:
            cells = {q: p99[(p99["queue"] == q) & (p99["rate_target_per_s"] == rate)
                            & (p99["priority"] == level)] for q in queues}
            if any(c.empty for c in cells.values()):
                continue
            rows = {q: c.iloc[0] for q, c in cells.items()}
            verdicts = [compare_p99(rows[base], rows[q]) for q in queues[1:]]
            if any(v != SEPARATE for v in verdicts):
                differs[rate].append(level)
            lines.append(_row([f"{rate:,.0f}/s", level, *[_p99_cell(rows[q]) for q in queues],
                               *verdicts]))
    return lines, differs


def _queue_section(frame: pd.DataFrame, ceiling: float) -> list[str]:
    lines = []
    for mode in dict.fromkeys(values(frame, "latency_ms", "p99", tier="below")["mode"]):
        table, differs = queue_table(frame, mode)
        if not table:
            only = values(frame, "latency_ms", "p99", tier="below")
            only = only.loc[only["mode"] == mode, "queue"].unique()
            lines += [f"- Mode `{mode}`: only `{', '.join(only)}` measured below saturation "
                      "in this profile; whether the queue choice changes p99 is not compared "
                      "here (the `default` profile compares two queues).", ""]
            continue
        lines += [f"**Does the queue change p99 per priority?** Mode `{mode}`, no policy "
                  "(p99 of the 200s from the scheduled send time, its distribution-free "
                  "95% interval and n; two queues differ only where their intervals are "
                  "disjoint, shown as the ratio to the first queue; one run per point, so "
                  "the interval covers the sampling within a point, not what changed on the "
                  "box between points):", "", *table, ""]
        for rate, levels in differs.items():
            sent, full = _sent_line(frame, mode, rate, ceiling)
            verdict = (f"the queue choice changes p99 for {', '.join(levels)}"
                       if levels else f"{SEPARATE} between the queues for any priority")
            if not full:
                verdict = "the queues are not judged at this rate"
            lines.append(f"- At {rate:,.0f}/s ({sent}): {verdict}.")
        lines.append("")
    return lines


def _past_section(frame: pd.DataFrame) -> list[str]:
    good = values(frame, "goodput_per_s", "200", tier="past")
    if good.empty:
        return []
    p99 = values(frame, "latency_ms", "p99", tier="past")
    counts = frame[(frame["metric"] == "requests") & (frame["tier"] == "past")
                   & (frame["endpoint"] == "infer")].copy()
    counts["priority"] = counts["priority"].astype(str)
    head = ["ρ", "mode", "queue", "policy", "priority", "offered", "200", "503", "504",
            "client gave up", "goodput /s", "p99 of the 200s (n)"]
    lines = ["**Past saturation** (clients give up after an exponential patience and "
             "disconnect; the policy's limits sized from a wait target, notebook 08's rule):",
             "", _row(head), _row(["---"] * len(head))]
    for _, g in good[good["priority"] != "all"].iterrows():
        mine = counts[(counts["point"] == g["point"]) & (counts["priority"] == g["priority"])]
        c = dict(zip(mine["stat"], mine["value"], strict=True))
        lat = p99[(p99["point"] == g["point"]) & (p99["priority"] == g["priority"])].iloc[0]
        mark = ", indicative" if lat["indicative"] else ""
        lines.append(_row([f"{g['rho_planned']:g}", g["mode"], f"`{g['queue']}`", g["policy"],
                           g["priority"], f"{c['offered']:,.0f}", f"{c['200']:,.0f}",
                           f"{c['503']:,.0f}", f"{c['504']:,.0f}", f"{c['disconnect']:,.0f}",
                           f"{g['value']:.1f}", f"{_ms(lat['value'])} (n={int(lat['n'])}{mark})"]))
    lines.append("")
    return lines + _policy_verdict(good, p99, counts)


def _cell(table: pd.DataFrame, point: str, priority: str, stat: str) -> pd.Series:
    return table[(table["point"] == point) & (table["priority"] == priority)
                 & (table["stat"] == stat)].iloc[0]


def _policy_verdict(good: pd.DataFrame, p99: pd.DataFrame, counts: pd.DataFrame) -> list[str]:
    """One line per (mode, queue, ρ) measured with and without the policy."""
    out = []
    first, last = LEVEL_NAMES[0], LEVEL_NAMES[-1]
    for (mode, queue, rho), part in good.groupby(["mode", "queue", "rho_planned"], sort=False):
        policies = list(dict.fromkeys(part["policy"]))
        chosen = next((p for p in policies if p != NO_POLICY), None)
        if chosen is None or NO_POLICY not in policies:
            continue
        without, with_ = (part.loc[part["policy"] == p, "point"].iloc[0]
                          for p in (NO_POLICY, chosen))
        a, b = _cell(p99, without, first, "p99"), _cell(p99, with_, first, "p99")
        offered = max(_cell(counts, with_, last, "offered")["value"], 1)
        refused = _cell(counts, with_, last, "503")["value"] / offered
        expired = _cell(counts, with_, last, "504")["value"] / offered
        gave_up = _cell(counts, without, last, "disconnect")["value"] / max(
            _cell(counts, without, last, "offered")["value"], 1)
        out.append(
            f"- `{queue}` ({mode}) at ρ {rho:g}, one run: with the policy {first}'s p99 is "
            f"{_p99_cell(b)} against {_p99_cell(a)} without ({compare_p99(a, b)}); of {last}'s "
            f"requests {refused:.0%} are refused at once (503) and {expired:.0%} expire in the "
            f"queue (504), where without it {gave_up:.0%} of {last}'s clients gave up waiting.")
    return out + ([""] if out else [])


def _gil_section(frame: pd.DataFrame) -> list[str]:
    modes = set(frame["mode"].dropna())
    if "threads-gil" not in modes:
        return ["- GIL-holding inference in threads (`threads-gil`): not measured in this "
                "profile; the `full` profile measures it (`MODES` with `threads-gil`).", ""]
    p99 = values(frame, "latency_ms", "p99", tier="below")
    lag = values(frame, "loop_lag_ms", "p99", tier="below")
    lines = []
    for rate in sorted(p99["rate_target_per_s"].unique()):
        best = {}
        for mode in ("threads", "threads-gil"):
            crit = p99[(p99["mode"] == mode) & (p99["rate_target_per_s"] == rate)
                       & (p99["priority"] == LEVEL_NAMES[0])]
            if not crit.empty:
                best[mode] = crit.sort_values("value").iloc[0]
        if "threads-gil" not in best:
            continue
        parts = []
        for mode, r in best.items():
            lags = lag[(lag["mode"] == mode) & (lag["rate_target_per_s"] == rate)]
            parts.append(f"{mode} (`{r['queue']}`) {_p99_cell(r)}, event-loop lag p99 up to "
                         f"{_ms(float(lags['value'].max()))}")
        verdict = ("; holding the GIL against not: "
                   + compare_p99(best["threads"], best["threads-gil"]) if "threads" in best
                   else "")
        lines.append(f"- At {rate:,.0f}/s, CRITICAL's p99: {'; '.join(parts)}{verdict}.")
    return ["**GIL-holding inference in threads** against sleeping threads:", "", *lines, ""]


def _mode_section(frame: pd.DataFrame) -> list[str]:
    p99 = values(frame, "latency_ms", "p99", tier="below")
    crit = p99[(p99["priority"] == LEVEL_NAMES[0]) & (p99["policy"] == NO_POLICY)]
    modes = list(dict.fromkeys(crit["mode"]))
    if len(modes) < 2:
        return [f"- Worker mode: only `{', '.join(modes) or 'none'}` was measured in this "
                "profile; which mode the service should use is not measured here (the `full` "
                "profile compares async, threads, threads-gil and processes).", ""]
    common = [r for r in sorted(crit["rate_target_per_s"].unique())
              if set(crit.loc[crit["rate_target_per_s"] == r, "mode"]) == set(modes)]
    if not common:
        return ["- Worker mode: no rate was measured in every mode; not decided.", ""]
    top = common[-1]
    best = {m: crit[(crit["mode"] == m) & (crit["rate_target_per_s"] == top)]
            .sort_values("value").iloc[0] for m in modes}
    ranked = sorted(best, key=lambda m: best[m]["value"])
    lead, runner = best[ranked[0]], best[ranked[1]]
    verdict = compare_p99(lead, runner)
    text = (f"`{ranked[0]}`: at {top:,.0f}/s its CRITICAL p99 is {_p99_cell(lead)}, the next, "
            f"`{ranked[1]}`, {_p99_cell(runner)} ({verdict})")
    if verdict == SEPARATE:
        text = (f"{SEPARATE} between `{ranked[0]}` and `{ranked[1]}` at {top:,.0f}/s "
                f"(CRITICAL p99 {_p99_cell(lead)} and {_p99_cell(runner)})")
    return [f"- Worker mode, from CRITICAL's p99 at the highest rate every mode ran: {text}.",
            ""]


def _critical_at(p99: pd.DataFrame, mode: str, queues: list[str], rate: float | None) -> str:
    """CRITICAL's p99 of each queue at ``rate``, with interval and n ("" without a rate)."""
    if rate is None:
        return ""
    crit = p99[(p99["mode"] == mode) & (p99["priority"] == LEVEL_NAMES[0])
               & (p99["policy"] == NO_POLICY) & (p99["rate_target_per_s"] == rate)]
    return f"; CRITICAL's p99 at {rate:,.0f}/s: " + ", ".join(
        f"`{q}` {_p99_cell(crit[crit['queue'] == q].iloc[0])}" for q in queues
        if not crit[crit["queue"] == q].empty)


def _grouped(said: list[tuple[str, str]]) -> str:
    """("10/s", v), ("100/s", v) -> "at 10/s and 100/s: v": rates with one verdict together."""
    verdicts = dict.fromkeys(v for _, v in said)
    return "; ".join("at " + " and ".join(r for r, w in said if w == v) + f": {v}"
                     for v in verdicts)


def _one_queue(p99: pd.DataFrame, mode: str) -> str:
    """Only one queue measured below saturation: its CRITICAL p99 at the top rate, no
    comparison."""
    mine = p99[(p99["mode"] == mode) & (p99["policy"] == NO_POLICY)]
    queues = list(dict.fromkeys(mine["queue"]))
    top = float(mine["rate_target_per_s"].max())
    return (f"- In the reference service (worker mode `{mode}`, one run per point) only "
            f"{', '.join(f'`{q}`' for q in queues)} ran below saturation, so whether the queue "
            "changes p99 is not compared here" + _critical_at(p99, mode, queues, top) + ".")


def answer(frame: pd.DataFrame) -> list[str]:
    """The record's lead evidence: per worker mode, whether the queue choice changed p99 per
    priority at each rate the box could offer, then the policy past saturation."""
    if frame.empty or "endpoint" not in frame:
        return ["- End to end: **not measured in this run** (no `endtoend` frame: notebook 09 "
                "did not run), so no claim below rests on the service itself."]
    ceiling = ceiling_per_s(frame)
    lines = []
    modes = list(dict.fromkeys(values(frame, "latency_ms", "p99", tier="below")["mode"]))
    for mode in modes[:1] if LEAD_MODE not in modes else [LEAD_MODE]:
        table, differs = queue_table(frame, mode)
        p99 = values(frame, "latency_ms", "p99", tier="below")
        if not table:
            lines.append(_one_queue(p99, mode))
            continue
        queues = list(dict.fromkeys(p99.loc[(p99["mode"] == mode)
                                            & (p99["policy"] == NO_POLICY), "queue"]))
        said, skipped, judged = [], [], []
        for rate, levels in differs.items():
            if not _sent_line(frame, mode, rate, ceiling)[1]:
                skipped.append(f"{rate:,.0f}/s")
                continue
            judged.append(rate)
            said.append((f"{rate:,.0f}/s", f"p99 differs for {', '.join(levels)}" if levels
                         else SEPARATE))
        lines.append(f"- In the reference service (worker mode `{mode}`, "
                     f"{' against '.join(f'`{q}`' for q in queues)}, one run per point): "
                     + (_grouped(said) or "no rate could be judged")
                     + (f"; not judged at {', '.join(skipped)} (the box or the service "
                        "saturated, see the appendix)" if skipped else "")
                     + _critical_at(p99, mode, queues, max(judged, default=None)) + ".")
    good = values(frame, "goodput_per_s", "200", tier="past")
    if not good.empty:
        p99 = values(frame, "latency_ms", "p99", tier="past")
        counts = frame[(frame["metric"] == "requests") & (frame["tier"] == "past")
                       & (frame["endpoint"] == "infer")].copy()
        counts["priority"] = counts["priority"].astype(str)
        lines += [v for v in _policy_verdict(good, p99, counts) if v]
    return lines


def findings(frame: pd.DataFrame) -> list[str]:
    """The ADR's "End to end" section; empty when the run has no end-to-end frame."""
    if frame.empty or "endpoint" not in frame:
        return []
    ceiling = ceiling_per_s(frame)
    infer = frame[frame["endpoint"] == "infer"]
    first = infer.iloc[0]
    noop = values(frame, "latency_ms", "p50", endpoint="noop", tier="baseline")
    noop = noop[noop["priority"] == "all"]
    overhead = "; ".join(f"{r['rate_target_per_s']:,.0f}/s: {_ms(r['value'])} (n={int(r['n'])})"
                         for _, r in noop.iterrows())
    lines = [
        "## End to end",
        "",
        f"The scheduler inside the reference service (`endtoend.parquet`, notebook 09): "
        f"`python -m pqlab serve` per point (worker modes "
        f"{', '.join(f'`{m}`' for m in dict.fromkeys(infer['mode']))}; queues "
        f"{', '.join(f'`{q}`' for q in dict.fromkeys(infer['queue']))}; exponential "
        f"inference of mean {float(first['service_ms']):g} ms), driven by `python -m pqlab "
        f"http-load` in its own process (Poisson arrivals, equal priority mix, open loop). "
        f"Below saturation the workers are sized so that ρ = rate × mean service / workers ≤ "
        f"{float(first['max_rho']):g} (planned ρ up to "
        f"{infer.loc[infer['tier'] == 'below', 'rho_planned'].max():.2f}). Each point sends "
        f"until every priority has {int(first['min_responses']):,} responses or for at most "
        f"{infer['duration_s'].max():g} s; a percentile behind fewer 200s is marked "
        "*indicative*. The box's ceiling (the no-op endpoint's reply rate on a ramp, the "
        "generator on the same box): "
        + (f"{ceiling:,.0f} replies/s." if math.isfinite(ceiling) else "not measured.")
        + (f" The no-op endpoint's p50 at each rate (HTTP and framework without the queue): "
           f"{overhead}." if overhead else ""),
        "",
        *_queue_section(frame, ceiling),
        *_past_section(frame),
        *_gil_section(frame),
        *_mode_section(frame),
    ]
    return lines
