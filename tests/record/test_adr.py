"""pqlab.record.adr: the decision is derived from the data; its numbers match the run's frames;
the studies' sections are ordered by rank."""

from __future__ import annotations

import re

import pytest

from pqlab import studies
from pqlab.cli.main import main
from pqlab.decide import decision, record
from pqlab.harness import idleburn
from pqlab.lab import decision_figures, store_features
from pqlab.measure import significance
from pqlab.record import adr
from pqlab.studies.base import RunView, Study
from pqlab.study import config, store
from pqlab.study.sweep import Grid, run_sweep

pytestmark = pytest.mark.slow

# The stdlib queues, the POC's polling heap and pqlab's own: every context has candidates.
SOME = ("heapq", "queue.PriorityQueue", "asyncio.PriorityQueue", "ThreadSafeHeapQueue",
        "ThreadSafeBucketQueue", "AsyncBucketQueue", "BridgeBucketQueue")
REFERENCE_REPETITIONS = 5  # the fewest with which the significance test separates two queues


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    paths = config.paths(tmp_path_factory.mktemp("adr"))
    run = store.Run.create(paths.data, "adr-test")
    # The reference cells (600 tasks; 4 workers) have the five repetitions the significance
    # test needs (and the tables' intervals are read from); the other cells, there for the
    # nearest-cell choice and the worst cell, two: the tables take their medians only.
    for grid in (Grid(queues=SOME, scenarios=("single",), task_counts=(600,),
                      repetitions=REFERENCE_REPETITIONS),
                 Grid(queues=SOME, scenarios=("single",), task_counts=(300,), repetitions=2),
                 Grid(queues=SOME, scenarios=("threads", "async"), task_counts=(600,),
                      worker_counts=(4,), repetitions=REFERENCE_REPETITIONS),
                 Grid(queues=SOME, scenarios=("threads", "async"), task_counts=(600,),
                      worker_counts=(2,), repetitions=2),
                 Grid(scenarios=("ordering",), task_counts=(600,), worker_counts=(2,),
                      repetitions=1)):
        run_sweep(grid, run, fresh_process=False, progress=False)
    run.save_idle(idleburn.idle_frame(SOME, ["threads", "async"], consumers=4,
                                      seconds=0.3))
    store_features(run)  # notebook 00's probe and figures: the record reads what they stored
    decision_figures(paths, run, adr.decide_run(run))
    path = adr.write_adr("adr-test", paths, allow_busy=True)
    return paths, run, path.read_text(), (path.parent / "appendix.md").read_text()


def _table_rows(text):
    """The measured tables of the ADR (one per context) as dicts of the cell texts."""
    section = text.split("## Measurements", 1)[1].split("## What the queue costs", 1)[0]
    rows = []
    for block in section.split("### ")[1:]:
        name = block.splitlines()[0].strip()
        table = [line for line in block.splitlines() if line.startswith("| ")]
        if not table:
            continue
        head = [c.strip() for c in table[0].strip("|").split("|")]
        for line in table[2:]:
            cells = (c.strip() for c in line.strip("|").split("|"))
            rows.append({"context": name, **dict(zip(head, cells, strict=True))})
    return rows


def _number(text):
    return float(text.replace(",", ""))


def _reference(text, context):
    block = text.split(f"### {context}", 1)[1]
    tasks, workers = re.search(r"reference cell ([\d,]+) tasks, (\d+) worker", block).groups()
    return int(_number(tasks)), int(workers)


def test_every_number_in_the_tables_matches_the_frames(lab):
    paths, run, _, text = lab
    summary = run.summary()
    rows = _table_rows(text)
    contexts = {c.name: c.scenario for c in adr.CONTEXTS}
    measured = set(summary["scenario"].astype(str))
    assert {r["context"] for r in rows} == {c for c, s in contexts.items() if s in measured}
    for r in rows:
        queue = r["queue"].split("`")[1]
        scenario = contexts[r["context"]]
        tasks, workers = _reference(text, r["context"])
        mine = summary[(summary["scenario"] == scenario) & (summary["queue"] == queue)]
        cell = mine[(mine["tasks"] == tasks) & (mine["producers"] == workers)]
        assert len(cell) == REFERENCE_REPETITIONS, (queue, r["context"])
        ci = significance.summarize(cell["throughput_ops_s"].tolist())
        median, low, high = re.match(r"([\d,]+) \(([\d,]+)-([\d,]+)",
                                     r["throughput ops/s, median (99% CI)"]).groups()
        assert _number(median) == pytest.approx(ci.median, abs=0.5)
        assert _number(low) == pytest.approx(ci.ci_low, abs=0.5)
        assert _number(high) == pytest.approx(ci.ci_high, abs=0.5)
        worst = mine.groupby(["tasks", "producers"])["throughput_ops_s"].median().min()
        assert _number(r["worst cell ops/s"]) == pytest.approx(worst, abs=0.5)
        cpu = mine.groupby(["tasks", "producers"])["cpu_us_per_task"].median().max()
        assert _number(r["CPU µs per task"]) == pytest.approx(cpu, abs=0.005)
        assert _number(r["mean enqueue µs"]) == pytest.approx(
            cell["enqueue_mean_us"].median(), abs=0.005)
        assert _number(r["p99 enqueue µs"]) == pytest.approx(
            cell["enqueue_p99_us"].median(), abs=0.005)
        assert _number(r["p99 dequeue µs"]) == pytest.approx(
            cell["dequeue_p99_us"].median(), abs=0.005)
        checked = summary[(summary["queue"] == queue) & summary["scenario"].isin(
            [scenario, "ordering"])]
        counts = [int(x) for x in r["violations / lost / duplicated / errors"].split(" / ")]
        assert counts == [checked[c].sum() for c in ("violations", "lost", "duplicated",
                                                      "errors")]
        idle = run.idle()
        burn = idle[(idle["queue"] == queue) & (idle["scenario"] == scenario)]
        if scenario == "single":
            assert r["idle burn, cores"] == "n/a"
        else:
            assert _number(r["idle burn, cores"]) == pytest.approx(
                burn["idle_cores"].median(), abs=0.0005)


def test_the_reference_cell_is_the_nearest_measured(lab):
    _, _, _, text = lab
    assert _reference(text, "single-threaded code") == (600, 1)  # nearest 10,000: 600
    assert _reference(text, "thread workers") == (600, 4)


def test_the_decision_follows_the_rule(lab):
    _, run, text, appendix = lab
    for d in adr.decide_run(run, (10_000, 4)):
        if d.table.empty:  # the context's scenario was not measured in this run
            assert f"- {d.context.name}: not measured" in text
            continue
        eligible = d.table[d.table["set_aside"] == ""]
        if eligible.empty:
            assert d.choice is None
            continue
        best = eligible.sort_values(["features", "registry_order"],
                                    ascending=[False, True]).iloc[0]
        lean = eligible[eligible["features"] == best["features"]]
        least = lean["bytes_per_task"].min()
        first = lean[lean["bytes_per_task"] <= 2 * least].sort_values("registry_order")
        assert d.choice == first.iloc[0]["queue"]
        if d.context.name == decision.MODELMORA:
            assert f"**Use `{d.choice}`" in text
        else:
            assert f"- {d.context.name}: `{d.choice}`" in text
    assert decision.RULE in appendix


def test_a_polling_queue_is_not_recommended_for_waiting_workers(lab):
    _, run, _, appendix = lab
    threads = next(d for d in adr.decide_run(run) if d.context.scenario == "threads")
    row = threads.table.set_index("queue").loc["ThreadSafeHeapQueue"]
    assert row["idle_cores"] > decision.IDLE_LIMIT_CORES
    assert "burn" in row["set_aside"] and threads.choice != "ThreadSafeHeapQueue"
    row_text = next(line for line in appendix.split("### thread workers", 1)[1].splitlines()
                    if line.startswith("| `ThreadSafeHeapQueue`"))
    assert "| its waiting consumers burn" in row_text


def test_changing_the_data_changes_the_decision(lab):
    _, run, _, _ = lab
    summary = run.summary()
    broken = summary.copy()
    heapq_rows = broken["queue"] == "heapq"
    broken.loc[heapq_rows, "violations"] = 3
    decisions = adr.decide(broken, idle=run.idle(), features=adr.run_features(run))
    single = next(d for d in decisions if d.context.scenario == "single")
    assert single.choice != "heapq"
    row = single.table[single.table["queue"] == "heapq"].iloc[0]
    assert row["set_aside"] == f"incorrect: {3 * heapq_rows.sum()} violations"


def test_a_missing_context_is_said_not_invented(lab):
    _, run, _, _ = lab
    summary = run.summary()
    decisions = adr.decide(summary[summary["scenario"] != "async"])
    assert decisions[0].context.scenario == "async" and decisions[0].choice is None
    said = "\n".join(record.answer(decisions, None, "", ""))
    assert "**No queue to use**: not measured in this run (scenario `async`)" in said


def test_a_busy_run_is_refused_without_the_override(lab, tmp_path):
    paths, run, _, _ = lab
    busy = run.summary()
    busy["others_cores"] = 1.5
    busy["busy"] = True
    with pytest.raises(adr.BusyRunError, match="--allow-busy"):
        adr.check_quiet(busy, run.run_id, allow_busy=False)
    cells = adr.check_quiet(busy, run.run_id, allow_busy=True)
    assert len(cells) == len(busy)
    assert "Warning: decided with `--allow-busy`" in adr._quiet_lines(cells, len(busy),
                                                                    True)[0]


def test_a_busy_unit_no_gate_reads_cannot_block_the_record_and_is_named(lab):
    _, run, _, _ = lab
    summary = run.summary()
    summary["scenario"] = summary["scenario"].astype(str)
    gated = summary["scenario"].isin(adr.gated_scenarios())
    summary["busy"] = ~gated  # only units of scenarios the rule never reads
    summary["busy_why"] = "a burst of load (test)"
    if gated.all():  # the lab has no ungated scenario: make one unit of one
        summary.loc[0, "scenario"] = "processes"
        summary.loc[0, "busy"] = True
    cells = adr.check_quiet(summary, run.run_id, allow_busy=False)  # not refused
    line = adr._quiet_lines(cells, len(summary), False)[0]
    assert "none can change a decision" in line and "a burst of load (test)" in line


def test_a_refusal_names_the_busy_units_and_the_contexts_they_could_change(lab):
    _, run, _, _ = lab
    summary = run.summary()
    summary["busy"] = summary["scenario"].astype(str) == "threads"
    summary["busy_why"] = "a burst of load (test)"
    with pytest.raises(adr.BusyRunError) as info:
        adr.check_quiet(summary, run.run_id, allow_busy=False)
    message = str(info.value)
    assert "\n" not in message and "thread workers" in message and "[threads]" in message
    assert "stayed busy after being measured again" in message


def test_compare_says_the_same_run_decides_the_same(lab, capsys):
    paths, run, _, _ = lab
    assert main(["adr", "--compare", str(run.dir), str(run.dir), "--output",
                 str(paths.root)]) == 0
    out = capsys.readouterr().out
    assert "same decision in every context" in out and "every statement agrees" in out


@pytest.mark.parametrize("args, message", [
    (["no-such-run", "adr-test"], "no run 'no-such-run'"),
    (["adr-test", "only-ordering"], "measured none of the contexts"),
    (["/no/such/folder", "adr-test"], "no run at /no/such/folder"),
])
def test_compare_bad_input_is_one_line_and_exit_2(lab, capsys, args, message):
    paths, _, _, _ = lab
    if "only-ordering" in args and not (paths.data / "only-ordering").exists():
        other = store.Run.create(paths.data, "only-ordering")
        run_sweep(Grid(queues=("heapq",), scenarios=("ordering",), task_counts=(200,),
                       worker_counts=(2,), repetitions=1), other, fresh_process=False,
                  progress=False)
    assert main(["adr", "--compare", *args, "--output", str(paths.root)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_the_adr_links_the_run_and_its_figures(lab):
    paths, run, text, _ = lab
    assert f"--run {run.run_id}" in text and run.machine()["machine"] in text
    links = re.findall(r"\]\(([^)]+\.svg)\)", text)
    assert links and all((paths.adr_dir / link).resolve().is_file() for link in links)
    assert any("decision-overview" in link for link in links)


def test_a_section_without_claims_is_left_out_and_ranks_order_the_rest(monkeypatch):
    from pqlab.studies.base import Section

    def ranked(rank, heading):
        return Study(heading, "x.ipynb", {}, section=lambda view: Section(
            heading, [f"- {heading} claim."] if rank is not None else [], rank=rank or 0))

    view = RunView(None, [])  # the sections here read nothing
    monkeypatch.setattr(adr, "gates_section", lambda view: Section("gates", ["- g."], rank=10))
    monkeypatch.setattr(studies, "STUDIES", (ranked(50, "late"), ranked(None, "empty"),
                                             ranked(5, "early")))
    assert [s.heading for s in adr.sections(view)] == ["early", "gates", "late"]
