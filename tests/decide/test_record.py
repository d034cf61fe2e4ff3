"""The decision record as its reader gets it: the answer first, within budget, every claim
with its evidence, figures with captions, adoption and risks; rendered from the committed
reference run, with and without an end-to-end frame."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from pqlab.decide import decision, loadwait, record, saturation
from pqlab.harness import features
from pqlab.record import adr
from pqlab.study import config

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = config.REFERENCE_RUN  # the committed reference run
MAX_WORDS = 1_500
HEAD_LINES = 25


@pytest.fixture(params=["plain", "e2e"])
def rendered(request, records):
    return records[request.param]


def _prose(text: str) -> list[str]:
    """The record's lines outside code blocks and tables."""
    out, code = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            code = not code
        elif not code and not line.startswith("|"):
            out.append(line)
    return out


def test_prose_words_skip_tables_code_and_figure_lines():
    text = "one two\n| a | b | c |\n```python\nx = 1 2 3\n```\n![Figure 1](f.svg)\nthree"
    assert record.prose_words(text) == 3


def test_the_first_screen_names_the_context_queue_policy_and_runner_up(rendered):
    text, _, run = rendered
    head = "\n".join(text.splitlines()[:HEAD_LINES])
    primary = record.primary(adr.decide_run(run))
    runner_up, why = decision.runner_up(primary)
    label, _ = saturation.chosen_policy(run.frame("overload"))
    status = text.splitlines()[2]
    assert status.startswith(f"Status: proposed · {run.manifest()['created_utc'][:10]}")
    assert REFERENCE in status
    assert f"ModelMora's context is the **{decision.MODELMORA}**" in head
    assert f"**Use `{primary.choice}` with the policy `{label}`" in head
    assert f"Runner-up: `{runner_up}`; {why}" in head
    for d in adr.decide_run(run):
        if d is not primary and d.context.name != primary.context.name:
            assert f"- {d.context.name}: `{d.choice}`" in head


def test_a_tie_says_tie_and_what_broke_it(rendered):
    text, _, run = rendered
    primary = record.primary(adr.decide_run(run))
    assert len(primary.tie_group) > 1  # the reference run: the async queues tie
    assert "a tie" in text and "registry order broke it, not a measurement" in text
    assert " beats " not in text and " wins " not in text


def test_the_record_stays_within_its_word_budget(rendered):
    text, appendix, _ = rendered
    assert record.prose_words(text) <= MAX_WORDS
    assert record.prose_words(appendix) > MAX_WORDS  # the detail went somewhere


def test_the_serving_features_are_gates_in_the_table(rendered):
    text, _, _ = rendered
    gates = text.split("### The gates", 1)[1].split("###", 1)[0]
    for f in (*features.SERVING, "shutdown", "cancel_safe_get", "bounded"):
        assert f"| {features.FEATURE_TITLES[f]} |" in gates


def test_figures_are_three_to_six_each_captioned_and_cited(rendered):
    text, _, _ = rendered
    lines = text.splitlines()
    images = [i for i, line in enumerate(lines) if line.startswith("![")]
    assert 3 <= len(images) <= 6
    for number, i in enumerate(images, 1):
        assert lines[i].startswith(f"![Figure {number}](")
        assert lines[i + 2].startswith(f"*Figure {number}. ") and len(lines[i + 2]) > 40
        cites = [line for line in lines if f"(figure {number})" in line
                 or f"figure {number}," in line or f", figure {number}" in line]
        assert cites, f"figure {number} is never cited"
        link = re.match(r"!\[[^]]*\]\(([^)]+)\)", lines[i]).group(1)
        assert (Path(ROOT) / "docs" / "adr" / link).name.endswith(".svg")


def test_the_embedded_figures_exist(records, tmp_path):
    text, _, run = records["e2e"]
    adr_dir = run.dir.parents[1] / "docs" / "adr"
    for link in re.findall(r"!\[[^]]*\]\(([^)]+)\)", text):
        assert (adr_dir / link).resolve().is_file(), link


def test_the_end_to_end_answer_leads_the_evidence_or_its_absence_is_said(records):
    plain, *_ = records["plain"]
    e2e, *_ = records["e2e"]
    first = plain.split("## Evidence", 1)[1].split("###", 2)[1]
    assert first.startswith(" End to end") and "**not measured in this run**" in first
    first = e2e.split("## Evidence", 1)[1].split("###", 2)[1]
    assert "In the reference service" in first and "n=" in first
    assert "![Figure 1]" in first and "e2e-latency" in first


def test_no_template_plurals_and_no_median_over_one_run(rendered):
    text, appendix, _ = rendered
    for doc in (text, appendix):
        assert "(s)" not in doc
        assert not re.search(r"\b(\d+)-\1 repetitions", doc)
        assert " band" not in doc
    for line in _prose(text):
        for found in re.finditer(r"median", line):
            tail = line[found.start():]
            many = re.match(r"median of (\d+) runs", tail)
            assert many and int(many.group(1)) > 1, line


def test_every_measured_percentile_has_its_n(rendered):
    text, _, _ = rendered
    claims = text.split("## Evidence", 1)[1].split("## On Python", 1)[0]
    for line in _prose(claims):
        if re.search(r"p99[^.]*\d ms", line) or re.search(r"\d ms[^.]*p99", line):
            assert "n=" in line or re.search(r"of \d+ runs", line), line


def test_a_target_is_quoted_with_its_source_and_the_policy_judged_at_every_rho(rendered):
    text, _, run = rendered
    assert loadwait.TARGET_SOURCE in text
    target, misses = saturation.target_misses(run.frame("overload"))
    rhos = sorted(run.frame("overload")["rho"].unique())
    judged = next(line for line in text.splitlines() if "Judged against its own target" in line)
    assert f"waits about {target:g} ms" in judged
    assert "(" + ", ".join(f"{r:g}" for r in rhos) + ")" in judged
    assert misses and all(f"{level} " in judged and f"ρ {rho:g}" in judged
                          for rho, level, _, _ in misses)


def test_low_is_split_into_refused_and_expired(rendered):
    text, _, run = rendered
    overload = run.frame("overload")
    top = overload[overload["rho"] == overload["rho"].max()]
    policy = top[(top["policy"] != saturation.NO_POLICY) & (top["priority"] == "LOW")].iloc[0]
    assert f"{policy['share_rejected']:.0%} are refused at once" in text
    assert "answered at once or expired" not in text


def test_adoption_and_risks_are_sections_with_content(rendered):
    text, _, _ = rendered
    adopt = text.split("## How to adopt", 1)[1].split("\n## ", 1)[0]
    assert "```python" in adopt and "lifespan" in adopt and "shutdown()" in adopt
    risks = text.split("## Risks and revisit conditions", 1)[1].split("\n## ", 1)[0]
    assert "janus" in risks and "Redis" in risks and "Python 3.13" in risks
    assert "Revisit the decision when" in risks
    py313 = text.split("## On Python 3.13 and later", 1)[1].split("\n## ", 1)[0]
    assert "not a measurement" in py313 and "wrapper" in py313


def test_the_headings_come_in_a_fixed_order(records):
    orders = [[line for line in text.splitlines() if line.startswith("## ")]
              for text, *_ in records.values()]
    assert orders[0] == orders[1] == [
        "## Decision", "## Evidence", "## On Python 3.13 and later", "## How to adopt",
        "## Risks and revisit conditions", "## Measured on"]


def test_the_choices_dequeue_tail_is_said_when_it_is_the_worst(records):
    _, _, run = records["plain"]
    primary = record.primary(adr.decide_run(run))
    table = primary.table.copy()
    table["dequeue_p99_us"] = [250.0] + [100.0] * (len(table) - 1)
    worst = dataclasses.replace(primary, table=table)
    [line] = record.dequeue_tail(worst)
    assert f"`{primary.choice}` has this context's highest p99 dequeue latency, 250 µs" in line
    assert "2.5% of a 10 ms inference" in line and "median of" in line
    table["dequeue_p99_us"] = [50.0] + [100.0] * (len(table) - 1)
    assert record.dequeue_tail(dataclasses.replace(primary, table=table)) == []
