"""Finding a stored run and comparing two runs' decisions (pqlab.record.runs)."""

from __future__ import annotations

import pytest
from decide.test_decision import FEATURES, IDLE, summary

from pqlab.decide import decision
from pqlab.record import runs
from pqlab.study import config, store


def test_compare_accepts_noise_and_catches_a_changed_decision():
    a = decision.decide(summary(seed=1, noise=0.1), idle=IDLE, features=FEATURES)
    b = decision.decide(summary(seed=2, noise=0.1), idle=IDLE, features=FEATURES)
    same = runs.compare_decisions(a, b)
    assert same.same and all(agree for *_, agree in same.contexts)
    idle = IDLE.copy()
    idle.loc[idle["queue"] == "AsyncBucketQueue", "idle_cores"] = 0.5
    c = decision.decide(summary(seed=2, noise=0.1), idle=idle, features=FEATURES)
    changed = runs.compare_decisions(a, c)
    assert not changed.same
    subjects = {s for s, *_ in changed.differing}
    assert "async API server: decision" in subjects
    assert "async API server: AsyncBucketQueue set aside" in subjects
    assert any("DIFFERS: async API server" in line for line in changed.lines())


# -- finding a run by what a user typed ---------------------------------------------------


def _runs(tmp_path):
    """An output folder with two runs, the second the newest."""
    paths = config.paths(tmp_path / "out")
    old = store.Run.create(paths.data, "20260101T000000Z-a", machine={"machine_id": "t"})
    new = store.Run.create(paths.data, "20260102T000000Z-b", machine={"machine_id": "t"})
    return paths, old, new


def test_find_run_takes_a_run_folder_an_output_folder_or_a_run_id(tmp_path):
    paths, old, new = _runs(tmp_path)
    assert runs.find_run(str(old.dir)).dir == old.dir  # a run folder, wherever it is
    assert runs.find_run(str(paths.root)).run_id == new.run_id  # an output folder: its latest
    assert runs.find_run(old.run_id, paths).dir == old.dir  # a run id under paths.data


def test_find_run_errors_say_what_was_tried(tmp_path):
    paths, old, _ = _runs(tmp_path)
    with pytest.raises(store.StoreError, match="neither a run folder nor an output folder"):
        runs.find_run(str(paths.data))  # a folder of runs is neither
    with pytest.raises(store.StoreError) as info:
        runs.find_run(str(tmp_path / "nowhere"), paths)
    assert f"no run at {tmp_path / 'nowhere'}" in str(info.value)
    assert "a run folder, a batch output folder or a run id" in str(info.value)
    with pytest.raises(store.StoreError) as info:
        runs.find_run("20990101T000000Z-c", paths)
    assert "no run '20990101T000000Z-c'" in str(info.value) and old.run_id in str(info.value)


def test_a_run_that_measured_no_context_is_refused_naming_the_scenarios(tmp_path):
    paths, old, new = _runs(tmp_path)
    with pytest.raises(store.StoreError) as info:
        runs.compare_runs(old.run_id, new.run_id, paths)
    message = str(info.value)
    assert old.run_id in message and "measured none of the contexts" in message
    assert all(c.scenario in message for c in decision.CONTEXTS)


def test_the_diff_of_identical_decisions_lists_every_context_as_same():
    a = decision.decide(summary(seed=3), idle=IDLE, features=FEATURES)
    diff = runs.compare_decisions(a, a, "run-1", "run-2")
    assert diff.same and diff.differing == []
    lines = diff.lines()
    assert lines[0] == "pqlab adr --compare: run-1 vs run-2"
    assert len(diff.contexts) == len(decision.CONTEXTS)
    assert lines[-2:] == ["  every statement agrees", "same decision in every context"]
