"""pqlab.batch: plans, checks before anything is written, the end-to-end batch."""

from __future__ import annotations

import os
import sys

import nbformat
import pytest
from batch_helpers import tiny_batch, tiny_plan

from pqlab import batch, config, store
from pqlab.cli import main


@pytest.mark.parametrize("profile", config.PROFILES)
def test_every_profile_is_a_valid_plan(profile):
    plan = batch.load_plan(profile)
    assert [spec.name for spec, _ in plan.notebooks] == [s.name for s in config.NOTEBOOKS]
    assert plan.timeout_s == config.TIMEOUT_S[profile]


def test_a_yaml_file_overrides_a_profile(tmp_path):
    path = tmp_path / "plan.yaml"
    path.write_text("profile: quick\ntimeout_s: 42\nnotebooks:\n"
                    "  01-single-baseline: {TASK_COUNTS: [123]}\n")
    plan = batch.load_plan(None, path)
    params = dict((spec.name, values) for spec, values in plan.notebooks)
    assert params["01-single-baseline"]["TASK_COUNTS"] == [123]
    assert params["02-threads"] == config.notebook("02-threads").parameters("quick")
    assert (plan.profile, plan.timeout_s) == ("quick", 42)


@pytest.mark.parametrize("text, message", [
    ("profile: [unclosed", "not valid YAML at line 1"),
    ("- a list", "expected a mapping"),
    ("profiel: quick", "unknown key 'profiel'"),
    ("profile: huge", "unknown profile 'huge'"),
    ("timeout_s: -1", "timeout_s must be a positive integer"),
    ("notebooks: {99-nope: {}}", "unknown notebook '99-nope'"),
    ("notebooks: {02-threads: {TASKS: [1]}}", "unknown parameter 'TASKS' for 02-threads"),
    ("notebooks: {02-threads: {TASK_COUNTS: [-5]}}", "TASK_COUNTS must hold positive"),
    ("notebooks: {01-single-baseline: {QUEUES: [nope]}}", "QUEUES: unknown queue 'nope'"),
    ("notebooks: {01-single-baseline: {RUN_ID: x}}", "RUN_ID is set by the batch"),
])
def test_a_bad_plan_is_one_line_naming_the_problem(tmp_path, text, message):
    path = tmp_path / "plan.yaml"
    path.write_text(text)
    with pytest.raises(batch.PlanError) as info:
        batch.load_plan(None, path)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_cli_bad_plan_exits_2_and_writes_nothing(tmp_path, capsys):
    path = tmp_path / "plan.yaml"
    path.write_text("notebooks: {02-threads: {WORKER_COUNTS: [0]}}")
    out = tmp_path / "out"
    assert main(["batch", "-f", str(path), "--output", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "WORKER_COUNTS" in err
    assert not out.exists()


def test_the_batch_produces_data_figures_notebooks_and_the_adr():
    out, result, lines = tiny_batch()
    run_dir = out / "data" / result.run.run_id
    for name in ("summary.parquet", "samples.parquet", "machine.json", "run.json"):
        assert (run_dir / name).is_file(), name
    figures = out / "figures" / result.run.run_id
    svgs = sorted(p.stem for p in figures.glob("*.svg"))
    assert len(svgs) >= 10 and all((figures / f"{s}.png").is_file() for s in svgs)
    assert len(result.executed) == len(config.NOTEBOOKS)
    for path in result.executed:
        assert path.parent == run_dir / "notebooks"
        nb = nbformat.read(path, as_version=4)
        assert not [o for c in nb.cells for o in c.get("outputs", [])
                    if o["output_type"] == "error"], path.name
    assert (out / "docs" / "adr" / config.ADR_FILENAME).is_file()
    assert set(store.Run.open(out / "data", result.run.run_id).summary()["scenario"]) >= {
        "single", "threads", "async", "ordering"}
    manifest = result.run.manifest()
    assert manifest["batch"]["seconds"] > 0 and manifest["profile"] == "quick"
    printed = "\n".join(lines)
    for word in ("data:", "figures:", "notebooks:", "ADR:", str(out)):
        assert word in printed


def test_a_failing_notebook_stops_the_batch_naming_the_cell(tmp_path):
    plan = tiny_plan(**{"02-threads": {"QUEUES": ["heapq"]}})  # a name, but not thread-safe
    plan.notebooks = [(s, v) for s, v in plan.notebooks if s.name in ("02-threads", "00-decision")]
    lines = []
    with pytest.raises(batch.BatchError) as info:
        batch.run_batch(plan, tmp_path, echo=lines.append)
    message = str(info.value)
    assert "02-threads.ipynb" in message and "params.validate" in message
    assert "ParameterError" in message and "QUEUES" in message
    assert not any("00-decision" in line for line in lines)  # stopped, not continued


def test_a_notebook_that_cannot_run_here_is_skipped_with_its_reason(tmp_path):
    spec = config.NotebookSpec("05-across-machines.ipynb", {},
                               skip_reason=lambda: "no server could start")
    plan = batch.Plan("test", "quick", 60, [(spec, {})])
    lines = []
    result = batch.run_batch(plan, tmp_path, echo=lines.append)
    assert result.skipped == [("05-across-machines", "no server could start")]
    assert any("skipped: no server could start" in line for line in lines)


def test_the_project_kernel_runs_this_python():
    from jupyter_client.kernelspec import KernelSpecManager

    before = os.environ.get("JUPYTER_PATH")
    with batch.project_kernel() as name:
        spec = KernelSpecManager().get_kernel_spec(name)
    assert spec.argv[0] == sys.executable
    assert spec.env["PYTHONPATH"].split(os.pathsep)[0] == str(config.ROOT)
    assert os.environ.get("JUPYTER_PATH") == before
