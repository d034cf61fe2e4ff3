"""pqlab.queues.waiters: every wake-up is accounted for, so one notify wakes exactly one waiter."""

import threading
import time

from pqlab.queues.waiters import Waiters


def wait_until(condition, timeout_s=30.0):
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


def start_waiters(w: Waiters, mutex: threading.Lock, n: int, results: list):
    def wait():
        with mutex:
            results.append(w.wait(30))

    threads = [threading.Thread(target=wait, daemon=True) for _ in range(n)]
    for t in threads:
        t.start()
    wait_until(lambda: len(w.waiting) == n)
    return threads


def test_notify_wakes_the_oldest_and_counts_it_as_on_its_way():
    mutex = threading.Lock()
    w, results = Waiters(mutex), []
    threads = start_waiters(w, mutex, 3, results)
    with mutex:
        w.notify()
        assert (len(w.waiting), w.woken) == (2, 1)
    wait_until(lambda: results == [True])
    assert w.woken == 0  # the woken thread settled
    with mutex:
        w.notify_all()
    for t in threads:
        t.join(30)
    assert results == [True, True, True] and w.woken == 0 and not w.waiting


def test_a_timed_out_waiter_removes_itself_and_reports_no_notify():
    mutex = threading.Lock()
    w = Waiters(mutex)
    with mutex:
        assert w.wait(0.01) is False
    assert not w.waiting and w.woken == 0


def test_pass_on_wakes_one_only_when_work_remains_and_none_is_on_its_way():
    mutex = threading.Lock()
    w, results = Waiters(mutex), []
    threads = start_waiters(w, mutex, 2, results)
    with mutex:
        w.pass_on(False)
        assert w.woken == 0
        w.pass_on(True)
        w.pass_on(True)  # one is already on its way: no second wake-up
        assert (w.woken, len(w.waiting)) == (1, 1)
    wait_until(lambda: results == [True])
    with mutex:
        w.notify()
    for t in threads:
        t.join(30)


def test_a_waiter_that_is_gone_is_skipped():
    class Gone:
        def release(self):
            return False

    class Here:
        released = False

        def release(self):
            self.released = True

    w = Waiters()
    here = Here()
    w.waiting.extend([Gone(), here])
    w.notify()
    assert here.released and w.woken == 1 and not w.waiting
