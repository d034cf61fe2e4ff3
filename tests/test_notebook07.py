"""Notebook 07 (open-loop load) under papermill, its load frames, and the ADR paragraph."""

from __future__ import annotations

import re

import nbformat
import papermill
import pytest
from kernel_helpers import shared_kernel

from pqlab import studies
from pqlab.decide import loadwait
from pqlab.lab import batch
from pqlab.study import config, params, store
from pqlab.study.loadframes import crossing_rho

SPEC = studies.notebook("07-load")
TINY = {"QUEUE": "queue.PriorityQueue", "RHOS": [0.3, 0.6], "SPECTRUM_RHO": 0.6,
        "DURATION_S": 1.0, "WORKERS": 2, "SERVICE_MS": 8.0, "SEED": 3, "AGING_MS": 20.0,
        "PROGRESS": False}


def _parameters(tmp_path, **values):
    return {**SPEC.parameters("quick"), **TINY, **values, "OUTPUT_DIR": str(tmp_path)}


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """Notebook 07 run once to the end with the tiny parameters, in a fresh kernel: (output
    directory, the executed notebook). Its run is also the stored load frame the ADR
    paragraph is checked against."""
    out = tmp_path_factory.mktemp("nb07")
    with batch.project_kernel() as kernel:
        nb = papermill.execute_notebook(str(SPEC.source), str(out / SPEC.filename),
                                        parameters=_parameters(out), kernel_name=kernel,
                                        progress_bar=False, cwd=str(config.NOTEBOOKS_DIR))
    return out, nb


@pytest.fixture(scope="module")
def kernel():
    with shared_kernel() as started:
        yield started


def test_07_is_in_the_batch_before_05():
    names = [s.name for s in studies.plan()]
    assert names.index("07-load") < names.index("08-overload") < names.index("05-across-machines")
    for profile in config.PROFILES:
        values = SPEC.parameters(profile)
        params.validate(**{k: v for k, v in values.items()})
        assert values["SPECTRUM_RHO"] in values["RHOS"]


@pytest.mark.slow
@pytest.mark.notebook
def test_07_runs_with_tiny_parameters_and_stores_its_frames(executed):
    tmp_path, nb = executed
    assert nb.metadata["papermill"]["exception"] is None
    paths = config.paths(tmp_path)
    (run_id,) = store.list_runs(paths.data)
    run = store.Run.open(paths.data, run_id)
    load, spectrum = run.frame("load"), run.frame("load-spectrum")
    assert sorted(load["rho"].unique()) == [0.3, 0.6]
    assert set(spectrum["rho"]) == {0.6} and not spectrum.empty
    assert set(run.frame("load-aging")["rho"]) == {0.6}  # the aging runs: ρ ≥ SPECTRUM_RHO
    for name in ("load-wait-vs-rho", "load-wait-spectrum", "load-p99-vs-rho",
                 "load-aging-effect"):
        for ext in ("svg", "png", "csv"):
            assert (paths.figures_dir(run_id) / f"{name}.{ext}").is_file()
    saved = nbformat.read(tmp_path / SPEC.filename, as_version=4)
    assert any(o.get("data", {}).get("image/png") for c in saved.cells
               for o in c.get("outputs", []))


@pytest.mark.slow
@pytest.mark.notebook
@pytest.mark.parametrize("bad, name", [
    ({"RHOS": [0.5, 1.2]}, "RHOS"),
    ({"SPECTRUM_RHO": 0.7}, "SPECTRUM_RHO"),
    ({"QUEUE": "heapq"}, "QUEUE"),
    ({"DURATION_S": -1}, "DURATION_S"),
    ({"AGING_MS": -5.0}, "AGING_MS"),
])
def test_an_invalid_parameter_stops_in_validation(kernel, tmp_path, bad, name):
    with pytest.raises(papermill.PapermillExecutionError) as info:
        kernel.execute(SPEC.source, tmp_path / SPEC.filename, _parameters(tmp_path, **bad))
    error = info.value
    assert error.ename == "ParameterError" and name in error.evalue
    assert error.source.startswith("P = params.validate(")
    assert not (tmp_path / "data").exists()


@pytest.fixture(scope="module")
def stored(executed):
    """The run notebook 07 stored (``lab.load_sweep`` of queue.PriorityQueue at ρ 0.3 and 0.6,
    2 workers of 8 ms, aging 20 ms), read back from disk."""
    data = config.paths(executed[0]).data
    (run_id,) = store.list_runs(data)
    return store.Run.open(data, run_id)


def _numbers(text):
    return [float(x) for x in re.findall(r"[-+]?\d[\d,]*\.?\d*", text.replace(",", ""))]


@pytest.mark.slow
@pytest.mark.notebook
def test_the_adr_paragraph_matches_the_stored_load_frame(stored):
    run = stored
    stored = run.frame("load")
    lines = loadwait.load_findings(stored, aging=run.frame("load-aging"))
    table = [line for line in lines if line.startswith("| ") and "---" not in line]
    head = [c.strip() for c in table[0].strip("|").split("|")]
    assert head[2:] == ["CRITICAL", "HIGH", "NORMAL", "LOW"]
    rows = table[1:]
    assert len(rows) == stored["rho"].nunique()
    for line in rows:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rho = float(cells[0])
        part = stored[stored["rho"] == rho]
        part = part.set_index(part["priority"].astype(str))
        assert float(cells[1]) == pytest.approx(part["rho_measured"].iloc[0], abs=5e-4)
        for prio, cell in zip(head[2:], cells[2:], strict=True):
            measured, theory, diff = _numbers(cell)
            assert measured == pytest.approx(part.loc[prio, "queue_wait_mean_ms"], abs=5e-3)
            assert theory == pytest.approx(part.loc[prio, "theory_wait_mean_ms"], abs=5e-3)
            assert diff == pytest.approx(part.loc[prio, "wait_mean_rel_diff"] * 100, abs=0.05)
    text = "\n".join(lines)
    crossing = crossing_rho(stored, target_ms=loadwait.LOAD_TARGET_MS)
    if crossing == crossing and crossing <= stored["rho"].min():
        # CRITICAL has ~20 tasks at ρ = 0.3 in 1 s, so its p99 is its slowest wait: one stall
        # of a loaded machine reaches the target there.
        assert f"already at the lowest measured ρ = {crossing:g}" in text
    elif crossing == crossing:
        assert f"at ρ ≈ {crossing:.2f}" in text
    else:
        assert f"up to the largest measured ρ = {stored['rho'].max():g}" in text
    judged = stored[(stored["rho"] <= 0.8) & (stored["theory_wait_mean_ms"] >= 1.0)]
    assert not judged.empty  # ρ = 0.6 on 2 workers of 8 ms: LOW waits several ms
    worst = judged["wait_mean_rel_diff"].abs().max()
    assert f"{worst:.1%} over {len(judged)} class means" in text
    sampling = (judged["replay_wait_mean_ms"] / judged["theory_wait_mean_ms"] - 1).abs()
    assert f"differ from theory by up to {sampling.max():.1%}" in text
    low = stored[stored["rho"] <= 0.8]
    chain = low["queue_wait_mean_ms"] - low["replay_wait_mean_ms"]
    assert f"by {chain.min():+.3f} to {chain.max():+.3f} ms at every ρ ≤ 0.8" in text
    capacity = 2 / 0.008
    assert f"ρ = {10 / capacity:.2f}-{100 / capacity:.2f}" in text
    aging = run.frame("load-aging").set_index("priority")
    strict = stored[stored["rho"] == 0.6].set_index("priority")
    assert (f"at ρ = 0.6 CRITICAL's mean wait goes from "
            f"{strict.loc['CRITICAL', 'queue_wait_mean_ms']:.2f} to "
            f"{aging.loc['CRITICAL', 'queue_wait_mean_ms']:.2f} ms, its p99 from "
            f"{strict.loc['CRITICAL', 'queue_wait_p99_ms']:.2f} to "
            f"{aging.loc['CRITICAL', 'queue_wait_p99_ms']:.2f} ms "
            f"(n={int(strict.loc['CRITICAL', 'tasks']):,}), and LOW's p99 from "
            f"{strict.loc['LOW', 'queue_wait_p99_ms']:.2f} to "
            f"{aging.loc['LOW', 'queue_wait_p99_ms']:.2f} ms") in text


def test_the_adr_has_no_load_section_without_load_data():
    import pandas as pd

    assert loadwait.load_findings(pd.DataFrame()) == []


@pytest.mark.slow
@pytest.mark.notebook
def test_the_crossing_is_reported_when_p99_reaches_the_target(stored):
    frame = stored.frame("load")
    critical = frame["priority"].astype(str) == "CRITICAL"
    # Set both points: the measured p99 at ρ = 0.3 may itself be past the target on a busy box.
    frame.loc[critical & (frame["rho"] == 0.3), "queue_wait_p99_ms"] = 10.0
    frame.loc[critical & (frame["rho"] == 0.6), "queue_wait_p99_ms"] = 1_000.0
    text = "\n".join(loadwait.load_findings(frame))
    assert crossing_rho(frame) == pytest.approx(0.3 + 0.3 * 40 / 990)
    assert "at ρ ≈ 0.31 (interpolated" in text
    frame.loc[critical, "queue_wait_p99_ms"] = 1_000.0
    text = "\n".join(loadwait.load_findings(frame))
    assert "at or above 50 ms already at the lowest measured ρ = 0.3 " in text


@pytest.mark.slow
@pytest.mark.notebook
def test_the_adr_says_whether_the_sample_or_the_chain_missed_theory(stored):
    from pqlab.decide.loadwait import _sampling_and_chain

    frame = stored.frame("load")
    judged = frame[frame["rho"] <= 0.8]
    exact = judged.assign(replay_wait_mean_ms=judged["theory_wait_mean_ms"])
    [line] = _sampling_and_chain(exact, exact, worst=0.5)
    assert "the difference is the measuring chain's" in line and "up to 0.0%" in line
    noisy = judged.assign(replay_wait_mean_ms=judged["theory_wait_mean_ms"] * 1.3)
    [line] = _sampling_and_chain(noisy, noisy, worst=0.5)
    assert "That is the sample's size, not the measuring chain" in line and "30.0%" in line
    [line] = _sampling_and_chain(exact, exact, worst=0.05)
    assert line.startswith("- Sampling alone:")
