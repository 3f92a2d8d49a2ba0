"""conformance.report.rows: one row per case, folded from pytest's phase reports, in a fixed order.

``merge_phase`` is fed fake reports carrying only what pytest's ``TestReport`` gives it (``when``,
``passed``/``failed``/``skipped``, ``longrepr``, ``wasxfail``, ``nodeid``), in the forms pytest
produces them: a skip's ``(path, line, "Skipped: reason")`` tuple, a strict xpass's
``"[XPASS(strict)] reason"`` string, a failure's text with ``E`` lines.
"""

from __future__ import annotations

import itertools
import random
from typing import Any

from conformance.report.rows import OUTCOMES, merge_phase, sort_rows

NODEID = "conformance/test_conformance.py::test_conformance[surprise-impl-cpu-float64-oracle]"
CASE = {
    "spec": "surprise",
    "implementation": "implementations.surprise:compute_surprise",
    "device": "cpu",
    "dtype": "float64",
    "check": "oracle",
    "spec_line": 41,
}
MEASURED = {
    "examples": 20,
    "duration_s": 0.5,
    "max_abs_err": 0.25,
    "max_rel_err": 0.125,
    "tolerance": 1e-12,
    "tolerance_basis": "2×1e-13 (same-precision reference error) + 8e-13 (noise floor)",
    "detail": "max |error| 0.25 > tolerance 1e-12 = 2×1e-13 (same-precision reference error) + 8e-13 (noise floor)",
    "falsifying_example": {"sizes": {"B": 1, "L": 1, "D": 2}, "params": {}, "magnitudes": {}, "present": {}, "seed": 3},
    "repro": "from conformance.repro import reproduce\nreproduce('surprise', ...)",
}
PASSED_RESULT = {**MEASURED, "max_abs_err": 1e-16, "detail": None, "falsifying_example": None, "repro": None}
FAILURE_TEXT = """\
    def test_conformance(conformance_case, conformance_record):
>       run_case(conformance_case, conformance_record)
E       conformance.checks.CheckFailure: oracle failed: max |error| 0.25 > tolerance 1e-12
E       Falsifying example: prop(example=Example(...))

conformance/test_conformance.py:18: CheckFailure"""
CUDA_SKIP = ("conformance/test_conformance.py", 17, "Skipped: CUDA not available (torch.cuda.is_available() is False)")


class FakeReport:
    """The attributes of a pytest ``TestReport`` that ``merge_phase`` reads; ``wasxfail`` only when given."""

    def __init__(self, when: str, outcome: str, longrepr: Any = None, wasxfail: str | None = None) -> None:
        assert outcome in ("passed", "failed", "skipped")
        self.when, self.nodeid, self.longrepr = when, NODEID, longrepr
        self.passed, self.failed, self.skipped = (outcome == o for o in ("passed", "failed", "skipped"))
        if wasxfail is not None:
            self.wasxfail = wasxfail


def merged(*phases: tuple[FakeReport, dict[str, Any] | None]) -> dict[str, Any]:
    """The row after folding ``(report, result)`` phases in order, as the plugin does."""
    row = None
    for report, result in phases:
        row = merge_phase(row, report, CASE, result)
    assert row is not None
    return row


def setup_ok() -> tuple[FakeReport, None]:
    return FakeReport("setup", "passed"), None


def teardown_ok(result: dict[str, Any] | None = None) -> tuple[FakeReport, dict[str, Any] | None]:
    return FakeReport("teardown", "passed"), result


# -- merge_phase: every outcome ------------------------------------------------------------------
def test_passed_row_has_the_case_the_measurements_and_no_message() -> None:
    row = merged(setup_ok(), (FakeReport("call", "passed"), PASSED_RESULT), teardown_ok(PASSED_RESULT))
    assert row["outcome"] == "passed" and row["message"] is None
    assert row["nodeid"] == NODEID
    assert {k: row[k] for k in CASE} == CASE
    assert row["max_abs_err"] == 1e-16 and row["examples"] == 20 and row["tolerance"] == 1e-12


def test_failed_row_message_is_the_measured_detail() -> None:
    row = merged(setup_ok(), (FakeReport("call", "failed", FAILURE_TEXT), MEASURED), teardown_ok(MEASURED))
    assert row["outcome"] == "failed"
    assert row["message"] == MEASURED["detail"]
    assert row["falsifying_example"] == MEASURED["falsifying_example"] and row["repro"] == MEASURED["repro"]


def test_failed_row_without_a_detail_takes_the_exception_lines() -> None:
    row = merged(setup_ok(), (FakeReport("call", "failed", FAILURE_TEXT), None))
    assert row["outcome"] == "failed"
    assert row["message"] == (
        "conformance.checks.CheckFailure: oracle failed: max |error| 0.25 > tolerance 1e-12\n"
        "Falsifying example: prop(example=Example(...))"
    )


def test_error_row_when_the_result_records_an_exception() -> None:
    result = {**MEASURED, "detail": None, "error": "RuntimeError: the implementation raised"}
    row = merged(setup_ok(), (FakeReport("call", "failed", "E   RuntimeError: the implementation raised"), result))
    assert row["outcome"] == "error"
    assert row["message"] == "RuntimeError: the implementation raised"
    assert row["error"] == "RuntimeError: the implementation raised"


def test_skipped_row_message_is_the_skip_reason() -> None:
    row = merged(setup_ok(), (FakeReport("call", "skipped", CUDA_SKIP), None), teardown_ok())
    assert row["outcome"] == "skipped"
    assert row["message"] == "CUDA not available (torch.cuda.is_available() is False)"


def test_skip_during_setup_is_skipped_with_its_reason() -> None:
    row = merged((FakeReport("setup", "skipped", CUDA_SKIP), None), teardown_ok())
    assert row["outcome"] == "skipped" and row["message"].startswith("CUDA not available")


def test_xfailed_row_message_has_the_reviewed_reason_and_the_measurement() -> None:
    report = FakeReport("call", "skipped", FAILURE_TEXT, wasxfail="divides by n + 1 (kept to show xfail)")
    row = merged(setup_ok(), (report, MEASURED), teardown_ok(MEASURED))
    assert row["outcome"] == "xfailed"
    assert row["message"].startswith("expected failure: divides by n + 1 (kept to show xfail)")
    assert MEASURED["detail"] in row["message"]


def test_stale_strict_xfail_is_a_failure_that_says_so() -> None:
    report = FakeReport("call", "failed", "[XPASS(strict)] divides by n + 1")
    row = merged(setup_ok(), (report, {**PASSED_RESULT, "detail": "fast mode failed, slow mode passed"}), teardown_ok())
    assert row["outcome"] == "failed"
    assert row["message"].startswith("stale xfail: the check passes now; remove the spec's xfail entry")
    assert "divides by n + 1" in row["message"]


def test_setup_error_is_an_error_row() -> None:
    setup = FakeReport("setup", "failed", "    def conformance_record(request):\nE       RuntimeError: fixture broke")
    row = merged((setup, None), teardown_ok())
    assert row["outcome"] == "error"
    assert row["message"] == "RuntimeError: fixture broke"
    assert row["nodeid"] == NODEID and row["check"] == "oracle"


def test_teardown_error_after_a_failure_keeps_the_failure() -> None:
    teardown = FakeReport("teardown", "failed", "E   RuntimeError: teardown broke")
    row = merged(setup_ok(), (FakeReport("call", "failed", FAILURE_TEXT), MEASURED), (teardown, MEASURED))
    assert row["outcome"] == "failed"
    assert row["message"] == MEASURED["detail"]


def test_teardown_error_after_a_pass_is_an_error() -> None:
    teardown = FakeReport("teardown", "failed", "E   RuntimeError: teardown broke")
    row = merged(setup_ok(), (FakeReport("call", "passed"), PASSED_RESULT), (teardown, PASSED_RESULT))
    assert row["outcome"] == "error" and row["message"] == "RuntimeError: teardown broke"


def test_merge_returns_a_new_row_and_leaves_the_previous_one_alone() -> None:
    first = merge_phase(None, FakeReport("setup", "passed"), CASE, None)
    snapshot = dict(first)
    second = merge_phase(first, FakeReport("call", "failed", FAILURE_TEXT), CASE, MEASURED)
    assert first == snapshot and second["outcome"] == "failed"


def test_setup_error_on_an_expected_failure_is_xfailed() -> None:
    # pytest turns a setup error of an xfail-marked test into a *setup* report that is skipped with
    # ``wasxfail`` (and counts it as xfailed); the row should agree with pytest.
    setup = FakeReport("setup", "skipped", "E   RuntimeError: fixture broke", wasxfail="known defect")
    row = merged((setup, None), teardown_ok())
    assert row["outcome"] == "xfailed" and "known defect" in row["message"]


def test_every_outcome_is_a_known_outcome() -> None:
    phases = [
        [(FakeReport("call", "passed"), PASSED_RESULT)],
        [(FakeReport("call", "failed", FAILURE_TEXT), MEASURED)],
        [(FakeReport("call", "failed", "E   boom"), {"error": "RuntimeError: boom"})],
        [(FakeReport("call", "skipped", CUDA_SKIP), None)],
        [(FakeReport("call", "skipped", FAILURE_TEXT, wasxfail="why"), MEASURED)],
    ]
    assert [merged(*p)["outcome"] for p in phases] == list(OUTCOMES)


# -- sort_rows -----------------------------------------------------------------------------------
CHECKS_IN_ORDER = [
    "oracle",
    "output_contract",
    "determinism",
    "gradient",
    "gradcheck",
    "gradgradcheck",
    "invariant:causality",
    "invariant:convex_hull",
    "invariant:weights_sum_to_one",
]
DTYPES_IN_ORDER = ["float64", "float32", "bfloat16", "float16"]


def grid() -> list[dict[str, Any]]:
    """Rows in the expected report order: spec, implementation, device, dtype, check."""
    rows = []
    for spec, impl, device, dtype, check in itertools.product(
        ["attention", "surprise"], ["a.py:f", "b.py:g"], ["cpu", "cuda"], DTYPES_IN_ORDER, CHECKS_IN_ORDER
    ):
        rows.append({"spec": spec, "implementation": impl, "device": device, "dtype": dtype, "check": check})
    return rows


def test_sort_rows_order_is_independent_of_input_order() -> None:
    expected = grid()
    for seed in range(5):
        shuffled = list(expected)
        random.Random(seed).shuffle(shuffled)
        assert sort_rows(shuffled) == expected
    assert sort_rows(list(reversed(expected))) == expected


def test_sort_rows_check_order() -> None:
    checks = list(reversed(CHECKS_IN_ORDER))
    rows = [{"spec": "s", "implementation": "i", "device": "cpu", "dtype": "float64", "check": c} for c in checks]
    assert [r["check"] for r in sort_rows(rows)] == CHECKS_IN_ORDER


def test_sort_rows_dtype_order_and_facts_first() -> None:
    dtypes = ["float16", "float32", "exact", "bfloat16", "float64"]
    rows = [{"spec": "s", "implementation": "i", "device": "cpu", "dtype": d, "check": "oracle"} for d in dtypes]
    assert [r["dtype"] for r in sort_rows(rows)] == ["exact", *DTYPES_IN_ORDER]
