"""The end-to-end study (notebook 09): what a CRITICAL caller of a real service waits for.

Its measuring machinery (services on loopback, HTTP load from a process of
its own, the tidy ``endtoend`` frame) is ``pqlab.study.endtoend``; its
figures and findings are ``pqlab.decide.endtoend``. This module declares the
study: its plan per profile, its frame, its record section (first in the
evidence: the record leads with it) and its appendix.
"""

from __future__ import annotations

from pqlab.decide import captions
from pqlab.decide import endtoend as findings
from pqlab.studies.base import RunView, Section, Study
from pqlab.study.endtoend import FRAME


def section(view: RunView) -> Section:
    frame = view.frame(FRAME)
    return Section("### End to end", findings.answer(frame),
                   view.embeddable(captions.e2e(frame)), rank=0)


def appendix(view: RunView) -> list[str]:
    return findings.findings(view.frame(FRAME))


STUDY = Study(
    "endtoend", "09-end-to-end.ipynb",
    # Each point a `pqlab serve` and a `pqlab http-load` process (about 3.5 s of start-up,
    # warm-up and stop per point on this 2-core box, plus its sending). Default: the async
    # slice, 2 queues × 3 rates, and ρ 1.5 with and without the policy on AsyncBucketQueue
    # (8 points, capped at 2.5 s each); quick: one queue at 1,000/s, nothing past
    # saturation; full: the grid, with caps that let every priority reach 1,000 responses
    # (10 req/s needs 460 s a point).
    {"quick": {"QUEUES": ["AsyncBucketQueue"], "RATES": [1000], "PAST_RHOS": [],
               "POINT_CAP_S": 1.0, "BASELINE_S": 0.5, "CEILING_RATES": [2000],
               "CEILING_STEP_S": 0.5},
     "default": {"QUEUES": ["asyncio.PriorityQueue", "AsyncBucketQueue"],
                 "RATES": [10, 100, 1000], "PAST_RHOS": [1.5], "POINT_CAP_S": 2.5,
                 "BASELINE_S": 1.0, "CEILING_RATES": [1000, 2000], "CEILING_STEP_S": 1.0},
     "full": {"MODES": ["async", "threads", "threads-gil", "processes"],
              "QUEUES": ["asyncio.PriorityQueue", "AsyncBucketQueue", "BridgeBucketQueue",
                         "janus.PriorityQueue", "culsans.PriorityQueue"],
              "RATES": [10, 100, 1000], "PAST_RHOS": [1.2, 1.5], "POINT_CAP_S": 470.0,
              "BASELINE_S": 10.0, "CEILING_RATES": [250, 500, 1000, 2000, 4000],
              "CEILING_STEP_S": 2.0}},
    frames=(FRAME,), section=section, appendix=appendix, appendix_rank=40)
