"""pqlab.service.requests in process: the request body's validation and the queued job."""

from __future__ import annotations

import asyncio
import heapq
import threading

import pytest
from pydantic import ValidationError

from pqlab.core.task import STOP, Priority, next_seq
from pqlab.service.requests import (
    CANCELLED,
    EXPIRED,
    QUEUED,
    TAKEN,
    InferBody,
    Job,
    parse_priority,
)


@pytest.mark.parametrize(("value", "level"), [
    (1, 1), (4, 4), ("critical", 1), (" Low ", 4), ("NORMAL", int(Priority.NORMAL)),
])
def test_a_priority_is_a_level_number_or_name_in_any_case(value, level):
    assert parse_priority(value) == level


@pytest.mark.parametrize("value", [0, 5, True, 2.0, "URGENT", None])
def test_any_other_priority_is_refused_naming_what_is_allowed(value):
    with pytest.raises(ValueError, match="must be 1-4 or one of CRITICAL, HIGH, NORMAL, LOW"):
        parse_priority(value)


def test_the_body_defaults_to_normal_and_keeps_its_numbers():
    assert InferBody().priority == Priority.NORMAL
    body = InferBody(priority="high", timeout_ms=50, work_ms=0)
    assert (body.priority, body.timeout_ms, body.work_ms) == (Priority.HIGH, 50, 0)


@pytest.mark.parametrize(("fields", "field"), [
    ({"priority": 9}, "priority"),
    ({"timeout_ms": 0}, "timeout_ms"),
    ({"timeout_ms": float("inf")}, "timeout_ms"),
    ({"work_ms": -1}, "work_ms"),
    ({"work_ms": 60_001}, "work_ms"),
    ({"work_ms": "5"}, "work_ms"),  # strict: a string is not a number
    ({"colour": "red"}, "colour"),  # an unknown field
])
def test_a_bad_body_names_its_field(fields, field):
    with pytest.raises(ValidationError) as caught:
        InferBody(**fields)
    assert [e["loc"][0] for e in caught.value.errors()] == [field]


def test_jobs_order_by_priority_then_arrival_and_never_compare_the_rest():
    jobs = [Job(3, 10, payload={"a": 1}), Job(1, 12, payload={"b": 2}), Job(3, 11, work_s=9.0),
            Job(1, 13, payload=object())]
    heap: list = []
    for job in jobs:
        heapq.heappush(heap, job)
    assert [(j.priority, j.seq) for j in (heapq.heappop(heap) for _ in jobs)] == [
        (1, 12), (1, 13), (3, 10), (3, 11)]


def test_a_stop_sentinel_goes_after_every_request_queued_before_it():
    request = Job(int(Priority.LOW), next_seq())  # as Job.make numbers it
    stop = Job.sentinel()
    assert stop.is_stop and stop.payload is STOP and not request.is_stop
    assert request < stop and stop.request_id == f"r{stop.seq}"


def test_only_one_of_racing_claims_moves_a_job():
    job = Job(2, 1)
    barrier = threading.Barrier(8)
    won = []

    def claim(state: str) -> None:
        barrier.wait()
        if job.claim(state):
            won.append(state)

    threads = [threading.Thread(target=claim, args=(TAKEN if i % 2 else CANCELLED,))
               for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(won) == 1 and job.state == won[0]
    assert not job.claim(EXPIRED)  # no longer queued
    assert job.claim(EXPIRED, expected=(won[0],)) and job.state == EXPIRED


def test_make_stamps_a_deadline_and_settle_resolves_from_a_thread_once():
    async def main():
        job = Job.make(int(Priority.HIGH), 0.0, timeout_s=2.0)
        assert job.state == QUEUED and job.deadline_ns - job.enqueued_ns == 2_000_000_000
        assert Job.make(1, 0.0).deadline_ns is None
        worker = threading.Thread(target=job.settle, args=({"status": 200},))
        worker.start()
        result = await asyncio.wait_for(job.future, 10)
        worker.join(10)
        job.settle({"status": 500})  # settled already: the first result stays
        await asyncio.sleep(0)
        return result, job.future.result()

    assert asyncio.run(main()) == ({"status": 200}, {"status": 200})


def test_settling_after_the_loop_closed_is_quiet():
    async def make():
        return Job.make(1, 0.0)

    job = asyncio.run(make())  # its loop is closed now
    job.settle({"status": 200})
    assert not job.future.done()
