"""Load parameters: the driver a run takes, the workload, the service times."""

from __future__ import annotations

import pytest

import pqlab
from pqlab.cli.main import main
from pqlab.queues import QUEUES
from pqlab.queues.policy import LevelPolicy, QueuePolicy
from pqlab.scenarios.loadparams import LoadParams, choose_driver

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
