import json
import math
import pickle

import pytest
import yaml

from pqlab.queues.policy import (
    OUTCOMES,
    LevelPolicy,
    PolicyError,
    QueuePolicy,
    Rejected,
    TimeoutAction,
    check_request_timeout,
    is_active,
    parse_level,
)


def test_a_level_policy_defaults_to_triton_s_unbounded_no_timeout_reject():
    p = LevelPolicy()
    assert (p.max_queue_size, p.default_timeout_s, p.allow_timeout_override,
            p.timeout_action) == (0, 0.0, False, TimeoutAction.REJECT)
    assert not p.has_timeouts and QueuePolicy().is_default() and not is_active(QueuePolicy())
    assert not is_active(None)
    assert OUTCOMES == ("admitted", "rejected", "expired", "cancelled", "served")


@pytest.mark.parametrize("level_policy", [
    LevelPolicy(max_queue_size=1), LevelPolicy(default_timeout_s=0.5),
    LevelPolicy(allow_timeout_override=True)])
def test_a_limit_or_a_possible_timeout_anywhere_makes_a_policy_active(level_policy):
    assert is_active(QueuePolicy(default=level_policy))
    assert is_active(QueuePolicy(levels={4: level_policy}))
    # DELAY with no timeout changes nothing
    assert not is_active(QueuePolicy(LevelPolicy(timeout_action=TimeoutAction.DELAY)))


def test_for_level_takes_the_level_s_override_else_the_default():
    low = LevelPolicy(max_queue_size=5)
    policy = QueuePolicy(LevelPolicy(default_timeout_s=2), {4: low})
    assert policy.for_level(4) is low and policy.for_level(1) is policy.default


@pytest.mark.parametrize("kwargs, field", [
    ({"max_queue_size": -1}, "max_queue_size"),
    ({"max_queue_size": 2.5}, "max_queue_size"),
    ({"max_queue_size": True}, "max_queue_size"),
    ({"default_timeout_s": -0.1}, "default_timeout_s"),
    ({"default_timeout_s": math.inf}, "default_timeout_s"),
    ({"default_timeout_s": "1"}, "default_timeout_s"),
    ({"allow_timeout_override": 1}, "allow_timeout_override"),
    ({"timeout_action": "DROP"}, "timeout_action"),
])
def test_a_bad_level_field_is_one_error_naming_it(kwargs, field):
    with pytest.raises(PolicyError) as e:
        LevelPolicy(**kwargs)
    message = str(e.value)
    assert message.startswith(field) and "\n" not in message
    if field == "timeout_action":
        assert "REJECT, DELAY" in message and "'DROP'" in message


def test_an_action_is_taken_by_name_in_any_case():
    assert LevelPolicy(timeout_action="delay").timeout_action is TimeoutAction.DELAY
    assert LevelPolicy(timeout_action="REJECT").timeout_action is TimeoutAction.REJECT


def test_from_mapping_takes_names_numbers_and_numeric_strings_and_round_trips():
    data = {"default": {"max_queue_size": 100, "default_timeout_s": 2},
            "levels": {1: {"max_queue_size": 0}, "LOW": {"timeout_action": "DELAY",
                                                        "default_timeout_s": 5},
                       "2": {"allow_timeout_override": True, "default_timeout_s": 1.5}}}
    policy = QueuePolicy.from_mapping(data)
    assert sorted(policy.levels) == [1, 2, 4]
    assert policy.for_level(4).timeout_action is TimeoutAction.DELAY
    assert policy.for_level(3) == LevelPolicy(max_queue_size=100, default_timeout_s=2.0)
    assert QueuePolicy.from_mapping(policy.to_mapping()) == policy
    # through JSON (string keys) and YAML
    assert QueuePolicy.from_mapping(json.loads(json.dumps(policy.to_mapping()))) == policy
    assert QueuePolicy.from_mapping(yaml.safe_load(yaml.safe_dump(policy.to_mapping()))) == policy
    assert QueuePolicy.from_mapping({}) == QueuePolicy()


@pytest.mark.parametrize("data, start", [
    ({"levels": {"LOW": {"max_queue_size": -1}}}, "levels.LOW.max_queue_size"),
    ({"default": {"timeout_action": "later"}}, "default.timeout_action"),
    ({"default": {"timeout": 1}}, "default.timeout is not a policy field"),
    ({"levels": {"URGENT": {}}}, "levels key 'URGENT' is not a level"),
    ({"levels": {4: {}, "LOW": {}}}, "levels.LOW: level 4 is given twice"),
    ({"default": {}, "level": {}}, "level is not a queue policy key"),
    ({"levels": [1, 2]}, "levels must be a mapping"),
    ({"default": 3}, "default must be a mapping"),
    ([1], "a queue policy must be a mapping"),
])
def test_from_mapping_errors_name_the_field(data, start):
    with pytest.raises(PolicyError) as e:
        QueuePolicy.from_mapping(data)
    assert str(e.value).startswith(start) and "\n" not in str(e.value)


def test_a_queue_policy_checks_its_parts():
    with pytest.raises(PolicyError, match="default must be a LevelPolicy"):
        QueuePolicy(default={"max_queue_size": 1})
    with pytest.raises(PolicyError, match="levels.2 must be a LevelPolicy"):
        QueuePolicy(levels={2: 7})
    with pytest.raises(PolicyError, match="levels key True is not a level"):
        QueuePolicy(levels={True: LevelPolicy()})
    assert parse_level("critical") == 1 and parse_level(" 3 ") == 3


def test_check_levels_names_a_level_the_queue_lacks():
    policy = QueuePolicy(levels={5: LevelPolicy(max_queue_size=1)})
    policy.check_levels((1, 2, 3, 4, 5))
    with pytest.raises(PolicyError, match=r"^levels.5: the queue has no level 5; its levels "
                                          r"are 1, 2, 3, 4$"):
        policy.check_levels((1, 2, 3, 4))


@pytest.mark.parametrize("value", [0, -1, 0.0, math.inf, math.nan, "1", True, None])
def test_a_request_timeout_must_be_a_positive_number(value):
    policy = LevelPolicy(default_timeout_s=2, allow_timeout_override=True)
    with pytest.raises(PolicyError, match="^request_timeout_s must be a positive number"):
        check_request_timeout(value, 3, policy)


def test_a_request_may_only_shorten_its_timeout_and_only_with_the_override():
    allowing = LevelPolicy(default_timeout_s=2, allow_timeout_override=True)
    assert check_request_timeout(0.5, 3, allowing) == 0.5
    assert check_request_timeout(2, 3, allowing) == 2.0
    with pytest.raises(PolicyError, match=r"^request_timeout_s 2.5 is longer than level 3 "
                                          r"\(NORMAL\)'s default_timeout_s 2.0: a request may "
                                          r"only shorten its timeout$"):
        check_request_timeout(2.5, 3, allowing)
    # no default timeout: any timeout shortens "for ever"
    assert check_request_timeout(60, 1, LevelPolicy(allow_timeout_override=True)) == 60.0
    with pytest.raises(PolicyError, match=r"^request_timeout_s is not allowed at level 4 \(LOW\): "
                                          r"its allow_timeout_override is false$"):
        check_request_timeout(0.5, 4, LevelPolicy(default_timeout_s=2))


def test_rejected_is_the_callers_503_naming_level_and_reason():
    e = Rejected(4, 100, 100)
    assert (e.level, e.reason) == (4, "full")
    assert str(e) == "level 4 (LOW) is full: 100 queued, max_queue_size 100"
    assert str(Rejected(7, 1, 1)) == "level 7 is full: 1 queued, max_queue_size 1"
    assert not isinstance(e, ValueError) and issubclass(PolicyError, ValueError)


def test_policies_are_hashable_and_errors_pickle_as_they_were():
    a = QueuePolicy(LevelPolicy(max_queue_size=3), {4: LevelPolicy(default_timeout_s=1)})
    b = QueuePolicy.from_mapping(a.to_mapping())
    assert a == b and hash(a) == hash(b) and len({a, b, QueuePolicy()}) == 2
    assert pickle.loads(pickle.dumps(a)) == a
    e = pickle.loads(pickle.dumps(Rejected(2, 5, 5)))
    assert (e.level, e.reason, str(e)) == (2, "full", "level 2 (HIGH) is full: 5 queued, "
                                                      "max_queue_size 5")


@pytest.mark.parametrize("text", ["--1", "-", "1-", " - 2", "1.5"])
def test_a_malformed_level_key_is_a_policy_error_naming_it(text):
    with pytest.raises(PolicyError, match=f"levels key {text!r} is not a level"):
        parse_level(text)


def test_a_level_given_twice_under_two_names_is_an_error():
    with pytest.raises(PolicyError, match="levels.CRITICAL: level 1 is given twice"):
        QueuePolicy(levels={1: LevelPolicy(max_queue_size=1),
                            "CRITICAL": LevelPolicy(max_queue_size=2)})
