"""One look per queue in every figure: a hue per family, a lightness, marker and line
style per member.

A queue's style depends only on its name, never on which other queues a figure
shows, so a reader who learnt a queue's look in one figure finds it in the next.
The families are chosen here, once; a queue registered by a user and not listed
gets a deterministic style from the grey-olive ``other`` family.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

LineStyle = str | tuple[int, tuple[int, ...]]


@dataclass(frozen=True)
class QueueStyle:
    """How a queue is drawn: ``color`` (hex), ``marker`` and ``linestyle`` (matplotlib)."""

    family: str
    color: str
    marker: str
    linestyle: LineStyle


@dataclass(frozen=True)
class Family:
    """Queues of one kind: one hue; per member a lightness, a marker of its own."""

    name: str
    members: tuple[str, ...]
    colors: tuple[str, ...]  # per member; neighbours differ in lightness
    markers: tuple[str, ...]  # per member; no marker is used by two queues


# Hues near the Okabe-Ito colour-blind-safe set (blue, purple, vermillion, bluish
# green) plus greys, each stretched into a lightness ramp: families sit at least 60
# degrees of hue apart, members of a family at least 0.08 apart in HLS lightness
# (tests/decide/test_style.py checks both). Simulated deuteranopia turns the greens grey and
# the oranges olive, so every registered queue also has a marker of its own.
FAMILIES = (
    Family("stdlib heap", ("heapq", "queue.PriorityQueue", "asyncio.PriorityQueue"),
           ("#10389a", "#3a6fd6", "#7aa2ec"), ("o", "s", "^")),
    Family("POC lock + heap", ("ThreadSafeHeapQueue",), ("#a0449f",), ("D",)),
    Family("pqlab bucket", ("BucketQueue", "ThreadSafeBucketQueue", "AsyncBucketQueue",
                            "BridgeBucketQueue", "ThreadSafeAgingQueue"),
           ("#dd5f0a", "#6e2400", "#f4a060", "#a83800", "#f0843a"),
           ("v", "P", "X", "p", "h")),
    Family("third-party bridge", ("janus.PriorityQueue", "culsans.PriorityQueue"),
           ("#007a4d", "#4cc28c"), ("<", ">")),
    Family("process-safe", ("multiprocessing", "redis"), ("#1c1c1c", "#8c8c8c"),
           ("*", "d")),
)
OTHER = Family("other", (), ("#6b6b00", "#a8a33a", "#4d4d33"), ("H", "8", "1", "2", "3"))
# Member i of a family gets line style i: no two members of a family share a dash.
LINESTYLES: tuple[LineStyle, ...] = ("-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)))

_STYLES = {name: QueueStyle(family.name, family.colors[i], family.markers[i], LINESTYLES[i])
           for family in FAMILIES for i, name in enumerate(family.members)}


def queue_style(name: str) -> QueueStyle:
    """The style of queue ``name``; never raises.

    A name with parameters, ``ThreadSafeAgingQueue(age=20ms)``, takes its base
    name's style. Any other unknown name gets an ``other`` style chosen by a
    checksum of the name, the same in every process (``hash`` of a str is not).
    """
    name = str(name)
    base = name.split("(", 1)[0]
    if name in _STYLES or base in _STYLES:
        return _STYLES.get(name) or _STYLES[base]
    key = zlib.crc32(name.encode())
    return QueueStyle(OTHER.name, OTHER.colors[key % len(OTHER.colors)],
                      OTHER.markers[key // 7 % len(OTHER.markers)],
                      LINESTYLES[key // 49 % len(LINESTYLES)])

