"""The docs stay honest: README commands, Makefile targets and the layout tree agree."""

from __future__ import annotations

import re
import shlex

import pytest

from pqlab import config
from pqlab.cli import COMMANDS, build_parser

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


def test_the_layout_tree_names_every_module():
    listed = set(_layout_paths())
    modules = {f"pqlab/{p.name}" for p in (config.ROOT / "pqlab").glob("*.py")
               if not p.name.startswith("__")}
    assert sorted(modules - listed) == []
