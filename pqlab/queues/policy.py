"""Queue policies per priority level, as Triton's ``ModelQueuePolicy``: limits, timeouts, action.

A ``QueuePolicy`` gives each level a ``LevelPolicy`` (``levels`` overrides
``default``, as Triton's ``priority_queue_policy`` overrides its
``default_queue_policy``):

- ``max_queue_size``: at most this many requests queued at the level (0:
  unbounded). A put that does not fit raises ``Rejected`` at once (Triton's
  UNAVAILABLE, HTTP 503) and never blocks; other levels still admit.
- ``default_timeout_s``: seconds a request may wait (0: for ever).
- ``allow_timeout_override``: whether a request may carry its own timeout; it
  may only *shorten* the level's (any timeout shortens "for ever": unlike
  Triton, which ignores a request's timeout where the default is 0).
- ``timeout_action``: ``REJECT`` (an expired request is never handed to a
  getter: it is reported, ``drain_expired()`` or ``on_expired``) or ``DELAY``
  (it waits behind every request of its level that has not timed out; levels
  stay in priority order, so it still goes before any lower level).

Every outcome of a put is one of ``OUTCOMES``: ``rejected`` (never queued)
or ``admitted``, and an admitted request is later ``served``, ``expired``,
``cancelled`` or still queued. Bad input raises ``PolicyError`` naming the
field and what is allowed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

from pqlab.core.task import Priority

OUTCOMES = ("admitted", "rejected", "expired", "cancelled", "served")


class PolicyError(ValueError):
    """A bad policy or request timeout: the message names the field and what is allowed."""


class Rejected(Exception):  # noqa: N818 - the caller's 503, named for what happened
    """A put refused because its level is full: the caller's 503.

    ``level`` is the priority level, ``reason`` is ``"full"``.
    """

    def __init__(self, level: int, queued: int, max_queue_size: int) -> None:
        self.level = level
        self.reason = "full"
        self._parts = (level, queued, max_queue_size)
        super().__init__(f"{level_name(level)} is full: {queued} queued, "
                         f"max_queue_size {max_queue_size}")

    def __reduce__(self) -> tuple:
        return (type(self), self._parts)  # pickles (a worker process's error) as it was made


class TimeoutAction(StrEnum):
    """What happens to a request whose timeout passed while it was queued (Triton's enum)."""

    REJECT = "REJECT"
    DELAY = "DELAY"


def level_name(level: int) -> str:
    """``level 4 (LOW)`` for a named priority, ``level 7`` otherwise."""
    try:
        return f"level {level} ({Priority(level).name})"
    except ValueError:
        return f"level {level}"


def _check_size(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PolicyError(f"{where}max_queue_size must be a non-negative integer "
                          f"(0: unbounded), got {value!r}")
    return value


def _check_timeout(value: Any, where: str) -> float:
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not 0 <= value < math.inf):
        raise PolicyError(f"{where}default_timeout_s must be a non-negative number of seconds "
                          f"(0: no timeout), got {value!r}")
    return float(value)


def _check_action(value: Any, where: str) -> TimeoutAction:
    try:
        return TimeoutAction(value.upper() if isinstance(value, str) else value)
    except ValueError:
        allowed = ", ".join(a.value for a in TimeoutAction)
        raise PolicyError(f"{where}timeout_action must be one of {allowed}, "
                          f"got {value!r}") from None


@dataclass(frozen=True)
class LevelPolicy:
    """One level's policy (Triton's ``ModelQueuePolicy``, timeouts in seconds).

    Raises ``PolicyError`` for a negative or non-integer size, a negative or
    infinite timeout, a non-boolean override or an unknown action (a string
    "reject"/"delay" is taken in any case).
    """

    max_queue_size: int = 0  # 0 = unbounded; a full level rejects at once
    default_timeout_s: float = 0.0  # 0 = no timeout
    allow_timeout_override: bool = False  # a request may only SHORTEN its timeout
    timeout_action: TimeoutAction = TimeoutAction.REJECT

    def __post_init__(self) -> None:
        self._validate("")

    def _validate(self, where: str) -> None:
        _check_size(self.max_queue_size, where)
        object.__setattr__(self, "default_timeout_s",
                           _check_timeout(self.default_timeout_s, where))
        if not isinstance(self.allow_timeout_override, bool):
            raise PolicyError(f"{where}allow_timeout_override must be true or false, "
                              f"got {self.allow_timeout_override!r}")
        object.__setattr__(self, "timeout_action", _check_action(self.timeout_action, where))

    @property
    def has_timeouts(self) -> bool:
        """Whether a request at this level can ever expire."""
        return self.default_timeout_s > 0 or self.allow_timeout_override

    @classmethod
    def from_mapping(cls, data: Any, where: str = "") -> LevelPolicy:
        """A level policy from a mapping of its field names; ``PolicyError`` names a bad field."""
        if not isinstance(data, Mapping):
            raise PolicyError(f"{where.rstrip('.') or 'a level policy'} must be a mapping of "
                              f"{_field_names()}, got {data!r}")
        unknown = sorted(map(str, set(data) - {f.name for f in fields(cls)}))
        if unknown:
            raise PolicyError(f"{where}{unknown[0]} is not a policy field: allowed are "
                              f"{_field_names()}")
        policy = object.__new__(cls)
        for f in fields(cls):
            object.__setattr__(policy, f.name, data.get(f.name, f.default))
        policy._validate(where)
        return policy

    def to_mapping(self) -> dict[str, Any]:
        """The fields as plain values (the action as its name)."""
        return {"max_queue_size": self.max_queue_size,
                "default_timeout_s": self.default_timeout_s,
                "allow_timeout_override": self.allow_timeout_override,
                "timeout_action": self.timeout_action.value}


def _field_names() -> str:
    return ", ".join(f.name for f in fields(LevelPolicy))


def parse_level(key: Any, where: str = "levels") -> int:
    """A level from an int, a numeric string or a priority name (``"LOW"``), else PolicyError."""
    if isinstance(key, bool):
        raise PolicyError(f"{where} key {key!r} is not a level")
    if isinstance(key, int):
        return int(key)
    if isinstance(key, str):
        text = key.strip()
        if re.fullmatch(r"-?[0-9]+", text):
            return int(text)
        if text.upper() in Priority.__members__:
            return int(Priority[text.upper()])
    names = ", ".join(Priority.__members__)
    raise PolicyError(f"{where} key {key!r} is not a level: use an integer or one of {names}")


@dataclass(frozen=True)
class QueuePolicy:
    """A policy per level: ``levels[level]`` where given, else ``default``.

    Raises ``PolicyError`` if ``default`` or a value of ``levels`` is not a
    ``LevelPolicy`` or a key is not a level (see ``parse_level``).
    """

    default: LevelPolicy = field(default_factory=LevelPolicy)
    levels: Mapping[int, LevelPolicy] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.default, LevelPolicy):
            raise PolicyError(f"default must be a LevelPolicy, got {self.default!r}")
        if not isinstance(self.levels, Mapping):
            raise PolicyError(f"levels must be a mapping of level to LevelPolicy, "
                              f"got {self.levels!r}")
        levels = {}
        for key, level_policy in self.levels.items():
            level = parse_level(key)
            if not isinstance(level_policy, LevelPolicy):
                raise PolicyError(f"levels.{key} must be a LevelPolicy, got {level_policy!r}")
            if level in levels:
                raise PolicyError(f"levels.{key}: level {level} is given twice")
            levels[level] = level_policy
        object.__setattr__(self, "levels", dict(sorted(levels.items())))

    def __hash__(self) -> int:
        return hash((self.default, tuple(self.levels.items())))

    def for_level(self, level: int) -> LevelPolicy:
        """The policy in force at ``level``."""
        return self.levels.get(level, self.default)

    def is_default(self) -> bool:
        """Unbounded with no timeouts anywhere: a queue with it behaves as one without."""
        return not any(p.max_queue_size or p.has_timeouts
                       for p in (self.default, *self.levels.values()))

    def check_levels(self, levels: Iterable[int]) -> None:
        """``PolicyError`` if ``levels`` lacks a level this policy names."""
        allowed = tuple(levels)
        missing = [level for level in self.levels if level not in allowed]
        if missing:
            raise PolicyError(f"levels.{missing[0]}: the queue has no level {missing[0]}; "
                              f"its levels are {', '.join(map(str, allowed))}")

    @classmethod
    def from_mapping(cls, data: Any) -> QueuePolicy:
        """A policy from ``{"default": {...}, "levels": {1: {...}, "LOW": {...}}}`` (YAML, JSON).

        Both keys are optional. ``PolicyError`` names the first bad field, e.g.
        ``levels.LOW.max_queue_size must be a non-negative integer ...``.
        """
        if not isinstance(data, Mapping):
            raise PolicyError(f"a queue policy must be a mapping with keys default, levels; "
                              f"got {data!r}")
        unknown = sorted(map(str, set(data) - {"default", "levels"}))
        if unknown:
            raise PolicyError(f"{unknown[0]} is not a queue policy key: allowed are "
                              "default, levels")
        default = LevelPolicy.from_mapping(data.get("default", {}), "default.")
        levels_data = data.get("levels", {})
        if not isinstance(levels_data, Mapping):
            raise PolicyError(f"levels must be a mapping of level to policy, got {levels_data!r}")
        levels = {}
        for key, value in levels_data.items():
            level = parse_level(key)
            if level in levels:
                raise PolicyError(f"levels.{key}: level {level} is given twice")
            levels[level] = LevelPolicy.from_mapping(value, f"levels.{key}.")
        return cls(default, levels)

    def to_mapping(self) -> dict[str, Any]:
        """Plain values that ``from_mapping`` turns back into an equal policy."""
        return {"default": self.default.to_mapping(),
                "levels": {level: p.to_mapping() for level, p in self.levels.items()}}


def is_active(policy: QueuePolicy | None) -> bool:
    """Whether ``policy`` changes anything (not None and not the default)."""
    return isinstance(policy, QueuePolicy) and not policy.is_default()


def check_policy(policy: Any, levels: Iterable[int]) -> None:
    """``PolicyError`` unless ``policy`` is None or a ``QueuePolicy`` fitting ``levels``."""
    if policy is None:
        return
    if not isinstance(policy, QueuePolicy):
        raise PolicyError(f"policy must be a QueuePolicy or None, got {policy!r}")
    policy.check_levels(levels)


def check_request_timeout(request_timeout_s: Any, level: int, policy: LevelPolicy) -> float:
    """The request's own timeout if ``policy`` allows it; else ``PolicyError`` naming why.

    It must be a positive finite number of seconds, the level must allow an
    override, and it may only shorten the level's ``default_timeout_s``.
    """
    if (isinstance(request_timeout_s, bool) or not isinstance(request_timeout_s, (int, float))
            or not 0 < request_timeout_s < math.inf):
        raise PolicyError(f"request_timeout_s must be a positive number of seconds, "
                          f"got {request_timeout_s!r}")
    if not policy.allow_timeout_override:
        raise PolicyError(f"request_timeout_s is not allowed at {level_name(level)}: its "
                          "allow_timeout_override is false")
    if policy.default_timeout_s and request_timeout_s > policy.default_timeout_s:
        raise PolicyError(f"request_timeout_s {request_timeout_s!r} is longer than "
                          f"{level_name(level)}'s default_timeout_s {policy.default_timeout_s!r}: "
                          "a request may only shorten its timeout")
    return float(request_timeout_s)


def refuse_request_timeout(item: Any, request_timeout_s: Any) -> None:
    """A queue without an active policy takes no request timeout: ``PolicyError`` says why."""
    check_request_timeout(request_timeout_s, item.priority, LevelPolicy())
