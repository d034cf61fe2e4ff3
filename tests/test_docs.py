"""The docs stay honest: README commands, Makefile targets and the layout tree agree."""

from __future__ import annotations

import re
import shlex

import pytest

from pqlab.cli.main import COMMANDS, build_parser
from pqlab.study import config

README = (config.ROOT / "README.md").read_text()
MAKEFILE = (config.ROOT / "Makefile").read_text()


def _documented_targets() -> set[str]:
    return set(re.findall(r"^([a-z][a-z-]*):.*## ", MAKEFILE, re.MULTILINE))


def _readme_make_targets() -> set[str]:
    return set(re.findall(r"`?make ([a-z][a-z-]*)", README))


def _readme_commands() -> list[str]:
    text = README.replace("\\\n", " ")
    return [line.split("#")[0].strip() for line in text.splitlines()
            if line.strip().startswith("python -m pqlab")]


def test_every_make_target_in_the_readme_exists():
    assert _readme_make_targets() - _documented_targets() == set()


def test_every_documented_target_is_in_the_readme():
    assert _documented_targets() - _readme_make_targets() == set()


def test_every_target_has_a_help_line():
    targets = set(re.findall(r"^([a-z][a-z-]*):", MAKEFILE, re.MULTILINE))
    assert targets == _documented_targets()


@pytest.mark.parametrize("command", _readme_commands())
def test_readme_commands_parse(command):
    argv = shlex.split(command)[3:]
    assert argv[0] in COMMANDS
    build_parser().parse_args(argv)  # raises on an unknown option or a bad value


def _layout_paths() -> list[str]:
    tree = README.split("## Layout", 1)[1].split("```")[1]
    return [line.split()[0] for line in tree.strip().splitlines()]


def test_the_layout_tree_names_real_paths():
    for path in _layout_paths():
        assert (config.ROOT / path).exists(), path


def _modules() -> set[str]:
    pqlab = config.ROOT / "pqlab"
    return {str(p.relative_to(config.ROOT)) for p in pqlab.rglob("*.py")
            if p.name != "__init__.py" or p.parent != pqlab} - {"pqlab/__main__.py"}


def test_the_layout_tree_names_every_module():
    listed = set(_layout_paths())
    assert sorted(m for m in _modules() if not m.endswith("/__init__.py") and m not in listed) == []


def test_the_design_names_every_module_in_its_layer():
    """docs/design.md's layers table lists each subpackage's modules, and nothing else."""
    design = (config.ROOT / "docs" / "design.md").read_text()
    table = design.split("## The layers", 1)[1].split("\n\n|", 1)[1].split("\n\n", 1)[0]
    named = set()
    for row in table.splitlines()[2:]:
        package, modules = (cell.strip(" `") for cell in row.strip("|").split("|")[:2])
        named |= {f"pqlab/{package}/{m.strip(' `')}.py" for m in modules.split(",")}
    actual = {m for m in _modules() if not m.endswith("/__init__.py")}
    assert sorted(actual - named) == [] and sorted(named - actual) == []
