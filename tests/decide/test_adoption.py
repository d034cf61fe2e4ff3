"""What a copy of the chosen queue needs (pqlab.decide.adoption): its modules, the snippet and
the record's "How to adopt" section."""

from __future__ import annotations

from pathlib import Path

from pqlab.decide import adoption

ROOT = Path(__file__).resolve().parents[2]


def test_a_copy_lists_the_queues_own_module_and_what_it_imports():
    from pqlab.queues import QUEUES
    modules = adoption.modules_needed("AsyncBucketQueue")
    assert modules[0] == type(QUEUES["AsyncBucketQueue"].factory()).__module__
    assert {"pqlab.queues.policy", "pqlab.queues.prometheus", "pqlab.core.task"} <= set(modules)
    assert all((ROOT / (m.replace(".", "/") + ".py")).is_file() for m in modules)
