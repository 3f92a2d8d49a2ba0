"""conformance.report.rows: the pytest driver's rows, folded from the phases, in a fixed order.

The engine decides every outcome (``tests/test_engine.py``); ``merge_phase`` keeps the result a call
phase carries and makes the row of a test that never reached the engine (an error or a skip in setup,
an error in teardown) from the case's identity. It is fed fake reports carrying only what pytest's
``TestReport`` gives it (``when``, ``passed``/``failed``/``skipped``, ``longrepr``, ``nodeid``).
"""

from __future__ import annotations

import itertools
import random
from typing import Any

from conformance.report.rows import OUTCOMES, merge_phase, sort_rows
from conformance.results import Result, make_result

NODEID = "conformance/test_conformance.py::test_conformance[surprise-impl-cpu-float64-oracle]"
CASE = {
    "spec": "surprise",
    "implementation": "implementations.surprise:compute_surprise",
    "device": "cpu",
    "dtype": "float64",
    "check": "oracle",
    "spec_line": 41,
    "family": "equation",
}
MEASURED = {
    "examples": 20,
    "duration_s": 0.5,
    "max_abs_err": 0.25,
    "max_rel_err": 0.125,
    "tolerance": 1e-12,
    "tolerance_basis": "2×1e-13 (same-precision reference error) + 8e-13 (noise floor)",
    "detail": "max |error| 0.25 > tolerance 1e-12",
    "falsifying_example": {"sizes": {"B": 1, "L": 1, "D": 2}, "params": {}, "magnitudes": {}, "present": {}, "seed": 3},
    "repro": "from conformance.repro import reproduce\nreproduce('surprise', ...)",
}
FAILED = make_result(CASE, outcome="failed", message=MEASURED["detail"], measured=MEASURED).to_json()
PASSED = make_result(CASE, outcome="passed", measured={**MEASURED, "max_abs_err": 1e-16, "detail": None}).to_json()
FIXTURE_ERROR = """\
    @pytest.fixture
    def broken():
>       raise RuntimeError("fixture exploded")
E       RuntimeError: fixture exploded

conftest.py:3: RuntimeError"""
CUDA_SKIP = ("conformance/test_conformance.py", 17, "Skipped: CUDA not available (torch.cuda.is_available() is False)")


class FakeReport:
    """The attributes of a pytest ``TestReport`` that ``merge_phase`` reads."""

    def __init__(self, when: str, outcome: str, longrepr: Any = None) -> None:
        assert outcome in ("passed", "failed", "skipped")
        self.when, self.nodeid, self.longrepr = when, NODEID, longrepr
        self.passed, self.failed, self.skipped = (outcome == o for o in ("passed", "failed", "skipped"))


def merged(*phases: tuple[FakeReport, dict[str, Any] | None]) -> Result:
    """The row after folding ``(report, result)`` phases in order, as the plugin does."""
    row = None
    for report, result in phases:
        row = merge_phase(row, report, CASE, result)
    assert row is not None
    return row


def setup_ok() -> tuple[FakeReport, None]:
    return FakeReport("setup", "passed"), None


def teardown_ok() -> tuple[FakeReport, None]:
    return FakeReport("teardown", "passed"), None


# -- merge_phase ---------------------------------------------------------------------------------
def test_the_call_phase_result_is_the_row_with_its_nodeid() -> None:
    row = merged(setup_ok(), (FakeReport("call", "failed"), FAILED), teardown_ok())
    assert row.to_json() == {**FAILED, "nodeid": NODEID}
    assert merged(setup_ok(), (FakeReport("call", "passed"), PASSED), teardown_ok()).outcome == "passed"


def test_a_setup_error_is_an_error_row_with_pytests_reason() -> None:
    row = merged((FakeReport("setup", "failed", FIXTURE_ERROR), None), teardown_ok())
    assert row.outcome == "error" and row.message == "RuntimeError: fixture exploded"
    assert row.key == ("surprise", "implementations.surprise:compute_surprise", "cpu", "float64", "oracle")
    assert row.spec_line == 41


def test_a_skip_during_setup_is_skipped_with_its_reason() -> None:
    row = merged((FakeReport("setup", "skipped", CUDA_SKIP), None), teardown_ok())
    assert row.outcome == "skipped" and row.message == "CUDA not available (torch.cuda.is_available() is False)"


def test_a_teardown_error_after_a_failure_keeps_the_failure() -> None:
    row = merged(setup_ok(), (FakeReport("call", "failed"), FAILED), (FakeReport("teardown", "failed", FIXTURE_ERROR), None))
    assert row.outcome == "failed" and row.message == MEASURED["detail"]


def test_a_teardown_error_after_a_pass_is_an_error() -> None:
    row = merged(setup_ok(), (FakeReport("call", "passed"), PASSED), (FakeReport("teardown", "failed", FIXTURE_ERROR), None))
    assert row.outcome == "error" and "fixture exploded" in row.message


def test_merge_returns_a_new_row_and_leaves_the_previous_one_alone() -> None:
    first = merged(setup_ok(), (FakeReport("call", "passed"), PASSED))
    before = first.to_json()
    merge_phase(first, FakeReport("teardown", "failed", FIXTURE_ERROR), CASE, None)
    assert first.to_json() == before


def test_every_outcome_is_a_known_outcome() -> None:
    for phases in (
        [setup_ok(), (FakeReport("call", "passed"), PASSED)],
        [setup_ok(), (FakeReport("call", "failed"), FAILED)],
        [(FakeReport("setup", "failed", FIXTURE_ERROR), None)],
        [(FakeReport("setup", "skipped", CUDA_SKIP), None)],
    ):
        assert merged(*phases).outcome in OUTCOMES


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
