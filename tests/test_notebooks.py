"""The notebooks: committed clean, conventional layout, run under papermill, stop on bad input."""

from __future__ import annotations

import ast
import re

import nbformat
import papermill
import pytest
from batch_helpers import TINY
from kernel_helpers import shared_kernel

from pqlab import studies
from pqlab.study import config
from pqlab.study.params import CHECKS

# The batch's notebooks; the explorer has its own checks (tests/lab/test_explore.py).
SOURCES = sorted(p for p in config.NOTEBOOKS_DIR.glob("*.ipynb") if p != config.EXPLORER)


def _read(path):
    return nbformat.read(path, as_version=4)


def test_the_batch_plan_lists_every_notebook_but_the_explorer():
    assert sorted(p.name for p in SOURCES) == sorted(s.filename for s in studies.plan())
    assert config.EXPLORER.is_file() and config.EXPLORER.name not in {
        s.filename for s in studies.plan()}
    assert all(re.match(r"\d\d-[a-z0-9-]+\.ipynb$", p.name) for p in SOURCES)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.stem)
def test_committed_without_outputs(path):
    nb = _read(path)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, cell.source[:40]
    assert nb.metadata["kernelspec"]["name"] == config.KERNEL_NAME


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.stem)
def test_layout_follows_the_style(path):
    code = [c for c in _read(path).cells if c.cell_type == "code"]
    assert "print_versions()" in code[0].source
    tagged = [i for i, c in enumerate(code) if "parameters" in c.metadata.get("tags", [])]
    assert tagged == [1]
    for node in ast.parse(code[1].source).body:  # plain NAME = literal lines
        assert isinstance(node, ast.Assign) and node.targets[0].id.isupper()
        ast.literal_eval(node.value)
        assert node.targets[0].id in CHECKS, f"{node.targets[0].id} has no check"
    for line in code[1].source.splitlines():
        assert "#" in line, f"no comment of allowed values: {line}"
    assert "params.validate(" in code[2].source
    assert "lab.produced(" in code[-1].source
    headings = [c.source for c in _read(path).cells if c.cell_type == "markdown"]
    numbers = [int(m.group(1)) for h in headings for m in [re.match(r"## (\d+)\.", h)] if m]
    assert numbers == list(range(1, len(numbers) + 1)) and numbers


@pytest.fixture(scope="module")
def kernel():
    with shared_kernel() as started:
        yield started


@pytest.mark.slow
@pytest.mark.notebook
@pytest.mark.parametrize("notebook, bad, name", [
    ("01-single-baseline", {"TASK_COUNTS": [-5]}, "TASK_COUNTS"),
    ("02-threads", {"QUEUES": ["no-such-queue"]}, "QUEUES"),
    ("06-processes-redis", {"QUEUES": ["queue.PriorityQueue"]}, "QUEUES"),
    ("09-end-to-end", {"RATES": [-5]}, "RATES"),
    ("09-end-to-end", {"MODES": ["threads"], "QUEUES": ["asyncio.PriorityQueue"]}, "QUEUES"),
])
def test_an_invalid_parameter_stops_in_the_validation_cell(kernel, tmp_path, notebook, bad,
                                                          name):
    spec = studies.notebook(notebook)
    parameters = {**spec.parameters("quick"), **TINY.get(notebook, {}), **bad,
                  "OUTPUT_DIR": str(tmp_path)}
    with pytest.raises(papermill.PapermillExecutionError) as info:
        kernel.execute(spec.source, tmp_path / spec.filename, parameters)
    error = info.value
    assert error.ename == "ParameterError" and name in error.evalue
    assert error.source.startswith("P = params.validate(")
    assert not (tmp_path / "data").exists()  # stopped before measuring anything
