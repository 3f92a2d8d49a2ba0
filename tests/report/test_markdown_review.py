"""conformance.report.markdown for CI review: the verdict first, regressions against a baseline, missing rows,
flagged expected failures, folded sections, and a size that stays under GitHub's 1 MiB job-summary limit for a
suite ten times the shipped one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conformance.report.compare import diff
from conformance.report.markdown import MAX_BYTES, render_markdown
from conformance.results import Result
from tests.report.test_markdown import ATTENTION, attention_rows, report_of, row, section

BASELINE = Path(__file__).parents[2] / "reports" / "baseline" / "conformance.json"


def test_the_verdict_is_the_first_thing_after_the_title() -> None:
    lines = render_markdown(report_of(attention_rows())).splitlines()
    assert lines[:3] == ["# Conformance report", "", "**Verdict: ❌ 2 checks fail.**"]
    passing = [r for r in attention_rows() if r["outcome"] not in ("failed", "error")]
    assert render_markdown(report_of(passing)).splitlines()[2] == "**Verdict: ✅ every check that ran passes.**"


def test_regressions_against_the_baseline_lead_the_summary() -> None:
    head = attention_rows()
    base = [dict(r, outcome="passed", message=None) if r["outcome"] == "failed" else r for r in head]
    comparison = diff([Result.from_json(r) for r in base], [Result.from_json(r) for r in head])
    markdown = render_markdown(report_of(head), comparison=comparison)
    assert markdown.splitlines()[2] == "**Verdict: ❌ 2 checks fail; 1 regression against the baseline.**"
    against = section(markdown, "## Against the baseline")
    assert "1 regressions, 0 fixes" in against
    assert "- `attention` · `impl.py:attn` · cpu · float32 · oracle: passed → **failed** — max |error| 0.5" in against
    assert markdown.index("## Against the baseline") < markdown.index("## Failures") < markdown.index("## Attention")


def test_missing_rows_are_counted_in_the_verdict_and_listed_with_their_reason() -> None:
    report = report_of(attention_rows()[:3])
    missing = {"spec": "attention", "implementation": "impl.py:attn", "device": "cpu", "dtype": "float16", "check": "oracle"}
    report["missing"] = [dict(missing, reason="not run: the run was interrupted")]
    report["summary"]["missing"] = 1
    markdown = render_markdown(report)
    assert markdown.splitlines()[2] == "**Verdict: ❌ 1 planned check produced no row.**"
    text = section(markdown, "## Missing rows")
    assert "1 planned checks produced no row: 1 — not run: the run was interrupted" in text
    assert "- `attention` · `impl.py:attn` · cpu · float16 · oracle" in text


def test_flagged_expected_failures_come_first_in_their_table() -> None:
    report = report_of(attention_rows())
    entry = {"file": "xfails.yaml", "line": 3, "spec": "attention", "implementation": None, "check": "oracle",
             "device": None, "dtype": "float16", "reason": "a known bug", "spec_line": "specs/a.yaml:54", "rows": {}}
    report["xfails"] = [dict(entry, status="expected failure", line=9), dict(entry, status="matches nothing")]
    text = section(render_markdown(report), "## Reviewed expected failures")
    assert "2 entries in effect; 1 flagged for review" in text
    table = [line for line in text.splitlines() if line.startswith("| ") and "xfails.yaml" in line]
    assert table[0].startswith("| ⚠️ matches nothing | `attention` | every | oracle | float16 | a known bug | `xfails.yaml:3`")
    assert table[1].startswith("| expected failure |")


def test_spec_sections_fold_unless_a_row_fails() -> None:
    passing = [row(ATTENTION, "impl.py:attn", "cpu", "float64", "oracle", "passed")]
    assert "<details><summary>1 checks: ✅ 1</summary>" in render_markdown(report_of(passing))
    assert "<details open><summary>" in render_markdown(report_of(attention_rows()))


def _scaled_suite(copies: int, failing_every: int) -> dict[str, Any]:
    """The committed baseline's rows ``copies`` times over (spec ids suffixed), every ``failing_every``-th failing
    with a long message, falsifying example and repro: a suite ten times today's, badly broken."""
    rows = json.loads(BASELINE.read_text())["results"]
    out = []
    for c in range(copies):
        for i, r in enumerate(rows):
            r = dict(r, spec=f"{r['spec']}_{c}")
            if i % failing_every == 0:
                r.update(outcome="failed", message="max |error| 3.1 > tolerance 1e-3 " + "x" * 1500,
                         falsifying_example={"sizes": {"B": 3, "D": 64}, "seed": i}, repro="reproduce(...)\n" * 20)
            out.append(r)
    return report_of(out)


def test_a_ten_times_larger_suite_stays_under_the_job_summary_limit() -> None:
    report = _scaled_suite(copies=10, failing_every=7)
    markdown = render_markdown(report)
    assert len(markdown.encode()) < MAX_BYTES < 1024 * 1024
    failures = report["summary"]["failed"]
    assert failures > 2000
    assert f"**{report['summary']['rows']} checks:**" in markdown
    assert "more, one line each" in markdown and "conformance.json has them all" in markdown
    assert "(matrix in conformance.html)" in markdown, "matrices past their budget become one line per spec"


def test_todays_suite_is_rendered_in_full() -> None:
    report = _scaled_suite(copies=1, failing_every=10**9)  # only row 0 fails
    markdown = render_markdown(report)
    assert "(matrix in conformance.html)" not in markdown and "more, one line each" not in markdown
    specs = {r["spec"] for r in report["results"]}
    assert all(f"### `{s}` —" in markdown for s in specs)
