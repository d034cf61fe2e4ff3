"""Load parameters: the driver a run takes, the workload, the service times."""

from __future__ import annotations

import math

import numpy as np
import pytest

import pqlab
from pqlab.cli.main import main
from pqlab.core.task import Priority
from pqlab.measure import theory
from pqlab.queues import QUEUES
from pqlab.queues.policy import LevelPolicy, QueuePolicy
from pqlab.scenarios.loadparams import LoadParams, ServiceTime, choose_driver, make_load_workload

SERVICE = ServiceTime("exp", 0.01)

MS = 1_000_000  # ns

LIMIT, TIMEOUT_S = 8, 0.15
POLICY = QueuePolicy(LevelPolicy(max_queue_size=LIMIT, default_timeout_s=TIMEOUT_S))


def test_processes_driver_refuses_to_bound_a_queue_that_cannot_cancel_by_id():
    with pytest.raises(ValueError, match="driver 'processes' cannot bound a run of queue "
                                         "'multiprocessing'.*allowed for it: auto, threads"):
        choose_driver(QUEUES["multiprocessing"], "processes", LoadParams(duration_s=1))
    with pytest.raises(ValueError, match="driver 'threads' cannot bound a run of queue 'redis'"):
        choose_driver(QUEUES["redis"], "threads", LoadParams(duration_s=1, policy=POLICY))
    assert choose_driver(QUEUES["redis"], "auto", LoadParams(duration_s=1, policy=POLICY)
                         ) == "processes"


# -- choosing the driver ------------------------------------------------------------------


def test_auto_prefers_processes_then_threads_then_async():
    assert choose_driver(QUEUES["multiprocessing"]) == "processes"
    assert choose_driver(QUEUES["redis"]) == "processes"
    assert choose_driver(QUEUES["queue.PriorityQueue"]) == "threads"
    assert choose_driver(QUEUES["BridgeBucketQueue"]) == "threads"
    assert choose_driver(QUEUES["asyncio.PriorityQueue"]) == "async"
    assert choose_driver(QUEUES["multiprocessing"], "threads") == "threads"


def test_bad_driver_raises_naming_the_allowed_ones():
    with pytest.raises(ValueError, match="load driver 'forks' unknown; allowed: auto, threads, "
                                         "async, processes"):
        LoadParams(driver="forks")
    with pytest.raises(ValueError, match="queue 'queue.PriorityQueue' cannot run load on driver "
                                         "'processes', which needs a process-safe queue with a "
                                         "sync face; allowed for it: auto, threads"):
        pqlab.run("queue.PriorityQueue", "load", tasks=10, params=LoadParams(driver="processes"))
    with pytest.raises(ValueError, match="cannot run load on driver 'async'"):
        choose_driver(QUEUES["multiprocessing"], "async")


@pytest.mark.parametrize("args, message", [
    (["--queues", "queue.PriorityQueue", "--load-driver", "processes"],
     "pqlab run: queue 'queue.PriorityQueue' cannot run load on driver 'processes', which "
     "needs a process-safe queue with a sync face; allowed for it: auto, threads"),
    (["--queues", "multiprocessing", "--load-driver", "async"],
     "cannot run load on driver 'async', which needs an async-safe queue with an async face; "
     "allowed for it: auto, processes, threads"),
    (["--queues", "multiprocessing", "--load-driver", "forks"],
     "argument --load-driver: invalid choice: 'forks' (choose from 'auto', 'threads', 'async', "
     "'processes')"),
])
def test_cli_driver_the_queue_cannot_do_is_one_line_exit_2(capsys, args, message):
    assert main(["run", "--scenarios", "load", "--tasks", "10", *args]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert captured.out == "" and len(lines) == 1 and message in lines[0], lines


@pytest.mark.parametrize("text, kind, mean_s", [
    ("exp:0.016", "exp", 0.016), ("exp:16ms", "exp", 0.016), ("const:2s", "const", 2.0),
    ("const:0.5ms", "const", 0.0005),
])
def test_service_time_parses(text, kind, mean_s):
    service = ServiceTime.parse(text)
    assert (service.kind, service.mean_s) == (kind, pytest.approx(mean_s))


@pytest.mark.parametrize("text", ["exp:", "foo:3", "exp", "exp:0", "exp:-1", "exp:abc",
                                  "exp:nan", ":3", "exp:inf"])
def test_bad_service_time_names_the_allowed_forms(text):
    with pytest.raises(ValueError, match="expected KIND:MEAN with KIND one of exp, const"):
        ServiceTime.parse(text)


@pytest.mark.parametrize("kwargs, message", [
    ({"rate_per_s": 0}, "rate must be a positive number"),
    ({"rate_per_s": -5.0}, "rate must be a positive number"),
    ({"rate_per_s": math.inf}, "rate must be a positive number"),
    ({"arrivals": "bursty"}, "arrivals 'bursty' unknown; allowed: poisson, constant"),
    ({"weights": (1, 2)}, "weights must be 4 non-negative numbers"),
    ({"weights": (1, -1, 1, 1)}, "weights must be 4 non-negative numbers"),
    ({"weights": (0, 0, 0, 0)}, "weights must be 4 non-negative numbers"),
])
def test_bad_load_params_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LoadParams(**kwargs)


def test_params_helpers():
    params = LoadParams(200, service=ServiceTime("exp", 0.016), weights=(1, 1, 2, 4))
    assert params.utilization(4) == pytest.approx(0.8)
    assert LoadParams.at_utilization(0.8, 4, params.service).rate_per_s == pytest.approx(200)
    assert params.tasks_for(2.5) == 500
    assert params.class_rates() == pytest.approx([25, 25, 50, 100])
    assert params.theory_waits_s(4) == pytest.approx(
        theory.priority_waits([25, 25, 50, 100], 0.016, 4))
    assert all(math.isnan(w) for w in LoadParams(arrivals="constant").theory_waits_s(4))
    with pytest.raises(ValueError, match="duration must be a positive"):
        params.tasks_for(0)


def test_workload_is_seeded_and_arrivals_do_not_depend_on_the_service():
    exp = LoadParams(100, "poisson", ServiceTime("exp", 0.01))
    const = LoadParams(100, "poisson", ServiceTime("const", 0.01))
    a, b, c = (make_load_workload(2000, 3, p) for p in (exp, exp, const))
    assert [t.payload for t in a] == [t.payload for t in b]
    assert [t.priority for t in a] == [t.priority for t in b] == [t.priority for t in c]
    assert [t.payload.arrival_ns for t in a] == [t.payload.arrival_ns for t in c]
    offsets = np.array([t.payload.arrival_ns for t in a])
    assert (np.diff(offsets) >= 0).all()
    assert np.diff(offsets).mean() / 1e9 == pytest.approx(0.01, rel=0.1)  # 1/rate
    assert np.mean([t.payload.service_s for t in a]) == pytest.approx(0.01, rel=0.1)
    assert {t.payload.service_s for t in c} == {0.01}
    assert [t.payload for t in make_load_workload(50, 4, exp)] != [t.payload for t in a[:50]]


def test_constant_arrivals_and_weights():
    tasks = make_load_workload(10, 1, LoadParams(50, "constant", weights=(0, 0, 0, 1)))
    assert [t.payload.arrival_ns for t in tasks] == [i * 20 * MS for i in range(10)]
    assert {t.priority for t in tasks} == {Priority.LOW}


@pytest.mark.parametrize("kwargs, message", [
    ({"policy": POLICY}, "a policy or patience needs duration_s"),
    ({"patience": SERVICE}, "a policy or patience needs duration_s"),
    ({"duration_s": 0}, "duration_s must be a positive number of seconds"),
    ({"duration_s": math.inf}, "duration_s must be a positive number"),
    ({"duration_s": 1, "patience": "exp:2s"}, "patience must be a ServiceTime"),
    ({"duration_s": 1, "policy": {"default": {}}}, "policy must be a QueuePolicy or None"),
    ({"duration_s": 1, "policy": QueuePolicy(levels={7: LevelPolicy(max_queue_size=1)})},
     "the queue has no level 7"),
])
def test_bad_overload_params_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LoadParams(**kwargs)


def test_a_policy_needs_a_queue_that_takes_one_and_not_the_processes_driver():
    params = LoadParams(duration_s=1, policy=POLICY)
    with pytest.raises(ValueError, match="queue 'queue.PriorityQueue' takes no queue policy.*"
                                         "ThreadSafeBucketQueue, AsyncBucketQueue, "
                                         "BridgeBucketQueue"):
        choose_driver(QUEUES["queue.PriorityQueue"], "auto", params)
    with pytest.raises(ValueError, match="driver 'processes' cannot bound a run"):
        choose_driver(QUEUES["ThreadSafeBucketQueue"], "processes", params)
    assert choose_driver(QUEUES["AsyncBucketQueue"], "auto", params) == "async"
    bounded = LoadParams(duration_s=1)  # a bound alone: any threads or asyncio queue
    assert choose_driver(QUEUES["multiprocessing"], "auto", bounded) == "threads"
