"""Where a lab's outputs go and how a notebook is planned (pqlab.study.config)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pqlab.study import config


def test_paths_sit_under_the_output_folder(tmp_path):
    p = config.paths(tmp_path / "out")
    assert p.root == (tmp_path / "out").resolve()
    assert p.data == p.root / "data" and p.figures == p.root / "figures"
    assert p.adr_dir == p.root / "docs" / "adr"
    assert p.adr_file == p.adr_dir / config.ADR_FILENAME
    assert p.run_dir("r1") == p.data / "r1"
    assert p.run_adr_file("r1") == p.data / "r1" / config.RUN_ADR_FILENAME
    assert p.figures_dir("r1") == p.figures / "r1"
    assert p.executed_dir("r1") == p.data / "r1" / "notebooks"


def test_no_output_folder_means_the_repository():
    assert config.paths().root == config.ROOT == config.paths("").root
    assert (config.ROOT / "pqlab" / "study" / "config.py").is_file()


def test_a_user_folder_is_expanded(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert config.paths("~/lab").root == (tmp_path / "lab").resolve()


def test_notebook_parameters_are_a_copy_per_profile():
    spec = config.NotebookSpec("01-x.ipynb", {"quick": {"TASKS": 100}})
    got = spec.parameters("quick")
    got["TASKS"] = 1
    assert spec.parameters("quick") == {"TASKS": 100}  # the plan is not changed
    assert spec.parameters("full") == {}
    assert spec.name == "01-x" and spec.source == config.NOTEBOOKS_DIR / "01-x.ipynb"


def test_profiles_have_timeouts_and_remeasure_tries():
    assert set(config.TIMEOUT_S) == set(config.PROFILES) == set(config.REMEASURE_TRIES)
    assert config.TIMEOUT_S["quick"] < config.TIMEOUT_S["default"] < config.TIMEOUT_S["full"]


def test_package_pythonpath_puts_this_pqlab_first(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    first, *rest = config.package_pythonpath().split(os.pathsep)
    assert Path(first) == config.ROOT and rest == ["/elsewhere"]
    monkeypatch.delenv("PYTHONPATH")
    assert config.package_pythonpath() == str(config.ROOT)


def test_a_child_on_that_path_imports_this_pqlab(tmp_path):
    env = {**os.environ, "PYTHONPATH": config.package_pythonpath()}
    out = subprocess.run([sys.executable, "-c", "import pqlab; print(pqlab.__file__)"],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60,
                         check=True).stdout.strip()
    assert Path(out).resolve() == config.ROOT / "pqlab" / "__init__.py"


def test_the_reference_run_is_named_once_and_everything_points_at_it():
    ref = config.REFERENCE_RUN
    paths = config.paths()
    assert (paths.run_dir(ref) / "run.json").is_file() and paths.figures_dir(ref).is_dir()
    ignore = (config.ROOT / ".gitignore").read_text()
    assert f"!/data/{ref}/" in ignore and f"!/figures/{ref}/" in ignore
    assert f"data/{ref}" in (config.ROOT / "README.md").read_text()
    assert f"run `{ref}`" in paths.adr_file.read_text()  # the published record's own run
