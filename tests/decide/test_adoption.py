"""What a copy of the chosen queue needs (pqlab.decide.adoption): its modules, the snippet and
the record's "How to adopt" section."""

from __future__ import annotations

import json
from pathlib import Path

from pqlab.decide import adoption

ROOT = Path(__file__).resolve().parents[2]


def test_a_copy_lists_the_queues_own_module_and_what_it_imports():
    from pqlab.queues import QUEUES
    modules = adoption.modules_needed("AsyncBucketQueue")
    assert modules[0] == type(QUEUES["AsyncBucketQueue"].factory()).__module__
    assert {"pqlab.queues.policy", "pqlab.queues.prometheus", "pqlab.core.task"} <= set(modules)
    assert all((ROOT / (m.replace(".", "/") + ".py")).is_file() for m in modules)


POLICY_SPEC = json.dumps({"default": {"max_queue_size": 25, "default_timeout_s": 1.0},
                          "levels": {"4": {"max_queue_size": 3}}})


def test_the_snippet_sets_the_runs_queue_and_policy_and_compiles():
    text = adoption.snippet("BridgeBucketQueue", POLICY_SPEC)
    assert not text.startswith('"""')  # the module docstring speaks to pqlab's readers
    assert "\nQUEUE = 'BridgeBucketQueue'\n" in text
    policy_line = text.split("\nPOLICY = ", 1)[1].split("\nWORKERS", 1)[0]
    assert eval(policy_line) == {"default": {"max_queue_size": 25, "default_timeout_s": 1.0},
                                 "levels": {"4": {"max_queue_size": 3}}}
    compile(text, "service.py", "exec")  # still valid Python
    assert "POLICY = {}" in adoption.snippet("AsyncBucketQueue", None)


def test_the_section_names_the_modules_and_the_policy_or_that_there_is_none():
    lines = adoption.section("AsyncBucketQueue", "limits+timeouts (REJECT)", POLICY_SPEC)
    text = "\n".join(lines)
    assert lines[:2] == ["## How to adopt", ""]
    assert "the policy `limits+timeouts (REJECT)` from notebook 08" in text
    assert "`queues/policy.py`" in text and "```python\n" in text
    assert "no policy (this run sized none" in "\n".join(
        adoption.section("AsyncBucketQueue", None, None))
    assert "nothing to adopt" in "\n".join(adoption.section(None, None, None))
    assert "nothing to adopt" in "\n".join(adoption.section("no.SuchQueue", None, None))
