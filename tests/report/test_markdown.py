"""conformance.report.markdown: the reviewer's summary, rendered from a handmade report.

A section per paper, a subsection per spec with its facts (and their proofs) and a device × dtype
matrix whose cells carry each row's outcome symbol, then every failure with its message,
falsifying example and reproduction, then the skip and xfail reasons, grouped.
"""

from __future__ import annotations

import json
from typing import Any

from conformance.report.markdown import SYMBOL, render_markdown
from conformance.report.rows import OUTCOMES, sort_rows

ATTENTION = {
    "spec": "attention",
    "title": "Scaled dot-product attention",
    "paper": "Attention Is All You Need",
    "arxiv": "1706.03762",
    "equation": "1",
    "spec_file": "specs/attention_is_all_you_need.yaml",
}
SURPRISE = {
    "spec": "surprise",
    "title": "Associative-memory loss",
    "paper": "Titans: Learning to Memorize at Test Time",
    "arxiv": "2501.00663",
    "equation": "12",
    "spec_file": "specs/titans.yaml",
}
SURPRISE_MEAN = {**SURPRISE, "spec": "surprise_mean", "title": "Mean surprise", "equation": "13"}
CUDA_REASON = "CUDA not available (torch.cuda.is_available() is False)"
EXAMPLE = {
    "sizes": {"B": 1, "H": 1, "Lq": 2, "Lk": 3, "Dk": 4, "Dv": 1},
    "params": {},
    "magnitudes": {},
    "present": {},
    "seed": 9,
}
REPRO = "from conformance.repro import reproduce\nreproduce('attention', 'impl.py:attn', check='oracle', ...)"


def row(base: dict[str, Any], impl: str, device: str, dtype: str, check: str, outcome: str, **fields: Any) -> dict[str, Any]:
    """A report row as the plugin writes it (measurements default to a plain pass)."""
    return {
        **base,
        "spec_line": fields.pop("spec_line", 10),
        "implementation": impl,
        "device": device,
        "dtype": dtype,
        "check": check,
        "family": "fact" if impl == "sympy" else "equation",
        "outcome": outcome,
        "message": None,
        "max_abs_err": None,
        **fields,
    }


def attention_rows() -> list[dict[str, Any]]:
    impl = "impl.py:attn"
    return [
        row(ATTENTION, "sympy", "cpu", "exact", "fact:softmax_rows_sum_to_one", "passed", proof="proved for N in [1, 2, 3]"),
        row(ATTENTION, "reference:attention", "cpu", "float64", "oracle_agreement", "passed"),
        row(ATTENTION, impl, "cpu", "float64", "oracle", "passed"),
        row(
            ATTENTION,
            impl,
            "cpu",
            "float32",
            "oracle",
            "failed",
            spec_line=54,
            message="max |error| 0.5 > tolerance 1e-06 = 8e-07 (noise floor)",
            max_abs_err=0.5,
            tolerance=1e-06,
            tolerance_basis="8e-07 (noise floor)",
            falsifying_example=EXAMPLE,
            repro=REPRO,
        ),
        row(ATTENTION, impl, "cuda", "float64", "oracle", "skipped", message=CUDA_REASON),
        row(ATTENTION, impl, "cuda", "float32", "oracle", "skipped", message=CUDA_REASON),
        row(ATTENTION, impl, "cpu", "float64", "gradcheck", "error", message="RuntimeError: backward exploded"),
        row(ATTENTION, impl, "cpu", "float64", "invariant:causality", "xfailed", message="expected failure: reviewed"),
    ]


def report_of(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """A complete report around ``rows`` (as build_report makes it, with a fixed environment)."""
    rows = sort_rows(rows)
    return {
        "created": "2026-01-02T03:04:05+00:00",
        "environment": {
            "torch": "2.13.0+cpu",
            "python": "3.11.7",
            "devices": [
                {"name": "cpu", "available": True, "description": "x86_64"},
                {"name": "cuda", "available": False, "skip_reason": CUDA_REASON},
            ],
        },
        "hypothesis": {"profile": "conformance-ci", "max_examples": 20, "derandomize": True},
        "summary": {"rows": len(rows), **{o: sum(r["outcome"] == o for r in rows) for o in OUTCOMES}},
        "results": rows,
    }


def heading_level(line: str) -> int:
    """The number of leading '#' (0 for a line that is not a heading)."""
    return len(line) - len(line.lstrip("#"))


def section(markdown: str, heading: str) -> str:
    """The text under ``heading`` up to the next heading of the same or a higher level."""
    lines = markdown.splitlines()
    start, level = lines.index(heading), heading_level(heading)
    end = next((i for i in range(start + 1, len(lines)) if 0 < heading_level(lines[i]) <= level), len(lines))
    return "\n".join(lines[start + 1 : end])


def matrix(text: str) -> dict[tuple[str, str], dict[str, str]]:
    """The outcome table in ``text``: ``{(implementation, check): {"cpu float64": symbol, ...}}``."""
    table = [line for line in text.splitlines() if line.startswith("|")]
    header = [c.strip() for c in table[0].strip("|").split("|")]
    assert header[:2] == ["implementation", "check"] and set(table[1].replace("|", "").split()) <= {"---"}
    cells = {}
    for line in table[2:]:
        impl, check, *values = [c.strip() for c in line.strip("|").split("|")]
        cells[(impl.strip("`"), check)] = dict(zip(header[2:], values))
    return cells


def rendered(rows: list[dict[str, Any]]) -> str:
    return render_markdown(report_of(rows))


# -- header ----------------------------------------------------------------------------------------
def test_header_names_devices_profile_and_counts() -> None:
    markdown = rendered(attention_rows())
    assert markdown.startswith("# Conformance report\n")
    assert f"Devices: cpu (x86_64); cuda: skipped — {CUDA_REASON}" in markdown
    assert "Hypothesis profile `conformance-ci` (20 examples per check, derandomize=True)" in markdown
    assert "**8 checks:** ✅ 3 passed · ❌ 1 failed · 💥 1 error · ⏭️ 2 skipped · 🟡 1 xfailed" in markdown


# -- sections --------------------------------------------------------------------------------------
def test_a_section_per_paper_and_a_subsection_per_spec() -> None:
    rows = attention_rows() + [
        row(SURPRISE, "s.py:f", "cpu", "float64", "oracle", "passed"),
        row(SURPRISE_MEAN, "s.py:g", "cpu", "float64", "oracle", "passed"),
    ]
    markdown = rendered(rows)
    papers = [line for line in markdown.splitlines() if line.startswith("## ") and "arXiv" in line]
    assert papers == [
        "## Attention Is All You Need (arXiv 1706.03762)",
        "## Titans: Learning to Memorize at Test Time (arXiv 2501.00663)",
    ]
    attention = section(markdown, papers[0])
    assert "### `attention` — Scaled dot-product attention (Eq. 1)" in attention
    assert "surprise" not in attention
    titans = section(markdown, papers[1])
    assert "### `surprise` — Associative-memory loss (Eq. 12)" in titans
    assert "### `surprise_mean` — Mean surprise (Eq. 13)" in titans
    assert "Spec: `specs/titans.yaml:10`" in titans


def test_spec_subsection_points_at_its_first_spec_line() -> None:
    spec = section(rendered(attention_rows()), "### `attention` — Scaled dot-product attention (Eq. 1)")
    assert "Spec: `specs/attention_is_all_you_need.yaml:10`" in spec


def test_matrix_has_the_outcome_symbol_in_each_cell() -> None:
    spec = section(rendered(attention_rows()), "### `attention` — Scaled dot-product attention (Eq. 1)")
    symbols = {key: {col: cell.split()[0] for col, cell in row.items()} for key, row in matrix(spec).items()}
    assert list(symbols["impl.py:attn", "oracle"]) == ["cpu float64", "cpu float32", "cuda float64", "cuda float32"]
    assert symbols["impl.py:attn", "oracle"] == {
        "cpu float64": SYMBOL["passed"],
        "cpu float32": SYMBOL["failed"],
        "cuda float64": SYMBOL["skipped"],
        "cuda float32": SYMBOL["skipped"],
    }
    assert symbols["impl.py:attn", "gradcheck"] == {
        "cpu float64": SYMBOL["error"],
        "cpu float32": "—",
        "cuda float64": "—",
        "cuda float32": "—",
    }
    assert symbols["impl.py:attn", "invariant:causality"]["cpu float64"] == SYMBOL["xfailed"]
    assert symbols["reference:attention", "oracle_agreement"]["cpu float64"] == SYMBOL["passed"]
    assert not any(check.startswith("fact:") for _, check in symbols), "facts are listed, not put in the matrix"


def test_matrix_cell_shows_the_error_as_a_fraction_of_the_tolerance() -> None:
    rows = [
        row(SURPRISE, "s.py:f", "cpu", "float64", "oracle", "passed", max_abs_err=2.5e-7, tolerance=1e-6),
        row(SURPRISE, "s.py:f", "cpu", "float32", "oracle", "failed", max_abs_err=3e-6, tolerance=1e-6),
        row(SURPRISE, "s.py:f", "cpu", "float64", "gradcheck", "passed", max_abs_err=0.0, tolerance=None),
        row(SURPRISE, "s.py:f", "cpu", "float64", "gradient", "failed", max_abs_err="inf", tolerance=1e-6),
    ]
    cells = matrix(section(rendered(rows), "### `surprise` — Associative-memory loss (Eq. 12)"))
    assert cells["s.py:f", "oracle"] == {"cpu float64": "✅ 0.25", "cpu float32": "❌ 3.00"}
    assert cells["s.py:f", "gradcheck"]["cpu float64"] == "✅", "exact checks have no tolerance to compare with"
    assert cells["s.py:f", "gradient"]["cpu float64"] == "❌"


def test_matrix_columns_follow_dtype_order() -> None:
    rows = [row(SURPRISE, "s.py:f", "cpu", dtype, "oracle", "passed") for dtype in ("float16", "bfloat16", "float32", "float64")]
    cells = matrix(section(rendered(rows), "### `surprise` — Associative-memory loss (Eq. 12)"))
    assert list(cells["s.py:f", "oracle"]) == ["cpu float64", "cpu float32", "cpu bfloat16", "cpu float16"]


def test_facts_are_listed_with_their_proof() -> None:
    rows = attention_rows() + [
        row(ATTENTION, "sympy", "cpu", "exact", "fact:shift", "failed", message="not proved: residual c", proof=None)
    ]
    spec = section(rendered(rows), "### `attention` — Scaled dot-product attention (Eq. 1)")
    assert "- ✅ **fact:softmax_rows_sum_to_one** — proved for N in [1, 2, 3]" in spec.splitlines()
    assert "- ❌ **fact:shift** — not proved: residual c" in spec.splitlines()


# -- failures --------------------------------------------------------------------------------------
def test_failures_have_message_falsifying_example_and_repro() -> None:
    failures = section(rendered(attention_rows()), "## Failures")
    failed = section(failures, "### ❌ `attention` · `impl.py:attn` · cpu · float32 · oracle")
    assert "Spec line: `specs/attention_is_all_you_need.yaml:54`" in failed
    assert "max |error| 0.5 · tolerance 1e-06 (8e-07 (noise floor))" in failed
    assert "```text\nmax |error| 0.5 > tolerance 1e-06 = 8e-07 (noise floor)\n```" in failed
    assert f"Falsifying example:\n\n```json\n{json.dumps(EXAMPLE)}\n```" in failed
    assert f"Reproduce:\n\n```python\n{REPRO}\n```" in failed
    error = section(failures, "### 💥 `attention` · `impl.py:attn` · cpu · float64 · gradcheck")
    assert "```text\nRuntimeError: backward exploded\n```" in error
    assert "Falsifying example" not in error and "Reproduce" not in error
    assert "skipped" not in failures and "invariant:causality" not in failures


def test_failures_section_says_none_when_nothing_failed() -> None:
    rows = [r for r in attention_rows() if r["outcome"] not in ("failed", "error")]
    assert section(rendered(rows), "## Failures").strip() == "None."


# -- skips and xfails ------------------------------------------------------------------------------
def test_skip_and_xfail_reasons_are_grouped_with_counts() -> None:
    skips = section(rendered(attention_rows()), "## Skipped and expected failures")
    assert skips.strip().splitlines() == [f"- ⏭️ 2 on cuda: {CUDA_REASON}", "- 🟡 1: expected failure: reviewed"]


def test_no_skip_section_without_skips_or_xfails() -> None:
    rows = [r for r in attention_rows() if r["outcome"] not in ("skipped", "xfailed")]
    assert "## Skipped and expected failures" not in rendered(rows)
