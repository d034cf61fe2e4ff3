"""The package's architecture, enforced: layers, no import cycles, no private names shared.

The layers, bottom to top (docs/design.md explains each). A module may import
from its own layer and the layers below, never from one above. ``pqlab``'s
own ``__init__`` (the public API) and ``__main__`` sit above every layer.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1] / "pqlab"
LAYERS = ("core", "queues", "measure", "scenarios", "harness", "service", "study", "decide",
          "studies", "record", "lab", "cli")
TOP = {"pqlab", "pqlab.__main__"}


def module_name(path: pathlib.Path, root: pathlib.Path = ROOT) -> str:
    parts = ("pqlab", *path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int | None:
    """The layer index of a pqlab module (None for the top-level API)."""
    if module in TOP:
        return None
    return LAYERS.index(module.split(".")[1])


def imports(path: pathlib.Path, root: pathlib.Path = ROOT) -> list[tuple[str, list[str], int]]:
    """Every pqlab import of a file: (module imported, names taken, line), nested ones too."""
    found = []
    me = module_name(path, root)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(a.name, [], node.lineno) for a in node.names if a.name.startswith("pqlab")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0]
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            if target.startswith("pqlab"):
                found.append((target, [a.name for a in node.names], node.lineno))
    return found


def resolve(target: str, name: str, modules: set[str]) -> str:
    """``from target import name``: the submodule when ``name`` is one, else ``target``."""
    return f"{target}.{name}" if f"{target}.{name}" in modules else target


def graph(root: pathlib.Path = ROOT) -> tuple[dict[str, set[str]], list[str]]:
    """The import graph of every pqlab module, and the problems found on the way.

    Problems: an import from a higher layer, an underscore name imported from
    another module, a private module (``_x``) imported from outside its package.
    """
    files = {module_name(p, root): p for p in root.rglob("*.py")}
    modules = set(files)
    edges: dict[str, set[str]] = {m: set() for m in modules}
    problems = []
    for me, path in files.items():
        mine = layer_of(me)
        for target, names, line in imports(path, root):
            for dep in {resolve(target, n, modules) for n in names} or {target}:
                if dep not in modules:
                    problems.append(f"{me}:{line} imports {dep}, which does not exist")
                    continue
                edges[me].add(dep)
                theirs = layer_of(dep)
                if mine is not None and theirs is not None and theirs > mine:
                    problems.append(f"{me}:{line} imports {dep}: layer {LAYERS[mine]} may not "
                                    f"import from the higher layer {LAYERS[theirs]}")
                private = [p for p in dep.split(".") if p.startswith("_") and p != "__init__"]
                home = dep.rpartition(".")[0]
                if private and me != home and not me.startswith(home + ".") and me != dep:
                    problems.append(f"{me}:{line} imports the private module {dep} from outside "
                                    "its package")
            for n in names:
                if n.startswith("_") and not n.startswith("__") and dep != me:
                    problems.append(f"{me}:{line} imports the private name {n} from {target}")
    return edges, problems


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected set of two or more modules (Tarjan), each sorted.

    A package's ``__init__`` importing its own submodules is not a cycle with
    them (a submodule importing a sibling goes to the sibling, not the package).
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def package_edges(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    """The graph without a package ``__init__``'s edges to its own submodules."""
    return {m: {d for d in ds if not d.startswith(m + ".")} for m, ds in edges.items()}


def test_every_module_is_in_a_layer():
    stray = [m for m in graph()[0] if m not in TOP and m.split(".")[1] not in LAYERS]
    assert not stray, f"modules outside every layer: {stray}"


def test_no_upward_import_and_no_private_name_across_modules():
    _, problems = graph()
    assert not problems, "\n".join(problems)


def test_no_import_cycle_deferred_or_not():
    found = cycles(package_edges(graph()[0]))
    assert not found, f"import cycles: {found}"


def write(root: pathlib.Path, files: dict[str, str]) -> pathlib.Path:
    for name, text in files.items():
        path = root / "pqlab" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "pqlab"


BASE = {"__init__.py": "", "core/__init__.py": "", "core/task.py": "X = 1\n",
        "queues/__init__.py": "", "queues/registry.py": "from pqlab.core.task import X\n"}


@pytest.mark.parametrize(("extra", "expected"), [
    ({"core/bad.py": "def f():\n    from pqlab.queues.registry import Y\n"},
     "layer core may not import from the higher layer queues"),
    ({"queues/other.py": "from pqlab.core.task import _hidden\n"},
     "imports the private name _hidden"),
    ({"core/_engine.py": "", "queues/bad.py": "from pqlab.core import _engine\n"},
     "imports the private module pqlab.core._engine from outside its package"),
])
def test_the_checks_catch_what_they_name(tmp_path, extra, expected):
    root = write(tmp_path, {**BASE, **extra})
    _, problems = graph(root)
    assert any(expected in p for p in problems), problems
    _, clean = graph(write(tmp_path / "clean", BASE))
    assert clean == []


def test_a_deferred_cycle_is_found(tmp_path):
    root = write(tmp_path, {**BASE, "core/a.py": "from pqlab.core import b\n",
                            "core/b.py": "def f():\n    from pqlab.core import a\n"})
    assert cycles(package_edges(graph(root)[0])) == [["pqlab.core.a", "pqlab.core.b"]]


def test_the_runner_and_the_worker_name_no_scenario():
    """They call the scenarios' hooks; a case on a scenario's name would be a hidden contract
    (docs/design.md: "the runner has no case for any scenario by name")."""
    from pqlab.scenarios import SCENARIOS

    for name in ("harness/runner.py", "harness/worker.py", "harness/openunit.py"):
        cases = [n for n in ast.walk(ast.parse((ROOT / name).read_text()))
                 if isinstance(n, ast.Compare | ast.match_case)]
        literals = {c.value for case in cases for c in ast.walk(case)
                    if isinstance(c, ast.Constant) and isinstance(c.value, str)}
        assert not literals & set(SCENARIOS), f"{name} names {literals & set(SCENARIOS)}"
