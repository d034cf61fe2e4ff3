"""The end-to-end study (notebook 09): the scheduler inside a real service, under HTTP load.

One study unit: its typed parameters (``Settings``, checked by name as the
notebook's parameters are), its plan of points (``plan``), its sweep
(``sweep``: each point a ``python -m pqlab serve`` on a free loopback port
and a ``python -m pqlab http-load`` in a process of its own) and its frame
(``point_frame``: tidy, one row per point × priority × metric × stat).

A point is (worker mode, queue, policy or none, rate). Below saturation the
rates are ``RATES`` with workers sized so that ρ = rate × mean service /
workers ≤ ``MAX_RHO``; past saturation, on each queue that takes a policy,
``WORKERS`` workers take ρ of each of ``PAST_RHOS``, without a policy and with
limits sized from ``WAIT_TARGET_MS`` by Little's law
(``loadframes.policy_for_wait``).
Each point warms the service up, then sends for as long as it takes every
priority to get ``MIN_RESPONSES`` responses, at most ``POINT_CAP_S``; a
percentile behind fewer 200s than that is marked ``indicative``. Beside the
points: the no-op endpoint at each rate (the overhead of HTTP and the
framework without the queue) and the box's ceiling, the no-op endpoint's
reply rate on a short ramp; every rate is also stated as a share of it. A
rate the box cannot send is reported as sent (``rate_per_s`` ``achieved``,
the generator's ``lateness_ms``), never extrapolated.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import math
import os
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

from pqlab.core.checks import LEVEL_NAMES
from pqlab.measure.significance import quantile_ci
from pqlab.queues import QUEUES
from pqlab.queues.policy import QueuePolicy
from pqlab.scenarios.loadparams import NO_POLICY_LABEL, LoadParams, policy_label
from pqlab.service.httpload import DISCONNECT, ERROR, UNFINISHED
from pqlab.service.server import stop_serve
from pqlab.service.workers import modes_for, takes_policy
from pqlab.study import config, params
from pqlab.study.loadframes import policy_for_wait
from pqlab.study.progress import Reporter

FRAME = "endtoend"  # the run's frame: endtoend.parquet
MODES = ("async", "threads", "threads-gil", "processes")  # threads-gil: inference holds the GIL
CPU_MODES = ("threads-gil", "processes")  # inference spends a core: at most one worker per core
MIX = (1.0, 1.0, 1.0, 1.0)  # CRITICAL, HIGH, NORMAL, LOW: equal shares
PRIORITIES = (*LEVEL_NAMES, "all")
QUANTILES = (50.0, 99.0, 99.9)
CI_CONFIDENCE = 0.95  # the intervals of the percentiles
START_S = 30.0  # the longest a service may take to answer /healthz (processes spawn)
STOP_S = 20.0  # the longest it may take to exit after SIGTERM
WARMUP_REQUESTS = 20  # sequential requests before a point: imports, caches, connections
MARGIN = 1.15  # a point sends 15% more than MIN_RESPONSES per priority needs (Poisson counts)
SUSTAINED = 0.95  # a ceiling step is sustained when replies keep up with 95% of its rate
EXIT_DRAIN_S = 45.0  # beyond a load's duration: its drain (at most 30 s) and start-up


class PointError(RuntimeError):
    """A service that would not start or a load that failed: names the point."""


# -- parameters ------------------------------------------------------------------------


# Each field and the notebook parameter it comes from (checked by ``params.check``).
PARAMETER_NAMES = {
    "modes": "MODES", "queues": "QUEUES", "rates_per_s": "RATES", "past_rhos": "PAST_RHOS",
    "max_rho": "MAX_RHO", "service_ms": "SERVICE_MS", "workers": "WORKERS",
    "min_responses": "MIN_RESPONSES", "point_cap_s": "POINT_CAP_S", "baseline_s": "BASELINE_S",
    "ceiling_rates_per_s": "CEILING_RATES", "ceiling_step_s": "CEILING_STEP_S",
    "wait_target_ms": "WAIT_TARGET_MS", "timeout_ms": "TIMEOUT_MS", "patience_s": "PATIENCE_S",
    "seed": "SEED", "progress": "PROGRESS"}


@dataclass(frozen=True)
class Settings:
    """The study's parameters, typed; ``params.ParameterError`` names a bad one."""

    modes: tuple[str, ...] = ("async",)
    queues: tuple[str, ...] = ("asyncio.PriorityQueue", "AsyncBucketQueue")
    rates_per_s: tuple[float, ...] = (10.0, 100.0, 1000.0)
    past_rhos: tuple[float, ...] = (1.5,)
    max_rho: float = 0.8
    service_ms: float = 10.0
    workers: int = 2  # past saturation
    min_responses: int = 1000
    point_cap_s: float = 4.0
    baseline_s: float = 1.5
    ceiling_rates_per_s: tuple[float, ...] = (250.0, 500.0, 1000.0, 2000.0)
    ceiling_step_s: float = 1.0
    wait_target_ms: float = 250.0
    timeout_ms: float = 1000.0
    patience_s: float = 2.0
    seed: int = 1
    progress: bool = True
    cores: int = field(default_factory=lambda: os.cpu_count() or 1)

    def __post_init__(self) -> None:
        for attribute, name in PARAMETER_NAMES.items():
            checked = params.check(name, getattr(self, attribute))
            object.__setattr__(self, attribute, tuple(checked) if isinstance(checked, list)
                               else checked)
        unfit = [q for q in self.queues if not fitting_modes(q, self.modes)]
        if unfit:
            able = {m: [q for q in QUEUES if _base(m) in modes_for(QUEUES[q])]
                    for m in self.modes}
            raise params.ParameterError(
                f"QUEUES: {', '.join(map(repr, unfit))} fit none of MODES "
                f"{list(self.modes)}; queues per mode: "
                + "; ".join(f"{m}: {', '.join(q)}" for m, q in able.items()))
        if self.past_rhos and not any(takes_policy(QUEUES[q]) for q in self.queues):
            raise params.ParameterError(
                "QUEUES: past saturation (PAST_RHOS) needs a queue that takes a policy; "
                "those that do: " + ", ".join(q for q in QUEUES if takes_policy(QUEUES[q])))

    @property
    def service_s(self) -> float:
        return self.service_ms / 1e3


def settings(p: SimpleNamespace) -> Settings:
    """The typed parameters from a notebook's validated ones (``params.validate``)."""
    return Settings(modes=tuple(p.MODES), queues=tuple(p.QUEUES), rates_per_s=tuple(p.RATES),
                    past_rhos=tuple(p.PAST_RHOS), max_rho=p.MAX_RHO, service_ms=p.SERVICE_MS,
                    workers=p.WORKERS, min_responses=p.MIN_RESPONSES,
                    point_cap_s=p.POINT_CAP_S, baseline_s=p.BASELINE_S,
                    ceiling_rates_per_s=tuple(p.CEILING_RATES), ceiling_step_s=p.CEILING_STEP_S,
                    wait_target_ms=p.WAIT_TARGET_MS, timeout_ms=p.TIMEOUT_MS,
                    patience_s=p.PATIENCE_S, seed=p.SEED, progress=p.PROGRESS)


def _base(mode: str) -> str:
    """The service's ``--worker-mode`` of a study mode."""
    return "threads" if mode == "threads-gil" else mode


def fitting_modes(queue: str, modes: Sequence[str]) -> list[str]:
    """The study modes of ``modes`` that ``queue`` can serve."""
    return [m for m in modes if _base(m) in modes_for(QUEUES[queue])]


# -- the plan --------------------------------------------------------------------------


@dataclass(frozen=True)
class Point:
    """One measured point: a service configuration and the rate it is offered."""

    mode: str
    queue: str
    tier: str  # "below" (ρ ≤ MAX_RHO) or "past" (ρ > 1)
    rate_per_s: float
    workers: int
    rho_planned: float
    policy: QueuePolicy | None = None
    policy_name: str = NO_POLICY_LABEL

    @property
    def key(self) -> str:
        return (f"{self.mode}/{self.queue}/{self.policy_name}/{self.tier}/"
                f"{self.rate_per_s:g}")

    def describe(self) -> str:
        return (f"{self.mode} {self.queue}, policy {self.policy_name}, {self.rate_per_s:g}/s "
                f"on {self.workers} worker{'' if self.workers == 1 else 's'} "
                f"(ρ {self.rho_planned:.2f} planned)")


def wait_policy(s: Settings, workers: int) -> tuple[str, QueuePolicy]:
    """Limits per level sized so a request admitted at its level's limit waits about
    ``wait_target_ms`` at saturation (as notebook 08's), each level timing out after
    ``timeout_ms`` (0: never) with REJECT; and its label."""
    capacity = workers / s.service_s
    rates = [capacity * w / sum(MIX) for w in MIX]
    policy = policy_for_wait(s.wait_target_ms / 1e3, rates, s.service_s, workers,
                             s.timeout_ms / 1e3, "REJECT")
    return policy_label(LoadParams(policy=policy, duration_s=1.0)), policy


def plan(s: Settings) -> tuple[list[Point], list[str]]:
    """The points to measure, in order, and a line per point left out (and why)."""
    points, left_out = [], []
    for mode in s.modes:
        queues = [q for q in s.queues if mode in fitting_modes(q, [mode])]
        for queue in queues:
            for rate in s.rates_per_s:
                workers = max(1, math.ceil(rate * s.service_s / s.max_rho))
                if mode in CPU_MODES and workers > s.cores:
                    left_out.append(f"{mode} {queue} at {rate:g}/s: needs {workers} workers "
                                    f"for ρ ≤ {s.max_rho:g}; this box has {s.cores} cores "
                                    "for CPU-bound inference")
                    continue
                points.append(Point(mode, queue, "below", rate, workers,
                                    rate * s.service_s / workers))
            if not takes_policy(QUEUES[queue]):
                continue  # past saturation: the policy's effect, on a queue that takes one
            for rho in s.past_rhos:
                workers = min(s.workers, s.cores) if mode in CPU_MODES else s.workers
                rate = rho * workers / s.service_s
                name, policy = wait_policy(s, workers)
                points.append(Point(mode, queue, "past", rate, workers, rho))
                points.append(Point(mode, queue, "past", rate, workers, rho, policy, name))
    return points, left_out


def point_duration_s(s: Settings, rate_per_s: float) -> float:
    """Seconds of sending for every priority to get ``min_responses``, at most the cap."""
    share = min(MIX) / sum(MIX)
    return min(s.point_cap_s, MARGIN * s.min_responses / (rate_per_s * share))


# -- a service and a load, in processes of their own ----------------------------------------


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": config.package_pythonpath()}


def _get(url: str, path: str, timeout: float = 5.0) -> tuple[int, Any]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        text = response.read().decode()
    finally:
        conn.close()
    try:
        return response.status, json.loads(text)
    except ValueError:
        return response.status, text


def _post(conn: http.client.HTTPConnection, path: str, body: dict) -> int:
    conn.request("POST", path, body=json.dumps(body),
                 headers={"content-type": "application/json"})
    response = conn.getresponse()
    response.read()
    return response.status


def _read_url(proc: subprocess.Popen, deadline: float) -> str:
    """The URL from the service's first line (``pqlab serve: http://...``)."""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith("pqlab serve: "):
            return line.split()[2]
    err = proc.stderr.read() if proc.poll() is not None else ""
    raise PointError(f"the service did not start within {START_S:g} s: "
                     f"{err.strip().splitlines()[-1] if err.strip() else 'no output'}")


@contextlib.contextmanager
def serving(point: Point, s: Settings) -> Iterator[str]:
    """``python -m pqlab serve`` for ``point`` on a free loopback port: its base URL once
    ``/healthz`` answers. Stopped with SIGTERM (killed after ``STOP_S``) on the way out."""
    args = [sys.executable, "-m", "pqlab", "serve", "--queue", point.queue,
            "--workers", str(point.workers), "--service", f"exp:{s.service_ms:g}ms",
            "--worker-mode", _base(point.mode), "--port", "0", "--seed", str(s.seed)]
    if point.mode == "threads-gil":
        args.append("--service-holds-gil")
    if point.policy is not None:
        args += ["--policy", json.dumps(point.policy.to_mapping())]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env())
    try:
        deadline = time.monotonic() + START_S
        url = _read_url(proc, deadline)
        while _healthz(url) != 200:
            if time.monotonic() > deadline:
                raise PointError(f"{point.describe()}: /healthz never answered 200")
            time.sleep(0.05)
        yield url
    finally:
        stop_serve(proc, STOP_S)


def _healthz(url: str) -> int:
    try:
        return _get(url, "/healthz", timeout=2.0)[0]
    except OSError:
        return 0


def warm_up(url: str, requests: int = WARMUP_REQUESTS) -> None:
    """Sequential requests to both endpoints, every priority, on one connection."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        for i in range(requests):
            _post(conn, "/v1/infer", {"priority": 1 + i % 4})
            _post(conn, "/v1/noop", {"priority": 1 + i % 4})
    finally:
        conn.close()


def http_load(url: str, rate_per_s: float, duration_s: float, *, seed: int,
              patience_s: float | None = None, arrivals: str = "poisson") -> dict[str, Any]:
    """``python -m pqlab http-load`` in a process of its own: its ``--json`` result."""
    with tempfile.TemporaryDirectory(prefix="pqlab-e2e-") as tmp:
        out = Path(tmp) / "load.json"
        args = [sys.executable, "-m", "pqlab", "http-load", "--url", url,
                "--rate", f"{rate_per_s:g}", "--duration", f"{duration_s:g}",
                "--mix", ",".join(f"{w:g}" for w in MIX), "--seed", str(seed),
                "--arrivals", arrivals, "--json", str(out)]
        if patience_s:
            args += ["--patience", f"exp:{patience_s:g}s"]
        done = subprocess.run(args, capture_output=True, text=True, env=_env(),
                              timeout=duration_s + EXIT_DRAIN_S)
        if not out.is_file():
            last = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
            raise PointError(f"http-load on {url} failed (exit {done.returncode}): {last}")
        return json.loads(out.read_text(encoding="utf-8"))


def loop_lag(url: str, window_s: float) -> dict[str, Any]:
    """The service's event-loop lag over the last ``window_s`` seconds (``/v1/stats``)."""
    status, stats = _get(url, f"/v1/stats?window_s={window_s:g}")
    return stats if status == 200 else {}


# -- frames ----------------------------------------------------------------------------


def _stats_rows(values: np.ndarray, metric: str, indicative_below: int,
                with_mean: bool = False) -> list[dict[str, Any]]:
    """p50, p99, p99.9 of ``values`` (ms) with their n and 95% interval; and the mean."""
    values = values[np.isfinite(values)]
    n = len(values)
    rows = []
    for q in QUANTILES:
        low, high = quantile_ci(values, q, CI_CONFIDENCE) if n else (math.nan, math.nan)
        rows.append({"metric": metric, "stat": f"p{q:g}",
                     "value": float(np.percentile(values, q)) if n else math.nan,
                     "n": n, "low": low, "high": high, "indicative": n < indicative_below})
    if with_mean:
        rows.append({"metric": metric, "stat": "mean",
                     "value": float(values.mean()) if n else math.nan, "n": n,
                     "low": math.nan, "high": math.nan, "indicative": n < indicative_below})
    return rows


def _count(metric: str, stat: str, value: float, n: int) -> dict[str, Any]:
    return {"metric": metric, "stat": stat, "value": float(value), "n": int(n),
            "low": math.nan, "high": math.nan, "indicative": False}


def _requests(load: dict[str, Any]) -> dict[str, np.ndarray]:
    req = load["requests"]
    return {k: np.array([math.nan if v is None else v for v in req[k]], dtype=float)
            for k in ("due_s", "priority", "lateness_ms", "status", "latency_ms", "queued_ms",
                      "service_ms", "server_ms")}


def _priority_rows(req: dict[str, np.ndarray], mine: np.ndarray, span_s: float,
                   min_responses: int) -> list[dict[str, Any]]:
    status = req["status"][mine]
    offered = int(mine.sum())
    rows = [_count("requests", "offered", offered, offered)]
    for name, hit in (("200", status == 200), ("503", status == 503), ("504", status == 504),
                      ("disconnect", status == DISCONNECT),
                      ("error", np.isin(status, (ERROR, UNFINISHED))
                       | ((status > 0) & ~np.isin(status, (200, 503, 504))))):
        rows.append(_count("requests", name, hit.sum(), offered))
    ok = mine & (req["status"] == 200)
    rows.append(_count("goodput_per_s", "200", ok.sum() / span_s if span_s > 0 else math.nan,
                       int(ok.sum())))
    latency = req["latency_ms"][ok]
    rows += _stats_rows(latency, "latency_ms", min_responses, with_mean=True)
    if np.isfinite(req["queued_ms"][ok]).any():  # /v1/infer: the server's split
        queued, service, server = (req[k][ok] for k in ("queued_ms", "service_ms", "server_ms"))
        for metric, values in (("http_ms", latency - server), ("queue_wait_ms", queued),
                               ("queue_ops_ms", server - queued - service),
                               ("inference_ms", service)):
            rows += _stats_rows(values, metric, min_responses, with_mean=True)
    elif np.isfinite(req["server_ms"][ok]).any():  # /v1/noop: no queue
        rows += _stats_rows(latency - req["server_ms"][ok], "http_ms", min_responses,
                            with_mean=True)
    return rows


def point_frame(load: dict[str, Any], *, lag: dict[str, Any] | None = None,
                indicative_below: int = 1000, **keys: Any) -> pd.DataFrame:
    """The tidy frame of one http-load result (its ``--json`` dict): one row per priority
    (CRITICAL..LOW, then ``all``) × metric × stat, with ``value``, ``n`` (the count behind
    it), ``low``/``high`` (95% interval of a percentile) and ``indicative`` (a percentile
    behind fewer than ``indicative_below`` 200s); the point's own numbers (rates, lateness,
    loop lag) under ``all``. ``keys`` (mode, queue, policy, ...) go into every row."""
    req = _requests(load)
    sched = load["schedule"]
    span_s = float(load["plan"]["duration_s"])
    rows: list[dict[str, Any]] = []
    for level, name in enumerate(LEVEL_NAMES, start=1):
        rows += [{"priority": name, **r} for r in
                 _priority_rows(req, req["priority"] == level, span_s, indicative_below)]
    everyone = np.ones(len(req["status"]), dtype=bool)
    rows += [{"priority": "all", **r} for r in _priority_rows(req, everyone, span_s,
                                                            indicative_below)]
    achieved = sched.get("achieved_rate_per_s")
    scheduled = sched.get("scheduled_rate_per_s")
    point = [_count("rate_per_s", "target", sched["target_rate_per_s"], sched["offered"]),
             _count("rate_per_s", "scheduled", math.nan if scheduled is None else scheduled,
                    sched["offered"]),
             _count("rate_per_s", "achieved", math.nan if achieved is None else achieved,
                    sched["offered"]),
             _count("rate_per_s", "reply", reply_rate(req), int((req["status"] == 200).sum()))]
    point += [_count("lateness_ms", stat, math.nan if v is None else v, sched["offered"])
              for stat, v in sched["lateness_ms"].items()]
    loop = (lag or {}).get("loop_lag", {})
    if loop.get("samples"):
        point += [_count("loop_lag_ms", stat, loop[f"{stat}_ms"], loop["samples"])
                  for stat in ("p50", "p99", "max")]
    if (lag or {}).get("service_mean_ms") is not None:
        point.append(_count("service_mean_ms", "measured", lag["service_mean_ms"],
                            int((req["status"] == 200).sum())))
    rows += [{"priority": "all", **r} for r in point]
    frame = pd.DataFrame(rows)
    for column, value in reversed(list(keys.items())):
        frame.insert(0, column, value)
    return frame


def reply_rate(req: dict[str, np.ndarray]) -> float:
    """200s per second, from the first reply to the last (NaN for fewer than two)."""
    ok = req["status"] == 200
    if ok.sum() < 2:
        return math.nan
    ends = req["due_s"][ok] + req["latency_ms"][ok] / 1e3
    span = float(ends.max() - ends.min())
    return float((ok.sum() - 1) / span) if span > 0 else math.nan


def _keys(point: Point, s: Settings, duration_s: float, **extra: Any) -> dict[str, Any]:
    return {"point": point.key, "mode": point.mode, "queue": point.queue,
            "policy": point.policy_name, "tier": point.tier,
            "rate_target_per_s": point.rate_per_s, "workers": point.workers,
            "rho_planned": point.rho_planned, "service_ms": s.service_ms,
            "duration_s": duration_s, "min_responses": s.min_responses, "max_rho": s.max_rho,
            "wait_target_ms": s.wait_target_ms if point.policy is not None else math.nan,
            "policy_spec": json.dumps(point.policy.to_mapping()) if point.policy else "",
            **extra}


def tidy(frame: pd.DataFrame) -> pd.DataFrame:
    """Categorical priority (CRITICAL..LOW, all) and tier; rows in measuring order."""
    frame = frame.reset_index(drop=True)
    frame["priority"] = pd.Categorical(frame["priority"], list(PRIORITIES), ordered=True)
    return frame


# -- the sweep --------------------------------------------------------------------------


def measure_ceiling(url: str, s: Settings, report: Callable[[str], None],
                    mode: str = "async") -> pd.DataFrame:
    """The no-op endpoint on a ramp of ``ceiling_rates_per_s``: one frame per step (tier
    ``ceiling``), until a step's replies fall below ``SUSTAINED`` of its rate."""
    frames = []
    for i, rate in enumerate(sorted(s.ceiling_rates_per_s)):
        load = http_load(url + "/v1/noop", rate, s.ceiling_step_s, seed=s.seed + i,
                         arrivals="constant")
        reply = reply_rate(_requests(load))
        point = Point(mode, "", "ceiling", rate, 0, math.nan)
        frames.append(point_frame(load, indicative_below=s.min_responses,
                                  **_keys(point, s, s.ceiling_step_s, endpoint="noop")))
        report(f"ceiling step {rate:g}/s: replies at {reply:,.0f}/s")
        if not reply >= SUSTAINED * rate:
            break
    return pd.concat(frames, ignore_index=True)


def ceiling_of(frame: pd.DataFrame) -> float:
    """The highest no-op reply rate of the ramp (``rate_per_s`` ``reply``), NaN if none."""
    rows = frame[(frame["tier"] == "ceiling") & (frame["metric"] == "rate_per_s")
                 & (frame["stat"] == "reply")]
    return float(rows["value"].max()) if not rows.empty else math.nan


def measure_point(point: Point, s: Settings, seed: int, *, baseline: bool = False,
                  ceiling: bool = False, say: Callable[[str], None] = print
                  ) -> list[pd.DataFrame]:
    """One point: its service started and warmed up, the load, the loop lag over it. With
    ``ceiling`` the box's ceiling is measured first on the same service; with ``baseline``
    the no-op endpoint at the point's rate after it."""
    duration = point_duration_s(s, point.rate_per_s)
    patience = s.patience_s if point.tier == "past" else None
    frames = []
    with serving(point, s) as url:
        warm_up(url)
        if ceiling:
            frames.append(measure_ceiling(url, s, say, point.mode))
        started = time.monotonic()
        load = http_load(url + "/v1/infer", point.rate_per_s, duration, seed=seed,
                         patience_s=patience)
        lag = loop_lag(url, time.monotonic() - started)
        frames.append(point_frame(load, lag=lag, indicative_below=s.min_responses,
                                  **_keys(point, s, duration, endpoint="infer")))
        if baseline:
            span = min(duration, s.baseline_s)
            started = time.monotonic()
            noop = http_load(url + "/v1/noop", point.rate_per_s, span, seed=seed)
            frames.append(point_frame(
                noop, lag=loop_lag(url, time.monotonic() - started),
                indicative_below=s.min_responses,
                **_keys(Point(point.mode, "", "baseline", point.rate_per_s, point.workers,
                              point.rho_planned), s, span, endpoint="noop")))
    return frames


def with_ceiling_shares(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with, per point, the rate sent as a share of the box's ceiling
    (``rate_per_s`` ``share_of_ceiling``); unchanged without a ceiling."""
    ceiling = ceiling_of(frame)
    frame = frame[~((frame["metric"] == "rate_per_s") & (frame["stat"] == "share_of_ceiling"))]
    if not math.isfinite(ceiling):
        return frame
    sent = frame[(frame["metric"] == "rate_per_s") & (frame["stat"] == "achieved")
                 & (frame["tier"] != "ceiling")].copy()
    sent["stat"] = "share_of_ceiling"
    sent["value"] = sent["value"] / ceiling
    return pd.concat([frame, sent], ignore_index=True)


def sweep(s: Settings, run: Any, echo: Callable[[str], None] = print) -> pd.DataFrame:
    """Measure the box's ceiling and every point of ``plan(s)`` into ``run`` (frame
    ``endtoend``, saved after each point, so an interrupted sweep keeps what it measured);
    return the frame. A point the run's frame already holds is not measured again (a
    resumed batch), nor is its rate's no-op baseline or the ceiling; seeds stay those of
    the points' places in the plan."""
    points, left_out = plan(s)
    stored = run.frame(FRAME)
    frames: list[pd.DataFrame] = [stored] if not stored.empty else []
    done = _stored(stored, ("below", "past"), "point")
    baselined = _stored(stored, ("baseline",), "mode", "rate_target_per_s")
    ceiling = not stored.empty and bool((stored["tier"] == "ceiling").any())
    todo = [(i, p) for i, p in enumerate(points) if p.key not in done]
    reporter = Reporter(len(points), len(points) - len(todo))
    say = echo if s.progress else (lambda _line: None)
    for line in left_out:
        say(f"not measured: {line}")
    if len(todo) < len(points):
        say(f"{len(points) - len(todo)} of {len(points)} points already in run "
            f"{run.run_id}: not measured again")

    def save() -> pd.DataFrame:
        frame = tidy(with_ceiling_shares(pd.concat(frames, ignore_index=True)))
        run.save_frames(replace=(FRAME,), **{FRAME: frame})
        return frame

    for i, point in todo:
        baseline = point.tier == "below" and (point.mode, point.rate_per_s) not in baselined
        baselined.add((point.mode, point.rate_per_s))
        measured = measure_point(point, s, s.seed + i, baseline=baseline,
                                 ceiling=not ceiling, say=say)
        frames += measured
        reporter.advance()
        frame = save()
        if not ceiling:
            say(f"the box's ceiling (no-op endpoint): {ceiling_of(frame):,.0f} replies/s")
        say(point_line(measured[0 if ceiling else 1], point))
        ceiling = True
    return save() if frames else pd.DataFrame()


def _stored(frame: pd.DataFrame, tiers: tuple[str, ...], *columns: str) -> set:
    """The distinct values of ``columns`` (one, or a tuple of several) in the rows of
    ``tiers``."""
    if frame.empty:
        return set()
    rows = frame[frame["tier"].astype(str).isin(tiers)]
    if len(columns) == 1:
        return set(rows[columns[0]])
    return set(zip(*(rows[c] for c in columns), strict=True))


def point_line(frame: pd.DataFrame, point: Point) -> str:
    """One progress line: the rate sent and CRITICAL's and LOW's p99 with their n."""
    def value(priority: str, metric: str, stat: str) -> pd.Series:
        rows = frame[(frame["priority"] == priority) & (frame["metric"] == metric)
                     & (frame["stat"] == stat)]
        return rows.iloc[0] if not rows.empty else None

    achieved = value("all", "rate_per_s", "achieved")
    parts = [f"{point.describe()}: sent {achieved['value']:,.0f}/s"]
    for level in (LEVEL_NAMES[0], LEVEL_NAMES[-1]):
        p99 = value(level, "latency_ms", "p99")
        if p99 is not None:
            parts.append(f"{level} p99 {p99['value']:,.1f} ms (n={p99['n']:,})")
    return ", ".join(parts)


# -- tables for the notebook -------------------------------------------------------------


def latency_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per point and priority: statuses, p50/p99/p99.9 of the 200s (ms) with n and whether
    they are indicative; the rate sent beside the target."""
    if frame.empty:
        return frame
    keys = ["tier", "mode", "queue", "policy", "rate_target_per_s", "workers"]
    data = frame[frame["endpoint"] == "infer"]
    lat = data[(data["metric"] == "latency_ms") & data["stat"].isin(["p50", "p99", "p99.9"])]
    wide = lat.pivot_table(index=[*keys, "priority"], columns="stat", values="value",
                           observed=True).reset_index()
    n = lat[lat["stat"] == "p99"].set_index([*keys, "priority"])
    wide["n"] = wide.set_index([*keys, "priority"]).index.map(n["n"]).to_numpy()
    wide["indicative"] = wide.set_index([*keys, "priority"]).index.map(
        n["indicative"]).to_numpy()
    counts = data[data["metric"] == "requests"].pivot_table(
        index=[*keys, "priority"], columns="stat", values="value", observed=True)
    wide = wide.merge(counts[["offered", "200", "503", "504", "disconnect"]].reset_index(),
                      on=[*keys, "priority"])
    sent = data[(data["metric"] == "rate_per_s") & (data["stat"] == "achieved")]
    wide = wide.merge(sent[keys + ["value"]].rename(columns={"value": "sent_per_s"}), on=keys)
    return wide.round(2)
