"""pqlab.harness.zygote: fresh unit processes forked from a process that only imported pqlab."""

from __future__ import annotations

import os
import pickle
import time

import pytest

from pqlab.harness.worker import UnitSpec
from pqlab.harness.zygote import Zygote, ZygoteError
from pqlab.study.sweep import SweepError, measure_fresh


def _spec(queue: str = "heapq", tasks: int = 300) -> UnitSpec:
    return UnitSpec(queue, "single", tasks, 1, 1, 0, 1)


def test_each_unit_runs_in_its_own_forked_child(tmp_path):
    with Zygote() as zygote:
        rows = []
        for i in range(2):
            out = tmp_path / f"unit{i}.pickle"
            code, last = zygote.run(_spec().to_json(), out, timeout_s=120)
            assert code == 0, last
            row, samples = pickle.loads(out.read_bytes())
            rows.append(row)
            assert row["violations"] == 0 and len(samples["seq"]) == 300
        assert not list(tmp_path.glob("*.err"))  # each child's stderr file is cleaned up


def test_a_failing_unit_reports_its_last_error_line_and_the_zygote_goes_on(tmp_path):
    with Zygote() as zygote:
        with pytest.raises(SweepError, match="not-registered single n=10.*unknown queue"):
            measure_fresh(_spec("not-registered", 10), 60, tmp_path, zygote)
        row, _ = measure_fresh(_spec(), 120, tmp_path, zygote)  # the next unit still runs
        assert row["tasks"] == 300


def test_a_unit_past_its_timeout_is_killed_and_the_zygote_goes_on(tmp_path):
    with Zygote() as zygote:
        start = time.monotonic()
        with pytest.raises(SweepError, match=r"no result after 0.5 s \(process killed\)"):
            measure_fresh(_spec(tasks=50_000_000), 0.5, tmp_path, zygote)
        assert time.monotonic() - start < 60  # killed, not waited for
        row, _ = measure_fresh(_spec(), 120, tmp_path, zygote)
        assert row["tasks"] == 300


def test_the_zygote_ends_with_its_stdin_and_a_dead_zygote_is_one_clear_error(tmp_path):
    zygote = Zygote()
    pid = zygote._proc.pid
    zygote.close()
    assert zygote._proc.returncode == 0
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    dead = Zygote()
    dead._proc.kill()
    dead._proc.wait()
    with pytest.raises(ZygoteError, match="zygote process exited"):
        dead.run(_spec().to_json(), tmp_path / "x.pickle", timeout_s=10)
    dead.close()


def test_a_killed_parent_takes_the_zygote_and_its_unit_with_it(tmp_path):
    """The sweep's process is killed mid-unit: neither the zygote nor the unit outlives it."""
    import subprocess
    import sys

    from pqlab.study.sweep import _child_env

    script = (
        "import sys, pathlib\n"
        "from pqlab.harness.zygote import Zygote\n"
        "from pqlab.harness.worker import UnitSpec\n"
        "z = Zygote()\n"
        "print(z._proc.pid, flush=True)\n"
        "z.run(UnitSpec('heapq', 'single', 50_000_000, 1, 1, 0, 1).to_json(),\n"
        "      pathlib.Path(sys.argv[1]), 600)\n")
    parent = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "u.pickle")],
                              stdout=subprocess.PIPE, text=True, env=_child_env())
    zygote_pid = int(parent.stdout.readline())
    deadline = time.monotonic() + 60
    children: list[int] = []
    while not children and time.monotonic() < deadline:  # wait for the unit's fork
        try:
            children = [int(p) for p in open(f"/proc/{zygote_pid}/task/{zygote_pid}/children")
                        .read().split()]
        except FileNotFoundError:
            pytest.skip("no /proc children list here")
        time.sleep(0.05)
    assert children, "the zygote forked no unit"
    parent.kill()
    parent.wait()
    parent.stdout.close()
    for pid in (zygote_pid, *children):
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            if open(f"/proc/{pid}/stat").read().split(") ")[1].startswith("Z"):
                break  # a zombie: dead, waiting for its reaper
            time.sleep(0.05)
        else:
            pytest.fail(f"process {pid} outlived the killed sweep")


def _writing_to(folder) -> list[int]:
    """The processes whose standard error is a file under ``folder`` (a unit's ``.err``)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if str(folder) in os.readlink(f"/proc/{entry}/fd/2"):
                    found.append(int(entry))
            except OSError:
                continue  # gone, or not ours to read
    return found


def test_the_processes_a_unit_started_end_with_it(tmp_path):
    """The multiprocessing queue's manager is a spawned server process: a normal exit stops
    it, so the forked unit must run the exit handlers os._exit skips."""
    if not os.path.isdir("/proc"):
        pytest.skip("no /proc here")
    spec = UnitSpec("multiprocessing", "processes", 20, 1, 1, 0, 1)
    with Zygote() as zygote:
        code, last = zygote.run(spec.to_json(), tmp_path / "mp.pickle", timeout_s=120)
        assert code == 0, last
    deadline = time.monotonic() + 15
    while (left := _writing_to(tmp_path)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, f"processes the unit started outlived it: {left}"


def test_the_zygote_freezes_what_it_imported_for_its_children():
    import subprocess
    import sys

    code = ("import gc\nfrom pqlab.harness import zygote\nzygote.prepare()\n"
            "print(gc.get_freeze_count(), len(gc.get_objects()))")
    frozen, left = map(int, subprocess.run([sys.executable, "-c", code], capture_output=True,
                                           text=True, check=True, timeout=60).stdout.split())
    assert frozen > 10_000 and left < frozen / 10  # a child's collections skip the imports
