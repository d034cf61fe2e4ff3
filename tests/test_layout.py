"""The tests mirror the package: tests/<layer>/test_<module>.py for each pqlab/<layer>/<module>.py
that defines a function or a class."""

from __future__ import annotations

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]

def defines_code(path: pathlib.Path) -> bool:
    """Whether the module defines a function or a class at its top level."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return any(isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
               for node in tree.body)


def layers(root: pathlib.Path) -> list[str]:
    """The subpackages of pqlab/ under ``root``."""
    return sorted(p.name for p in (root / "pqlab").iterdir()
                  if (p / "__init__.py").is_file())


def unmirrored(root: pathlib.Path) -> list[str]:
    """Each pqlab/<layer>/<module>.py that defines code and has no
    tests/<layer>/test_<module>.py, as "<layer>/<module>.py -> tests/<layer>/test_<module>.py"."""
    missing = []
    for layer in layers(root):
        for module in sorted((root / "pqlab" / layer).glob("*.py")):
            if module.name == "__init__.py" or not defines_code(module):
                continue
            test = root / "tests" / layer / f"test_{module.stem}.py"
            name = f"{layer}/{module.name}"
            if test.is_file():
                continue
            missing.append(f"{name} -> {test.relative_to(root)}")
    return missing


def test_every_module_that_defines_code_has_its_test_file():
    missing = unmirrored(ROOT)
    assert not missing, "modules without their test file:\n  " + "\n  ".join(missing)


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
    (root / "tests" / "alpha" / "test_klass.py").write_text("")
    assert unmirrored(root) == []
