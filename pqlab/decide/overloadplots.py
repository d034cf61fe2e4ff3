"""The figures of notebook 08 (what each priority gets past saturation, with and without a
policy) and of notebook 06's failover drills (``failover_outcomes``).

Each function takes one of ``study.loadframes``' overload frames (medians are
taken over repetitions here), draws it in ``plots``' style and exports it as
``plots.export`` does (SVG, PNG and the CSV behind it). Colour is the
priority (``plots.priority_colors``), line style the policy: solid with the
policy, dashed without.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from pqlab.decide.plots import export, log_axis, no_data, panels, priority_colors
from pqlab.scenarios.loadparams import NO_POLICY_LABEL as NO_POLICY

OUTCOME_ORDER = ("served", "rejected", "expired", "cancelled", "queued")
OUTCOME_COLORS = {"served": "#4c9a5b", "rejected": "#c44e52", "expired": "#dd8452",
                  "cancelled": "#8c8c8c", "queued": "#8172b3"}
RHO_LABEL = "offered load ρ = λ·E[S]/C"


def _runs(frame: pd.DataFrame) -> str:
    """What a point stands for: "one run per point" or "median of N runs"."""
    n = frame["repetition"].nunique() if "repetition" in frame else 1
    return "one run per point" if n <= 1 else f"median of {n} runs"


def _dashes(policies) -> dict[str, str]:
    """Solid for a policy, dashed for none (more than one policy: dotted for the others)."""
    styles = {}
    for i, name in enumerate(dict.fromkeys(policies)):
        styles[name] = "--" if name == NO_POLICY else ("-" if i < 2 else ":")
    return styles


def _median(frame: pd.DataFrame, keys: list[str], values: list[str]) -> pd.DataFrame:
    present = [v for v in values if v in frame]
    return frame.groupby(keys, sort=False, observed=True)[present].median().reset_index()


def _legend(fig: Figure, ax, priorities, styles: dict[str, str]) -> None:
    colors = priority_colors(priorities)
    handles = [Line2D([], [], color=c, marker="o", label=p) for p, c in colors.items()]
    handles += [Line2D([], [], color="grey", linestyle=s, label=f"policy: {name}")
                for name, s in styles.items()]
    ax.legend(handles=handles, title="priority, policy", loc="upper left",
              bbox_to_anchor=(1.02, 1.0), fontsize="x-small")


def overload_goodput(goodput: pd.DataFrame, *, out_dir: Path | None = None) -> Figure:
    """Goodput per priority (served within its deadline, /s) and the served p99 wait against ρ."""
    name, title = "overload-goodput", "Past saturation: goodput and p99 wait per priority"
    if goodput.empty:
        return export(no_data(title, "no overload runs"), goodput, name, out_dir)
    data = _median(goodput, ["queue", "policy", "rho", "priority"],
                   ["goodput_per_s", "replay_goodput_per_s", "served_wait_p99_ms"])
    data["priority"] = data["priority"].astype(str)
    styles = _dashes(data["policy"])
    colors = priority_colors(dict.fromkeys(data["priority"]))
    fig, (good_ax, wait_ax) = panels(2)
    fig.set_size_inches(12.0, 4.6)
    for (policy, prio), part in data.groupby(["policy", "priority"], sort=False):
        part = part.sort_values("rho")
        kw = dict(color=colors[prio], linestyle=styles[policy], marker="o")
        good_ax.plot(part["rho"], part["goodput_per_s"], **kw)
        wait_ax.plot(part["rho"], part["served_wait_p99_ms"].clip(lower=1e-2), **kw)
    good_ax.set(xlabel=RHO_LABEL, ylabel="goodput (requests/s served in time)",
                title="goodput per priority")
    wait_ax.set(xlabel=RHO_LABEL, ylabel="p99 wait of served requests (ms, log)",
                title="p99 wait per priority")
    if (data["served_wait_p99_ms"] > 0).any():
        log_axis(wait_ax, "y")
    _legend(fig, wait_ax, dict.fromkeys(data["priority"]), styles)
    fig.suptitle(f"{title}\n{data['queue'].iloc[0]}: {_runs(goodput)}; "
                 "dashed: no policy, solid: the policy")
    return export(fig, data, name, out_dir)


def overload_outcomes(outcomes: pd.DataFrame, *, out_dir: Path | None = None) -> Figure:
    """What became of the requests of each priority at each ρ, stacked shares per policy."""
    name, title = "overload-outcomes", "Past saturation: what became of each priority's requests"
    if outcomes.empty:
        return export(no_data(title, "no overload runs"), outcomes, name, out_dir)
    data = _median(outcomes, ["policy", "rho", "priority", "outcome"], ["share", "replay_share"])
    data["priority"] = data["priority"].astype(str)
    priorities = list(dict.fromkeys(data["priority"]))
    policies = list(dict.fromkeys(data["policy"]))
    rhos = sorted(data["rho"].unique())
    fig, axes = panels(len(priorities), cols=min(4, len(priorities)), sharey=True)
    fig.set_size_inches(3.4 * min(4, len(priorities)) + 1.6, 4.4)
    width = 0.8 / len(policies)
    for ax, prio in zip(axes, priorities, strict=True):
        part = data[data["priority"] == prio]
        for j, policy in enumerate(policies):
            x = np.arange(len(rhos)) + (j - (len(policies) - 1) / 2) * width
            bottom = np.zeros(len(rhos))
            for outcome in OUTCOME_ORDER:
                rows = part[(part["policy"] == policy) & (part["outcome"] == outcome)]
                share = rows.set_index("rho")["share"].reindex(rhos).fillna(0.0).to_numpy()
                ax.bar(x, share, width * 0.95, bottom=bottom, color=OUTCOME_COLORS[outcome],
                       hatch="//" if policy == NO_POLICY else None, edgecolor="white",
                       linewidth=0.5)
                bottom += share
        ax.set_xticks(np.arange(len(rhos)), [f"{r:g}" for r in rhos])
        ax.set(title=prio, xlabel=RHO_LABEL, ylim=(0, 1.02))
    axes[0].set_ylabel("share of offered requests")
    handles = [Patch(color=OUTCOME_COLORS[o], label=o) for o in OUTCOME_ORDER]
    handles += [Patch(facecolor="white", edgecolor="grey", hatch="//" if p == NO_POLICY else "",
                      label=f"policy: {p}") for p in policies]
    axes[-1].legend(handles=handles, title="outcome, policy", loc="upper left",
                    bbox_to_anchor=(1.02, 1.0), fontsize="x-small")
    order = " | ".join(f"{p}" for p in policies)
    fig.suptitle(f"{title}\nbars per ρ: {order} (hatched: no policy); {_runs(outcomes)}")
    return export(fig, data, name, out_dir)


def overload_depth(depth: pd.DataFrame, *, limits: dict[str, int] | None = None,
                   out_dir: Path | None = None) -> Figure:
    """Requests queued per priority over the run, one panel per policy, at one ρ; with
    ``limits`` (the policy's ``max_queue_size`` per level name), each level's limit drawn
    as a dashed line in its colour on the policy's panels."""
    name, title = "overload-depth", "Past saturation: queue depth per priority over time"
    if depth.empty:
        return export(no_data(title, "no depth series"), depth, name, out_dir)
    data = depth.copy()
    data["priority"] = data["priority"].astype(str)
    policies = list(dict.fromkeys(data["policy"]))
    colors = priority_colors(dict.fromkeys(data["priority"]))
    fig, axes = panels(len(policies), sharey=True)
    fig.set_size_inches(5.6 * len(policies) + 1.6, 4.2)
    for ax, policy in zip(axes, policies, strict=True):
        part = data[data["policy"] == policy]
        for prio, color in colors.items():
            line = part[part["priority"] == prio].sort_values("t_s")
            ax.step(line["t_s"], line["depth"], where="post", color=color, label=prio)
            if limits and policy != NO_POLICY and limits.get(prio):
                ax.axhline(limits[prio], color=color, linestyle="--", linewidth=1.0)
        ax.set(title=f"policy: {policy}", xlabel="time since the first arrival (s)")
    axes[0].set_ylabel("requests queued")
    handles, _ = axes[-1].get_legend_handles_labels()
    if limits:
        handles.append(Line2D([], [], color="grey", linestyle="--", label="the level's limit"))
    axes[-1].legend(handles=handles, title="priority", loc="upper left",
                    bbox_to_anchor=(1.02, 1.0), fontsize="x-small")
    rho = data["rho"].iloc[0] if "rho" in data else float("nan")
    fig.suptitle(f"{title}\nρ = {rho:g}: without limits the lower levels grow for as long as "
                 "arrivals last; limits cap each level" + ("" if limits else
                                                          " (limits not given)"))
    return export(fig, data, name, out_dir)


# One colour per replica-acknowledgement setting (seaborn's colorblind blue and orange).
MIN_REPLICAS_COLORS = {0: "#0173b2", 1: "#de8f05"}
MIN_REPLICAS_LABELS = {0: "min_replicas=0: put and ack return at once",
                       1: "min_replicas=1: put and ack wait for a replica (WAIT)"}


def failover_outcomes(drills: pd.DataFrame, *, out_dir: Path | None = None) -> Figure | None:
    """Notebook 06's failover drills (``scenarios.failover.drill_frame``): time without
    service and lost puts per scenario, one colour per ``min_replicas``, every run a dot and
    the median a bar, n runs in each label. None (nothing drawn) when no drill was run."""
    name = "failover"
    if drills.empty:
        return None
    wide = drills.pivot_table(index=["scenario", "min_replicas", "run"], columns="metric",
                              values="value", observed=True).reset_index()
    scenarios = list(dict.fromkeys(drills["scenario"]))
    settings = sorted(int(m) for m in wide["min_replicas"].unique())
    width = 0.8 / len(settings)
    fig, (gap_ax, lost_ax) = panels(2)
    fig.set_size_inches(11.0 + 2.0 * len(scenarios), 5.0)
    for ax, metric, fmt in ((gap_ax, "no_service_s", "{:.2f} s"), (lost_ax, "lost", "{:.0f}")):
        for j, m in enumerate(settings):
            for i, scenario in enumerate(scenarios):
                part = wide[(wide["scenario"] == scenario) & (wide["min_replicas"] == m)]
                if part.empty:
                    continue
                x = i + (j - (len(settings) - 1) / 2) * width
                values = part[metric].to_numpy()
                median = float(np.median(values))
                color = MIN_REPLICAS_COLORS.get(m, "grey")
                ax.bar(x, median, width * 0.9, color=color, alpha=0.45)
                ax.scatter(np.full(len(values), x), values, color=color, edgecolor="black",
                           linewidth=0.5, zorder=3, s=28)
                if metric == "lost":
                    note = f"{fmt.format(values.sum())} of\n{part['acknowledged'].sum():,.0f}"
                elif len(values) == 1:
                    note = fmt.format(median)
                else:
                    note = f"median\n{fmt.format(median)}\nmax\n{fmt.format(values.max())}"
                ax.annotate(f"{note}\nn = {len(values)}", (x, max(values.max(), median)),
                            xytext=(0, 4), textcoords="offset points", ha="center",
                            va="bottom", fontsize=7)
        ax.set_xticks(range(len(scenarios)), scenarios)
        ax.set_xlim(-0.6, len(scenarios) - 0.4)
        ax.set_ylim(0, max(1.0, float(wide[metric].max())) * 1.45)
    gap_ax.set(xlabel="scenario", ylabel="longest gap between claims (s)",
               title="time without service")
    lost_ax.set(xlabel="scenario", ylabel="puts acknowledged, never served",
                title="lost puts (sum over runs, of acknowledged)")
    lost_ax.yaxis.get_major_locator().set_params(integer=True)
    handles = [Patch(color=MIN_REPLICAS_COLORS.get(m, "grey"), alpha=0.6,
                     label=MIN_REPLICAS_LABELS.get(m, f"min_replicas={m}")) for m in settings]
    lost_ax.legend(handles=handles, title="replica acknowledgement", loc="upper left",
                   bbox_to_anchor=(1.02, 1.0), fontsize="x-small")
    first = drills.iloc[0]
    most_runs = int(wide.groupby(["scenario", "min_replicas"], observed=True).size().max())
    bars = "one run per bar" if most_runs == 1 else "bar: median over runs, dot: one run"
    paused = ("; paused replica: every replica stopped and cut off just before the kill"
              if any("paused" in str(s) for s in scenarios) else "")
    fig.suptitle(f"Losing the primary (a primary, {int(first['replicas'])} replicas, "
                 f"{int(first['sentinels'])} Sentinels)\n{int(first['producers'])} producer and "
                 f"{int(first['consumers'])} consumer processes, {first['rate_per_s']:g} puts/s "
                 f"each for {first['duration_s']:g} s, the primary SIGKILLed half-way\n"
                 f"{bars}{paused}")
    return export(fig, wide, name, out_dir)
