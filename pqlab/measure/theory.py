"""Queueing theory for the open-loop load scenario: what an ideal queue would give.

Model: Poisson arrivals at rate λ_k for each priority class k (1 = served
first), C equal servers, exponential service with mean 1/μ for every class,
non-preemptive priority (a task in service is never interrupted), FIFO within
a class. ρ = Σλ_k / (Cμ).

- ``erlang_c(c, a)``: probability that an arriving task waits (M/M/c, offered
  load a = λ/μ), via the Erlang B recursion, which stays exact where the
  factorial form overflows.
- ``priority_waits(...)``: Cobham's formula for the mean waiting time
  (arrival → start of service) of each class,

      W_k = W0 / ((1 − σ_{k−1}) (1 − σ_k)),   σ_k = Σ_{i≤k} λ_i / (Cμ),
      W0 = C(c, a) / (Cμ)

  (A. Cobham, "Priority assignment in waiting line problems", Operations
  Research 2(1), 1954, pp. 70–76; in textbook form in Gross, Shortle,
  Thompson & Harris, *Fundamentals of Queueing Theory*, the section on
  non-preemptive priorities, multi-server case with equal service rates; and
  checked here against ``simulate_waits`` in tests/measure/test_theory.py). W0 is the
  mean time until some server frees up,
  counted over all arrivals: a task finds every server busy with probability
  C(c, a) and then waits 1/(Cμ) on average (memoryless service). For C = 1,
  C(1, a) = ρ and W0 = ρ/μ = λE[S²]/2, the M/G/1 form; with one class the
  formula reduces to the M/M/c mean wait C(c, a)/(Cμ − λ).
- ``simulate_waits(...)``: a discrete-event simulation of the same queue for
  given arrival and service times (pure Python, exact, O(n log n)). Tests use
  it to check the formulas; the load scenario replays each run's own arrivals
  and measured service times through it, which separates sampling noise (the
  replay shows it too) from overhead of the queue under test.

Where ρ ≥ 1 there is no steady state: ``erlang_c`` raises ``ValueError`` and
``priority_waits`` returns NaN for every class.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence

import numpy as np

from pqlab.core.checks import positive_int


def _check_servers(servers: int) -> None:
    positive_int("servers", servers)


def erlang_c(servers: int, offered_load: float) -> float:
    """Probability of waiting in an M/M/c queue with ``offered_load`` a = λ/μ.

    Raises ``ValueError`` when a ≥ c (ρ ≥ 1: no steady state) or a < 0.
    """
    _check_servers(servers)
    a = float(offered_load)
    if not a >= 0:
        raise ValueError(f"offered load must be ≥ 0, got {offered_load!r}")
    if a >= servers:
        raise ValueError(f"ρ = a/c = {a / servers:.3g} ≥ 1: the queue has no steady state")
    blocking = 1.0  # Erlang B with 0 servers
    for k in range(1, servers + 1):
        blocking = a * blocking / (k + a * blocking)
    return servers * blocking / (servers - a * (1.0 - blocking))


def utilization(rates_per_s: Sequence[float], service_mean_s: float, servers: int) -> float:
    """ρ = Σλ · E[S] / C."""
    _check_servers(servers)
    return float(sum(rates_per_s)) * service_mean_s / servers


def priority_waits(rates_per_s: Sequence[float], service_mean_s: float,
                   servers: int) -> list[float]:
    """Mean waiting time in seconds of each class, highest priority first (Cobham).

    ``rates_per_s[k]`` is the arrival rate of class k; all classes share the
    exponential service with mean ``service_mean_s``. Returns NaN for every
    class when ρ ≥ 1. Raises ``ValueError`` on negative rates or a service
    mean ≤ 0.
    """
    _check_servers(servers)
    rates = [float(r) for r in rates_per_s]
    if any(not r >= 0 for r in rates) or not service_mean_s > 0:
        raise ValueError(f"rates must be ≥ 0 and the service mean > 0, got {rates!r}, "
                         f"{service_mean_s!r}")
    capacity = servers / service_mean_s  # Cμ, tasks per second
    if sum(rates) >= capacity:
        return [math.nan] * len(rates)
    w0 = erlang_c(servers, sum(rates) * service_mean_s) / capacity
    waits, sigma = [], 0.0
    for rate in rates:
        before, sigma = sigma, sigma + rate / capacity
        waits.append(w0 / ((1.0 - before) * (1.0 - sigma)))
    return waits


def mm1_wait(rate_per_s: float, service_mean_s: float) -> float:
    """Mean waiting time of an M/M/1 FIFO queue, ρ/(μ − λ); NaN when ρ ≥ 1."""
    mu = 1.0 / service_mean_s
    return rate_per_s / (mu * (mu - rate_per_s)) if rate_per_s < mu else math.nan


def simulate_waits(arrival_s: Sequence[float], service_s: Sequence[float],
                   priority: Sequence[int], servers: int) -> np.ndarray:
    """Waiting time of each task in an ideal non-preemptive priority queue with C servers.

    Tasks are given in arrival order (``arrival_s`` non-decreasing); within a
    priority they are served first come, first served. Each step hands the
    earliest free server the best task that has arrived by then (or the next
    arrival, if none waits). Returns waits in seconds, in input order.
    """
    _check_servers(servers)
    arrival = [float(a) for a in arrival_s]
    service = [float(s) for s in service_s]
    level = [int(p) for p in priority]
    n = len(arrival)
    waits = np.empty(n)
    free = [arrival[0] if n else 0.0] * servers  # heap of times each server frees up
    waiting: list[tuple[int, int]] = []  # (priority, arrival index)
    push, pop, replace = heapq.heappush, heapq.heappop, heapq.heapreplace
    i = 0
    for _ in range(n):
        t = free[0]
        if not waiting and arrival[i] > t:
            t = arrival[i]
        while i < n and arrival[i] <= t:
            push(waiting, (level[i], i))
            i += 1
        _, j = pop(waiting)
        waits[j] = t - arrival[j]
        replace(free, t + service[j])
    return waits
