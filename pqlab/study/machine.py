"""The machine's fingerprint: small collectors, each returning a dict, merged into one.

Stored as ``machine.json`` with every run, so two runs can be told apart by
machine and the numbers read against the hardware that made them. A
collector that cannot find something records ``None`` rather than failing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata
import os
import platform
import re
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from pqlab.study import config

SCHEMA_VERSION = 1
TICK_SAMPLES = 10_000  # about 1 ms of back-to-back clock reads: enough to see the tick
# Besides pqlab's own requirements: what the optional queues and the kernel use.
EXTRA_PACKAGES = ("janus", "culsans", "redis", "nbclient", "nbformat", "jupyter_client")


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text()
    except OSError:
        return None


def cpu() -> dict[str, Any]:
    """CPU model, physical and logical cores, usable cores, frequency (MHz)."""
    model = None
    info = _read("/proc/cpuinfo") or ""
    found = re.search(r"^model name\s*:\s*(.+)$", info, re.MULTILINE)
    if found:
        model = found.group(1).strip()
    freq = psutil.cpu_freq() if hasattr(psutil, "cpu_freq") else None
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpu_model": model or platform.processor() or None,
        "cpu_physical_cores": psutil.cpu_count(logical=False),
        "cpu_logical_cores": psutil.cpu_count(logical=True),
        "cpu_affinity_cores": affinity,
        "cpu_freq_mhz": round(freq.current, 1) if freq else None,
        "cpu_freq_max_mhz": round(freq.max, 1) if freq and freq.max else None,
    }


def memory() -> dict[str, Any]:
    """Total and available memory at start, bytes."""
    vm = psutil.virtual_memory()
    return {"memory_total_bytes": vm.total, "memory_available_bytes": vm.available}


def operating_system() -> dict[str, Any]:
    """OS name, distribution, kernel release, architecture, hostname."""
    pretty = None
    release = _read("/etc/os-release") or ""
    found = re.search(r'^PRETTY_NAME="?([^"\n]+)"?$', release, re.MULTILINE)
    if found:
        pretty = found.group(1)
    return {
        "hostname": socket.gethostname(),
        "os": platform.system(),
        "os_distribution": pretty,
        "kernel": platform.release(),
        "arch": platform.machine(),
        "platform": platform.platform(),
    }


def python() -> dict[str, Any]:
    """Implementation, version, build, compiler, and whether the GIL is on."""
    is_gil_enabled = getattr(sys, "_is_gil_enabled", None)
    return {
        "python_implementation": platform.python_implementation(),
        "python_version": platform.python_version(),
        "python_build": " ".join(platform.python_build()),
        "python_compiler": platform.python_compiler(),
        "python_executable": sys.executable,
        "free_threaded_build": bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
        "gil_enabled": bool(is_gil_enabled()) if is_gil_enabled else True,
    }


def _requirement_names() -> list[str]:
    try:
        requires = importlib.metadata.requires("pqlab") or []
    except importlib.metadata.PackageNotFoundError:
        requires = []
    names = [re.match(r"[A-Za-z0-9_.\-]+", r).group(0) for r in requires if "extra ==" not in r]
    return ["pqlab", *names, *EXTRA_PACKAGES]


def packages() -> dict[str, Any]:
    """Versions of pqlab and its dependencies (``None``: not installed)."""
    versions: dict[str, str | None] = {}
    for name in _requirement_names():
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    try:
        versions["pqlab"] = importlib.metadata.version("pqlab")
    except importlib.metadata.PackageNotFoundError:
        versions["pqlab"] = None
    return {"packages": versions}


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(config.ROOT), *args], capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


CODE_PATHS = ("pqlab", "notebooks", "pyproject.toml")  # where an untracked file changes a run


def git() -> dict[str, Any]:
    """Commit of the code that ran, and whether it differs from that commit.

    Dirty: a tracked file was changed, or an untracked file sits among the code
    (``CODE_PATHS``); new run folders under ``data/`` do not count.
    """
    commit = _git("rev-parse", "HEAD")
    if commit is None:
        return {"git_commit": None, "git_dirty": None}
    tracked = _git("status", "--porcelain", "--untracked-files=no")
    untracked = _git("status", "--porcelain", "--untracked-files=normal", "--", *CODE_PATHS)
    if tracked is None or untracked is None:
        return {"git_commit": commit, "git_dirty": None}
    return {"git_commit": commit, "git_dirty": bool(tracked or untracked)}


def min_tick_ns(samples: int = TICK_SAMPLES) -> int:
    """Smallest non-zero step between back-to-back ``perf_counter_ns`` reads."""
    pc = time.perf_counter_ns
    reads = [pc() for _ in range(samples)]
    steps = [b - a for a, b in zip(reads, reads[1:], strict=False) if b > a]
    return min(steps) if steps else 0


def timer() -> dict[str, Any]:
    """The clock every stamp comes from: its stated resolution and the measured tick."""
    info = time.get_clock_info("perf_counter")
    return {
        "timer": "perf_counter_ns",
        "timer_implementation": info.implementation,
        "timer_resolution_ns": info.resolution * 1e9,
        "timer_min_tick_ns": min_tick_ns(),
    }


def load() -> dict[str, Any]:
    """Load average (1, 5, 15 min) and CPU use at start: a busy machine skews timings."""
    try:
        load_avg = list(os.getloadavg())
    except OSError:
        load_avg = None
    return {"load_avg": load_avg, "cpu_percent": psutil.cpu_percent(interval=0.1)}


def clock() -> dict[str, Any]:
    """UTC time of collection."""
    return {"utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}


COLLECTORS: list[Callable[[], dict[str, Any]]] = [
    clock, operating_system, cpu, memory, python, packages, git, timer, load,
]


def machine_id(info: dict[str, Any]) -> str:
    """A short stable id of the hardware and OS (not of the time or the load)."""
    keys = ("hostname", "cpu_model", "cpu_logical_cores", "memory_total_bytes", "kernel",
            "python_version")
    text = "|".join(str(info.get(k)) for k in keys)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def machine_label(info: dict[str, Any]) -> str:
    """A readable name: host, CPU model and logical cores."""
    return f"{info.get('hostname')} ({info.get('cpu_model')}, {info.get('cpu_logical_cores')} CPUs)"


def fingerprint(collectors: list[Callable[[], dict[str, Any]]] | None = None) -> dict[str, Any]:
    """Run every collector and merge their dicts; adds the schema version and machine id."""
    info: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
    for collect in collectors or COLLECTORS:
        try:
            info.update(collect())
        except Exception as exc:  # noqa: BLE001 - a missing fact must not stop a run
            info[f"{collect.__name__}_error"] = f"{type(exc).__name__}: {exc}"
    info["machine_id"] = machine_id(info)
    info["machine"] = machine_label(info)
    return info
