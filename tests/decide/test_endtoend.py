"""The end-to-end findings (pqlab.decide.endtoend): the ADR's section and the record's answer,
read from a tidy end-to-end frame."""

from __future__ import annotations

import math

import pandas as pd
from study.test_endtoend import LAG, keys, synthetic_load

from pqlab.decide import endtoend as findings
from pqlab.study import endtoend


def two_queue_frame() -> pd.DataFrame:
    parts = [endtoend.point_frame(synthetic_load(rate=1000.0, n_per_level=300), **keys(
        queue="", tier="ceiling", rate=1000.0, endpoint="noop"))]
    for queue, latency in (("asyncio.PriorityQueue", 20.0), ("AsyncBucketQueue", 20.0)):
        parts.append(endtoend.point_frame(synthetic_load(latency, 1200, seed=1), lag=LAG,
                                          **keys(queue=queue, rate=10.0)))
    for queue, latency in (("asyncio.PriorityQueue", 20.0), ("AsyncBucketQueue", 60.0)):
        parts.append(endtoend.point_frame(synthetic_load(latency, 1200, seed=2), lag=LAG,
                                          **keys(queue=queue, rate=100.0)))
    parts.append(endtoend.point_frame(synthetic_load(2.0, 50), lag=LAG, **keys(
        queue="", tier="baseline", rate=100.0, endpoint="noop")))
    for policy, lost in (("none", 0), ("limits+timeouts (REJECT)", 30)):
        parts.append(endtoend.point_frame(synthetic_load(80.0, 40, lost_low=lost), lag=LAG,
                                          **keys(tier="past", rate=300.0, policy=policy)))
    return endtoend.tidy(endtoend.with_ceiling_shares(pd.concat(parts, ignore_index=True)))


def test_findings_compare_with_intervals_and_say_what_was_not_measured():
    text = "\n".join(findings.findings(two_queue_frame()))
    assert text.startswith("## End to end")
    at_10 = next(line for line in text.splitlines() if line.startswith("- At 10/s"))
    assert findings.SEPARATE in at_10
    at_100 = next(line for line in text.splitlines() if line.startswith("- At 100/s"))
    assert "changes p99 for CRITICAL, HIGH, NORMAL, LOW" in at_100
    assert "n=1,200" in text and "indicative" in text  # past saturation: n=40
    assert "`threads-gil`): not measured in this profile" in text
    assert "Worker mode: only `async` was measured" in text
    assert "75% are refused at once (503)" in text  # 30 of 40 refused
    assert "(s)" not in text
    assert findings.findings(pd.DataFrame()) == []


def test_compare_p99_needs_disjoint_bounded_intervals():
    a = pd.Series({"value": 10.0, "low": 9.0, "high": 11.0})
    assert findings.compare_p99(a, pd.Series({"value": 20.0, "low": 18.0, "high": 22.0})) \
        == "2.00x"
    assert findings.compare_p99(a, pd.Series({"value": 12.0, "low": 10.5, "high": 13.0})) \
        == findings.SEPARATE
    assert findings.compare_p99(a, pd.Series({"value": 30.0, "low": 18.0,
                                             "high": math.inf})) == findings.SEPARATE


def test_a_rate_the_service_could_not_keep_up_with_is_not_judged():
    parts = [endtoend.point_frame(synthetic_load(latency, 300, seed=4, rate=300.0), lag=LAG,
                                  **keys(queue=queue, rate=300.0))
             for queue, latency in (("asyncio.PriorityQueue", 20.0), ("AsyncBucketQueue", 90.0))]
    frame = endtoend.tidy(pd.concat(parts, ignore_index=True))
    line = next(x for x in findings.findings(frame) if x.startswith("- At 300/s"))
    assert "ρ measured (rate sent × mean inference of the 200s / workers) up to 1.50" in line
    assert "the service itself was saturated" in line
    assert line.endswith("the queues are not judged at this rate.")


def test_the_records_answer_compares_queues_or_says_it_cannot():
    answer = findings.answer(two_queue_frame())
    assert answer[0].startswith("- In the reference service (worker mode `async`")
    assert "at 10/s: no difference the data can show" in answer[0]
    assert "at 100/s: p99 differs for CRITICAL, HIGH, NORMAL, LOW" in answer[0]
    assert "CRITICAL's p99 at 100/s:" in answer[0] and "n=1,200" in answer[0]
    assert any("refused at once (503)" in line for line in answer[1:])
    one = two_queue_frame()
    one = one[one["queue"] != "asyncio.PriorityQueue"]
    [line, *_] = findings.answer(one)
    assert "only `AsyncBucketQueue` ran below saturation" in line and "n=" in line
    assert "not measured in this run" in findings.answer(pd.DataFrame())[0]
