"""One validator per concept, shared by the library, the notebook parameters and the CLI.

Each returns the checked value and raises ``error`` (``ValueError`` unless the
caller asks for its own subclass, e.g. ``ParameterError``) with a message that
names the field, what is allowed and what was given.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

LEVEL_NAMES = ("CRITICAL", "HIGH", "NORMAL", "LOW")


def positive_int(name: str, value: Any, error: type[ValueError] = ValueError) -> int:
    """An ``int`` > 0 (``bool`` is refused: ``True`` is not a count)."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise error(f"{name} must be a positive integer, got {value!r}")
    return value


def positive_number(name: str, value: Any, error: type[ValueError] = ValueError,
                    limit: float = 1e12) -> float:
    """A finite real number in (0, ``limit``), returned as ``float``."""
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not 0 < value < limit or not math.isfinite(value)):
        raise error(f"{name} must be a positive number, got {value!r}")
    return float(value)


def priority_weights(weights: Sequence[float] | None, name: str = "weights",
                     error: type[ValueError] = ValueError) -> list[float]:
    """Relative frequencies of CRITICAL, HIGH, NORMAL, LOW: four numbers >= 0, positive sum.

    ``None`` means uniform.
    """
    if weights is None:
        return [1.0] * len(LEVEL_NAMES)
    try:
        values = [float(w) for w in weights]
    except (TypeError, ValueError):
        values = []
    if (len(values) != len(LEVEL_NAMES) or any(not w >= 0 for w in values)
            or not sum(values) > 0 or not all(math.isfinite(w) for w in values)):
        raise error(f"{name} must be {len(LEVEL_NAMES)} non-negative numbers "
                    f"({', '.join(LEVEL_NAMES)}) with a positive sum, got {weights!r}")
    return values
