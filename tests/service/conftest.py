"""The policed service the tests of several service modules share."""

from __future__ import annotations

import json

import pytest
from service_helpers import serving

POLICY = json.dumps({"default": {"allow_timeout_override": True},
                     "levels": {"LOW": {"max_queue_size": 1}}})


@pytest.fixture(scope="session")
def policed():
    """AsyncBucketQueue under a policy (LOW holds 1; any request may carry a timeout), 1
    worker: one server for the session (per xdist worker), which tests/service/test_app.py
    and tests/service/test_scheduler.py share."""
    with serving("--queue", "AsyncBucketQueue", "--workers", "1", "--service", "const:1ms",
                 "--policy", POLICY) as service:
        yield service
