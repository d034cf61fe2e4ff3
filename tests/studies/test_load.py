"""The load study (pqlab.studies.load): its parameters, the notebook's tables, the crossing
line and the record section, read from the committed reference run's load frames."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from pqlab.decide import loadwait
from pqlab.studies import load
from pqlab.studies.base import RunView
from pqlab.study import config, store

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = config.REFERENCE_RUN  # the committed reference run


@pytest.fixture(scope="module")
def reference() -> store.Run:
    return store.Run.open(ROOT / "data", REFERENCE)


def _params(**more) -> load.Params:
    return load.Params(queue="queue.PriorityQueue", rhos=[0.1, 0.5, 0.9], spectrum_rho=0.9,
                       workers=4, service_ms=16.0, duration_s=1.0, seed=1, **more)


def test_params_of_reads_the_notebooks_names_and_keeps_the_defaults():
    ns = SimpleNamespace(QUEUE="queue.PriorityQueue", RHOS=[0.3, 0.9], SPECTRUM_RHO=0.9,
                         WORKERS=4, SERVICE_MS=10.0, DURATION_S=2.5, SEED=3, AGING_MS=20.0)
    p = load.Params.of(ns)
    assert (p.queue, p.rhos, p.workers, p.aging_ms, p.seed) == (
        "queue.PriorityQueue", [0.3, 0.9], 4, 20.0, 3)
    assert p.target_ms == loadwait.LOAD_TARGET_MS and p.progress
    assert p.service.kind == "exp" and p.service.mean_s == pytest.approx(0.01)


def test_the_table_has_the_notebooks_columns(reference):
    t = load.table(reference.frame("load"))
    assert list(t.columns) == ["ρ target", "ρ measured", "priority", "tasks", "mean wait ms",
                               "theory ms", "diff", "p99 wait ms", "p99 from put ms"]
    assert len(t) == len(reference.frame("load"))


def test_the_aging_table_is_empty_without_aging_runs(tmp_path, reference):
    run = store.Run.create(tmp_path, "r1", machine={"machine_id": "m"})
    run.save_frames(load=reference.frame("load"))
    assert load.aging_table(run).empty
    both = load.aging_table(reference)
    assert {"queue_wait_p99_ms strict", "queue_wait_p99_ms aging"} <= set(both.columns)
    assert set(both["rho"]) == set(reference.frame("load-aging")["rho"])


def test_the_crossing_line_says_where_critical_reaches_the_target_or_that_it_does_not(
        reference):
    frame = reference.frame("load")
    p = _params(target_ms=1e6)
    rho, said = load.crossing(frame, p)
    assert math.isnan(rho) and said == "CRITICAL p99 stays below 1e+06 ms up to ρ = 0.9"
    crit = frame[frame["priority"].astype(str) == "CRITICAL"]
    low = float(crit["queue_wait_p99_ms"].min())
    rho, said = load.crossing(frame, _params(target_ms=low))
    assert rho == pytest.approx(float(crit["rho"].min()))  # reached at the first ρ swept
    assert said == f"CRITICAL p99 crosses {low:g} ms at ρ ≈ {rho:.2f}"


def test_theory_covers_the_swept_rhos_on_a_fine_grid():
    frame = load.theory(_params())
    rhos = sorted(set(frame["rho"]))
    assert rhos[0] == pytest.approx(0.1) and rhos[-1] == pytest.approx(0.9)
    assert len(rhos) >= 60 and {0.1, 0.5, 0.9} <= {round(r, 6) for r in rhos}


def test_the_section_is_the_load_claims(reference):
    view = RunView(reference, [])
    section = load.section(view)
    assert section.heading == "### Waiting under load" and section.rank == 20
    assert section.lines == loadwait.record_claims(reference.frame("load"),
                                                   reference.frame("load-aging"))
    empty = RunView(None, [], frozenset(), {"load": pd.DataFrame(),
                                            "load-aging": pd.DataFrame()})
    assert "not measured in this run" in load.section(empty).lines[0]
    assert load.appendix(empty) == []
