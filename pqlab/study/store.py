"""Runs on disk: ``data/<run-id>/``, written atomically and resumable.

A run folder holds::

    run.json          schema version, run id, creation time, how samples were thinned
    machine.json      the machine's fingerprint (pqlab.study.machine)
    summary.parquet   one row per unit (a cell of the grid at one repetition)
    samples.parquet   one row per task (integer ns), thinned for large runs
    <name>.parquet    a notebook's own frames (``Run.save_frames``/``Run.frame``), e.g.
                      notebook 07's load, load-spectrum and load-aging; results per
                      priority are long frames, one row per run and priority
                      (``pqlab.measure.levels``; a version-1 run's wide ones are
                      made long on reading, ``v1_frame``)
    idle.parquet      idle burn: cores consumers use on an empty queue (notebooks 02, 03)
    cells/            per-unit files of a sweep still under way
    units/            open-loop units (``pqlab.study.opensweep``): per unit ``<key>.json``
                      (what it measured, its readings; written last, it marks the unit
                      done) and ``<key>.<kind>.parquet``, the rows of its study's frames
    notebooks/        executed copies of the notebooks (written by the batch)

Every file is written to a temporary name in the same folder and renamed into
place, so a killed sweep never leaves a truncated file. Each finished unit is
saved under ``cells/`` (samples first, then the summary that marks it done);
``consolidate()`` merges them into the two frames and only then removes them.
A resumed sweep skips every unit already done. Open-loop units stay under
``units/``: their study writes its named frames from them after each sweep,
so a resumed or extended sweep finds the units it has. One writer per run at a time.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import socket
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from pqlab.measure import levels
from pqlab.study import frames
from pqlab.study.machine import fingerprint

SCHEMA_VERSION = 2  # 2: per-priority frames are long (pqlab.measure.levels); 1 still reads
READABLE_VERSIONS = (1, SCHEMA_VERSION)
REGENERATE = "python -m pqlab batch --profile default"
RUN_FILE = "run.json"
MACHINE_FILE = "machine.json"
SUMMARY_FILE = "summary.parquet"
SAMPLES_FILE = "samples.parquet"
FRAME_NAME = re.compile(r"[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*")  # notebooks' frames
IDLE_FILE = "idle.parquet"
IDLE_KEYS = ["queue", "scenario", "consumers"]
CELLS_DIR = "cells"
OPEN_UNITS_DIR = "units"
TMP_MARK = ".tmp-"
RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]*$")


class StoreError(ValueError):
    """A run that does not exist, already exists, or belongs to another machine."""


# -- atomic files --------------------------------------------------------------------


def atomic_write(path: Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary sibling of ``path``, flush it, rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}")
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_text(path: Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json(path: Path, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


# Per-task integer columns: a monotonic counter delta-encodes well; noisy
# nanosecond durations compress about 25% better with their bytes split into
# streams (measured: 7.7 MB -> 5.7 MB for a million sample rows).
ENCODINGS = {"seq": "DELTA_BINARY_PACKED", "enqueue_ns": "BYTE_STREAM_SPLIT",
             "dequeue_ns": "BYTE_STREAM_SPLIT", "wait_ns": "BYTE_STREAM_SPLIT"}


def write_parquet(path: Path, df: pd.DataFrame) -> Path:
    """Parquet with zstd (small, fast to read) and the column encodings above."""
    encodings = {c: e for c, e in ENCODINGS.items() if c in df.columns}
    options = {"use_dictionary": [c for c in df.columns if c not in encodings],
               "column_encoding": encodings} if encodings else {}
    return atomic_write(path, lambda tmp: df.to_parquet(tmp, engine="pyarrow",
                                                         compression="zstd", index=False,
                                                         **options))


def write_csv(path: Path, df: pd.DataFrame) -> Path:
    return atomic_write(path, lambda tmp: df.to_csv(tmp, index=False))


# -- run ids -------------------------------------------------------------------------


def new_run_id(now: dt.datetime | None = None, host: str | None = None) -> str:
    """``<UTC time>-<host>``, e.g. ``20250301T101500Z-gpu-box``: sorts by time."""
    now = now or dt.datetime.now(dt.UTC)
    host = re.sub(r"[^A-Za-z0-9\-]+", "-", host or socket.gethostname()).strip("-") or "host"
    return f"{now:%Y%m%dT%H%M%SZ}-{host}"


def check_run_id(run_id: str) -> str:
    if not isinstance(run_id, str) or not RUN_ID_PATTERN.match(run_id):
        raise StoreError(f"run id must be letters, digits, '.', '_' or '-' (not starting "
                         f"with a symbol), got {run_id!r}")
    return run_id


def list_runs(data_dir: Path) -> list[str]:
    """Run ids in ``data_dir``, oldest first."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        return []
    return sorted(p.name for p in data_dir.iterdir() if (p / RUN_FILE).is_file())


def latest_run(data_dir: Path) -> str:
    """The newest run id in ``data_dir``; ``StoreError`` if there is none."""
    runs = list_runs(data_dir)
    if not runs:
        raise StoreError(f"no runs in {data_dir}")
    return runs[-1]


# -- one run -------------------------------------------------------------------------


class Run:
    """One run folder. Create with ``Run.create`` or ``Run.open``."""

    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)
        self.run_id = self.dir.name

    def __repr__(self) -> str:
        return f"Run({str(self.dir)!r})"

    @classmethod
    def create(cls, data_dir: Path, run_id: str | None = None, *, exist_ok: bool = False,
               machine: dict[str, Any] | None = None, **manifest: Any) -> Run:
        """Make ``data_dir/<run_id>`` with ``machine.json`` and ``run.json``.

        An existing run is opened if ``exist_ok`` (a resumed sweep), provided it
        was made on this machine; otherwise ``StoreError``.
        """
        run_id = check_run_id(run_id or new_run_id())
        run = cls(Path(data_dir) / run_id)
        info = machine or fingerprint()
        if (run.dir / RUN_FILE).is_file():
            if not exist_ok:
                raise StoreError(f"run {run_id!r} already exists in {data_dir} "
                                 "(resume it, or choose another run id)")
            run._check_same_machine(info)
            if run.schema_version() != SCHEMA_VERSION:
                raise StoreError(f"run {run_id!r} has schema version {run.schema_version()}: "
                                 "it can be read, not added to (choose another run id)")
            run.clean_temp()
            return run
        write_json(run.dir / MACHINE_FILE, info)
        write_json(run.dir / RUN_FILE, {
            "schema_version": SCHEMA_VERSION, "run_id": run_id,
            "created_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            **manifest})
        return run

    @classmethod
    def open(cls, data_dir: Path, run_id: str) -> Run:
        """An existing run; ``StoreError`` names the runs there are."""
        run = cls(Path(data_dir) / check_run_id(run_id))
        if not (run.dir / RUN_FILE).is_file():
            known = ", ".join(list_runs(data_dir)) or "none"
            raise StoreError(f"no run {run_id!r} in {data_dir} (runs there: {known})")
        version = run.schema_version()
        if version not in READABLE_VERSIONS:
            raise StoreError(f"run {run_id!r} has schema version {version}, which this pqlab "
                             f"cannot read; regenerate it with `{REGENERATE}`")
        return run

    def schema_version(self) -> Any:
        return self.manifest().get("schema_version")

    def _check_same_machine(self, info: dict[str, Any]) -> None:
        mine = self.machine().get("machine_id")
        if mine and info.get("machine_id") and mine != info["machine_id"]:
            raise StoreError(f"run {self.run_id!r} was made on {self.machine().get('machine')}; "
                             f"resuming it on {info.get('machine')} would mix two machines")

    # files
    def manifest(self) -> dict[str, Any]:
        return json.loads((self.dir / RUN_FILE).read_text())

    def update_manifest(self, **fields: Any) -> None:
        write_json(self.dir / RUN_FILE, {**self.manifest(), **fields})

    def machine(self) -> dict[str, Any]:
        return json.loads((self.dir / MACHINE_FILE).read_text())

    @property
    def cells_dir(self) -> Path:
        return self.dir / CELLS_DIR

    def clean_temp(self) -> list[Path]:
        """Remove temporary files a killed writer left behind (never a finished file)."""
        stale = [p for p in self.dir.rglob(f"*{TMP_MARK}*") if p.is_file()]
        for p in stale:
            p.unlink(missing_ok=True)
        return stale

    # units
    def _cell_keys(self) -> list[str]:
        if not self.cells_dir.is_dir():
            return []
        return sorted(p.name[: -len(".summary.parquet")]
                      for p in self.cells_dir.glob("*.summary.parquet"))

    def done_units(self) -> set[str]:
        """Keys of every unit already measured (consolidated or still under ``cells/``)."""
        done = set(self._cell_keys())
        path = self.dir / SUMMARY_FILE
        if path.is_file():
            done.update(frames.unit_keys(pd.read_parquet(path, columns=frames.UNIT)))  # 1 row/unit
        return done

    def save_unit(self, key: str, summary: pd.DataFrame, samples: pd.DataFrame) -> None:
        """Store one finished unit: samples first, then the summary row that marks it done."""
        write_parquet(self.cells_dir / f"{key}.samples.parquet", samples)
        write_parquet(self.cells_dir / f"{key}.summary.parquet", summary)

    def consolidate(self) -> None:
        """Merge finished units into ``summary.parquet`` and ``samples.parquet``."""
        keys = self._cell_keys()
        if keys:
            self._merge(keys)
        for orphan in self.cells_dir.glob("*.parquet") if self.cells_dir.is_dir() else []:
            orphan.unlink(missing_ok=True)  # samples of a unit killed before its summary
        if self.cells_dir.is_dir() and not any(self.cells_dir.iterdir()):
            self.cells_dir.rmdir()

    def _merge(self, keys: list[str]) -> None:
        cells = self.cells_dir
        new_summary = frames.concat([pd.read_parquet(cells / f"{k}.summary.parquet")
                                     for k in keys])
        new_samples = frames.concat([pd.read_parquet(cells / f"{k}.samples.parquet")
                                     for k in keys
                                     if (cells / f"{k}.samples.parquet").is_file()],
                                    typed=frames.typed_samples)
        fresh = set(keys)
        samples = frames.concat([_without(self._read(SAMPLES_FILE), fresh), new_samples],
                                typed=frames.typed_samples)
        summary = frames.concat([_without(self._read(SUMMARY_FILE), fresh), new_summary])
        write_parquet(self.dir / SAMPLES_FILE, frames.sort_units(samples))
        write_parquet(self.dir / SUMMARY_FILE, frames.sort_units(summary))
        for k in keys:  # the marker goes first: an orphan samples file is ignored later
            (cells / f"{k}.summary.parquet").unlink(missing_ok=True)
            (cells / f"{k}.samples.parquet").unlink(missing_ok=True)

    # open-loop units
    @property
    def open_units_dir(self) -> Path:
        return self.dir / OPEN_UNITS_DIR

    def done_open_units(self) -> set[str]:
        """Keys of every open-loop unit stored (``save_open_unit``)."""
        if not self.open_units_dir.is_dir():
            return set()
        return {p.name[: -len(".json")] for p in self.open_units_dir.glob("*.json")
                if TMP_MARK not in p.name}

    def save_open_unit(self, key: str, rows: dict[str, pd.DataFrame],
                       info: dict[str, Any]) -> None:
        """Store one open-loop unit: its rows by kind (``levels``, ``spectrum``, ...), then
        ``info`` (JSON) with the kinds stored, which marks it done; replaces an earlier one."""
        for kind, frame in rows.items():
            write_parquet(self.open_units_dir / f"{key}.{kind}.parquet", frame)
        write_json(self.open_units_dir / f"{key}.json", {**info, "rows": sorted(rows)})

    def open_unit(self, key: str) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
        """A stored open-loop unit: its ``info`` and its rows by kind."""
        info = json.loads((self.open_units_dir / f"{key}.json").read_text())
        return info, {kind: pd.read_parquet(self.open_units_dir / f"{key}.{kind}.parquet")
                      for kind in info["rows"]}

    def _read(self, name: str) -> pd.DataFrame | None:
        path = self.dir / name
        return pd.read_parquet(path) if path.is_file() else None

    # frames
    def summary(self) -> pd.DataFrame:
        """The consolidated ``summary`` frame (empty if nothing was measured yet)."""
        df = self._read(SUMMARY_FILE)
        return frames.typed_summary(df) if df is not None else pd.DataFrame()

    def samples(self) -> pd.DataFrame:
        """The consolidated ``samples`` frame (empty if nothing was measured yet)."""
        df = self._read(SAMPLES_FILE)
        return frames.typed_samples(df) if df is not None else pd.DataFrame()

    def save_frames(self, replace: Iterable[str] = (), **named: pd.DataFrame) -> None:
        """Store a notebook's frames as ``<name>.parquet`` (e.g. ``load``, ``overload``).

        Names are lower-case words joined by ``-`` or ``_`` (``FRAME_NAME``); an
        empty frame is not written. Every name in ``replace`` that is not given
        (or is empty) is removed, so a rerun leaves no stale frame behind.
        """
        for name in {*named, *replace}:
            if not FRAME_NAME.fullmatch(name):
                raise ValueError(f"frame name {name!r} must match {FRAME_NAME.pattern}")
        for name in replace:
            if name not in named or named[name].empty:
                (self.dir / f"{name}.parquet").unlink(missing_ok=True)
        for name, frame in named.items():
            if not frame.empty:
                write_parquet(self.dir / f"{name}.parquet", frame)

    def frame(self, name: str) -> pd.DataFrame:
        """The stored frame ``name`` (``save_frames``); empty if none was measured."""
        if not FRAME_NAME.fullmatch(name):
            raise ValueError(f"frame name {name!r} must match {FRAME_NAME.pattern}")
        df = self._read(f"{name}.parquet")
        if df is None:
            return pd.DataFrame()
        return v1_frame(df) if self.schema_version() == 1 else df

    def save_idle(self, idle: pd.DataFrame) -> None:
        """Add idle-burn rows (``pqlab.harness.idleburn.idle_frame``) to ``idle.parquet``; a row
        with the (queue, scenario, consumers) of a stored one replaces it."""
        if idle.empty:
            return
        old = self.idle()
        if not old.empty:
            keys = pd.MultiIndex.from_frame(idle[IDLE_KEYS].astype(str))
            kept = ~pd.MultiIndex.from_frame(old[IDLE_KEYS].astype(str)).isin(keys)
            idle = pd.concat([old[kept], idle], ignore_index=True)
        write_parquet(self.dir / IDLE_FILE, idle.reset_index(drop=True))

    def idle(self) -> pd.DataFrame:
        """The idle-burn frame (one row per queue, scenario, consumers); empty if none."""
        df = self._read(IDLE_FILE)
        return df if df is not None else pd.DataFrame()

    def export_csv(self, out_dir: Path | None = None) -> list[Path]:
        """Write ``summary.csv`` and ``samples.csv`` (next to the Parquet files by default)."""
        out = Path(out_dir) if out_dir else self.dir
        return [write_csv(out / "summary.csv", self.summary()),
                write_csv(out / "samples.csv", self.samples())]


def v1_frame(df: pd.DataFrame) -> pd.DataFrame:
    """A version-1 run's frame in today's shape: one with wide per-priority columns
    (``share_served_CRITICAL`` ...: notebook 08's ``overload``, 06's ``overload-redis``)
    becomes the long levels frame (``levels.long``); any other frame is unchanged."""
    if "priority" in df.columns or not levels.is_flat(df.columns):
        return df
    return levels.long(df)


def _without(df: pd.DataFrame | None, keys: set[str]) -> pd.DataFrame | None:
    """Rows of ``df`` whose unit is not in ``keys`` (one key per unit, not per row)."""
    if df is None or df.empty:
        return df
    return df[~frames.in_units(df, keys)]


def load_runs(data_dir: Path, run_ids: Iterable[str] | None = None,
              frame: str = "summary") -> pd.DataFrame:
    """Every run's ``summary`` (or ``samples``) in one frame, keyed by run and machine.

    Adds ``machine`` (a readable label) and ``machine_id`` from each run's
    ``machine.json``. ``StoreError`` if a named run is missing or none has data.
    """
    if frame not in ("summary", "samples"):
        raise ValueError(f"frame must be 'summary' or 'samples', got {frame!r}")
    ids = list(run_ids) if run_ids is not None else list_runs(data_dir)
    parts = []
    for run_id in ids:
        run = Run.open(data_dir, run_id)
        df = run.summary() if frame == "summary" else run.samples()
        if df.empty:
            continue
        info = run.machine()
        df = df.assign(run_id=run_id, machine=info.get("machine"),
                       machine_id=info.get("machine_id"))
        parts.append(df)
    if not parts:
        raise StoreError(f"no measured runs in {data_dir}"
                         + (f" among {', '.join(ids)}" if ids else ""))
    typed = frames.typed_summary if frame == "summary" else frames.typed_samples
    out = frames.concat(parts, typed=typed)
    first = ["run_id", "machine", "machine_id"]
    return out[first + [c for c in out.columns if c not in first]]
