"""Open-loop sweeps (pqlab.study.opensweep): notebook 07's and 08's points as sweep units."""

from __future__ import annotations

import json
import os

import pytest

from pqlab.harness.openunit import OpenSpec, aging_queue_name
from pqlab.harness.zygote import Zygote
from pqlab.queues import QUEUES
from pqlab.scenarios.loadparams import LoadParams, ServiceTime
from pqlab.studies import load, overload
from pqlab.study import opensweep, progress, store
from pqlab.study.sweep import SweepError


def _params(**given) -> load.Params:
    values = dict(queue="queue.PriorityQueue", rhos=[0.2, 0.5], spectrum_rho=0.5, workers=1,
                  service_ms=2.0, duration_s=0.3, seed=1, progress=False,
                  fresh_process=False)
    return load.Params(**{**values, **given})


def _run(tmp_path, run_id: str = "open") -> store.Run:
    return store.Run.create(tmp_path / "data", run_id, exist_ok=True)


def test_a_resumed_load_sweep_measures_only_the_points_the_run_lacks(tmp_path, capsys):
    run = _run(tmp_path)
    load.sweep(_params(rhos=[0.2], spectrum_rho=0.2, progress=True), run)
    first = capsys.readouterr().out
    assert first.count("ρ = ") == 1
    marker = next(run.open_units_dir.glob("load__*rho0.2*.json"))
    written = marker.stat().st_mtime_ns

    p = _params(rhos=[0.2, 0.5], spectrum_rho=0.2, progress=True)  # ρ 0.2: the same unit
    frame, spectrum = load.sweep(p, run)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("ρ = ")]
    assert len(lines) == 1 and lines[0].startswith("ρ = 0.50:")  # only the missing point
    assert marker.stat().st_mtime_ns == written  # the stored unit is left as it was
    assert sorted(frame["rho"].unique()) == [0.2, 0.5]  # the frame holds the sweep's units
    assert set(spectrum["rho"]) == {0.2} and len(frame) == 8

    again = opensweep.run_open_sweep(load.plan(p), run, fresh_process=False, progress=False)
    assert (again.measured, again.skipped) == (0, 2)


def test_a_changed_parameter_is_another_unit(tmp_path):
    a, b = (load.plan(_params(duration_s=d))[0] for d in (0.3, 0.4))
    assert a.key != b.key and a.rho == b.rho and a.spec.seed == b.spec.seed
    assert load.plan(_params(fresh_process=True))[0].key == a.key  # how it runs is not what


def test_units_run_in_fresh_processes_forked_from_the_zygote(tmp_path, monkeypatch):
    forks = []
    fork = Zygote.run

    def counting(self, spec_json, out, timeout_s):
        forks.append(spec_json)
        return fork(self, spec_json, out, timeout_s)

    monkeypatch.setattr(Zygote, "run", counting)
    run = _run(tmp_path)
    result = opensweep.run_open_sweep(load.plan(_params(fresh_process=True)), run,
                                      progress=False)
    assert len(forks) == 2 and result.measured == 2
    pids = {info["pid"] for info in result.infos}
    assert len(pids) == 2 and os.getpid() not in pids
    assert all(info["fresh_process"] for info in result.infos)
    assert {"busy", "busy_why", "others_cores"} <= set(result.infos[0]["quiet"])


def test_the_aging_runs_register_their_queue_in_the_fresh_process(tmp_path):
    p = _params(aging_ms=5.0, fresh_process=True)
    name = aging_queue_name(5.0)
    run = _run(tmp_path)
    load.sweep(p, run)
    assert name not in QUEUES  # never registered here
    aging = run.frame("load-aging")
    assert set(aging["queue"]) == {name} and set(aging["rho"]) == {0.5}
    assert set(aging["aging_ms"]) == {5.0}
    info, _ = run.open_unit(next(u.key for u in load.plan(p) if u.frame == "load-aging"))
    assert info["fresh_process"] and info["pid"] != os.getpid()
    strict = run.frame("load").set_index(["rho", "priority"])
    # the same arrivals as the strict run at that ρ: same seed, same number of tasks
    assert set(aging["seed"]) == set(strict.loc[0.5]["seed"])


@pytest.mark.parametrize("fresh", [True, False])
def test_a_failing_unit_names_itself_in_one_line_and_the_units_before_it_are_kept(
        tmp_path, fresh):
    good = load.plan(_params(rhos=[0.2], spectrum_rho=0.2))[0]
    params = LoadParams.at_utilization(0.3, 1, ServiceTime("exp", 0.002))
    bad = opensweep.OpenUnit(OpenSpec("no-such-queue", params.to_mapping(), 10, 1, 1),
                             "load", 0.3)
    run = _run(tmp_path)
    with pytest.raises(SweepError) as caught:
        opensweep.run_open_sweep([good, bad], run, fresh_process=fresh, progress=False)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("no-such-queue load ρ=0.3 rep 0: ") and "unknown queue" in message
    assert run.done_open_units() == {good.key}


def test_the_overload_plan_gives_both_policies_the_same_arrivals_per_point():
    p = overload.Params(loads=[0.9, 1.5], duration_s=0.5, depth_rho=1.5, repetitions=2)
    units = overload.plan(p)
    assert len(units) == 2 * 2 * 2 and len({u.key for u in units}) == len(units)
    for rep in (0, 1):
        for i, rho in enumerate(p.loads):
            pair = [u for u in units if u.rho == rho and u.spec.repetition == rep]
            assert {u.spec.seed for u in pair} == {p.seed + 1000 * rep + i}
            assert {u.policy for u in pair} == {"none", overload.policy(p)[0]}
            assert all(u.spec.depth == (rho == 1.5 and rep == 0) for u in pair)
    redis = overload.plan(p, "redis", overload.REDIS_FRAME, driver="processes")
    assert len(redis) == 4 and not any(u.spec.depth for u in redis)
    assert {LoadParams.from_mapping(u.spec.load).driver for u in redis} == {"processes"}


def test_a_resumed_sweep_counts_the_units_found_done_for_the_batch(tmp_path, monkeypatch):
    run = _run(tmp_path)
    load.sweep(_params(rhos=[0.2], spectrum_rho=0.2), run)
    path = tmp_path / "progress.jsonl"
    monkeypatch.setenv(progress.ENV, str(path))
    load.sweep(_params(rhos=[0.2, 0.5], spectrum_rho=0.2), run)
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(e["done"], e["total"]) for e in entries] == [(1, 2), (2, 2)]


def test_a_busy_open_loop_unit_keeps_its_flag_and_is_not_measured_again(tmp_path, monkeypatch):
    from pqlab.measure import quiet

    monkeypatch.setenv("PQLAB_REMEASURE_TRIES", "2")
    monkeypatch.setattr(quiet, "judge", lambda row, cores: {"busy": True, "busy_why": "test"})
    seen = []
    result = opensweep.run_open_sweep(load.plan(_params()), _run(tmp_path), fresh_process=False,
                                      progress=False, on_unit=lambda u, info: seen.append(u))
    assert len(seen) == 2 and result.measured == 2
    assert all(info["quiet"]["busy"] and info["quiet"]["busy_why"] == "test"
               for info in result.infos)
