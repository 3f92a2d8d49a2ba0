"""``conformance.html`` (conformance/report/html.py): structure, escaping, self-containment, failures with their
repro, a plot per check with samples, the filters' markup, the missing and expected-failure sections."""

from __future__ import annotations

import base64
import hashlib
import re
from html import unescape
from html.parser import HTMLParser
from typing import Any

from conformance.report import build_report
from conformance.report.html import render_html
from conformance.report.html_plot import plot_svg

EVIL = '<script>alert("x")</script>'
REPRO = "from conformance.repro import reproduce\nreproduce('toy', 'impl.py:f', check='oracle', example={'sizes': {'D': 2}})"


class _Tags(HTMLParser):
    """Every start tag with its attributes, and the text inside each element that has an id."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def _tags(page: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed(page)
    return parser.tags


def _row(check: str, outcome: str, **extra: Any) -> dict[str, Any]:
    row = {"spec": "toy", "implementation": "impl.py:f", "device": "cpu", "dtype": "float64", "check": check,
           "outcome": outcome, "title": "Squared distance", "paper": "A Test Paper", "arxiv": "2501.00663",
           "equation": "1", "spec_file": "toy.yaml", "spec_line": 12, "family": "equation", "examples": 3}
    return {**row, **extra}


def _report(**sections: Any) -> dict[str, Any]:
    rows = [
        _row("oracle", "failed", max_abs_err=0.5, tolerance=1e-3, tolerance_basis="2×1e-4 (noise floor)",
             message=f"max |error| 0.5 > tolerance {EVIL}", falsifying_example={"sizes": {"D": 2}, "seed": 7},
             repro=REPRO, samples=[[1.0, 0.01], [10.0, 500.0], [1000.0, "inf"]]),
        _row("gradient", "passed", max_abs_err=1e-9, tolerance=1e-6, samples=[[1.0, 0.001], [2.0, 0.002]]),
        _row("determinism", "passed", max_abs_err=0.0),
        _row("oracle", "skipped", device="cuda", message="CUDA not available"),
        _row("fact:zero", "error", implementation="sympy", dtype="exact", family="fact", message="boom",
             traceback="Traceback: ZeroDivisionError", repro="reproduce('toy', 'sympy')"),
    ]
    report = build_report(rows, profile="conformance-ci", argv=["conformance", "run"], **sections)
    report["specs"] = {"toy": {
        "title": "Squared distance", "paper": {"title": "A Test Paper", "authors": ["A"], "year": 2024, "arxiv": "2501.00663"},
        "equation": "1", "section": "3.1", "statement": r"\ell = \lVert h - m \rVert_2^2", "file": "toy.yaml", "line": 3,
        "expressions": [{"name": "loss", "text": "   2\n(h - m) "}], "inputs": {"h": ["B", "D"]}, "outputs": {"loss": ["B"]},
        "ambiguities": [{"question": "A sum or a mean?", "choice": f"A sum {EVIL}"}],
    }}
    return report


def test_the_verdict_comes_first_then_environment_filters_matrix_and_equations() -> None:
    page = render_html(_report())
    order = [page.index(marker) for marker in ('id="verdict"', 'id="environment"', 'id="filters"', 'id="matrix"',
                                               'id="equations"', 'id="spec-toy"')]
    assert order == sorted(order)
    verdict = page[page.index('id="verdict"'):page.index('id="environment"')]
    assert "FAIL — 1 failed, 1 errors" in unescape(verdict) and "5 checks" in verdict
    assert 'href="#spec-toy"' in verdict and "Eq. 1 section" in verdict
    assert page.count('<section class="spec"') == 1


def test_the_environment_and_hypothesis_profile_are_shown() -> None:
    report = _report()
    report["environment"]["devices"] = [{"name": "cpu", "available": True, "description": "x86_64", "threads": 2},
                                        {"name": "cuda", "available": False, "skip_reason": "no driver here"}]
    text = unescape(render_html(report))
    assert f"torch</dt> <dd>{report['environment']['torch']}" in text
    assert "not available — skipped: no driver here" in text and "x86_64, 2 threads" in text
    assert "conformance-ci: 20 examples per check, derandomize=True, shrink=True" in text


def test_every_string_from_the_report_is_escaped() -> None:
    page = render_html(_report())
    assert EVIL not in page and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert [t for t, _ in _tags(page)].count("script") == 1  # the page's own


def test_the_page_s_one_script_and_style_are_allowed_by_hash_only() -> None:
    page = render_html(_report())
    script = re.search(r"<script>(.*?)</script>", page, re.S).group(1)
    style = re.search(r"<style>(.*?)</style>", page, re.S).group(1)
    csp = next(a["content"] for t, a in _tags(page) if t == "meta" and a.get("http-equiv") == "Content-Security-Policy")

    def digest(text: str) -> str:
        return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()

    assert "default-src 'none'" in csp and digest(script) in csp and digest(style) in csp and "unsafe-inline" not in csp


def test_the_page_loads_nothing_and_links_out_only_to_the_paper() -> None:
    page = render_html(_report())
    tags = _tags(page)
    assert not [a for _, a in tags if a.get("src")]
    outside = {a["href"] for _, a in tags if a.get("href") and not a["href"].startswith("#")}
    assert outside == {"https://arxiv.org/abs/2501.00663"}
    assert not {t for t, _ in tags} & {"link", "img", "iframe", "object", "embed"}
    assert "@import" not in page and "url(" not in page


def test_a_paper_url_that_is_not_http_is_text_not_a_link() -> None:
    report = _report()
    report["specs"]["toy"]["paper"] = {"title": "T", "arxiv": None, "url": "javascript:alert(1)"}
    assert not [a for _, a in _tags(render_html(report)) if (a.get("href") or "").startswith("javascript")]


def test_every_failing_row_appears_with_its_repro_and_a_copy_button() -> None:
    report = _report()
    page = render_html(report)
    tags = _tags(page)
    for index, row in enumerate(report["results"]):
        if row["outcome"] not in ("failed", "error"):
            continue
        assert f'href="#r{index}"' in page  # listed in the verdict
        assert f'id="repro-{index}">{_escaped(row["repro"])}</pre>' in page
        assert any(t == "button" and a.get("data-copy") == f"repro-{index}" for t, a in tags)
    assert "sizes = {&quot;D&quot;: 2}" in page and "seed = 7" in page  # the falsifying example
    assert "Traceback: ZeroDivisionError" in page


def _escaped(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;").replace("'", "&#x27;")


def test_each_check_with_samples_has_its_plot_and_only_those() -> None:
    report = _report()
    page = render_html(report)
    with_samples = sum(1 for r in report["results"] if r.get("samples"))
    assert page.count('<svg class="plot"') == with_samples == 2
    failing = page[page.index('id="r0"'):page.index('id="r1"')]
    assert 'class="bad"' in failing and 'class="tol"' in failing  # examples above 1, and the line at 1


def test_a_plot_is_log_scale_when_its_ratios_span_decades_and_marks_examples_above_the_tolerance() -> None:
    wide = plot_svg([[1.0, 1e-4], [10.0, 0.5], [100.0, 3e5]])
    narrow = plot_svg([[1.0, 0.2], [1.0, 0.4], [1.0, 0.3]])
    assert "log scale" in wide and "x: largest |input|, log" in wide and "1 above 1" in wide
    assert "linear scale" in narrow and "x: example" in narrow and 'class="bad"' not in narrow
    assert plot_svg([]) == "" and plot_svg([["inf", "nan"], [1.0, 0.0]]).startswith("<svg")


def test_the_filters_are_labelled_form_controls_with_every_value() -> None:
    tags = _tags(render_html(_report()))
    ids = {a.get("id") for t, a in tags if t in ("select", "input")}
    assert ids == {"f-outcome", "f-spec", "f-impl", "f-device", "f-dtype", "f-q"}
    labelled = {a.get("for") for t, a in tags if t == "label"}
    assert ids <= labelled
    values = {a.get("value") for t, a in tags if t == "option"}
    assert {"failed", "passed", "toy", "impl.py:f", "sympy", "cpu", "cuda", "exact", "float64"} <= values
    assert any(t == "button" and a.get("id") == "f-reset" for t, a in tags)
    rows = [a for t, a in tags if t == "tr" and "data-row" in a and "detail" not in (a.get("class") or "")]
    assert len(rows) == 5 and all(a["data-spec"] == "toy" and a["data-outcome"] for a in rows)


def test_a_matrix_cell_shows_its_worst_outcome_in_words_and_the_worst_ratio() -> None:
    page = unescape(render_html(_report()))
    matrix = page[page.index('id="matrix"'):page.index('id="equations"')]
    cell = re.search(r'<td class="cell o-failed" data-device="cpu" data-dtype="float64">(.*?)</td>', matrix, re.S).group(1)
    assert "✗</span> FAIL" in cell and "500×" in cell and "1/3 failed" in cell  # 0.5 / 1e-3 against the tolerance
    assert '<td class="cell o-skipped" data-device="cuda"' in matrix and '<td class="cell o-error"' in matrix


def test_the_equation_section_shows_statement_expressions_and_ambiguities() -> None:
    page = render_html(_report())
    section = unescape(page[page.index('id="spec-toy"'):])
    assert r"\ell = \lVert h - m \rVert_2^2</pre>" in section and "   2\n(h - m) </pre>" in section
    assert "A sum or a mean?" in section and "Choice:</b> A sum <script>" in section
    assert "|error| 0.5 vs tolerance 0.001" in section and "2×1e-4 (noise floor)" in section


def test_missing_cases_and_stale_expected_failures_have_their_sections() -> None:
    missing = [{"spec": "toy", "implementation": "impl.py:f", "device": "cpu", "dtype": "float32", "check": "oracle",
                "reason": "the run was interrupted"}]
    xfails = [{"file": "xf.yaml", "line": 4, "spec": "toy", "implementation": None, "check": "oracle", "device": None,
               "dtype": None, "reason": "known", "spec_line": 12, "status": "now passes", "rows": 1},
              {"file": "xf.yaml", "line": 9, "spec": "toy", "implementation": None, "check": "gradient", "device": None,
               "dtype": None, "reason": "old", "spec_line": 12, "status": "expected failure", "rows": 2}]
    page = unescape(render_html(_report(missing=missing, xfails=xfails)))
    assert "1 planned cases with no result" in page and "the run was interrupted" in page
    assert '<span class="flag">⚠ now passes</span>' in page and "expected failure</td>" in page
    assert "1 expected failure(s) now pass or match nothing" in page


def test_a_passing_report_says_pass_and_lists_no_failures() -> None:
    report = build_report([_row("oracle", "passed", max_abs_err="inf", tolerance="nan")], profile="conformance-ci", argv=[])
    page = render_html(report)
    assert "✓ PASS" in page and 'id="failures"' not in page and "v-pass" in page


def test_a_figure_or_table_is_named_as_given_and_a_number_as_an_equation() -> None:
    report = _report()
    report["specs"]["toy"]["equation"] = "Fig. 1"
    page = render_html(report)
    assert "Fig. 1 — Squared distance" in page and "Eq. Fig." not in page
    assert "Eq. 1 — Squared distance" in render_html(_report())
