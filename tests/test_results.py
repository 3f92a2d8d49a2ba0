"""conformance.results: one Result type, made in one place, with a lossless JSON round trip."""

from __future__ import annotations

import json
import math

import pytest

from conformance.results import OUTCOMES, Result, ResultError, make_result, results_equal

IDENTITY = {
    "spec": "rmsnorm",
    "implementation": "implementations.rmsnorm:RMSNorm",
    "device": "cpu",
    "dtype": "float32",
    "check": "oracle",
    "title": "RMSNorm",
    "paper": "Root Mean Square Layer Normalization",
    "arxiv": "1910.07467",
    "url": None,
    "equation": "4",
    "spec_file": "specs/rmsnorm.yaml",
    "spec_line": 40,
    "family": "equation",
}


def test_round_trip_is_lossless_through_json_text() -> None:
    result = make_result(
        IDENTITY,
        outcome="failed",
        message="max |error| 1 > tolerance 0.5",
        measured={
            "examples": 7,
            "duration_s": 0.25,
            "max_abs_err": float("inf"),
            "max_rel_err": float("nan"),
            "tolerance": 0.5,
            "tolerance_basis": "2×0.1 + 0.3",
            "detail": "max |error| 1 > tolerance 0.5",
            "falsifying_example": {"sizes": {"D": 2}, "present": {"mask": True}, "seed": 3},
            "repro": "reproduce(...)",
        },
    )
    row = json.loads(json.dumps(result.to_json(), allow_nan=False))
    assert row["max_abs_err"] == "inf" and row["max_rel_err"] == "nan"
    back = Result.from_json(row)
    assert results_equal(back, result) and back.to_json() == row
    assert math.isinf(back.max_abs_err) and math.isnan(back.max_rel_err)


def test_unset_optional_fields_are_left_out_and_unknown_fields_kept() -> None:
    row = make_result(IDENTITY, outcome="passed").to_json()
    assert "proof" not in row and "falsifying_example" not in row and "nodeid" not in row
    newer = {**row, "a_field_from_a_newer_writer": [1, 2]}
    assert Result.from_json(newer).to_json() == newer


def test_key_and_ok() -> None:
    result = make_result(IDENTITY, outcome="error", message="RuntimeError: boom")
    assert result.key == ("rmsnorm", "implementations.rmsnorm:RMSNorm", "cpu", "float32", "oracle")
    assert not result.ok and make_result(IDENTITY, outcome="xfailed").ok


@pytest.mark.parametrize("outcome", ["pass", "FAILED", ""])
def test_an_unknown_outcome_is_refused(outcome: str) -> None:
    with pytest.raises(ResultError, match="outcome must be one of"):
        make_result(IDENTITY, outcome=outcome)
    with pytest.raises(ResultError, match="outcome must be one of"):
        Result.from_json({**make_result(IDENTITY, outcome="passed").to_json(), "outcome": outcome})


def test_a_row_without_its_key_is_refused() -> None:
    row = make_result(IDENTITY, outcome="passed").to_json()
    del row["check"]
    with pytest.raises(ResultError, match="needs check"):
        Result.from_json(row)


def test_outcomes_are_the_documented_five() -> None:
    assert OUTCOMES == ("passed", "failed", "error", "skipped", "xfailed")
