"""Notebook 09's figures and the ADR's "End to end", from the run's ``endtoend`` frame.

The frame (``pqlab.study.endtoend.point_frame``) is long: one row per point ×
priority × metric × stat, each value with the count behind it. Figures draw
a queue in its own colour and marker (``style.queue_style``) everywhere;
``findings`` writes the section, every number read from the frame.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from pqlab.core.checks import LEVEL_NAMES
from pqlab.decide.plots import export, log_axis, no_data, panels
from pqlab.decide.style import queue_style
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


# -- figures ---------------------------------------------------------------------------


def _queue_handles(queues) -> list[Line2D]:
    return [Line2D([], [], color=queue_style(q).color, marker=queue_style(q).marker,
                   label=q) for q in dict.fromkeys(queues)]


def latency_vs_rate(frame: pd.DataFrame, *, out_dir: Path | None = None) -> Figure:
    """p99 (solid) and p50 (dashed) latency of the 200s per priority against the rate, a
    row per worker mode; hollow markers: indicative (fewer 200s than the point's
    ``min_responses``); each p99 labelled with its n; grey: the no-op endpoint's p50."""
    name, title = "e2e-latency", "End to end: latency per priority against the offered rate"
    p99 = values(frame, "latency_ms", "p99", tier="below") if not frame.empty else frame
    if p99.empty:
        return export(no_data(title, "no end-to-end points below saturation"), frame, name,
                      out_dir)
    p50 = values(frame, "latency_ms", "p50", tier="below")
    noop = values(frame, "latency_ms", "p50", endpoint="noop", tier="baseline")
    modes = list(dict.fromkeys(p99["mode"]))
    fig, axes = panels(4 * len(modes), cols=4, sharey=True)
    fig.set_size_inches(17.0, 4.2 * len(modes) + 1.0)
    ceiling = ceiling_per_s(frame)
    for row, mode in enumerate(modes):
        for col, level in enumerate(LEVEL_NAMES):
            ax = axes[row * 4 + col]
            for index, queue in enumerate(dict.fromkeys(p99["queue"])):
                style = queue_style(queue)
                mine = (p99["mode"] == mode) & (p99["queue"] == queue) & (p99["priority"] == level)
                line = p99[mine].sort_values("rate_target_per_s")
                if line.empty:
                    continue
                ax.plot(line["rate_target_per_s"], line["value"], color=style.color,
                        linestyle="-", linewidth=1.4)
                for _, r in line.iterrows():
                    ax.plot(r["rate_target_per_s"], r["value"], marker=style.marker,
                            color=style.color, markersize=7,
                            markerfacecolor="white" if r["indicative"] else style.color)
                    ax.annotate(f"n={int(r['n']):,}", (r["rate_target_per_s"], r["value"]),
                                textcoords="offset points", xytext=(5, 4 - 11 * index),
                                fontsize=7,
                                color=style.color)
                half = p50[(p50["mode"] == mode) & (p50["queue"] == queue)
                           & (p50["priority"] == level)].sort_values("rate_target_per_s")
                ax.plot(half["rate_target_per_s"], half["value"], color=style.color,
                        linestyle="--", linewidth=1.0, marker=style.marker, markersize=4)
            base = noop[(noop["mode"] == mode) & (noop["priority"] == level)]
            base = base.sort_values("rate_target_per_s")
            ax.plot(base["rate_target_per_s"], base["value"], color="dimgrey", linestyle=":",
                    marker=".", linewidth=1.2)
            if math.isfinite(ceiling):
                ax.axvline(ceiling, color="black", linewidth=0.8, linestyle="-.")
            ax.set_xscale("log")
            ax.set(title=f"{level} ({mode})", xlabel="offered rate (requests/s, log)")
            if col == 0:
                ax.set_ylabel("latency of the 200s (ms, log)")
    for ax in axes:
        log_axis(ax, "y")
    axes[0].set_ylim(top=axes[0].get_ylim()[1] * 2)  # shared: room for the top n labels
    for ax in axes:
        rates = sorted(p99["rate_target_per_s"].unique())
        ax.set_xticks(rates, [f"{r:,.0f}" for r in rates])
        ax.minorticks_off()
    handles = _queue_handles(p99["queue"]) + [
        Line2D([], [], color="grey", linestyle="-", label="p99"),
        Line2D([], [], color="grey", linestyle="--", label="p50"),
        Line2D([], [], color="grey", marker="o", markerfacecolor="white", linestyle="none",
               label="indicative (n below the target)"),
        Line2D([], [], color="dimgrey", linestyle=":", marker=".",
               label="no-op endpoint p50 (no queue)")]
    if math.isfinite(ceiling):
        handles.append(Line2D([], [], color="black", linestyle="-.",
                              label=f"box ceiling {ceiling:,.0f}/s (no-op)"))
    axes[3].legend(handles=handles, title="queue, line", loc="upper left",
                   bbox_to_anchor=(1.02, 1.0), fontsize="x-small")
    fig.suptitle(f"{title}\nworkers sized so ρ ≤ {float(p99['max_rho'].iloc[0]):g}; latency "
                 "from each request's scheduled send time; n: 200s behind each p99")
    return export(fig, pd.concat([p99, p50, noop], ignore_index=True), name, out_dir)


def _split_data(frame: pd.DataFrame) -> pd.DataFrame:
    parts = []
    for metric in SPLIT:
        rows = values(frame, metric, "mean")
        parts.append(rows[["point", "mode", "queue", "policy", "tier", "rate_target_per_s",
                           "priority", "value", "n"]].assign(part=metric))
    data = pd.concat(parts, ignore_index=True)
    return data[data["priority"] != "all"]


def request_split(frame: pd.DataFrame, *, out_dir: Path | None = None) -> Figure:
    """Where a request's time goes (mean ms of the 200s, as shares): HTTP and framework,
    queue wait, queue operations and hand-offs, inference; a panel per priority, a bar
    per point (tick labels in the queue's colour), its mean end-to-end ms on top."""
    name, title = "e2e-split", "End to end: where a request's time goes"
    data = _split_data(frame) if not frame.empty else frame
    if data.empty:
        return export(no_data(title, "no end-to-end points"), frame, name, out_dir)
    points = list(dict.fromkeys(data.sort_values(["tier", "mode", "rate_target_per_s"],
                                                 kind="stable")["point"]))
    fig, axes = panels(4, cols=2, sharey=True)
    fig.set_size_inches(max(12.0, 1.1 * len(points) * 2 + 3), 9.5)
    for ax, level in zip(axes, LEVEL_NAMES, strict=True):
        mine = data[data["priority"] == level]
        table = mine.pivot_table(index="point", columns="part", values="value")
        table = table.reindex(points).reindex(columns=list(SPLIT)).clip(lower=0)
        totals = table.sum(axis=1)
        bottom = np.zeros(len(points))
        x = np.arange(len(points))
        for part, (label, color) in SPLIT.items():
            share = (table[part] / totals).fillna(0).to_numpy()
            ax.bar(x, share, 0.75, bottom=bottom, color=color, label=label)
            bottom += share
        for i, total in enumerate(totals):
            ax.text(i, 1.01, f"{total:,.0f} ms" if total >= 10 else f"{total:.1f} ms",
                    ha="center", va="bottom", fontsize=7)
        info = mine.drop_duplicates("point").set_index("point").reindex(points)
        ax.set_xticks(x, [_bar_label(r) for _, r in info.iterrows()], fontsize=7)
        for tick, queue in zip(ax.get_xticklabels(), info["queue"], strict=True):
            tick.set_color(queue_style(queue).color)
        ax.set(title=level, ylim=(0, 1.12))
    for ax in axes[::2]:
        ax.set_ylabel("share of the mean end-to-end time")
    axes[1].legend(handles=[Patch(color=c, label=lab) for lab, c in SPLIT.values()],
                   title="part", loc="upper left", bbox_to_anchor=(1.02, 1.0),
                   fontsize="x-small")
    fig.suptitle(f"{title}\nmean of the 200s per part (HTTP + framework = end to end − "
                 "server time); tick labels: rate, queue (its colour), policy; number on top: "
                 "mean end-to-end ms")
    return export(fig, data, name, out_dir)


def _bar_label(r: pd.Series) -> str:
    short = str(r["queue"]).replace("PriorityQueue", "PQ").replace("BucketQueue", "Bucket")
    policy = "" if r["policy"] == NO_POLICY else "\n+policy"
    where = f"ρ {r['rate_target_per_s']:,.0f}/s" if r["tier"] == "past" else \
        f"{r['rate_target_per_s']:,.0f}/s"
    return f"{where}\n{short}{policy}".replace("ρ ", "past ")


def loop_lag(frame: pd.DataFrame, *, out_dir: Path | None = None) -> Figure:
    """The service's event-loop lag (p99 and max, ms, log) at every point against the rate
    it was sent; filled markers: no policy, hollow: the policy; grey: the no-op endpoint."""
    name, title = "e2e-loop-lag", "End to end: the service's event-loop lag"
    if frame.empty:
        return export(no_data(title, "no end-to-end points"), frame, name, out_dir)
    parts = []
    for endpoint in ("infer", "noop"):
        for stat in ("p99", "max"):
            lag = values(frame, "loop_lag_ms", stat, endpoint=endpoint)
            sent = values(frame, "rate_per_s", "achieved", endpoint=endpoint)
            parts.append(lag.merge(sent[["point", "endpoint", "value"]].rename(
                columns={"value": "sent_per_s"}), on=["point", "endpoint"]))
    data = pd.concat(parts, ignore_index=True)
    if data.empty:
        return export(no_data(title, "the service reported no loop lag"), frame, name, out_dir)
    fig, axes = panels(2, sharey=True)
    fig.set_size_inches(12.5, 4.6)
    for ax, stat in zip(axes, ("p99", "max"), strict=True):
        part = data[data["stat"] == stat]
        for (endpoint, mode, queue, policy), line in part.groupby(
                ["endpoint", "mode", "queue", "policy"], sort=False):
            line = line.sort_values("sent_per_s")
            if endpoint == "noop":
                ax.plot(line["sent_per_s"], line["value"].clip(lower=1e-3), color="dimgrey",
                        linestyle=":", marker=".")
                continue
            style = queue_style(queue)
            ax.plot(line["sent_per_s"], line["value"].clip(lower=1e-3), color=style.color,
                    marker=style.marker, linestyle=style.linestyle if mode == "async" else ":",
                    markerfacecolor="white" if policy != NO_POLICY else style.color)
        ax.set(title=f"{stat} of the lag over each point", xlabel="rate sent (requests/s, log)",
               ylabel="event-loop lag (ms, log)")
        log_axis(ax, "x")
        log_axis(ax, "y")
    handles = _queue_handles(data.loc[data["endpoint"] == "infer", "queue"]) + [
        Line2D([], [], color="grey", marker="o", markerfacecolor="white", linestyle="none",
               label="with the policy"),
        Line2D([], [], color="dimgrey", linestyle=":", marker=".", label="no-op endpoint")]
    axes[1].legend(handles=handles, title="queue", loc="upper left", bbox_to_anchor=(1.02, 1.0),
                   fontsize="x-small")
    fig.suptitle(f"{title}\nhow late a 10 ms sleep on the serving loop wakes up (100 samples a "
                 "second), over each point's sending; lines join a queue's points by rate")
    return export(fig, data, name, out_dir)


def goodput(frame: pd.DataFrame, *, out_dir: Path | None = None) -> Figure:
    """Past saturation: goodput (200s per second) and the p99 of the 200s per priority, a
    bar per queue and policy (the queue's colour; hatched: no policy)."""
    name, title = "e2e-goodput", "End to end past saturation: goodput and p99 per priority"
    good = values(frame, "goodput_per_s", "200", tier="past") if not frame.empty else frame
    if good.empty:
        return export(no_data(title, "no points past saturation"), frame, name, out_dir)
    p99 = values(frame, "latency_ms", "p99", tier="past")
    data = pd.concat([good, p99], ignore_index=True)
    data = data[data["priority"] != "all"]
    keys = list(dict.fromkeys(zip(data["mode"], data["queue"], data["policy"],
                                  data["rho_planned"], strict=True)))
    fig, axes = panels(2)
    fig.set_size_inches(13.5, 4.8)
    width = 0.8 / len(keys)
    x = np.arange(len(LEVEL_NAMES))
    for ax, (metric, label) in zip(axes, (("goodput_per_s", "goodput (200s per second)"),
                                         ("latency_ms", "p99 latency of the 200s (ms, log)")),
                                   strict=True):
        for j, (mode, queue, policy, rho) in enumerate(keys):
            rows = data[(data["metric"] == metric) & (data["mode"] == mode)
                        & (data["queue"] == queue) & (data["policy"] == policy)
                        & (data["rho_planned"] == rho)].set_index("priority")
            height = rows["value"].reindex(LEVEL_NAMES).fillna(0).to_numpy()
            pos = x + (j - (len(keys) - 1) / 2) * width
            ax.bar(pos, height, width * 0.95, color=queue_style(queue).color,
                   hatch="//" if policy == NO_POLICY else None, edgecolor="white")
            if metric == "latency_ms":
                for xi, (_, r) in zip(pos, rows.reindex(LEVEL_NAMES).iterrows(), strict=True):
                    if math.isfinite(r["value"]):
                        ax.text(xi, r["value"], f"n={int(r['n'])}", ha="center",
                                va="bottom", fontsize=6, rotation=90)
        ax.set_xticks(x, LEVEL_NAMES)
        ax.set(ylabel=label, xlabel="priority")
        if metric == "latency_ms":
            log_axis(ax, "y")
            ax.set_ylim(top=ax.get_ylim()[1] * 4)
    handles = [Patch(facecolor=queue_style(q).color, hatch="//" if p == NO_POLICY else None,
                     edgecolor="white", label=f"{q}, policy {p}, ρ {rho:g} ({m})")
               for m, q, p, rho in keys]
    axes[1].legend(handles=handles, title="queue, policy", loc="upper left",
                   bbox_to_anchor=(1.02, 1.0), fontsize="x-small")
    fig.suptitle(f"{title}\nhatched: no policy; clients give up after "
                 "an exponential patience and disconnect")
    return export(fig, data, name, out_dir)


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
