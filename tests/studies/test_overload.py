"""The overload study (pqlab.studies.overload): its parameters and the policy it sizes."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from pqlab.studies import overload


def _limits(p: overload.Params) -> dict[int, int]:
    _, chosen = overload.policy(p)
    return {int(k): v["max_queue_size"] for k, v in chosen.to_mapping()["levels"].items()}


def test_the_policy_sizes_each_levels_limit_from_the_wait_target():
    p = overload.Params(loads=[1.5], duration_s=1.0)  # 4 workers, 20 ms: 200 requests/s
    label, chosen = overload.policy(p)
    assert label == "limits+timeouts (REJECT)"
    limits = _limits(p)
    assert limits[1] == 50  # Little's law: 200/s × 0.25 s
    assert list(limits) == [1, 2, 3, 4] and limits[1] > limits[2] > limits[3] > limits[4] >= 1
    levels = chosen.to_mapping()["levels"]
    assert {v["default_timeout_s"] for v in levels.values()} == {1.0}
    assert {v["timeout_action"] for v in levels.values()} == {"REJECT"}
    twice = _limits(overload.Params(loads=[1.5], duration_s=1.0, wait_target_ms=500.0))
    assert twice[1] == 100 and all(abs(twice[k] - 2 * limits[k]) <= 1 for k in limits)


def test_the_timeout_and_action_reach_every_level():
    p = overload.Params(loads=[1.5], duration_s=1.0, timeout_ms=250.0, action="DELAY")
    label, chosen = overload.policy(p)
    levels = chosen.to_mapping()["levels"].values()
    assert {v["default_timeout_s"] for v in levels} == {0.25}
    assert {v["timeout_action"] for v in levels} == {"DELAY"} and "DELAY" in label


def test_params_of_reads_the_notebooks_names_and_given_fields_win():
    ns = SimpleNamespace(LOADS=[0.9, 1.5], DURATION_S=2.0, WORKERS=2, DEPTH_RHO=1.5,
                         PROGRESS=False)
    p = overload.Params.of(ns, workers=8, seed=5)
    assert (p.loads, p.duration_s, p.depth_rho, p.progress) == ([0.9, 1.5], 2.0, 1.5, False)
    assert (p.workers, p.seed) == (8, 5)  # given outright, over the namespace's
    assert p.service.mean_s == pytest.approx(0.02) and p.patience.mean_s == pytest.approx(2.0)
