"""The end-to-end study (pqlab.studies.endtoend): its section leads the record's evidence."""

from __future__ import annotations

import pandas as pd
from decide.test_endtoend import two_queue_frame

from pqlab.decide import endtoend as findings
from pqlab.studies import endtoend
from pqlab.studies.base import RunView
from pqlab.study.endtoend import FRAME


def _view(frame: pd.DataFrame, stems=()) -> RunView:
    return RunView(None, [], frozenset(stems), {FRAME: frame})


def test_the_section_leads_with_rank_0_and_says_when_nothing_was_measured():
    section = endtoend.section(_view(pd.DataFrame()))
    assert section.heading == "### End to end" and section.rank == 0
    assert "not measured in this run" in section.lines[0] and section.figures == []
    assert endtoend.STUDY.frames == (FRAME,)


def test_the_section_is_the_findings_answer_with_its_figure_when_drawn():
    frame = two_queue_frame()
    section = endtoend.section(_view(frame, {"e2e-latency"}))
    assert section.lines == findings.answer(frame)
    assert [f.stem for f in section.figures] == ["e2e-latency"]
    assert endtoend.appendix(_view(frame))[0] == "## End to end"


def test_an_empty_frame_has_no_appendix():
    assert endtoend.appendix(_view(pd.DataFrame())) == []
