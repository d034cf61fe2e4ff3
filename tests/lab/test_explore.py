"""pqlab.lab.explore and notebooks/explore.ipynb: controls measure live and redraw; stored runs."""

from __future__ import annotations

import ast
import asyncio

import nbformat
import pandas as pd
import papermill
import pytest

from pqlab.decide.plots import correctness
from pqlab.lab import batch, explore
from pqlab.study import config, store


@pytest.fixture
def explorer(tmp_path):
    return explore.Explorer(config.paths(tmp_path))


def _set(e: explore.Explorer, **values) -> None:
    for name, value in values.items():
        getattr(e, name).value = value


def test_run_measures_the_controls_values_and_redraws(explorer):
    _set(explorer, queues=("heapq", "BucketQueue"), scenario="single", tasks=300)
    assert explorer.run()
    summary = explorer.summary
    assert list(summary["queue"].astype(str)) == ["heapq", "BucketQueue"]
    assert set(summary["tasks"]) == {300} and (summary["throughput_ops_s"] > 0).all()
    assert len(explorer.samples) == 600
    for row in summary.itertuples():
        assert f"{row.queue}</b>: {row.throughput_ops_s:,.0f} ops/s" in explorer.caption.value
    before = {name: bytes(image.value) for name, image in explorer.images.items()}
    assert all(png.startswith(b"\x89PNG") for png in before.values())
    caption = explorer.caption.value

    explorer.tasks.value = 600
    assert explorer.run()
    assert set(explorer.summary["tasks"]) == {600} and len(explorer.samples) == 1_200
    assert explorer.caption.value != caption and "600 tasks" in explorer.caption.value
    assert all(bytes(explorer.images[n].value) != before[n] for n in before)


def test_producers_and_consumers_are_set_apart(explorer):
    _set(explorer, queues=("queue.PriorityQueue",), scenario="threads", tasks=400,
         producers=1, consumers=3)
    assert explorer.run()
    row = explorer.summary.iloc[0]
    assert (row["producers"], row["consumers"], row["lost"], row["duplicated"]) == (1, 3, 0, 0)


def test_load_uses_the_rate_workers_and_service_time(explorer):
    _set(explorer, queues=("ThreadSafeBucketQueue",), scenario="load", tasks=200,
         rate=4_000.0, workers=3, service="const:0.2ms")
    assert explorer.run()
    row = explorer.summary.iloc[0]
    assert row["scenario"] == "load" and row["consumers"] == 3 and row["tasks"] == 200
    assert "rate 4000/s, 3 workers, service const:0.2ms" in explorer.caption.value
    assert any(c.startswith("wait_p99_us_") for c in explorer.summary.columns)


def test_an_async_scenario_runs_while_an_event_loop_runs_as_in_a_kernel(explorer):
    _set(explorer, queues=("AsyncBucketQueue",), scenario="async", tasks=300)

    async def in_loop() -> bool:
        return explorer.run()

    assert asyncio.run(in_loop())
    assert explorer.summary.iloc[0]["violations"] == 0


@pytest.mark.parametrize("values, message", [
    ({"queues": ("queue.PriorityQueue",), "scenario": "async"},
     "queue.PriorityQueue cannot run scenario"),
    ({"queues": ()}, "pick at least one queue"),
    ({"scenario": "load", "service": "exp:soon"}, "bad service time"),
])
def test_a_bad_value_is_shown_and_the_last_result_kept(explorer, values, message):
    _set(explorer, queues=("heapq",), scenario="single", tasks=200)
    assert explorer.run()
    summary, image = explorer.summary, bytes(explorer.images["latency"].value)
    _set(explorer, **values)
    assert not explorer.run()
    assert message in explorer.caption.value.replace("&#x27;", "'")
    assert explorer.summary is summary and explorer.images["latency"].value == image
    assert not explorer.button.disabled


def test_the_stored_runs_tab_shows_a_runs_figures_and_machine(tmp_path):
    paths = config.paths(tmp_path)
    assert explore.Explorer(paths).machine.value == "no runs in data/"
    for run_id in ("20260101T000000Z-a", "20260102T000000Z-b"):
        store.Run.create(paths.data, run_id, machine={"machine": f"box {run_id[-1]}",
                                                     "memory_total_bytes": 8e9})
    figures = paths.figures_dir("20260102T000000Z-b")  # two figures for the newer run
    figures.mkdir(parents=True)
    frame = pd.DataFrame({"queue": ["heapq"], "scenario": ["single"], "repetition": [0],
                          "violations": [0],
                          "lost": [0], "duplicated": [0], "errors": [0]})
    (figures / "a.png").write_bytes(explore.png(correctness(frame)))
    (figures / "b.png").write_bytes(b"\x89PNG not really")
    e = explore.Explorer(paths)
    assert e.runs.options == ("20260102T000000Z-b", "20260101T000000Z-a")  # newest first
    assert "box b" in e.machine.value and "<td>8.0</td>" in e.machine.value
    assert e.figure.options == ("a", "b")
    assert bytes(e.stored_image.value) == (figures / "a.png").read_bytes()
    e.figure.value = "b"
    assert bytes(e.stored_image.value) == b"\x89PNG not really"
    e.runs.value = "20260101T000000Z-a"
    assert "box a" in e.machine.value and e.figure.options == ()
    assert bytes(e.stored_image.value) == b""


def test_the_notebook_is_committed_clean_and_only_wires_widgets():
    nb = nbformat.read(config.EXPLORER, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == config.KERNEL_NAME
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.outputs == [] and c.execution_count is None for c in code)
    for cell in code:  # imports, names and calls: the logic lives in pqlab.lab.explore
        for node in ast.walk(ast.parse(cell.source)):
            assert not isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.For, ast.While,
                                         ast.If, ast.Lambda)), ast.dump(node)[:60]
    assert sum(len(c.source.splitlines()) for c in code) <= 6


@pytest.mark.slow
@pytest.mark.notebook
def test_the_notebook_runs_and_shows_the_widget(tmp_path):
    out = tmp_path / "explore.ipynb"
    with batch.project_kernel() as kernel:
        papermill.execute_notebook(str(config.EXPLORER), str(out), kernel_name=kernel,
                                   progress_bar=False, cwd=str(config.NOTEBOOKS_DIR))
    nb = nbformat.read(out, as_version=4)
    outputs = [o for c in nb.cells for o in c.get("outputs", [])]
    assert not [o for o in outputs if o["output_type"] == "error"]
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {})
               for o in outputs)
