"""LoadParams' mapping form: how a sweep unit's parameters reach the process measuring it."""

from __future__ import annotations

import json

import pytest

from pqlab.scenarios.loadparams import LoadParams, ServiceTime
from pqlab.studies import overload


def test_parameters_survive_json_exactly():
    label, chosen = overload.policy(overload.Params(loads=[1.5], duration_s=2.0))
    for params in (LoadParams.at_utilization(0.95, 4, ServiceTime("exp", 0.016)),
                   LoadParams.at_utilization(1.5, 4, ServiceTime("exp", 0.02), policy=chosen,
                                             patience=ServiceTime("exp", 2.0),
                                             duration_s=2.0, driver="threads")):
        back = LoadParams.from_mapping(json.loads(json.dumps(params.to_mapping())))
        assert back == params and back.rate_per_s == params.rate_per_s


def test_an_unknown_field_is_named():
    with pytest.raises(ValueError, match="speed is not a load parameter"):
        LoadParams.from_mapping({"speed": 3})
