"""The record's "How to adopt": which pqlab modules the service needs, and the code it writes.

The code is ``adopt_example.py`` beside this module, printed with the run's
choice and policy in place of its ``QUEUE`` and ``POLICY`` lines; the test
suite runs the printed text (tests/decide/test_adopt_example.py). The modules a copy
needs are found by following the chosen queue's module's pqlab imports, so
the list follows the code.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import pprint
import re
from pathlib import Path

from pqlab.queues import QUEUES
from pqlab.queues.policy import LevelPolicy, QueuePolicy

EXAMPLE_FILE = Path(__file__).with_name("adopt_example.py")
# The example's own pqlab imports, beyond the queue's module: the metrics wrapper.
EXAMPLE_EXTRA = ("pqlab.queues.prometheus",)


def _module_file(module: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(module)
    except ModuleNotFoundError:
        return None
    return Path(spec.origin) if spec is not None and spec.origin else None


def _pqlab_imports(module: str) -> set[str]:
    """The pqlab modules ``module`` imports (``from pqlab.x import y`` and ``import pqlab.x``)."""
    path = _module_file(module)
    if path is None:
        return set()
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pqlab"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("pqlab")}
    return {m for m in found if _module_file(m) is not None}


def _queue_modules(queue: str) -> list[str]:
    """The modules of the classes ``queue``'s factory builds, plain and under a policy (the
    registry may hand out a factory object, so the built object says where it lives)."""
    factory = QUEUES[queue].factory
    built = [factory()]
    try:
        built.append(factory(policy=QueuePolicy(default=LevelPolicy(max_queue_size=1))))
    except TypeError:  # a queue without policies
        pass
    return list(dict.fromkeys(type(obj).__module__ for obj in built))


def modules_needed(queue: str) -> list[str]:
    """Every pqlab module a copy of ``queue``'s module (and the example) needs, in import
    order of discovery; packages' ``__init__`` re-exports excluded."""
    seen: list[str] = []
    todo = [*_queue_modules(queue), *EXAMPLE_EXTRA]
    while todo:
        module = todo.pop(0)
        if module in seen:
            continue
        seen.append(module)
        todo += sorted(_pqlab_imports(module) - set(seen))
    return [m for m in seen if _module_file(m) is not None
            and _module_file(m).name != "__init__.py"]


def _compact(policy: dict) -> dict:
    """A policy mapping without the fields that hold their defaults (easier to read)."""
    default = LevelPolicy().to_mapping()

    def level(mapping: dict) -> dict:
        return {k: v for k, v in mapping.items() if default.get(k) != v}
    out = {"default": level(policy.get("default", {}))} if policy.get("default") else {}
    levels = {k: level(v) for k, v in policy.get("levels", {}).items() if level(v)}
    return {k: v for k, v in {**out, "levels": levels}.items() if v}


def snippet(queue: str, policy_spec: str | None) -> str:
    """The example's code with the run's queue and policy (``{}``: none sized in the run)."""
    policy = _compact(json.loads(policy_spec)) if policy_spec else {}
    text = EXAMPLE_FILE.read_text()
    text = text.split('"""', 2)[2].lstrip("\n")  # the module docstring speaks to pqlab's readers
    text = re.sub(r'^QUEUE = .*$', lambda _: f"QUEUE = {queue!r}", text, count=1, flags=re.M)
    policy_text = pprint.pformat(policy, width=88, sort_dicts=False).replace("\n", "\n" + " " * 9)
    return re.sub(r'^POLICY = .*$', lambda _: f"POLICY = {policy_text}", text, count=1,
                  flags=re.M)


def section(queue: str | None, policy_label: str | None, policy_spec: str | None) -> list[str]:
    """The "How to adopt" section for ``queue`` under ``policy_spec``."""
    lines = ["## How to adopt", ""]
    if queue is None or queue not in QUEUES:
        return lines + ["No queue passed every gate in ModelMora's context: nothing to adopt.",
                        ""]
    modules = modules_needed(queue)
    policy = (f"the policy `{policy_label}` from notebook 08" if policy_spec
              else "no policy (this run sized none: run notebook 08)")
    return lines + [
        "The service depends on pqlab, pinned to the run's commit (a copy would need "
        + ", ".join(f"`{m.replace('pqlab.', '').replace('.', '/')}.py`" for m in modules)
        + f" and their tests). Its code: the queue with {policy}, counters for Prometheus, "
        "503 for a full level, cancel when the client leaves, shutdown in the lifespan "
        "(`pqlab/service/app.py` is the full version; the test suite runs this one).",
        "",
        "```python",
        snippet(queue, policy_spec).rstrip(),
        "```",
        "",
    ]
