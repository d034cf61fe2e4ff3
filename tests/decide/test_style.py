"""One look per queue (pqlab.decide.style): a colour and a marker per registered queue, a hue
per family, and a stable style for any other name."""

from __future__ import annotations

import colorsys
import itertools
import os
import subprocess
import sys

import matplotlib.colors as mcolors

from pqlab import QUEUES
from pqlab.decide import plots, style
from pqlab.study import config


def test_registered_queues_differ_in_colour_and_in_marker():
    styles = {name: plots.queue_style(name) for name in QUEUES}
    assert len({(s.color, s.marker, s.linestyle) for s in styles.values()}) == len(QUEUES)
    assert len({mcolors.to_hex(s.color) for s in styles.values()}) == len(QUEUES)
    assert len({s.marker for s in styles.values()}) == len(QUEUES)
    assert all(s.family != style.OTHER.name for s in styles.values()), styles


def _hls(color):
    return colorsys.rgb_to_hls(*mcolors.to_rgb(color))


def _hue_gap(a, b):
    gap = abs(a - b) % 1.0
    return min(gap, 1.0 - gap) * 360


def test_a_family_shares_a_hue_and_its_members_differ_in_lightness():
    hues = {}
    for family in style.FAMILIES:
        hls = [_hls(plots.queue_style(name).color) for name in family.members]
        assert all(plots.queue_style(n).family == family.name for n in family.members)
        if max(s for _, _, s in hls) < 0.05:  # a grey family: lightness only
            pass
        else:
            assert all(_hue_gap(h, hls[0][0]) <= 20 for h, _, _ in hls), family.name
            hues[family.name] = hls[0][0]
        for (_, l_a, _), (_, l_b, _) in itertools.combinations(hls, 2):
            assert abs(l_a - l_b) >= 0.08, family.name
    for (a, hue_a), (b, hue_b) in itertools.combinations(hues.items(), 2):
        assert _hue_gap(hue_a, hue_b) >= 60, (a, b)


def test_an_unknown_queue_gets_a_stable_style_of_its_own_family():
    first = plots.queue_style("my.Queue")
    assert first == plots.queue_style("my.Queue")
    assert first.family == style.OTHER.name
    assert first.color not in {plots.queue_style(q).color for q in QUEUES}
    assert plots.queue_style("ThreadSafeAgingQueue(age=20ms)") == \
        plots.queue_style("ThreadSafeAgingQueue")
    assert plots.queue_style("ThreadSafeAgingQueue").family == "pqlab bucket"


def test_every_family_member_has_its_own_colour_marker_and_dash():
    for family in (*style.FAMILIES, style.OTHER):
        assert len(set(family.colors)) == len(family.colors), family.name
        assert len(set(family.markers)) == len(family.markers), family.name
        assert len(family.colors) <= len(style.LINESTYLES), family.name
    for family in style.FAMILIES:
        looks = [style.queue_style(name) for name in family.members]
        assert [s.linestyle for s in looks] == list(style.LINESTYLES[:len(looks)])
        assert [s.color for s in looks] == list(family.colors[:len(looks)])


def test_an_unknown_queues_style_is_the_same_in_another_process():
    code = ("from pqlab.decide.style import queue_style; "
            "s = queue_style('my.Queue'); print(s.color, s.marker, s.linestyle)")
    env = {**os.environ, "PYTHONHASHSEED": "123", "PYTHONPATH": config.package_pythonpath()}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, timeout=60, check=True).stdout.split()
    here = style.queue_style("my.Queue")
    assert out == [here.color, here.marker, str(here.linestyle)]
