"""The gradient audit's drivers end to end (``conformance audit-grads``, ``pytest conformance --grad-audit``) and its
report: the one-line answer, defects ranked by severity, the JSON read back, the HTML section.

The implementation guide's SurpriseFunction (``guide_saved_diff``) computes its backward from a tensor saved without
a graph: first-order gradients are right, second-order ones are not. The shipped ``compute_surprise`` is right.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from conformance.report import read_report
from conformance.report.grad_markdown import TIERS, defects, render_grad_markdown, verdict_line
from conformance.report.html import render_html
from tests.spec_helpers import REPO_ROOT, run_cli, run_suite

GUIDE = "surprise=tests/meta_tests/defects/surprise_defects.py:guide_saved_diff"
SHIPPED = "surprise=implementations.surprise:compute_surprise"
PROFILE = ("--hypothesis-profile", "conformance-ci")
SECOND_ORDER = "Not safe to train through: surprise · …guide_saved_diff — second-order gradients are wrong (gradgradcheck"


def _audit_cli(out: Path, impl: str, *args: str) -> tuple[int, str, dict[str, Any]]:
    done = run_cli(REPO_ROOT, "audit-grads", "-q", "--impl", impl, "--report-dir", str(out), *PROFILE, *args, timeout=300)
    assert done.returncode in (0, 1), done.stdout + done.stderr
    document = json.loads((out / "grad_audit.json").read_text(encoding="utf-8"))
    return done.returncode, (out / "grad_audit.md").read_text(encoding="utf-8"), document


@pytest.fixture(scope="module")
def guide(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, dict[str, Any], Path]:
    out = tmp_path_factory.mktemp("guide")
    return (*_audit_cli(out, GUIDE), out)


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, dict[str, Any], Path]:
    out = tmp_path_factory.mktemp("shipped")
    return (*_audit_cli(out, SHIPPED, "-k", "cpu"), out)


def test_cli_names_the_guide_functions_second_order_defect_first_and_exits_1(guide: tuple) -> None:
    rc, markdown, document, _ = guide
    assert rc == 1
    assert markdown.splitlines()[0].startswith(SECOND_ORDER), markdown.splitlines()[0]
    failed = {(r["device"], r["dtype"], r["check"]) for r in document["results"] if r["outcome"] == "failed"}
    assert ("cpu", "float64", "gradgradcheck") in failed
    assert ("cpu", "float64", "gradcheck") not in failed  # first order is right: not what the answer names
    assert "Reproduce with:" in markdown and "reproduce('surprise'" in markdown


def test_cli_says_safe_for_the_shipped_implementation_and_exits_0(shipped: tuple) -> None:
    rc, markdown, document, _ = shipped
    judged = [r for r in document["results"] if r["outcome"] != "skipped"]
    assert rc == 0
    assert {r["outcome"] for r in judged} == {"passed"}
    expected = f"Safe to train through: every gradient audited passed (1 implementation, {len(judged)} checks)"
    assert markdown.splitlines()[0] == expected


def test_the_json_reads_back_as_a_report_marked_as_the_gradient_audit(guide: tuple) -> None:
    _, _, document, out = guide
    header, rows = read_report(out / "grad_audit.json")
    assert header["audit"] == "gradients"
    assert len(rows) == header["summary"]["rows"] == len(document["results"])
    assert {r.check for r in rows} >= {"gradient", "gradcheck", "gradgradcheck"}
    assert {r.family for r in rows} == {"gradient"}  # an audit runs no other family


def test_skipped_rows_are_grouped_with_their_reason(guide: tuple) -> None:
    _, markdown, document, _ = guide
    skipped = [r for r in document["results"] if r["outcome"] == "skipped"]
    if torch.cuda.is_available():
        pytest.skip("CUDA is available: its rows run")
    reasons = {r["message"] for r in skipped}
    assert skipped and len(reasons) == 1
    assert f"- {reasons.pop()}: {len(skipped)} — " in markdown


def test_the_html_leads_with_the_gradient_audit_section(guide: tuple) -> None:
    _, markdown, _, out = guide
    page = (out / "grad_audit.html").read_text(encoding="utf-8")
    assert page.index('id="grad-audit"') < page.index('id="verdict"')
    section = html.unescape(page[page.index('id="grad-audit"') : page.index('id="verdict"')])
    assert markdown.splitlines()[0] in section
    assert "tests/meta_tests/defects/surprise_defects.py:guide_saved_diff" in section.replace("<wbr>", "")


def test_the_pytest_option_gives_the_same_verdicts(guide: tuple, tmp_path: Path) -> None:
    """``pytest conformance --grad-audit`` from another directory (its default report dir), on the CPU rows."""
    impl = GUIDE.replace("tests/", f"{REPO_ROOT.as_posix()}/tests/", 1)
    done = run_suite(tmp_path, "--grad-audit", "--impl", impl, *PROFILE, "-k", "cpu", timeout=300)
    out = tmp_path / "reports" / "grad_audit"
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    assert (out / "grad_audit.md").read_text(encoding="utf-8").splitlines()[0].startswith(SECOND_ORDER)
    assert not (tmp_path / "reports" / "latest").exists()  # the conformance run's reports are not written

    def verdicts(rows: list[dict[str, Any]]) -> dict[tuple[str, str, str], str]:
        return {(r["device"], r["dtype"], r["check"]): r["outcome"] for r in rows if r["device"] == "cpu"}

    by_pytest = json.loads((out / "grad_audit.json").read_text(encoding="utf-8"))
    assert by_pytest["audit"] == "gradients"
    assert verdicts(by_pytest["results"]) == verdicts(guide[2]["results"])


def test_the_pytest_option_passes_the_shipped_implementation(shipped: tuple, tmp_path: Path) -> None:
    args = ("--grad-audit", "--impl", SHIPPED, "--report-dir", str(tmp_path), *PROFILE, "-k", "cpu")
    done = run_suite(REPO_ROOT, *args, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (tmp_path / "grad_audit.md").read_text(encoding="utf-8").splitlines()[0] == shipped[1].splitlines()[0]


# -- ranking and words, on rows written here ------------------------------------------------------------
def _row(check: str, outcome: str, dtype: str = "float64", message: str = "", implementation: str = "m:f") -> dict[str, Any]:
    return {"spec": "s", "implementation": implementation, "device": "cpu", "dtype": dtype, "check": check,
            "outcome": outcome, "family": "equation" if check == "oracle" else "gradient", "message": message}


def test_first_order_defects_outrank_second_order_which_outrank_low_precision() -> None:
    rows = [_row("gradient", "failed", "float16", "error above tolerance"), _row("gradgradcheck", "failed", message="mismatch"),
            _row("gradcheck", "failed", message="Jacobian mismatch")]
    assert verdict_line(rows).startswith("Not safe to train through: s · m:f — first-order gradients are wrong")
    assert verdict_line(rows[:2]).startswith("Not safe to train through: s · m:f — second-order gradients are wrong")
    assert "low precision" in verdict_line(rows[:1])
    assert verdict_line(rows).endswith("; 2 more defects below")
    tiers = [TIERS[d.tier] for d in defects(rows)]
    assert tiers == ["wrong first-order gradients", "wrong second-order gradients", "low precision"]


def test_an_unknown_check_falls_back_to_its_name_and_message() -> None:
    line = verdict_line([_row("my_new_audit", "failed", message="parameter w.bias has grad None"), _row("gradient", "passed")])
    assert line.startswith("Not safe to train through: s · m:f — my_new_audit failed (my_new_audit")
    assert "parameter w.bias has grad None" in line


def test_a_conformance_report_gets_the_section_only_with_an_audit_checks_rows() -> None:
    from conformance.check_defs import CheckDef
    from conformance.registry import CHECKS

    plain = {"schema": "conformance-report", "command": [], "results": [_row("gradient", "passed"), _row("oracle", "passed")]}
    assert 'id="grad-audit"' not in render_html(plain)
    record = CheckDef("test_only_audit", "gradient", "an audit check of this test", 9, lambda *a: [], lambda s, r: 0,
                      "tests.test_grad_audit_driver:_row", audit=True)
    CHECKS.register(record)
    try:
        with_audit = {**plain, "results": [*plain["results"], _row("test_only_audit", "failed", message="no gradient")]}
        page = html.unescape(render_html(with_audit))
        markdown = render_grad_markdown(with_audit)
    finally:
        CHECKS.unregister("test_only_audit")
    assert 'id="grad-audit"' in page and "test_only_audit failed" in page
    assert markdown.startswith("Not safe to train through: s · m:f — test_only_audit failed")
    assert "`oracle`" not in markdown  # only the audit's rows


def test_a_jacobian_column_appears_only_where_rows_carry_a_jacobian_field() -> None:
    with_field = {**_row("grad_options", "passed"), "max_abs_err": 1e-12, "jacobian_max_abs_err": 4.5e-7}
    section = render_grad_markdown({"audit": "gradients", "results": [with_field]}).split("## `s` · `m:f`")[1]
    assert "| Jacobian err |" in section and "| 4.5e-07 |" in section
    plain = render_grad_markdown({"audit": "gradients", "results": [_row("gradcheck", "passed")]})
    assert "Jacobian err" not in plain


def test_implementations_without_a_low_precision_gradient_are_named_in_the_answer_and_coverage() -> None:
    """An implementation with no ``gradient`` row below float64 that ran (none, or skipped: a NumPy-only reference):
    the safe answer says low precision was not audited there, and the Coverage section names it; one whose
    low-precision row ran is not listed, nor one whose CUDA row alone was skipped."""
    from conformance.report.grad_markdown import low_precision_gaps, render_grad_markdown, verdict_line

    def r(spec: str, check: str, dtype: str, outcome: str = "passed", device: str = "cpu") -> dict:
        return {"spec": spec, "implementation": f"m:{spec}", "device": device, "dtype": dtype, "check": check,
                "outcome": outcome}

    rows = [r("surprise", "gradient", "float32"), r("surprise", "gradient", "float32", "skipped", "cuda")]
    rows.append(r("surprise", "gradcheck", "float64"))
    rows += [r("numpy_only", "gradcheck", "float64"), r("numpy_only", "gradient", "float16", "skipped")]
    rows.append(r("memory_linear", "gradcheck", "float64"))
    assert low_precision_gaps(rows) == [("memory_linear", "m:memory_linear"), ("numpy_only", "m:numpy_only")]
    assert verdict_line(rows).endswith("; low-precision gradients not audited for 2 implementations (see Coverage)")
    text = render_grad_markdown({"audit": "gradients", "results": rows})
    coverage = text[text.index("## Coverage"):]
    assert "`memory_linear` · `m:memory_linear`" in coverage and "m:surprise" not in coverage.split("\n\n")[1]
    assert low_precision_gaps(rows[:3]) == [] and "not audited" not in verdict_line(rows[:3])
