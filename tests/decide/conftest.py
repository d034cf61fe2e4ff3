"""The reference run's record, rendered for the test files of several decide modules
(tests/decide/test_record.py, test_adopt_example.py): a module-scoped fixture, so each
file renders its own."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from decide.test_endtoend import two_queue_frame
from pqlab.decide import endtoend, endtoendplots
from pqlab.record import adr
from pqlab.study import config, store

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = config.REFERENCE_RUN  # the committed reference run


def _render(root: Path, endtoend_frame: pd.DataFrame | None) -> tuple[str, str, store.Run]:
    paths = config.paths(root)
    shutil.copytree(ROOT / "data" / REFERENCE, paths.data / REFERENCE,
                    ignore=shutil.ignore_patterns("notebooks", "adr.md", "appendix.md",
                                                  f"{endtoend.FRAME}.parquet"))
    shutil.copytree(ROOT / "figures" / REFERENCE, paths.figures_dir(REFERENCE))
    run = store.Run.open(paths.data, REFERENCE)
    if endtoend_frame is not None:
        store.write_parquet(run.dir / f"{endtoend.FRAME}.parquet", endtoend_frame)
        endtoendplots.latency_vs_rate(endtoend_frame, out_dir=paths.figures_dir(REFERENCE))
    path = adr.write_adr(REFERENCE, paths, publish=True)  # the run's own figures
    return path.read_text(), (path.parent / "appendix.md").read_text(), run


@pytest.fixture(scope="session")
def records(tmp_path_factory):
    """{"plain": the reference run without its end-to-end frame, "e2e": with a two-queue one}."""
    return {name: _render(tmp_path_factory.mktemp(name), frame)
            for name, frame in (("plain", None), ("e2e", two_queue_frame()))}
