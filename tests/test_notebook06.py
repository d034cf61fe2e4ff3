"""Notebook 06 (processes and Redis): its data and figures, one shared Redis, the skip path."""

from __future__ import annotations

import os

import pandas as pd
import pytest
import redis
from batch_helpers import TINY
from redis_helpers import require_redis_server

from pqlab import studies
from pqlab.decide import analysis
from pqlab.lab import batch
from pqlab.queues import redisserver
from pqlab.queues.redisserver import ENV_URL, INSTALL_HINT, RedisServer
from pqlab.study import config, store
from pqlab.study.sweep import Grid, SweepError, run_sweep

NAME = "06-processes-redis"


@pytest.fixture
def no_redis(monkeypatch):
    """A machine without redis-server and without a configured URL."""
    monkeypatch.delenv(ENV_URL, raising=False)
    monkeypatch.setattr(redisserver, "_SHARED", None)
    monkeypatch.setattr(redisserver.shutil, "which", lambda name: None)


def test_it_runs_before_the_notebooks_that_read_the_run():
    order = [spec.name for spec in studies.plan()]
    assert order.index(NAME) < order.index("05-across-machines") < order.index("00-decision")


def test_the_batch_skips_it_and_says_why_when_no_redis_can_start(no_redis, tmp_path):
    spec = studies.notebook(NAME)
    reason = spec.skip_reason()
    assert "redis-server not found" in reason and INSTALL_HINT in reason
    lines = []
    result = batch.run_batch(batch.Plan("test", "quick", 60, [(spec, {})]), tmp_path,
                             echo=lines.append)
    assert result.skipped == [(NAME, reason)] and not result.executed
    assert any(f"{spec.filename}: skipped: {reason}" in line for line in lines)
    assert "1 skipped" in "\n".join(lines)


def test_a_sweep_without_redis_fails_at_once_naming_the_queue(no_redis):
    grid = Grid(queues=("redis",), scenarios=("processes",), task_counts=(10,),
                worker_counts=(1,), repetitions=1)
    with pytest.raises(SweepError, match=f"queue redis: redis-server not found.*{INSTALL_HINT}"):
        run_sweep(grid, progress=False)


def test_the_profiles_size_its_failover_drills():
    spec = studies.notebook(NAME)
    assert spec.parameters("quick")["FAILOVER_RUNS"] == 0 == TINY[NAME]["FAILOVER_RUNS"]
    default = spec.parameters("default")  # one drill: ~22 s of the 12-minute batch
    assert default["FAILOVER_RUNS"] == 1 and default["FAILOVER_MIN_REPLICAS"] == [1]
    full = spec.parameters("full")
    assert full["FAILOVER_RUNS"] == 5 and full["FAILOVER_PAUSED"]
    assert full["FAILOVER_MIN_REPLICAS"] == [0, 1]


@pytest.mark.redis
def test_fresh_processes_share_one_server_started_and_stopped_by_the_sweep(monkeypatch):
    require_redis_server()
    monkeypatch.delenv(ENV_URL, raising=False)
    monkeypatch.setattr(redisserver, "_SHARED", None)
    started, connections = [], []
    start, stop = RedisServer.start, RedisServer.stop

    def counted_start(self):
        started.append(self)
        return start(self)

    def counted_stop(self):  # before it goes: how many connections did it receive?
        client = redis.Redis.from_url(self.url)
        connections.append(client.info("stats")["total_connections_received"])
        client.close()
        stop(self)

    monkeypatch.setattr(RedisServer, "start", counted_start)
    monkeypatch.setattr(RedisServer, "stop", counted_stop)
    grid = Grid(queues=("redis",), scenarios=("single",), task_counts=(50,), repetitions=2)
    result = run_sweep(grid, progress=False)  # two fresh processes
    assert result.summary["fresh_process"].all() and (result.summary["lost"] == 0).all()
    assert len(started) == 1 and not started[0].running  # one server, stopped at the end
    assert connections[0] >= 4  # the children's connections reached the parent's server
    assert ENV_URL not in os.environ  # the URL was exported for the sweep only


@pytest.mark.redis
def test_its_run_holds_both_scenarios_with_nothing_lost_and_its_figures(tiny_batch):
    require_redis_server()
    out, result, _ = tiny_batch
    assert f"{NAME}.ipynb" in [p.name for p in result.executed]
    summary = store.Run.open(out / "data", result.run.run_id).summary()
    table = analysis.scaling_table(summary)
    processes = table[table["scenario"] == "processes"]
    assert set(processes["queue"]) == {"multiprocessing", "redis"}
    assert (table[["violations", "lost", "duplicated", "errors"]] == 0).all().all()
    figures = out / "figures" / result.run.run_id
    for name in ("throughput-vs-processes", "tail-vs-processes"):
        for ext in ("svg", "png", "csv"):
            assert (figures / f"{name}.{ext}").stat().st_size > 0, (name, ext)
    behind = pd.read_csv(figures / "throughput-vs-processes.csv")
    tasks = TINY[NAME]["TASK_COUNTS"]  # notebook 02's threads rows have other task counts
    expected = analysis.across_processes(summary[summary["tasks"].isin(tasks)],
                                         "throughput_ops_s")
    assert sorted(behind["median"].round(3)) == sorted(expected["median"].round(3))
    assert set(behind["series"]) >= {"redis (processes)", "multiprocessing (processes)"}
    # the tiny batch runs no failover drill: no frame, no figure, and the section says so
    assert store.Run.open(out / "data", result.run.run_id).frame("failover").empty
    assert not (figures / "failover.png").exists()
    executed = next(p for p in result.executed if p.name == f"{NAME}.ipynb").read_text()
    assert "Failover: not measured in this profile" in executed


@pytest.mark.redis
def test_the_adr_says_what_crossing_processes_costs_from_the_run(tiny_batch):
    require_redis_server()
    out, result, _ = tiny_batch
    adr = config.paths(out).run_adr_file(result.run.run_id)
    text = (adr.parent / "appendix.md").read_text()  # the record's detailed tables
    line = next(x for x in text.splitlines() if x.startswith("- Across processes"))
    summary = store.Run.open(out / "data", result.run.run_id).summary()
    cell = summary[summary["scenario"] == "processes"]
    for queue, part in cell.groupby("queue", observed=True):
        assert f"`{queue}` {part['throughput_ops_s'].median():,.0f} ops/s" in line
    assert f"0 violations, lost or duplicated tasks or errors in {len(cell)} runs" in line
