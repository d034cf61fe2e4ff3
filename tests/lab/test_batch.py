"""pqlab.lab.batch: plans, checks before anything is written, the end-to-end batch."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from batch_helpers import tiny_plan

from pqlab import studies
from pqlab.cli.main import main
from pqlab.lab import batch
from pqlab.study import config, store


@pytest.mark.parametrize("profile", config.PROFILES)
def test_every_profile_is_a_valid_plan(profile):
    plan = batch.load_plan(profile)
    assert [spec.name for spec, _ in plan.notebooks] == [s.name for s in studies.plan()]
    assert plan.timeout_s == config.TIMEOUT_S[profile]


def test_a_yaml_file_overrides_a_profile(tmp_path):
    path = tmp_path / "plan.yaml"
    path.write_text("profile: quick\ntimeout_s: 42\nnotebooks:\n"
                    "  01-single-baseline: {TASK_COUNTS: [123]}\n")
    plan = batch.load_plan(None, path)
    params = dict((spec.name, values) for spec, values in plan.notebooks)
    assert params["01-single-baseline"]["TASK_COUNTS"] == [123]
    assert params["02-threads"] == studies.notebook("02-threads").parameters("quick")
    assert (plan.profile, plan.timeout_s) == ("quick", 42)


def test_the_quick_profile_does_not_measure_busy_units_again_unless_a_plan_asks(tmp_path):
    assert batch.load_plan("quick", None).remeasure_tries == 0  # its record allows busy units
    assert batch.load_plan("default", None).remeasure_tries == config.REMEASURE_TRIES["default"] > 0
    path = tmp_path / "plan.yaml"
    path.write_text("profile: quick\nremeasure_tries: 3\n")
    assert batch.load_plan(None, path).remeasure_tries == 3


@pytest.mark.parametrize("text, message", [
    ("profile: [unclosed", "not valid YAML at line 1"),
    ("- a list", "expected a mapping"),
    ("profiel: quick", "unknown key 'profiel'"),
    ("profile: huge", "unknown profile 'huge'"),
    ("timeout_s: -1", "timeout_s must be a positive integer"),
    ("remeasure_tries: -1", "remeasure_tries must be a whole number >= 0, got -1"),
    ("remeasure_tries: 1.5", "remeasure_tries must be a whole number >= 0, got 1.5"),
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


@pytest.mark.slow
@pytest.mark.notebook
def test_the_batch_produces_data_figures_notebooks_and_the_adr(tiny_batch):
    out, result, lines = tiny_batch
    run_dir = out / "data" / result.run.run_id
    for name in ("summary.parquet", "samples.parquet", "machine.json", "run.json"):
        assert (run_dir / name).is_file(), name
    figures = out / "figures" / result.run.run_id
    svgs = sorted(p.stem for p in figures.glob("*.svg"))
    assert len(svgs) >= 10 and all((figures / f"{s}.png").is_file() for s in svgs)
    assert len(result.executed) + len(result.skipped) == len(studies.plan())
    for path in result.executed:
        assert path.parent == run_dir / "notebooks"
        nb = nbformat.read(path, as_version=4)
        assert not [o for c in nb.cells for o in c.get("outputs", [])
                    if o["output_type"] == "error"], path.name
    assert (run_dir / config.RUN_ADR_FILENAME).is_file()
    assert set(store.Run.open(out / "data", result.run.run_id).summary()["scenario"]) >= {
        "single", "threads", "async", "ordering"}
    manifest = result.run.manifest()
    assert manifest["batch"]["seconds"] > 0 and manifest["profile"] == "quick"
    printed = "\n".join(lines)
    for word in ("data:", "figures:", "notebooks:", "ADR:", str(out)):
        assert word in printed


def test_the_batch_writes_only_into_its_run_folders(tiny_batch):
    """Nothing outside data/<run-id>/ and figures/<run-id>/: docs/adr/ is published only
    when asked, so a batch in a checkout leaves `git status` clean (see the next test)."""
    out, result, lines = tiny_batch
    run_id = result.run.run_id
    written = {p.relative_to(out).parts[:2] for p in out.rglob("*") if p.is_file()}
    assert written == {("data", run_id), ("figures", run_id)}
    assert not (out / "docs").exists()
    adr_line = next(line for line in lines if "ADR:" in line)
    assert str(out / "data" / run_id / config.RUN_ADR_FILENAME) in adr_line
    assert "make adr" in adr_line


def test_the_runs_adr_links_its_figures_relative_to_its_folder(tiny_batch):
    out, result, _ = tiny_batch
    adr = out / "data" / result.run.run_id / config.RUN_ADR_FILENAME
    links = re.findall(r"\]\(([^)]+\.svg)\)", adr.read_text())
    assert links and all((adr.parent / link).resolve().is_file() for link in links)
    assert any("decision-overview" in link for link in links)


def test_new_runs_are_ignored_by_git_and_the_reference_run_is_tracked():
    git = shutil.which("git")
    if git is None or not (config.ROOT / ".git").exists():
        pytest.skip("not a git checkout")

    def ignored(path: str) -> bool:
        return subprocess.run([git, "check-ignore", "-q", "--no-index", path],
                              cwd=config.ROOT).returncode == 0

    for path in ("data/20990101T000000Z-host/adr.md", "data/20990101T000000Z-host/summary.parquet",
                 "data/20990101T000000Z-host/notebooks/01-single-baseline.ipynb",
                 "figures/20990101T000000Z-host/correctness.svg"):
        assert ignored(path), path
    tracked = subprocess.run([git, "ls-files", "data", "figures"], cwd=config.ROOT,
                             capture_output=True, text=True, check=True).stdout.split()
    reference = sorted({Path(p).parts[1] for p in tracked})
    assert reference and not any(ignored(f"{top}/{run}/x") for top in ("data", "figures")
                                 for run in reference)


@pytest.mark.slow
@pytest.mark.notebook
def test_publish_adr_also_writes_docs_adr_with_its_own_links(tmp_path, tiny_batch):
    # The tiny batch's run, resumed with its decision notebook alone, and that skipped:
    # the tiny batch ran it (test_each_notebook_runs_under_papermill_with_tiny_parameters),
    # and publishing, once every notebook ran or was skipped, rewrites the run's record
    # from the stored run and writes docs/adr/ too.
    out, tiny, _ = tiny_batch
    shutil.copytree(out, tmp_path, dirs_exist_ok=True)
    run_adr = tmp_path / "data" / tiny.run.run_id / config.RUN_ADR_FILENAME
    run_adr.unlink()
    plan = tiny_plan()
    plan.notebooks = [(dataclasses.replace(s, skip_reason=lambda: "run by the tiny batch"), v)
                      for s, v in plan.notebooks if s.name == "00-decision"]
    lines = []
    result = batch.run_batch(plan, tmp_path, run_id=tiny.run.run_id, resume=True,
                             publish_adr=True, echo=lines.append)
    assert result.skipped == [("00-decision", "run by the tiny batch")]
    published = tmp_path / "docs" / "adr" / config.ADR_FILENAME
    assert result.published_adr == published and published.is_file()
    links = re.findall(r"\]\(([^)]+\.svg)\)", published.read_text())
    assert links and all((published.parent / link).resolve().is_file() for link in links)
    assert run_adr.is_file()  # rewritten: the copy's was removed above
    assert any(f"published to {published}" in line for line in lines)


def test_the_batch_prints_each_notebooks_progress_while_it_runs(tiny_batch):
    _, _, lines = tiny_batch  # printed at every change: progress_every_s=0
    done_at = next(i for i, line in enumerate(lines) if "01-single-baseline.ipynb: done" in line)
    shown = [m for line in lines[:done_at]
             for m in [re.fullmatch(r"  01-single-baseline: (\d+)/(\d+) units(, ~\d+ s left)?",
                                    line)] if m]
    assert shown, lines
    assert all(0 <= int(m[1]) <= int(m[2]) for m in shown)
    assert any(m[3] for m in shown)  # a time left once a unit was measured


@pytest.mark.slow
@pytest.mark.notebook
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


# The notebooks under papermill: the tiny batch ran each (here, beside its other readers).


@pytest.mark.slow
@pytest.mark.notebook
def test_each_notebook_runs_under_papermill_with_tiny_parameters(tiny_batch):
    out, result, _ = tiny_batch
    skipped = dict(result.skipped)  # 06 without redis-server (never on CI: .ci/run installs it)
    assert [p.name for p in result.executed] == [s.filename for s in studies.plan()
                                                 if s.name not in skipped]
    for path in result.executed:
        nb = nbformat.read(path, as_version=4)
        assert nb.metadata["papermill"]["exception"] is None, path.name
        assert any(o.get("data", {}).get("image/png") for c in nb.cells
                   for o in c.get("outputs", [])) or path.name.startswith("00"), path.name
