"""Studies as units: a toy study (one module, one notebook, one line in ``STUDIES``) is swept
by the batch and rendered as a section of the record; the catalog drives both."""

from __future__ import annotations

import dataclasses
import json
import textwrap
from pathlib import Path

import pytest

from pqlab import studies
from pqlab.lab import batch, decision_figures, store_features
from pqlab.record import adr
from pqlab.study import config, store

TOY_MODULE = '''
"""A toy study: heapq's single-threaded units through the sweep, and a frame of its own."""
from pqlab.studies import closedloop
from pqlab.studies.base import RunView, Section, Study
from pqlab.study import params


def sweep(tasks, run):
    p = closedloop.Params(queues=["heapq"], task_counts=[tasks], repetitions=1, seed=3,
                          fresh_process=False, progress=False)
    result = closedloop.sweep(p, run, ["single"])
    run.save_frames(toy=result.summary[["queue", "tasks", "throughput_ops_s"]])
    return result


def section(view: RunView):
    toy = view.frame("toy")
    if toy.empty:
        return None
    return Section("### The toy", [f"- The toy measured {len(toy)} unit of "
                                   f"{int(toy['tasks'].iloc[0]):,} tasks."], rank=35)


def appendix(view: RunView):
    return ["## Toy findings", "", f"{len(view.frame('toy'))} toy rows.", ""]


STUDY = Study("toy", "NOTEBOOK", {"quick": {"TASKS": 400}, "default": {"TASKS": 500},
                                  "full": {"TASKS": 600}},
              frames=("toy",), section=section, appendix=appendix,
              checks={"TASKS": params.positive_int})
'''

TOY_CELLS = [
    ("RUN_ID = ''\nOUTPUT_DIR = ''\nTASKS = 100", ["parameters"]),
    ("import toystudy\nfrom pqlab import lab\nfrom pqlab.study import params\n"
     "P = params.validate(RUN_ID=RUN_ID, OUTPUT_DIR=OUTPUT_DIR)\n"
     "paths, run = lab.open_run(P)\nresult = toystudy.sweep(TASKS, run)", []),
]


def _notebook(path: Path) -> None:
    cells = [{"cell_type": "code", "execution_count": None, "id": f"toy-{i}",
              "metadata": {"tags": tags}, "outputs": [], "source": source}
             for i, (source, tags) in enumerate(TOY_CELLS)]
    path.write_text(json.dumps({"cells": cells, "metadata": {"kernelspec": {
        "name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4, "nbformat_minor": 5}))


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """The toy study's module on the path (the kernel's too) and its one line in STUDIES."""
    notebook = tmp_path / "toy.ipynb"
    _notebook(notebook)
    (tmp_path / "toystudy.py").write_text(textwrap.dedent(TOY_MODULE).replace(
        "NOTEBOOK", str(notebook)))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    import toystudy

    monkeypatch.setattr(studies, "STUDIES", (*studies.STUDIES, toystudy.STUDY))
    yield toystudy
    monkeypatch.delitem(__import__("sys").modules, "toystudy")


@pytest.mark.slow
def test_a_toy_study_is_swept_by_the_batch_and_rendered_in_the_record(toy, tmp_path):
    plan = batch.load_plan("quick")
    names = [spec.name for spec, _ in plan.notebooks]
    assert names[-3:] == ["toy", "05-across-machines", "00-decision"]  # after every study
    toy_entry = next((spec, values) for spec, values in plan.notebooks if spec.name == "toy")
    assert toy_entry[1] == {"TASKS": 400}  # the study's quick profile, checked by its own check
    toy.STUDY.profiles["quick"]["TASKS"] = -1
    with pytest.raises(batch.PlanError, match="toy: TASKS"):
        batch.load_plan("quick")
    toy.STUDY.profiles["quick"]["TASKS"] = 400
    plan = dataclasses.replace(plan, notebooks=[toy_entry])
    result = batch.run_batch(plan, tmp_path / "out", echo=lambda _line: None)
    run = result.run
    assert list(run.frame("toy")["tasks"]) == [400]  # swept by the batch, through the sweep
    assert set(run.summary()["queue"]) == {"heapq"}

    store_features(run)
    decision_figures(result.paths, run, adr.decide_run(run))
    path = adr.write_adr(run.run_id, result.paths, allow_busy=True)
    text = path.read_text()
    assert "### The toy\n\n- The toy measured 1 unit of 400 tasks.\n" in text
    assert text.index("### The gates") < text.index("### The toy")  # its rank, 35
    assert "## Toy findings\n\n1 toy rows." in (path.parent / "appendix.md").read_text()


def test_the_plan_is_the_studies_then_the_reading_notebooks():
    plan = studies.plan()
    assert [s.name for s in plan] == [Path(s.notebook).stem for s in studies.STUDIES] + [
        "05-across-machines", "00-decision"]
    on_disk = {p.name for p in config.NOTEBOOKS_DIR.glob("[0-9]*.ipynb")}
    assert {s.filename for s in plan} == on_disk
    with pytest.raises(KeyError, match="known: 01-single-baseline"):
        studies.notebook("99-nothing")


def test_every_study_declares_every_profile_and_frames_it_stores():
    for s in studies.STUDIES:
        assert set(s.profiles) == set(config.PROFILES), s.name
        assert all(store.FRAME_NAME.fullmatch(f) for f in s.frames), s.name
    frames = [f for s in studies.STUDIES for f in s.frames]
    assert len(frames) == len(set(frames)), "two studies claim one frame"
