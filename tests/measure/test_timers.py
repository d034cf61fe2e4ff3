"""Sleep precision helpers: never early, slack restored, harmless where unsupported."""

import sys
import threading
import time

import pytest

from pqlab.measure import timers


def test_sleep_until_is_never_early():
    pc = time.perf_counter_ns
    for delay_ns in (0, 50_000, 300_000, 2_000_000):
        deadline = pc() + delay_ns
        timers.sleep_until(deadline)
        assert pc() >= deadline


def test_sleep_until_a_past_deadline_returns_at_once():
    start = time.perf_counter_ns()
    timers.sleep_until(start - 1_000_000_000)
    assert time.perf_counter_ns() - start < 50_000_000


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="timer slack is Linux's")
def test_fine_timer_slack_applies_to_new_threads_and_is_restored():
    before = timers.timer_slack_ns()
    assert before is not None and before > timers.FINE_SLACK_NS
    seen = []
    with timers.fine_timer_slack() as slack:
        assert slack == timers.FINE_SLACK_NS == timers.timer_slack_ns()
        worker = threading.Thread(target=lambda: seen.append(timers.timer_slack_ns()))
        worker.start()
        worker.join()
    assert seen == [timers.FINE_SLACK_NS]
    assert timers.timer_slack_ns() == before


def test_without_prctl_nothing_is_set(monkeypatch):
    monkeypatch.setattr(timers, "_prctl", lambda: None)
    assert timers.timer_slack_ns() is None
    with timers.fine_timer_slack() as slack:
        assert slack is None
