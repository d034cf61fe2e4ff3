"""pqlab.harness.worker: one sweep unit measured, in process and as a fresh process."""

from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np

from pqlab.harness.runner import run
from pqlab.harness.worker import SAMPLES_PER_RUN, UnitSpec, _thin, measure, task_samples
from pqlab.measure.records import first_gets


def test_a_spec_goes_through_json_unchanged():
    spec = UnitSpec("queue.PriorityQueue", "threads", 500, 2, 3, 4, seed=9, max_samples=50,
                    deadline_s=7.5, warmup=False)
    assert UnitSpec.from_json(spec.to_json()) == spec
    assert UnitSpec("heapq", "single", 1, 1, 1, 0, seed=1).max_samples == SAMPLES_PER_RUN


def test_thinning_keeps_all_or_a_sorted_seeded_subset_without_repeats():
    assert _thin(5, 10, seed=1).tolist() == [0, 1, 2, 3, 4]
    kept = _thin(1000, 100, seed=1)
    assert len(kept) == len(set(kept.tolist())) == 100
    assert (np.diff(kept) > 0).all() and kept.max() < 1000
    assert (kept == _thin(1000, 100, seed=1)).all() and not (kept == _thin(1000, 100, 2)).all()


def test_samples_hold_one_row_per_first_get_with_its_durations():
    result = run("queue.PriorityQueue", "ordering", tasks=300, producers=2, consumers=2, seed=3)
    records = result.records
    assert [r.label for r in records] == ["sequential", "concurrent"]
    samples = task_samples(records, max_samples=10_000, seed=3)
    total = sum(len(first_gets(r)[0]) for r in records)
    assert len(samples["seq"]) == total == 600
    assert set(samples["pass"]) == {"sequential", "concurrent"}
    for key in ("enqueue_ns", "dequeue_ns", "wait_ns"):
        assert samples[key].dtype == np.int64 and (samples[key] >= 0).all()
    assert set(samples["priority"].tolist()) <= {1, 2, 3, 4}
    thinned = task_samples(records, max_samples=100, seed=3)
    assert len(thinned["seq"]) == 100  # shared evenly: 50 a pass
    assert (thinned["pass"] == "sequential").sum() == 50
    assert task_samples([], 100, 1) == {}


def test_measure_counts_every_sample_and_stores_at_most_its_share():
    row, samples = measure(UnitSpec("heapq", "single", 400, 1, 1, 2, seed=5, max_samples=64,
                                    warmup=False))
    assert (row["queue"], row["scenario"], row["tasks"], row["repetition"]) == (
        "heapq", "single", 400, 2)
    assert row["samples_total"] == 400 and row["samples_stored"] == len(samples["seq"]) == 64
    assert isinstance(row["error_messages"], str) and row["violations"] == 0


def test_a_fresh_process_pickles_the_row_and_samples_to_the_path(tmp_path):
    spec = UnitSpec("heapq", "single", 200, 1, 1, 0, seed=2, max_samples=20, warmup=False)
    out = tmp_path / "unit.pickle"
    p = subprocess.run([sys.executable, "-m", "pqlab.harness.worker", spec.to_json(), str(out)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    row, samples = pickle.loads(out.read_bytes())
    assert row["tasks"] == 200 and row["samples_total"] == 200 and len(samples["seq"]) == 20
    assert [f.name for f in tmp_path.iterdir()] == ["unit.pickle"]  # no temporary file left
