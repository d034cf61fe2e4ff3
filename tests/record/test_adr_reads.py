"""The record only reads: ``pqlab adr --run`` renders the committed reference run's record byte
for byte, in a process that imports no plotting module and probes no queue."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from pqlab.study import config

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = config.REFERENCE_RUN  # the committed reference run

# Renders with the probe replaced by one that fails, then lists every plotting module imported.
SCRIPT = """
import sys
from pqlab.harness import features

def probed(*args, **kwargs):
    raise AssertionError("the record probed a queue")

features.probe = probed
features.features_frame = probed
from pqlab.cli.main import main
code = main(["adr", "--run", sys.argv[1], "--output", sys.argv[2]])
plotting = sorted(m for m in sys.modules if m.split(".")[0] in ("matplotlib", "seaborn")
                  or m.endswith("plots"))
print("PLOTTING", plotting)
raise SystemExit(code)
"""


def _copy_reference(root: Path, with_features: bool = True) -> None:
    paths = config.paths(root)
    skip = ["notebooks", "adr.md", "appendix.md"] + ([] if with_features
                                                     else ["features.parquet"])
    shutil.copytree(ROOT / "data" / REFERENCE, paths.data / REFERENCE,
                    ignore=shutil.ignore_patterns(*skip))
    shutil.copytree(ROOT / "figures" / REFERENCE, paths.figures_dir(REFERENCE))


def _adr(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", SCRIPT, REFERENCE, str(root)],
                          capture_output=True, text=True, timeout=120,
                          env={**__import__("os").environ,
                               "PYTHONPATH": config.package_pythonpath()})


def test_the_reference_record_renders_byte_for_byte_without_plotting_or_probing(tmp_path):
    _copy_reference(tmp_path)
    done = _adr(tmp_path)
    assert done.returncode == 0, done.stderr
    assert "PLOTTING []" in done.stdout, done.stdout
    published = config.paths(tmp_path).adr_dir
    for name in (config.ADR_FILENAME, "appendix.md"):
        assert (published / name).read_bytes() == (ROOT / "docs" / "adr" / name).read_bytes(), \
            f"{name} differs from the committed one"


def test_a_run_without_stored_features_is_refused_in_one_line(tmp_path):
    _copy_reference(tmp_path, with_features=False)
    done = _adr(tmp_path)
    assert done.returncode == 2
    error = done.stderr.strip().splitlines()
    assert len(error) == 1 and "features.parquet" in error[0] and "00-decision" in error[0]
    assert not config.paths(tmp_path).adr_file.exists()


def test_the_record_and_the_studies_import_no_plotting_module():
    code = ("import sys, pqlab.record.adr, pqlab.record.runs, pqlab.studies; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('matplotlib', 'seaborn') or m.endswith('plots')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout.strip() == "[]"
