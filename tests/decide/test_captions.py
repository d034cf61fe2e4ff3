"""The captions of the record's figures (pqlab.decide.captions): none without the data, and
with it a claim that names the run's numbers."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from decide.test_decision import FEATURES, IDLE, summary
from decide.test_endtoend import two_queue_frame
from pqlab.decide import captions, decision, loadwait, saturation
from pqlab.study import config, store

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = config.REFERENCE_RUN  # the committed reference run


def _run() -> store.Run:
    return store.Run.open(ROOT / "data", REFERENCE)


def _mixed(lags_ms: dict[str, list[float]], workers=(2, 4)) -> pd.DataFrame:
    """A ``mixed`` summary: per queue, the same p99 loop lags at each worker count."""
    return pd.DataFrame([{"queue": q, "scenario": "mixed", "producers": w,
                          "loop_lag_p99_us": lag * 1e3}
                         for q, lags in lags_ms.items() for w in workers for lag in lags])


def test_no_data_no_caption():
    empty = pd.DataFrame()
    assert captions.e2e(empty) is None
    assert captions.load(empty) is None
    assert captions.overload(empty) is None
    assert captions.overload(pd.DataFrame({"rho": [1.0]})) is None  # no policy column
    assert captions.mixed(pd.DataFrame({"scenario": ["single"], "producers": [1]})) is None
    assert captions.mixed(_mixed({"BridgeBucketQueue": [1.0, 2.0]})) is None  # one queue
    [unmeasured] = [d for d in decision.decide(summary(), idle=IDLE, features=FEATURES)
                    if d.table.empty][:1]
    assert captions.gates(unmeasured) is None


def test_the_loop_lag_caption_names_both_ends_at_the_most_workers():
    frame = _mixed({"BridgeBucketQueue": [1.0, 2.0, 3.0], "culsans.PriorityQueue": [5.0, 6.0,
                                                                                  7.0]})
    figure = captions.mixed(frame)
    assert figure.stem == "loop-lag-vs-workers-mixed" and figure.section == "threads"
    assert "at 4 worker threads: `BridgeBucketQueue` 2.00 ms (median of 3 runs" in figure.claim
    assert "against `culsans.PriorityQueue` 6.00 ms (median of 3 runs" in figure.claim
    _, lowest = captions.loop_lag(frame)
    assert lowest == "BridgeBucketQueue"


def test_the_load_caption_says_which_side_of_the_target_criticals_p99_is():
    frame = _run().frame("load")
    top = loadwait.critical_p99(frame)
    figure = captions.load(frame)
    assert figure.stem == "load-p99-vs-rho"
    assert (f"below {loadwait.LOAD_TARGET_MS:g} ms up to ρ {top['rho_measured']:.2f} "
            f"({float(top['queue_wait_p99_ms']):.1f} ms, n={int(top['tasks']):,}"
            in figure.claim)
    worse = frame.copy()
    worse["queue_wait_p99_ms"] = 80.0
    assert "stays above 50 ms" in captions.load(worse).claim and "(80.0 ms" in captions.load(
        worse).claim


def test_the_overload_caption_reads_the_top_rho_with_and_without_the_policy():
    frame = _run().frame("overload")
    figure = captions.overload(frame)
    top = float(frame["rho"].max())
    label, _ = saturation.chosen_policy(frame)
    med = saturation.medians(frame).loc[(label, top)]
    assert figure.stem == "overload-outcomes"
    assert figure.claim.startswith(
        f"At ρ {top:g} the policy refuses {med.loc['LOW', 'share_rejected']:.0%} of LOW at once")
    assert f"CRITICAL is served {med.loc['CRITICAL', 'share_served']:.0%} with it" in figure.claim


def test_the_gates_caption_names_the_queues_that_pass_every_gate():
    context = decision.context("async API server")
    feats = FEATURES.copy()
    for need in context.needs:  # two queues have every feature the context needs
        feats[need] = feats["queue"].isin(["AsyncBucketQueue", "BridgeBucketQueue"])
    d = next(d for d in decision.decide(summary(), idle=IDLE, features=feats)
             if d.context.scenario == "async")
    figure = captions.gates(d)
    assert figure.stem == "decision-overview" and figure.section == "gates"
    assert figure.claim.startswith(
        "In the async API server context only `AsyncBucketQueue` and `BridgeBucketQueue` "
        f"pass every gate with all {len(context.needs)} needed features")
    assert "janus" not in figure.claim and "asyncio" not in figure.claim


def test_the_e2e_caption_carries_the_answers_comparison():
    figure = captions.e2e(two_queue_frame())
    assert figure.stem == "e2e-latency" and figure.section == "end to end"
    assert "at 10/s: no difference the data can show" in figure.claim
    assert "; CRITICAL's p99" not in figure.claim
    assert figure.claim.endswith("(n of each point above it, at the top of its panel).")


def test_markdown_numbers_the_figure_and_its_caption():
    figure = captions.Embedded("x", "load", "A claim.")
    assert captions.markdown(figure, 3, "../f/x.svg") == [
        "![Figure 3](../f/x.svg)", "", "*Figure 3. A claim.*", ""]
