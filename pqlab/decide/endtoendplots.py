"""Notebook 09's figures, from the run's ``endtoend`` frame (``pqlab.decide.endtoend``
reads the same frame for the record). Each queue keeps its own colour and marker
(``style.queue_style``) everywhere.
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
from pqlab.decide.endtoend import NO_POLICY, SPLIT, ceiling_per_s, values
from pqlab.decide.plots import export, log_axis, no_data, panels
from pqlab.decide.style import queue_style


def _queue_handles(queues) -> list[Line2D]:
    return [Line2D([], [], color=queue_style(q).color, marker=queue_style(q).marker,
                   label=q) for q in dict.fromkeys(queues)]


def latency_vs_rate(frame: pd.DataFrame, *, out_dir: Path | None = None) -> Figure:
    """p99 (solid) and p50 (dashed) latency of the 200s per priority against the rate, a
    row per worker mode; hollow markers: indicative (fewer 200s than the point's
    ``min_responses``); each p99's n in a row per queue along the panel's top, above its
    rate; grey: the no-op endpoint's p50."""
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
                    # n in a row per queue along the panel's top, never on a marker
                    ax.text(r["rate_target_per_s"], 0.98 - 0.06 * index, f"n={int(r['n']):,}",
                            transform=ax.get_xaxis_transform(), ha="center", va="top",
                            fontsize=7, color=style.color)
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
    # shared y: room above the highest p99 for the rows of n labels
    axes[0].set_ylim(top=axes[0].get_ylim()[1] * 2 ** len(set(p99["queue"])))
    rates = sorted(p99["rate_target_per_s"].unique())
    right = max(rates[-1], ceiling) if math.isfinite(ceiling) else rates[-1]
    for ax in axes:
        ax.set_xticks(rates, [f"{r:,.0f}" for r in rates])
        ax.set_xlim(rates[0] / 1.8, right * 1.3)  # the n labels clear of the spines
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
