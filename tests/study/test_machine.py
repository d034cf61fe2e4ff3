"""pqlab.study.machine: the fingerprint stored with every run."""

from __future__ import annotations

import json

from pqlab.study import config, machine


def test_fingerprint_holds_what_tells_machines_apart():
    info = machine.fingerprint()
    for key in ("cpu_model", "cpu_physical_cores", "cpu_logical_cores", "cpu_freq_mhz",
                "memory_total_bytes", "os", "kernel", "python_implementation",
                "python_version", "python_build", "gil_enabled", "packages", "git_commit",
                "git_dirty", "timer_resolution_ns", "timer_min_tick_ns", "load_avg", "utc",
                "schema_version", "machine_id", "machine"):
        assert key in info, key
    assert info["packages"]["pqlab"] and "pandas" in info["packages"]
    assert info["cpu_logical_cores"] >= 1 and info["timer_min_tick_ns"] > 0
    json.dumps(info)  # it is stored as machine.json


def test_a_failing_collector_is_recorded_not_raised():
    def broken():
        raise RuntimeError("no sensor")

    info = machine.fingerprint([machine.clock, broken])
    assert info["broken_error"] == "RuntimeError: no sensor" and "utc" in info


def test_machine_id_ignores_time_and_load():
    a = machine.fingerprint([machine.operating_system, machine.cpu, machine.memory])
    b = {**a, "utc": "later", "load_avg": [9, 9, 9]}
    assert machine.machine_id(a) == machine.machine_id(b)
    assert machine.machine_id(a) != machine.machine_id({**a, "cpu_model": "other"})


def test_git_outside_a_repository_is_unknown(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "ROOT", tmp_path)
    assert machine.git() == {"git_commit": None, "git_dirty": None}


def test_minimum_tick_is_a_positive_step():
    assert 0 < machine.min_tick_ns(1_000) < 1_000_000
