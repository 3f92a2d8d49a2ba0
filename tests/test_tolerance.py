"""conformance.tolerance: derived tolerances and the comparison against the float64 oracle.

Rule: atol = factor × baseline + floor_ulps · eps(dtype) · scale (+ slack); without a
same-precision reference, fallback_ulps · eps · scale (+ slack).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from conformance.dtype_helpers import DTYPES, round_to
from conformance.spec import ToleranceRule
from conformance.tolerance import (
    FALLBACK_ULPS,
    RESCALED_REFERENCE_DTYPE,
    Measurement,
    compare,
    derive,
    max_abs,
    rescaled_baseline,
)

EPS = {"float64": 2.0**-52, "float32": 2.0**-23, "bfloat16": 2.0**-7, "float16": 2.0**-10}
DEFAULT = ToleranceRule()


# -- derive ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_derive_default_rule_is_twice_baseline_plus_eight_ulps(dtype: str) -> None:
    tol = derive(dtype, baseline=3e-3, scale=4.0, rule=DEFAULT)
    assert tol.atol == pytest.approx(2 * 3e-3 + 8 * EPS[dtype] * 4.0, rel=1e-15)
    assert tol.floor == pytest.approx(8 * EPS[dtype] * 4.0, rel=1e-15)
    assert tol.baseline == 3e-3 and tol.factor == 2.0 and tol.slack == 0.0


@pytest.mark.parametrize(
    ("dtype", "baseline", "scale", "rule", "slack", "expected"),
    [
        ("float32", 1e-7, 1.0, ToleranceRule(), 0.0, 2e-7 + 8 * 2.0**-23),
        ("float16", 0.0, 2.0, ToleranceRule(), 0.0, 8 * 2.0**-10 * 2.0),
        ("bfloat16", 0.01, 0.5, ToleranceRule(4.0, 16.0, "r"), 0.0, 0.04 + 16 * 2.0**-7 * 0.5),
        ("float64", 1e-15, 10.0, ToleranceRule(1.0, 0.0, "r"), 0.0, 1e-15),
        ("float32", 1e-6, 1.0, ToleranceRule(), 5e-4, 2e-6 + 8 * 2.0**-23 + 5e-4),
    ],
    ids=["float32-default", "exact-reference", "override", "no-floor", "with-slack"],
)
def test_derive_worked_examples(dtype, baseline, scale, rule, slack, expected) -> None:
    assert derive(dtype, baseline=baseline, scale=scale, rule=rule, slack=slack).atol == pytest.approx(expected, rel=1e-15)


def test_derive_grows_with_baseline_scale_and_slack() -> None:
    base = derive("float32", baseline=1e-6, scale=1.0, rule=DEFAULT).atol
    assert derive("float32", baseline=2e-6, scale=1.0, rule=DEFAULT).atol > base
    assert derive("float32", baseline=1e-6, scale=2.0, rule=DEFAULT).atol > base
    assert derive("float32", baseline=1e-6, scale=1.0, rule=DEFAULT, slack=1e-9).atol > base


def test_lower_precision_gets_a_larger_floor() -> None:
    floors = [derive(dt, baseline=0.0, scale=1.0, rule=DEFAULT).atol for dt in ("float64", "float32", "bfloat16")]
    assert floors == sorted(floors) and len(set(floors)) == 3


@pytest.mark.parametrize("baseline", [None, math.nan, math.inf])
def test_derive_without_a_usable_reference_falls_back_to_ulps_at_scale(baseline) -> None:
    tol = derive("float32", baseline=baseline, scale=3.0, rule=DEFAULT, slack=1e-5)
    assert tol.atol == pytest.approx(FALLBACK_ULPS * EPS["float32"] * 3.0 + 1e-5, rel=1e-15)
    assert tol.baseline is None
    assert "same-precision reference" not in tol.describe()


def test_fallback_is_looser_than_the_default_floor() -> None:
    fallback = derive("float16", baseline=None, scale=1.0, rule=DEFAULT).atol
    exact_reference = derive("float16", baseline=0.0, scale=1.0, rule=DEFAULT).atol
    assert fallback == pytest.approx(64 * EPS["float16"]) and exact_reference == pytest.approx(8 * EPS["float16"])


@pytest.mark.parametrize("dtype", ["float64", "float32", "bfloat16", "float16"])
def test_zero_scale_gives_the_floor_at_the_dtypes_subnormal_spacing(dtype: str) -> None:
    """No result of the dtype can be nearer to an exact value than half its smallest spacing (float16: 2⁻²⁴)."""
    import torch

    tol = derive(dtype, baseline=0.0, scale=0.0, rule=DEFAULT)
    finfo = torch.finfo(getattr(torch, dtype))
    assert tol.atol == 8 * finfo.eps * finfo.smallest_normal


# -- describe ----------------------------------------------------------------------------------------
def test_describe_names_each_term() -> None:
    text = derive("float32", baseline=1e-6, scale=1.0, rule=DEFAULT, slack=1e-4).describe()
    assert "2×1e-06 (same-precision reference error)" in text
    assert "(noise floor)" in text
    assert "0.0001 (oracle's own violation)" in text
    assert "override" not in text


def test_override_reason_appears_in_describe_and_in_a_failure() -> None:
    rule = ToleranceRule(factor=4.0, floor_ulps=16.0, reason="the fused kernel accumulates in bfloat16")
    tol = derive("bfloat16", baseline=1e-3, scale=1.0, rule=rule)
    assert tol.describe().endswith("; override: the fused kernel accumulates in bfloat16")
    assert tol.describe().startswith("4×0.001")
    m = compare(np.array([1.0]), np.array([0.0]), dtype="bfloat16", rule=rule, reference=np.array([1e-3]))
    assert not m.passed and "override: the fused kernel accumulates in bfloat16" in m.detail


# -- max_abs -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ([1.0, 2.0, 3.0], [1.0, 2.5, 2.0], 1.0),
        ([np.nan, 0.0], [0.0, 0.0], math.inf),
        ([0.0, 0.0], [0.0, np.nan], math.inf),
        ([np.nan], [np.nan], math.inf),
        ([np.inf, -np.inf, 1.0], [np.inf, -np.inf, 1.0], 0.0),
        ([np.inf], [-np.inf], math.inf),
        ([np.inf], [1e308], math.inf),
        ([1e308], [-1e308], math.inf),
        ([], [], 0.0),
    ],
    ids=[
        "finite",
        "nan-actual",
        "nan-expected",
        "nan-both",
        "equal-infinities",
        "opposite-infinities",
        "inf-vs-finite",
        "overflowing-difference",
        "empty",
    ],
)
def test_max_abs(a, b, expected) -> None:
    assert max_abs(np.array(a), np.array(b)) == expected


def test_max_abs_broadcasts() -> None:
    assert max_abs(np.array([[1.0], [2.0]]), np.array([1.0, 1.5, 4.0])) == 3.0


# -- compare -----------------------------------------------------------------------------------------
def test_compare_nan_in_actual_counts_as_infinite_error() -> None:
    expected = np.array([1.0, 2.0])
    m = compare(np.array([1.0, np.nan]), expected, dtype="float32", rule=DEFAULT, reference=expected)
    assert not m.passed and m.max_abs_err == math.inf and m.ratio == math.inf
    assert "max |error| inf" in m.detail


def test_compare_equal_infinities_are_no_error() -> None:
    expected = np.array([-np.inf, 0.5, np.inf])
    m = compare(expected.copy(), expected, dtype="float16", rule=DEFAULT, reference=expected)
    assert m.passed and m.max_abs_err == 0.0 and m.detail == ""


def test_compare_infinity_where_a_finite_value_is_expected_fails() -> None:
    m = compare(np.array([np.inf, 1.0]), np.array([65504.0, 1.0]), dtype="float16", rule=DEFAULT)
    assert not m.passed


def test_compare_uses_max_abs_of_expected_as_scale_and_reports_relative_error() -> None:
    expected = np.array([-8.0, 2.0])
    m = compare(np.array([-8.0, 2.5]), expected, dtype="float64", rule=DEFAULT)
    assert m.max_abs_err == 0.5 and m.max_rel_err == 0.5 / 8.0
    assert m.tolerance.atol == pytest.approx(FALLBACK_ULPS * EPS["float64"] * 8.0)


def test_compare_without_reference_uses_the_fallback() -> None:
    expected = np.ones(4)
    within = expected + 60 * EPS["float32"]
    beyond = expected + 70 * EPS["float32"]
    assert compare(within, expected, dtype="float32", rule=DEFAULT).passed
    assert not compare(beyond, expected, dtype="float32", rule=DEFAULT).passed


def test_compare_slack_admits_the_oracles_own_violation() -> None:
    expected, actual = np.zeros(3), np.full(3, 1e-3)
    assert not compare(actual, expected, dtype="float32", rule=DEFAULT, reference=expected, scale=1.0).passed
    assert compare(actual, expected, dtype="float32", rule=DEFAULT, reference=expected, scale=1.0, slack=1e-3).passed


def test_measurement_ratio_is_above_one_exactly_when_failing() -> None:
    expected = np.linspace(-1, 1, 9)
    reference = expected + 1e-3
    for error in (1e-4, 1e-3, 2e-3, 3e-3, 1e-2):
        m = compare(expected + error, expected, dtype="float16", rule=DEFAULT, reference=reference)
        assert m.passed == (m.ratio <= 1.0)
    assert Measurement(0.0, 0.0, None, False).ratio == math.inf and Measurement(0.0, 0.0, None, True).ratio == 0.0


def _float16_case(multiple: float) -> Measurement:
    """An implementation whose error is ``multiple`` times the same-precision reference's, in float16.

    The reference's error (2**-6, 16 ulps at scale 1) dominates the 8-ulp floor (2**-7), so the
    verdict is decided by the factor, not by the floor.
    """
    rng = np.random.default_rng(0)
    expected = round_to(rng.uniform(-1.0, 1.0, size=256), "float16")
    expected[0] = 1.0  # scale 1
    signs = rng.choice([-1.0, 1.0], size=expected.shape)
    reference_error = 2.0**-6
    reference = expected + reference_error * signs
    actual = round_to(expected + multiple * reference_error * rng.choice([-1.0, 1.0], size=expected.shape), "float16")
    m = compare(actual, expected, dtype="float16", rule=DEFAULT, reference=reference)
    assert m.tolerance.baseline == reference_error and m.tolerance.floor == 2.0**-7 < reference_error
    return m


def test_float16_error_three_times_the_reference_fails() -> None:
    m = _float16_case(3.0)
    assert not m.passed and m.ratio > 1.0
    assert "same-precision reference error" in m.detail


def test_float16_error_one_and_a_half_times_the_reference_passes() -> None:
    m = _float16_case(1.5)
    assert m.passed and m.ratio < 1.0


def test_compare_takes_a_given_baseline_when_there_is_no_reference() -> None:
    expected = np.array([1.0, -2.0])
    d = 2.0**-20  # exact: 1 + d and -2 + d are representable, so the reference's error is d exactly
    given = compare(expected + d, expected, dtype="float32", rule=ToleranceRule(), baseline=d)
    derived = compare(expected + d, expected, dtype="float32", rule=ToleranceRule(), reference=expected + d)
    assert given.tolerance == derived.tolerance and given.passed
    assert not compare(expected + 16 * d, expected, dtype="float32", rule=ToleranceRule(), baseline=d).passed


def test_a_reference_wins_over_a_given_baseline() -> None:
    expected = np.array([1.0])
    m = compare(expected, expected, dtype="float32", rule=ToleranceRule(), reference=expected + 1e-3, baseline=0.0)
    assert m.tolerance is not None and m.tolerance.baseline == pytest.approx(1e-3)


def test_rescaled_baseline_scales_by_the_ratio_of_epsilons() -> None:
    assert rescaled_baseline(2.0**-20, "float32", "float64") == 2.0**-20 * 2.0**-29
    assert rescaled_baseline(1e-3, "float32", "float32") == 1e-3
    assert RESCALED_REFERENCE_DTYPE == {"float64": "float32"}


def test_the_own_part_of_a_tolerance_is_described_as_what_it_measured() -> None:
    """``own`` counts ``factor`` times and the description names it: by default the float64 oracle's own rounding,
    or the basis a check gives (the reference gradient's conditioning at a lower precision)."""
    expected, rule = np.array([1.0, 2.0]), ToleranceRule()
    default = compare(expected, expected, dtype="float64", rule=rule, baseline=0.0, own=np.array([1e-15, 1e-15]))
    assert "2×1e-15 (float64 oracle's own rounding)" in default.tolerance.describe()
    named = compare(expected, expected, dtype="float32", rule=rule, baseline=0.0, own=np.array([1e-6, 1e-6]),
                    own_basis="the gradient's change with inputs 4 ulps of float32 away")
    assert "2×1e-06 (the gradient's change with inputs 4 ulps of float32 away)" in named.tolerance.describe()
    assert named.tolerance.atol >= 2e-6


def test_an_infinite_result_fails_even_where_the_tolerance_is_vacuous() -> None:
    """A tolerance that reaches the expected value's magnitude everywhere cannot fail a finite result, so such an
    example is not judged; an overflow (inf where the expected value is finite) still fails it."""
    expected, rule = np.array([1e-9, -2e-9]), ToleranceRule()
    finite = compare(np.array([0.0, 0.0]), expected, dtype="float16", rule=rule, baseline=0.0)
    assert finite.vacuous and not finite.passed
    overflow = compare(np.array([0.0, np.inf]), expected, dtype="float16", rule=rule, baseline=0.0)
    assert not overflow.vacuous and not overflow.passed and "max |error| inf" in overflow.detail
