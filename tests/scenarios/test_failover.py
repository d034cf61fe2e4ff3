"""The failover drill: acknowledged puts survive killing the primary of a replicated Redis."""

from __future__ import annotations

import pytest
from redis_helpers import require_redis_server

from pqlab.queues.redisdeploy import Deployment
from pqlab.queues.redissentinel import Discovery
from pqlab.scenarios.failover import run_failover

pytestmark = pytest.mark.redis

FAILOVER_BOUND_S = 30.0  # Sentinels fail over in ~2-3 s here (1 s to notice, then a vote)


@pytest.fixture(scope="module")
def deployment():
    require_redis_server()
    d = Deployment().start()
    yield d
    d.stop()


def test_acknowledged_puts_survive_killing_the_primary(deployment, record_property):
    # Last in the module: it leaves the old primary a replica of a new one.
    run = run_failover(deployment, min_replicas=1, duration_s=4.0, rate_per_s=50)
    print(f"\nfailover {run.failover_s:.2f} s, no service {run.no_service_s:.2f} s; {run}")
    record_property("failover_s", run.failover_s)
    record_property("no_service_s", run.no_service_s)
    assert run.acknowledged > 0
    assert run.lost == 0 and run.duplicated == 0
    assert run.served == run.acknowledged
    assert 0 < run.failover_s < FAILOVER_BOUND_S
    assert run.no_service_s < FAILOVER_BOUND_S
    new_primary = Discovery(deployment.url).primary()
    assert new_primary[1] != deployment.servers[0].port
