"""The processes study (pqlab.studies.processes): failover drills and why it may not run."""

from __future__ import annotations

from types import SimpleNamespace

from pqlab.studies import processes
from pqlab.study import store


def test_no_failover_runs_says_so_measures_nothing_and_stores_nothing(tmp_path, capsys,
                                                                       monkeypatch):
    run = store.Run.create(tmp_path, "r1", machine={"machine_id": "m"})

    def started(*args, **kwargs):
        raise AssertionError("a drill ran")

    monkeypatch.setattr(processes.failover, "drill_frame", started)
    d = processes.Drills.of(SimpleNamespace(FAILOVER_RUNS=0, FAILOVER_PAUSED=True,
                                            FAILOVER_MIN_REPLICAS=[0, 1], PROGRESS=False))
    assert (d.failover_runs, d.failover_paused, d.failover_min_replicas) == (0, True, [0, 1])
    frame = processes.failover_drills(d, run)
    assert frame.empty
    out = capsys.readouterr().out
    assert "Failover: not measured in this profile (FAILOVER_RUNS = 0)" in out
    assert "`python -m pqlab failover --runs 5` measures it" in out
    assert run.frame(processes.FAILOVER_FRAME).empty
    assert not (run.dir / f"{processes.FAILOVER_FRAME}.parquet").exists()


def test_the_skip_reason_names_why_no_redis_can_be_used(monkeypatch):
    monkeypatch.setattr(processes, "unavailable_reason", lambda: "redis-server not found")
    assert processes.STUDY.skip_reason() == (
        "no Redis server can be started or reached (redis-server not found)")
    monkeypatch.setattr(processes, "unavailable_reason", lambda: None)
    assert processes.STUDY.skip_reason() is None
    assert processes.STUDY.spec.skip_reason is processes.STUDY.skip_reason


def test_the_quick_profile_runs_no_drill_and_the_default_one():
    profiles = processes.STUDY.profiles
    assert profiles["quick"]["FAILOVER_RUNS"] == 0 and profiles["default"]["FAILOVER_RUNS"] >= 1
