"""pqlab.harness.openunit: an open-loop unit crosses to a process as JSON and comes back as the
study's rows; an aging unit's queue exists only while it is measured."""

from __future__ import annotations

import json
import os

import pytest

from pqlab.harness.openunit import OpenSpec, aging_queue, aging_queue_name, measure_open
from pqlab.queues import QUEUES
from pqlab.scenarios.loadparams import LoadParams, ServiceTime

PARAMS = LoadParams.at_utilization(0.5, 2, ServiceTime("exp", 0.002))


def _spec(**kwargs) -> OpenSpec:
    fields = dict(queue="queue.PriorityQueue", load=PARAMS.to_mapping(),
                  tasks=PARAMS.tasks_for(0.2), workers=2, seed=4)
    return OpenSpec(**{**fields, **kwargs})


def test_a_spec_crosses_as_json_and_its_identity_ignores_only_the_warm_up():
    spec = _spec(spectrum=True)
    again = OpenSpec.from_mapping(json.loads(spec.to_json())["open"])
    assert again == spec and again.params == PARAMS
    assert _spec(warmup_s=0.5).identity() == _spec().identity()
    assert _spec(seed=5).identity() != _spec().identity()


def test_bad_specs_name_what_is_allowed():
    with pytest.raises(ValueError, match="rows 'wide' unknown; allowed"):
        _spec(rows="wide")
    with pytest.raises(ValueError, match="an aging unit runs on"):
        _spec(aging_ms=5.0)


def test_a_unit_returns_one_row_per_priority_its_spectrum_and_where_it_ran():
    out = measure_open(_spec(spectrum=True))
    waits = out["rows"]["levels"]
    assert list(waits["priority"].astype(str)) == ["CRITICAL", "HIGH", "NORMAL", "LOW"]
    assert int(waits["tasks"].sum()) == PARAMS.tasks_for(0.2)
    spectrum = out["rows"]["spectrum"]
    assert set(spectrum["priority"].astype(str)) <= set(waits["priority"].astype(str))
    assert out["pid"] == os.getpid() and out["run"]["seed"] == 4
    assert {"busy", "busy_why", "others_cores"} <= set(out["quiet"])
    assert json.loads(json.dumps(out["run"])) == out["run"]  # plain values, ready to store


def test_the_aging_queue_exists_while_it_is_measured_only():
    name = aging_queue_name(5.0)
    assert name not in QUEUES
    with aging_queue(5.0) as registered:
        assert registered == name and name in QUEUES
    assert name not in QUEUES
    out = measure_open(_spec(queue=name, aging_ms=5.0))
    assert set(out["rows"]["levels"]["queue"]) == {name} and name not in QUEUES
