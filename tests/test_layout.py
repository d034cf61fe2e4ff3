"""The tests mirror the package: tests/<layer>/test_<module>.py for each pqlab/<layer>/<module>.py
that defines a function or a class."""

from __future__ import annotations

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]

# The layers whose tests are still flat files at the top of tests/: none left.
NOT_YET_MIRRORED: tuple[str, ...] = ()

# Modules whose tests are in a flat file being edited elsewhere right now: the module's
# path -> that file. An entry holds only while the flat file exists and the mirrored one
# does not (test_held_back_entries_are_still_needed); remove it when the file moves.
HELD_BACK = {
    "measure/overload.py": "tests/test_overload.py",
    "scenarios/load.py": "tests/test_load.py",
    "study/loadframes.py": "tests/test_load.py",  # and tests/test_overload.py
    "study/progress.py": "tests/test_progress.py",
    "study/sweep.py": "tests/test_sweep.py",
}


def defines_code(path: pathlib.Path) -> bool:
    """Whether the module defines a function or a class at its top level."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return any(isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
               for node in tree.body)


def layers(root: pathlib.Path) -> list[str]:
    """The subpackages of pqlab/ under ``root``."""
    return sorted(p.name for p in (root / "pqlab").iterdir()
                  if (p / "__init__.py").is_file())


def unmirrored(root: pathlib.Path, skip_layers=(), held_back=None) -> list[str]:
    """Each pqlab/<layer>/<module>.py that defines code and has no
    tests/<layer>/test_<module>.py, as "<layer>/<module>.py -> tests/<layer>/test_<module>.py"."""
    held_back = held_back or {}
    missing = []
    for layer in layers(root):
        if layer in skip_layers:
            continue
        for module in sorted((root / "pqlab" / layer).glob("*.py")):
            if module.name == "__init__.py" or not defines_code(module):
                continue
            test = root / "tests" / layer / f"test_{module.stem}.py"
            name = f"{layer}/{module.name}"
            if test.is_file() or name in held_back:
                continue
            missing.append(f"{name} -> {test.relative_to(root)}")
    return missing


def test_every_module_that_defines_code_has_its_test_file():
    missing = unmirrored(ROOT, NOT_YET_MIRRORED, HELD_BACK)
    assert not missing, "modules without their test file:\n  " + "\n  ".join(missing)


def test_held_back_entries_are_still_needed():
    for module, flat in HELD_BACK.items():
        layer, name = module.split("/")
        assert (ROOT / "pqlab" / module).is_file(), f"{module} is gone: drop its entry"
        assert (ROOT / flat).is_file(), f"{flat} moved: drop {module} from HELD_BACK"
        mirrored = ROOT / "tests" / layer / f"test_{name[:-3]}.py"
        assert not mirrored.is_file(), f"{mirrored.relative_to(ROOT)} exists: drop {module}"


def test_the_exempt_layers_are_layers():
    assert set(NOT_YET_MIRRORED) <= set(layers(ROOT))


def _tree(tmp_path: pathlib.Path) -> pathlib.Path:
    (tmp_path / "pqlab" / "alpha").mkdir(parents=True)
    (tmp_path / "pqlab" / "alpha" / "__init__.py").write_text('"""A layer."""\n')
    (tmp_path / "pqlab" / "alpha" / "code.py").write_text("def f():\n    return 1\n")
    (tmp_path / "pqlab" / "alpha" / "klass.py").write_text("class K:\n    pass\n")
    (tmp_path / "pqlab" / "alpha" / "consts.py").write_text("X = 1\nif X:\n    Y = 2\n")
    (tmp_path / "pqlab" / "notalayer").mkdir()
    (tmp_path / "pqlab" / "notalayer" / "code.py").write_text("def g():\n    pass\n")
    (tmp_path / "tests" / "alpha").mkdir(parents=True)
    return tmp_path


def test_the_check_names_each_module_without_its_test_file(tmp_path):
    root = _tree(tmp_path)
    assert unmirrored(root) == ["alpha/code.py -> tests/alpha/test_code.py",
                                "alpha/klass.py -> tests/alpha/test_klass.py"]
    (root / "tests" / "alpha" / "test_code.py").write_text("")
    (root / "tests" / "test_klass.py").write_text("")  # flat: does not count
    assert unmirrored(root) == ["alpha/klass.py -> tests/alpha/test_klass.py"]
    assert unmirrored(root, held_back={"alpha/klass.py": "tests/test_klass.py"}) == []
    assert unmirrored(root, skip_layers=("alpha",)) == []
    (root / "tests" / "alpha" / "test_klass.py").write_text("")
    assert unmirrored(root) == []
